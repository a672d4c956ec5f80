"""Annotations joined to their texts, as rows the trainers read.

Rules this module implements:
- an annotation file is JSONL of ``training.annotation.records`` rows (ids and labels only); its texts
  are read from ``<data_dir>/tipdm2020c/<file>`` and joined by file and id at load time;
- ids that the data directory does not hold stop the load with one line naming the annotation file, how
  many ids are missing and the first of them;
- the frame has the columns of ``training.data.read_appeals`` plus ``department``, ``company`` (``none``
  where the annotator decided that no company takes part), ``fixed_split`` (``test`` for the blind test
  split) and ``origin`` (``annotation``).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import pandas as pd

from taxonomy import Taxonomy
from taxonomy.text import normalize
from training.annotation.records import AnnotationError, read_annotations
from training.annotation.tasks import read_sources

NO_COMPANY = "none"


@lru_cache(maxsize=2)
def _sources(data_dir: str):
    return read_sources(data_dir)


def load_annotations(path: str | Path, taxonomy: Taxonomy, data_dir: str | Path) -> pd.DataFrame:
    rows = read_annotations(path, taxonomy)
    try:
        sources = _sources(str(Path(data_dir).resolve()))
    except FileNotFoundError as exc:
        raise AnnotationError(path, f"the texts cannot be joined: {exc.filename} not found "
                                    "(set JIESU_DATA_DIR to the shared data directory)") from None
    missing = [r.ref for r in rows if r.key not in sources]
    if missing:
        raise AnnotationError(path, f"{len(missing)} id(s) not found in {Path(data_dir) / 'tipdm2020c'}: "
                                    + ", ".join(missing[:5]) + (" …" if len(missing) > 5 else ""))
    records = []
    for row in rows:
        source = sources[row.key]
        records.append({
            "id": row.id, "title": normalize(source.title), "text": normalize(source.text),
            "category": row.path[0], "category_path": row.category, "urgency": row.urgency,
            "appeal_type": row.appeal_type, "unit": "", "district": "", "street": "", "created_at": "",
            "department": row.department, "company": row.company or NO_COMPANY,
            "source_file": row.file, "fixed_split": "test" if row.split == "test" else "",
            "origin": "annotation", "annotator": row.annotator,
            "suggested": "" if row.suggestion is None else str(row.suggestion.get("source", "suggested")),
        })
    frame = pd.DataFrame.from_records(records)
    empty = frame[(frame["title"] == "") & (frame["text"] == "")]
    if len(empty):
        raise AnnotationError(path, f"{len(empty)} annotated appeal(s) have neither title nor text in the data, "
                                    f"e.g. {empty.iloc[0]['source_file']}:{empty.iloc[0]['id']}")
    return frame


def is_annotation_file(path: str | Path) -> bool:
    """An annotation file is JSONL whose first row names ``file`` and ``id`` and carries no ``text``."""
    import json

    path = Path(path)
    if path.suffix.lower() not in (".jsonl", ".ndjson") or not path.is_file():
        return False
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                try:
                    first = json.loads(line)
                except json.JSONDecodeError:
                    return False
                return isinstance(first, dict) and "file" in first and "id" in first and "text" not in first
    return False
