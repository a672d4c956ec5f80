"""Reading batches for annotators, and the reference they annotate with.

Rules this module implements:
- the reference is the written guidelines (``data/annotations/GUIDELINES.md``) followed by the profile's
  tree (every node with the department that owns it and the company it names), its departments and
  companies, rendered from the profile so that it never drifts from what the router learns;
- a batch is a plain-text file outside the repository: for each appeal its reference (``V:1234``), title,
  body and reply, long texts shortened in the middle; a training batch may carry a suggestion (the public
  first-level label), a blind batch never does;
- the texts come from the shared data directory and are written where the caller says (never into the
  repository).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from taxonomy import Taxonomy
from taxonomy.categories import Category
from taxonomy.text import normalize
from training.annotation.records import FILE_CODES, SOURCE_FILES

PROJECT_ROOT = Path(__file__).resolve().parents[2]
GUIDELINES = PROJECT_ROOT / "data" / "annotations" / "GUIDELINES.md"
TIPDM = "tipdm2020c"
TEXT_LIMIT = 1800
REPLY_LIMIT = 700


@dataclass(frozen=True)
class SourceRow:
    file: str
    id: str
    title: str
    text: str
    reply: str | None = None
    public_category: str | None = None

    @property
    def ref(self) -> str:
        return f"{FILE_CODES[self.file]}:{self.id}"


def read_sources(data_dir: str | Path) -> dict[tuple[str, str], SourceRow]:
    """Every row of the three message files, keyed by (file, id)."""
    rows: dict[tuple[str, str], SourceRow] = {}
    for name in SOURCE_FILES.values():
        path = Path(data_dir) / TIPDM / name
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
        for record in frame.to_dict("records"):
            row = SourceRow(file=name, id=record["id"], title=record.get("title", ""), text=record.get("text", ""),
                            reply=record.get("reply") or None, public_category=record.get("category") or None)
            rows[(name, row.id)] = row
    return rows


def shorten(text: str, limit: int) -> str:
    """Keep the start and the end of a long text: the request is usually at the end."""
    text = normalize(text or "")
    if len(text) <= limit:
        return text
    head = int(limit * 0.7)
    return f"{text[:head]}……【中间省略{len(text) - limit}字】……{text[-(limit - head):]}"


def render_batch(rows: list[SourceRow], *, suggest: bool) -> str:
    parts = []
    for row in rows:
        lines = [f"### {row.ref}", f"标题：{normalize(row.title) or '（无）'}", f"正文：{shorten(row.text, TEXT_LIMIT) or '（无）'}"]
        if row.reply:
            lines.append(f"答复：{shorten(row.reply, REPLY_LIMIT)}")
        if suggest and row.public_category:
            lines.append(f"公开一级标签（建议，可改）：{row.public_category}")
        parts.append("\n".join(lines))
    return "\n\n".join(parts) + "\n"


def write_batches(rows: list[SourceRow], out_dir: str | Path, *, size: int, prefix: str, suggest: bool) -> list[Path]:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for start in range(0, len(rows), size):
        path = out_dir / f"{prefix}{start // size + 1:03d}.txt"
        path.write_text(render_batch(rows[start:start + size], suggest=suggest), encoding="utf-8")
        paths.append(path)
    return paths


def render_reference(taxonomy: Taxonomy) -> str:
    """The guidelines, then the tree, the departments and the companies of the profile."""
    departments = {u.department_id: u for u in taxonomy.units.of_kind("department") if u.department_id and u.level == "city"}
    companies = {u.id.split(":", 1)[1]: u for u in taxonomy.units.of_kind("company")}
    out = [GUIDELINES.read_text(encoding="utf-8"), "", "## 8. The category tree", "",
           "Each node: `name [department id; company id]` — the department and company are the node's own or "
           "inherited from its parent.", ""]
    for root in taxonomy.categories.roots:
        out.append(f"### {root.name}  [{_owner(root)}]")
        for level2 in root.children:
            out.append(f"- {level2.name}  [{_owner(level2)}]{_description(level2)}")
            for leaf in level2.children:
                out.append(f"  - {leaf.name}  [{_owner(leaf)}]{_description(leaf)}")
        out.append("")
    out += ["## 9. Departments (`department`)", "", "| id | name |", "|---|---|"]
    out += [f"| {key} | {unit.short_name or unit.name}（{unit.name}） |" for key, unit in departments.items()]
    out += ["", "## 10. Companies (`company`, a utility's own service only)", "", "| id | name |", "|---|---|"]
    out += [f"| {key} | {unit.short_name or unit.name}（{unit.name}） |" for key, unit in companies.items()]
    return "\n".join(out) + "\n"


def _owner(node: Category) -> str:
    return f"{node.owner}; {node.company}" if node.company else f"{node.owner}"


def _description(node: Category) -> str:
    return f" — {node.description}" if node.description else ""
