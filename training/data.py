"""Labelled appeals in, one frame with its splits out (``load_appeals`` gives them as a ``datasets.DatasetDict``).

Rules this module implements:
- input is CSV, JSONL or Parquet with the columns ``title, text, category`` and optionally ``id,
  urgency, appeal_type, unit, district, street, created_at``; ``title`` may be empty, ``text`` may be
  empty when the title carries the appeal, both empty is an error;
- every label must be in the taxonomy: categories by name or path (mapped to the requested level),
  urgency 1–4, appeal types as in the taxonomy; the first bad row is reported by file, row and column;
- splits are stratified by category, seeded, and independent of the input order; rows that repeat an
  appeal (the same normalised title, or the same normalised text) form one group and land in one split,
  so a duplicate never leaks from train into test.
"""

from __future__ import annotations

import hashlib
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from serving.model.appeals import JsonlError, read_jsonl
from taxonomy import Taxonomy
from taxonomy.text import normalize

REQUIRED_COLUMNS = ("title", "text", "category")
OPTIONAL_COLUMNS = ("id", "urgency", "appeal_type", "unit", "district", "street", "created_at", "department",
                    "company")
DEFAULT_SOURCES = "default"  # ``--data default``: the public labelled file plus the team's annotations
SPLITS = ("train", "validation", "test")


class DataError(ValueError):
    """A data file cannot be used: names the file, the row (1-based, as a person counts) and the column."""

    def __init__(self, file: str | Path, reason: str, row: int | None = None, column: str | None = None):
        self.file, self.row, self.column, self.reason = str(file), row, column, reason
        where = str(file)
        if row is not None:
            where += f": row {row}"
        if column:
            where += f", column {column!r}" if row is not None else f": column {column!r}"
        super().__init__(f"{where}: {reason}")


@dataclass(frozen=True)
class SplitConfig:
    validation: float = 0.1
    test: float = 0.1
    seed: int = 13

    def __post_init__(self) -> None:
        if not (0 <= self.validation < 1 and 0 <= self.test < 1 and self.validation + self.test < 1):
            raise ValueError("validation and test fractions must be in [0, 1) and sum to less than 1")


def read_table(path: str | Path) -> pd.DataFrame:
    """Read a CSV, JSONL/JSON-lines or Parquet file as strings (no type guessing, no NaN for empty)."""
    path = Path(path)
    if not path.exists():
        raise DataError(path, "file not found")
    suffix = path.suffix.lower()
    try:
        if suffix == ".csv":
            frame = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
        elif suffix in (".jsonl", ".json", ".ndjson"):
            frame = _read_jsonl(path)
        elif suffix in (".parquet", ".pq"):
            frame = pd.read_parquet(path)
        else:
            raise DataError(path, f"unknown file type {suffix!r}: use .csv, .jsonl or .parquet")
    except UnicodeDecodeError as exc:
        raise DataError(path, f"not valid UTF-8 (byte {exc.start}: {exc.reason})") from None
    except DataError:
        raise
    except (ValueError, OSError) as exc:  # pandas' and pyarrow's parse errors
        raise DataError(path, f"cannot be parsed: {str(exc).splitlines()[0]}") from None
    frame.columns = [str(c).strip() for c in frame.columns]
    return frame


def _read_jsonl(path: Path) -> pd.DataFrame:
    try:
        return pd.DataFrame([obj for _, obj in read_jsonl(path)])
    except JsonlError as exc:
        raise DataError(path, exc.reason, row=exc.line) from None


