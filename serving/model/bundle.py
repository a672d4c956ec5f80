"""The model bundle contract: the only thing about a model that crosses from training to serving.

A bundle is a directory:
- ``manifest.json``: format version, model kind, label spaces per head, preprocessing parameters,
  feature blocks, training data fingerprint, metrics summary, created-at, and the sha256 of every
  other file it lists (a changed or truncated file makes the bundle refuse to load);
- the weights: for ``kind: linear`` the arrays in ``linear/weights.npz`` (per head the coefficients,
  intercepts and temperature; per feature block its hashed columns and idf: ``serving.model.linear``;
  no pickles, so loading a bundle never runs code); for ``kind: transformer`` ``model.onnx`` (int8) and
  the tokenizer files; for ``kind: ensemble`` both members under ``members/`` and their head weights;
- the decisions chosen on validation (``decision`` in the manifest: per-level thresholds, the dispatch
  threshold, trusted rules, the tree prior: ``serving.model.hierarchy.Decisions``);
- the evaluation reports (``report.json``/``report.md`` for the first level, ``report_routing.json``
  for the path, department, urgency and type, ``report_validation.json``, ``confusion_matrix.png``).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
KINDS = ("linear", "transformer", "ensemble")


class BundleError(ValueError):
    """A bundle cannot be loaded: names the directory and the reason."""

    def __init__(self, path: str | Path, reason: str):
        self.path, self.reason = str(path), reason
        super().__init__(f"model bundle {path}: {reason}")


@dataclass(frozen=True)
class Manifest:
    path: Path
    data: dict[str, Any]

    @property
    def kind(self) -> str:
        return self.data["kind"]

    @property
    def heads(self) -> dict[str, dict[str, Any]]:
        return self.data["heads"]

    def labels(self, head: str = "category") -> list[str]:
        return list(self.heads[head]["labels"])

    @property
    def preprocessing(self) -> dict[str, Any]:
        return self.data["preprocessing"]

    def file(self, name: str) -> Path:
        return self.path / name


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def write_manifest(directory: Path, data: dict[str, Any]) -> Path:
    """Write the manifest, recording the checksum of every file already in the bundle."""
    files = sorted(p for p in directory.rglob("*") if p.is_file() and p.name != MANIFEST)
    manifest = {
        "format_version": FORMAT_VERSION,
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        **data,
        "files": {p.relative_to(directory).as_posix(): sha256_file(p) for p in files},
    }
    path = directory / MANIFEST
    path.write_text(json.dumps(manifest, ensure_ascii=False, indent=2), encoding="utf-8")
    return path


def read_manifest(directory: str | Path, verify: bool = True) -> Manifest:
    directory = Path(directory)
    if not directory.is_dir():
        raise BundleError(directory, "not a directory")
    path = directory / MANIFEST
    if not path.exists():
        raise BundleError(directory, f"{MANIFEST} is missing: this is not a model bundle")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BundleError(directory, f"{MANIFEST} is not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise BundleError(directory, f"{MANIFEST} must hold a JSON object")
    for key in ("format_version", "kind", "heads", "preprocessing", "files"):
        if key not in data:
            raise BundleError(directory, f"{MANIFEST} has no {key!r}")
    if data["format_version"] != FORMAT_VERSION:
        raise BundleError(directory, f"format version {data['format_version']} is not supported "
                                     f"(this jiesu reads version {FORMAT_VERSION})")
    if data["kind"] not in KINDS:
        raise BundleError(directory, f"unknown model kind {data['kind']!r}")
    if "category" not in data["heads"] or not data["heads"]["category"].get("labels"):
        raise BundleError(directory, "the manifest has no category labels")
    if verify:
        for name, expected in data["files"].items():
            file = directory / name
            if not file.exists():
                raise BundleError(directory, f"{name} is missing")
            if sha256_file(file) != expected:
                raise BundleError(directory, f"{name} does not match its checksum: the bundle is corrupt")
    return Manifest(directory, data)
