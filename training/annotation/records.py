"""One annotation row, and the checks that make it usable.

Rules this module implements:
- a row names its source by ``file`` (one of the shared tipdm message files) and ``id`` (unique within
  that file); texts are never stored in an annotation;
- ``category`` is a path in the profile's tree, level 1 and level 2 at least (a leaf only where one
  clearly fits); ``department`` is a department id of the profile, ``company`` a company id or null
  (only for a utility's own service);
- ``urgency`` is 1–4 and ``appeal_type`` one of the profile's types; both are judged from the message
  as received, not from the reply;
- ``handling_unit`` is the unit the government reply names, verbatim, with its level (street, district,
  city, company); both are null where the appeal has no reply or the reply names no unit;
- ``split`` is ``test`` or ``train``; a test row is annotated blind (``suggestion`` is null);
- the first bad row is reported by file, line and field.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

from taxonomy import Taxonomy

SOURCE_FILES = {
    "L": "appeals_labelled.csv",
    "V": "appeals_with_votes.csv",
    "R": "appeals_with_replies.csv",
}
FILE_CODES = {name: code for code, name in SOURCE_FILES.items()}
UNIT_LEVELS = ("street", "district", "city", "company")
SPLITS = ("train", "test")
FLAGS = ("title_text_mismatch", "not_an_appeal", "several_problems", "unclear")
Split = Literal["train", "test"]


class AnnotationError(ValueError):
    """An annotation file cannot be used: names the file, the line and the field."""

    def __init__(self, file: str | Path, reason: str, line: int | None = None, field_name: str | None = None):
        where = str(file)
        if line is not None:
            where += f": line {line}"
        if field_name:
            where += f", field {field_name!r}"
        super().__init__(f"{where}: {reason}")


@dataclass(frozen=True)
class Annotation:
    file: str
    id: str
    category: str
    urgency: int
    appeal_type: str
    department: str
    company: str | None = None
    handling_unit: str | None = None
    handling_unit_level: str | None = None
    flags: tuple[str, ...] = ()
    annotator: str = ""
    reviewer: str = ""  # who reviewed a test row against the settled conventions (and decided disagreements)
    split: str = "train"
    suggestion: dict | None = None
    adjudicated: bool = False

    @property
    def key(self) -> tuple[str, str]:
        return (self.file, self.id)

    @property
    def ref(self) -> str:
        """The short reference annotators see: ``V:1234`` for row 1234 of the votes file."""
        return f"{FILE_CODES.get(self.file, self.file)}:{self.id}"

    @property
    def path(self) -> tuple[str, ...]:
        return tuple(self.category.split("/"))

    @property
    def blind(self) -> bool:
        return self.suggestion is None

    def to_json(self) -> dict:
        row = asdict(self)
        row["flags"] = list(self.flags)
        return {k: v for k, v in row.items() if v not in (None, [], False, "") or k in ("company",)}


REQUIRED = ("category", "urgency", "appeal_type", "department")


def parse_row(raw: dict, taxonomy: Taxonomy, *, file: str | Path = "<row>", line: int | None = None,
              min_level: int = 2) -> Annotation:
    """Validate one raw row (as an annotator writes it, with ``ref`` or ``file`` + ``id``) against the profile."""

    def bad(field_name: str, reason: str) -> AnnotationError:
        return AnnotationError(file, reason, line, field_name)

    if not isinstance(raw, dict):
        raise AnnotationError(file, "expected a JSON object", line)
    source, row_id = _source(raw, bad)
    for name in REQUIRED:
        if raw.get(name) in (None, ""):
            raise bad(name, "missing")

    category = str(raw["category"]).strip().strip("/")
    node = taxonomy.categories.find(category)
    if node is None or "/" not in category and node.level > 1:
        raise bad("category", f"{category!r} is not a path in the category tree")
    if node.level < min_level and node.children:
        raise bad("category", f"{category!r} stops at level {node.level}; give at least level {min_level}")

    urgency = raw["urgency"]
    if isinstance(urgency, str) and urgency.strip().isdigit():
        urgency = int(urgency)
    if isinstance(urgency, bool) or not isinstance(urgency, int) or not 1 <= urgency <= 4:
        raise bad("urgency", f"{raw['urgency']!r} is not a level 1-4")

    appeal_type = str(raw["appeal_type"]).strip()
    if appeal_type not in taxonomy.appeal_types.names:
        raise bad("appeal_type", f"{appeal_type!r} is not one of {', '.join(taxonomy.appeal_types.names)}")

    department = str(raw["department"]).strip()
    if department not in _department_ids(taxonomy):
        raise bad("department", f"{department!r} is not a department id of the profile")
    company = raw.get("company") or None
    if company is not None and company not in _company_ids(taxonomy):
        raise bad("company", f"{company!r} is not a company id of the profile")

    unit = (raw.get("handling_unit") or "").strip() or None
    unit_level = raw.get("handling_unit_level") or None
    if unit is not None and unit_level not in UNIT_LEVELS:
        raise bad("handling_unit_level", f"{unit_level!r} is not one of {', '.join(UNIT_LEVELS)}")
    if unit is None:
        unit_level = None

    flags = raw.get("flags") or []
    if isinstance(flags, str):
        flags = [flags]
    unknown = [f for f in flags if f not in FLAGS]
    if unknown:
        raise bad("flags", f"{unknown[0]!r} is not one of {', '.join(FLAGS)}")

    split = raw.get("split", "train")
    if split not in SPLITS:
        raise bad("split", f"{split!r} is not one of {', '.join(SPLITS)}")
    suggestion = raw.get("suggestion") or None
    if split == "test" and suggestion is not None:
        raise bad("suggestion", "a test row is annotated blind: no suggestion may be recorded")

    return Annotation(
        file=source, id=row_id, category=node.label, urgency=urgency, appeal_type=appeal_type,
        department=department, company=company, handling_unit=unit, handling_unit_level=unit_level,
        flags=tuple(flags), annotator=str(raw.get("annotator") or ""), reviewer=str(raw.get("reviewer") or ""),
        split=split, suggestion=suggestion,
        adjudicated=bool(raw.get("adjudicated", False)),
    )


def _source(raw: dict, bad) -> tuple[str, str]:
    if raw.get("ref"):
        code, _, row_id = str(raw["ref"]).partition(":")
        if code not in SOURCE_FILES or not row_id:
            raise bad("ref", f"{raw['ref']!r} is not FILE:ID with FILE one of {', '.join(SOURCE_FILES)}")
        return SOURCE_FILES[code], row_id.strip()
    source, row_id = raw.get("file"), raw.get("id")
    if source not in FILE_CODES:
        raise bad("file", f"{source!r} is not one of {', '.join(FILE_CODES)}")
    if row_id in (None, ""):
        raise bad("id", "missing")
    return source, str(row_id).strip()


def _department_ids(taxonomy: Taxonomy) -> set[str]:
    return {u.department_id for u in taxonomy.units.of_kind("department") if u.department_id}


def _company_ids(taxonomy: Taxonomy) -> set[str]:
    return {u.id.split(":", 1)[1] for u in taxonomy.units.of_kind("company")}


def read_annotations(path: str | Path, taxonomy: Taxonomy, *, min_level: int = 2) -> list[Annotation]:
    """Every row of one JSONL file, validated; a repeated (file, id) in one file is an error."""
    path = Path(path)
    rows: list[Annotation] = []
    seen: dict[tuple[str, str], int] = {}
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise AnnotationError(path, "file not found") from None
    except UnicodeDecodeError as exc:
        raise AnnotationError(path, f"not valid UTF-8 ({exc.reason})") from None
    for number, text in enumerate(lines, start=1):
        if not text.strip():
            continue
        try:
            raw = json.loads(text)
        except json.JSONDecodeError as exc:
            raise AnnotationError(path, f"not JSON ({exc.msg})", number) from None
        row = parse_row(raw, taxonomy, file=path, line=number, min_level=min_level)
        if row.key in seen:
            raise AnnotationError(path, f"{row.ref} is annotated twice (first on line {seen[row.key]})", number)
        seen[row.key] = number
        rows.append(row)
    return rows


def write_annotations(rows: list[Annotation], path: str | Path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    ordered = sorted(rows, key=lambda r: (r.file, _id_order(r.id)))
    with path.open("w", encoding="utf-8") as fh:
        for row in ordered:
            fh.write(json.dumps(row.to_json(), ensure_ascii=False, sort_keys=False) + "\n")


def _id_order(row_id: str) -> tuple:
    return (0, int(row_id), "") if row_id.isdigit() else (1, 0, row_id)