def read_appeals(path: str | Path, taxonomy: Taxonomy, level: int = 1) -> pd.DataFrame:
    """Read and validate one file of labelled appeals; the category column is mapped to ``level``."""
    frame = read_table(path)
    missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
    if missing:
        raise DataError(path, f"missing column (found: {', '.join(frame.columns) or 'none'})", column=missing[0])
    out = pd.DataFrame()
    out["id"] = _strings(frame["id"]) if "id" in frame.columns else [f"{Path(path).stem}:{i + 1}" for i in range(len(frame))]
    out["title"] = [normalize(v) for v in _strings(frame["title"])]
    out["text"] = [normalize(v) for v in _strings(frame["text"])]
    empty = [i for i, (t, x) in enumerate(zip(out["title"], out["text"])) if not t and not x]
    if empty:
        raise DataError(path, f"empty appeal: title and text are both empty ({len(empty)} rows)", row=empty[0] + 1,
                        column="text")
    out["category"] = _categories(_strings(frame["category"]), taxonomy, level, path)
    out["category_path"] = _categories(_strings(frame["category"]), taxonomy, 0, path)  # as deep as labelled
    out["urgency"] = _urgencies(frame["urgency"], path) if "urgency" in frame.columns else -1
    if "appeal_type" in frame.columns:
        out["appeal_type"] = _appeal_types(_strings(frame["appeal_type"]), taxonomy, path)
    else:
        out["appeal_type"] = ""
    for column in ("unit", "district", "street", "created_at"):
        out[column] = _strings(frame[column]) if column in frame.columns else ""
    out["department"] = _departments(frame, taxonomy, path)
    out["company"] = _companies(frame, taxonomy, path)
    out["source_file"] = str(path)
    out["fixed_split"] = ""
    out["origin"] = "file"
    return out


def _departments(frame: pd.DataFrame, taxonomy: Taxonomy, path) -> list[str]:
    """A ``department`` column (a department id), or one derived from a ``unit`` column that names a
    department unit (``dept:housing@110105`` → ``housing``), as a corrections export does; else empty."""
    known = {u.department_id for u in taxonomy.units.of_kind("department") if u.department_id}
    if "department" in frame.columns:
        values = _strings(frame["department"])
        for row, value in enumerate(values, start=1):
            if value and value not in known:
                raise DataError(path, f"department {value!r} is not a department id of {taxonomy.name}", row=row,
                                column="department")
        return values
    if "unit" not in frame.columns:
        return [""] * len(frame)
    out = []
    for value in _strings(frame["unit"]):
        unit = taxonomy.units.get(value) if value else None
        out.append(unit.department_id if unit is not None and unit.kind == "department" else "")
    return out


def _companies(frame: pd.DataFrame, taxonomy: Taxonomy, path) -> list[str]:
    """A ``company`` column: a company id, ``none`` (labelled: no company takes part), or empty (unknown)."""
    if "company" not in frame.columns:
        return [""] * len(frame)
    known = {u.id.split(":", 1)[1] for u in taxonomy.units.of_kind("company")} | {"none"}
    values = _strings(frame["company"])
    for row, value in enumerate(values, start=1):
        if value and value not in known:
            raise DataError(path, f"company {value!r} is not a company id of {taxonomy.name}", row=row,
                            column="company")
    return values


def read_unlabelled(path: str | Path) -> pd.DataFrame:
    """Read appeals without labels (``title``, ``text``; any other column is ignored), normalised as the
    labelled ones are. An appeal with neither title nor text is an error, as in labelled files."""
    frame = read_table(path)
    missing = [c for c in ("title", "text") if c not in frame.columns]
    if missing:
        raise DataError(path, f"missing column (found: {', '.join(frame.columns) or 'none'})", column=missing[0])
    out = pd.DataFrame({"title": [normalize(v) for v in _strings(frame["title"])],
                        "text": [normalize(v) for v in _strings(frame["text"])]})
    empty = [i for i, (t, x) in enumerate(zip(out["title"], out["text"])) if not t and not x]
    if empty:
        raise DataError(path, f"empty appeal: title and text are both empty ({len(empty)} rows)", row=empty[0] + 1,
                        column="text")
    out["source_file"] = str(path)
    return out


def _strings(series: pd.Series) -> list[str]:
    return ["" if v is None or (isinstance(v, float) and np.isnan(v)) else str(v).strip() for v in series]


