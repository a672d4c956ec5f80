"""From annotators' raw label files to the dataset: the blind test split, the double readings, the review.

Rules this module implements:
- raw files live in one directory per annotator (``<raw>/<annotator>/<batch>.jsonl``); a row is
  validated as ``records.parse_row`` does and tagged with its annotator;
- the blind pool (``pools.json``) is read blind by a primary annotator; a second, independent annotator
  reads part of it again (the double readings, kept apart in ``double.jsonl`` for the agreement figures);
- the test split is every double-read appeal plus, per first-level category of the primary reading,
  further blind appeals until the category's test share reaches ``fraction`` (order fixed by the seed);
  the rest of the blind pool, and every training-pool appeal, is the training split;
- a test row's final label is the review's (a third annotator who read the appeal with both readings and
  the settled conventions) where there is one, else the primary reading.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from pathlib import Path

from dataclasses import dataclass

from taxonomy import Taxonomy
from training.annotation.records import SOURCE_FILES, Annotation, AnnotationError, parse_row

LABEL_FIELDS = ("category", "urgency", "appeal_type", "department", "company", "handling_unit",
                "handling_unit_level", "flags")


def read_raw(raw_dir: str | Path, taxonomy: Taxonomy, prefix: str = "") -> dict[str, dict[str, dict]]:
    """{ref: {annotator: raw row}} for every annotator directory whose name starts with ``prefix``."""
    out: dict[str, dict[str, dict]] = defaultdict(dict)
    for directory in sorted(Path(raw_dir).iterdir()):
        if not directory.is_dir() or not directory.name.startswith(prefix):
            continue
        for path in sorted(directory.glob("*.jsonl")):
            for line_no, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
                if not line.strip():
                    continue
                raw = json.loads(line)
                parse_row(raw, taxonomy, file=path, line=line_no)  # fail early, naming the file and line
                if directory.name in out[raw["ref"]]:
                    raise AnnotationError(path, f"{raw['ref']} read twice by {directory.name}", line_no)
                out[raw["ref"]][directory.name] = raw
    return out


def _order(seed: int, ref: str) -> str:
    return hashlib.sha256(f"{seed}:{ref}".encode()).hexdigest()


def choose_test(blind: list[str], primary: dict[str, dict], double: set[str], fraction: float = 0.7,
                seed: int = 13) -> set[str]:
    by_class: dict[str, list[str]] = defaultdict(list)
    for ref in blind:
        by_class[primary[ref]["category"].split("/")[0]].append(ref)
    test: set[str] = set()
    for name, refs in by_class.items():
        quota = round(fraction * len(refs))
        chosen = [r for r in refs if r in double]
        rest = sorted((r for r in refs if r not in double), key=lambda r: _order(seed, r))
        chosen += rest[:max(0, quota - len(chosen))]
        test.update(chosen)
    return test


def to_annotation(raw: dict, taxonomy: Taxonomy, *, annotator: str, split: str, suggestion: dict | None = None,
                  reviewer: str = "", adjudicated: bool = False) -> Annotation:
    row = {**{k: raw.get(k) for k in LABEL_FIELDS}, "ref": raw["ref"], "annotator": annotator, "split": split,
           "suggestion": suggestion, "reviewer": reviewer, "adjudicated": adjudicated}
    return parse_row(row, taxonomy)


def _labels(raw: dict) -> tuple:
    return tuple(raw.get(k) or None for k in LABEL_FIELDS if k != "flags")


@dataclass
class Dataset:
    train: list[Annotation]
    test: list[Annotation]
    first: list[Annotation]  # the double-read appeals, first reading
    second: list[Annotation]  # the same appeals, second reading


def build_dataset(raw_dir: str | Path, review_dir: str | Path | None, pools: dict, taxonomy: Taxonomy,
                  sources: dict, fraction: float = 0.7) -> Dataset:
    """``pools``: the ``pools.json`` the batches were drawn with; ``sources``: the rows (for suggestions)."""
    raw = read_raw(raw_dir, taxonomy)
    reviews = read_raw(review_dir, taxonomy) if review_dir and Path(review_dir).exists() else {}
    blind = [r for r in pools["blind"] if r in raw]
    primary = {r: _first(raw[r], "p") for r in blind}
    primary = {r: v for r, v in primary.items() if v is not None}
    double = {r for r in primary if _first(raw[r], "d") is not None}
    test = choose_test(list(primary), {r: v[1] for r, v in primary.items()}, double, fraction, pools.get("seed", 13))
    out = Dataset([], [], [], [])
    for ref, (annotator, reading) in sorted(primary.items()):
        if ref not in test:
            out.train.append(to_annotation(reading, taxonomy, annotator=annotator, split="train"))
            continue
        second = _first(raw[ref], "d")
        review = _first(reviews.get(ref, {}), "r")
        final, reviewer = (review[1], review[0]) if review else (reading, "")
        disagreed = second is not None and _labels(second[1]) != _labels(reading)
        out.test.append(to_annotation(final, taxonomy, annotator=annotator, split="test", reviewer=reviewer,
                                      adjudicated=disagreed))
        if second is not None:
            out.first.append(to_annotation(reading, taxonomy, annotator=annotator, split="test"))
            out.second.append(to_annotation(second[1], taxonomy, annotator=second[0], split="test"))
    for ref in list(pools["training"]) + list(pools.get("extra", [])):
        reading = _first(raw.get(ref, {}), "t") or _first(raw.get(ref, {}), "e")
        if reading is None:
            continue
        code, _, row_id = ref.partition(":")
        source = sources.get((SOURCE_FILES[code], row_id))
        suggestion = ({"source": "public_label", "category": source.public_category}
                      if source is not None and source.public_category else None)
        out.train.append(to_annotation(reading[1], taxonomy, annotator=reading[0], split="train",
                                       suggestion=suggestion))
    return out


def _first(readings: dict[str, dict], prefix: str) -> tuple[str, dict] | None:
    """The reading of the first annotator whose name starts with ``prefix``."""
    for name in sorted(readings):
        if name.startswith(prefix):
            return name, readings[name]
    return None