def _categories(values: list[str], taxonomy: Taxonomy, level: int, path) -> list[str]:
    out = []
    for row, value in enumerate(values, start=1):
        if not value:
            raise DataError(path, "empty category", row=row, column="category")
        node = taxonomy.categories.find(normalize(value))
        if node is None:
            raise DataError(path, f"category {value!r} is not in the taxonomy ({taxonomy.name})", row=row,
                            column="category")
        if level and node.level < level:
            raise DataError(path, f"category {value!r} is level {node.level}; level {level} is needed", row=row,
                            column="category")
        out.append("/".join(node.path[:level] if level else node.path))
    return out


def _urgencies(series: pd.Series, path) -> list[int]:
    out = []
    for row, value in enumerate(_strings(series), start=1):
        if value == "":
            out.append(-1)
            continue
        try:
            number = int(float(value))
        except ValueError:
            number = 0
        if number not in (1, 2, 3, 4) or float(value) != number:
            raise DataError(path, f"urgency {value!r} is not a level 1–4", row=row, column="urgency")
        out.append(number)
    return out


def _appeal_types(values: list[str], taxonomy: Taxonomy, path) -> list[str]:
    allowed = set(taxonomy.appeal_types.names)
    for row, value in enumerate(values, start=1):
        if value and value not in allowed:
            raise DataError(path, f"appeal type {value!r} is not one of {', '.join(taxonomy.appeal_types.names)}",
                            row=row, column="appeal_type")
    return values


def duplicate_groups(titles: list[str], texts: list[str]) -> np.ndarray:
    """Group ids: rows sharing a normalised title or a normalised text are one group (union-find)."""
    parent = list(range(len(titles)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    first_seen: dict[tuple[str, str], int] = {}
    for i, (title, text) in enumerate(zip(titles, texts)):
        for key in (("title", title), ("text", text)):
            if not key[1]:
                continue
            if key in first_seen:
                parent[find(i)] = find(first_seen[key])
            else:
                first_seen[key] = i
    return np.array([find(i) for i in range(len(titles))])


def assign_splits(frame: pd.DataFrame, config: SplitConfig) -> np.ndarray:
    """Split name per row: stratified by category, duplicate groups kept together, order-independent.
    A row with a ``fixed_split`` of ``test`` (the annotations' blind test split) is test, and so is every
    row that repeats it; the other rows are split by the fractions."""
    groups = duplicate_groups(list(frame["title"]), list(frame["text"]))
    members: dict[int, list[int]] = defaultdict(list)
    for row, group in enumerate(groups):
        members[group].append(row)
    assignment = np.empty(len(frame), dtype=object)
    if "fixed_split" in frame.columns:
        fixed = frame["fixed_split"].to_numpy()
        for group, rows in list(members.items()):
            if any(fixed[r] == "test" for r in rows):
                assignment[rows] = "test"
                del members[group]
    titles, texts, categories = list(frame["title"]), list(frame["text"]), list(frame["category"])
    by_label: dict[str, list[tuple[str, list[int]]]] = defaultdict(list)
    for rows in members.values():
        counts = Counter(categories[r] for r in rows)
        top = max(counts.values())
        label = min(c for c, n in counts.items() if n == top)  # majority label; ties broken by name, not order
        key = hashlib.sha256("\x1f".join(sorted(titles[r] + "\x1e" + texts[r] for r in rows)).encode()).hexdigest()
        by_label[label].append((key, rows))
    rng = np.random.default_rng(config.seed)
    for label in sorted(by_label):
        items = sorted(by_label[label])
        order = rng.permutation(len(items))
        total = sum(len(rows) for _, rows in items)
        quota = {"test": config.test * total, "validation": config.validation * total}
        filled = {"test": 0, "validation": 0}
        for index in order:
            rows = items[index][1]
            split = "train"
            for candidate in ("test", "validation"):
                if filled[candidate] + len(rows) / 2 <= quota[candidate]:
                    split = candidate
                    filled[candidate] += len(rows)
                    break
            assignment[rows] = split
    return assignment


def fingerprint(frame: pd.DataFrame) -> str:
    """sha256 over the sorted (title, text, category) rows: the same data gives the same fingerprint."""
    digest = hashlib.sha256()
    for row in sorted(zip(frame["title"], frame["text"], frame["category"])):
        digest.update("\x1f".join(row).encode())
        digest.update(b"\x1e")
    return digest.hexdigest()


def default_sources(data_dir: str | Path | None = None) -> list[Path]:
    """The default training set: the public labelled file and every annotation file of the project."""
    from taxonomy.profile import PROJECT_ROOT, default_data_dir

    public = Path(data_dir or default_data_dir()) / "tipdm2020c" / "appeals_labelled.csv"
    if not public.exists():
        raise DataError(public, "file not found: the default training set needs the shared data "
                                "(set JIESU_DATA_DIR, or give --data FILE)")
    return [public, *sorted((PROJECT_ROOT / "data" / "annotations").glob("*.jsonl"))]


def expand_sources(paths: list[str | Path], data_dir: str | Path | None = None) -> list[Path]:
    """``default`` among the paths stands for the default training set."""
    out: list[Path] = []
    for path in paths:
        out += default_sources(data_dir) if str(path) == DEFAULT_SOURCES else [Path(path)]
    return list(dict.fromkeys(out))


def load_frame(paths: list[str | Path], taxonomy: Taxonomy, level: int = 1,
               data_dir: str | Path | None = None) -> pd.DataFrame:
    """Every file's rows, validated. Annotation files (ids and labels) are joined to their texts from
    ``data_dir``; an annotated row replaces the same row (file and id) of a plain file, whose labels it
    extends."""
    from training.annotation.load import is_annotation_file, load_annotations
    from taxonomy.profile import default_data_dir

    paths = expand_sources(paths, data_dir)
    if not paths:
        raise ValueError("no data files given")
    parts = []
    for path in paths:
        if is_annotation_file(path):
            part = load_annotations(path, taxonomy, data_dir or default_data_dir())
            part["category"] = ["/".join(p.split("/")[:level]) if p.count("/") + 1 >= level else ""
                                for p in part["category_path"]]
            if (part["category"] == "").any():
                raise DataError(path, f"some annotations stop above level {level}", column="category")
        else:
            part = read_appeals(path, taxonomy, level)
        parts.append(part)
    frame = pd.concat(parts, ignore_index=True)
    annotated = {(Path(f).name, i) for f, i, o in zip(frame["source_file"], frame["id"], frame["origin"])
                 if o == "annotation"}
    if annotated:
        superseded = [o != "annotation" and (Path(f).name, i) in annotated
                      for f, i, o in zip(frame["source_file"], frame["id"], frame["origin"])]
        frame = frame[~np.array(superseded, dtype=bool)].reset_index(drop=True)
    return frame


def load_appeals(
    paths: list[str | Path] | str | Path,
    taxonomy: Taxonomy,
    split: SplitConfig = SplitConfig(),
    level: int = 1,
):
    """The training data's splits as a ``datasets.DatasetDict`` (train/validation/test), for notebooks and
    Hugging Face trainers; ``datasets`` comes with the ``transformer`` extra, not with the service."""
    try:
        import datasets
    except ImportError as exc:  # pragma: no cover - the lock installs it
        raise DataError("load_appeals needs the `datasets` package (pip install 'jiesu[transformer]')") from exc

    paths = [paths] if isinstance(paths, (str, Path)) else list(paths)
    frame = load_frame(paths, taxonomy, level)
    frame["split"] = assign_splits(frame, split)
    parts = {}
    for name in SPLITS:
        part = frame[frame["split"] == name].drop(columns=["split"]).reset_index(drop=True)
        parts[name] = datasets.Dataset.from_pandas(part, preserve_index=False)
    result = datasets.DatasetDict(parts)
    return result
