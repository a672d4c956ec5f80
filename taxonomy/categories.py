"""The category tree: three levels (一级/二级/三级), each node with the department that owns it.

Rules this module implements:
- a node's ``owner`` (department id), ``company`` (utility company id), ``scope`` (local | citywide) and
  ``needs_place`` are inherited by its children unless a child sets its own;
- sibling names are unique; the tree is at most three levels deep;
- a category is named by its path ``一级/二级/三级``, or by any prefix of it; a bare name is accepted
  where it is unique in the tree.
The YAML form is written by the team (``profiles/<name>/categories.yaml``); ``CategoryTree.from_csv``
imports an official list in the platform's shape (columns 一级分类, 二级分类, 三级分类).
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from taxonomy._files import load_model
from taxonomy.errors import TaxonomyError

MAX_DEPTH = 3
PATH_SEP = "/"
Scope = Literal["local", "citywide"]


class _RawNode(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1)
    owner: str | None = None
    company: str | None = None
    scope: Scope | None = None
    needs_place: bool | None = None
    description: str | None = None
    keywords: list[str] = Field(default_factory=list)
    children: list["_RawNode"] = Field(default_factory=list)

    @field_validator("children", mode="before")
    @classmethod
    def _leaf_names(cls, value):
        return _names_to_nodes(value)


def _names_to_nodes(value):
    """A plain string in the YAML is a leaf with nothing but a name."""
    if isinstance(value, list):
        return [{"name": item} if isinstance(item, str) else item for item in value]
    return value


class _RawTree(BaseModel):
    model_config = ConfigDict(extra="forbid")
    categories: list[_RawNode] = Field(min_length=1)

    @field_validator("categories", mode="before")
    @classmethod
    def _leaf_names(cls, value):
        return _names_to_nodes(value)


@dataclass(frozen=True)
class Category:
    name: str
    path: tuple[str, ...]
    owner: str | None = None
    company: str | None = None
    scope: Scope = "local"
    needs_place: bool = True
    description: str | None = None
    keywords: tuple[str, ...] = ()
    children: tuple["Category", ...] = field(default=(), repr=False)

    @property
    def level(self) -> int:
        return len(self.path)

    @property
    def label(self) -> str:
        return PATH_SEP.join(self.path)

    @property
    def top(self) -> str:
        """The first-level category this node belongs to."""
        return self.path[0]


class CategoryTree:
    """An immutable three-level category tree with lookup by path or unique name."""

    def __init__(self, roots: tuple[Category, ...], source: str | None = None):
        self.roots = roots
        self.source = source
        self._by_label: dict[str, Category] = {}
        self._by_name: dict[str, list[Category]] = {}
        for node in self.walk():
            self._by_label[node.label] = node
            self._by_name.setdefault(node.name, []).append(node)

    def walk(self) -> Iterator[Category]:
        stack = list(reversed(self.roots))
        while stack:
            node = stack.pop()
            yield node
            stack.extend(reversed(node.children))

    def level(self, n: int) -> list[Category]:
        return [node for node in self.walk() if node.level == n]

    @property
    def top_level_names(self) -> list[str]:
        return [root.name for root in self.roots]

    def __contains__(self, label: object) -> bool:
        return isinstance(label, str) and self.find(label) is not None

    def __len__(self) -> int:
        return len(self._by_label)

    def find(self, label: str) -> Category | None:
        """The node named by a path (``城乡建设/市政公用/供暖``) or a unique bare name, else None."""
        label = label.strip()
        if label in self._by_label:
            return self._by_label[label]
        matches = self._by_name.get(label, [])
        return matches[0] if len(matches) == 1 else None

    def get(self, label: str) -> Category:
        node = self.find(label)
        if node is None:
            ambiguous = len(self._by_name.get(label.strip(), [])) > 1
            reason = "is ambiguous: give its full path" if ambiguous else "is not in the category tree"
            raise TaxonomyError(self.source, "category", f"{label!r} {reason}")
        return node

    def with_keywords(self, keywords: dict[str, list[str]], source: str | Path | None = None,
                      strict: bool = True) -> "CategoryTree":
        """The same tree with signal phrases added to the nodes a mapping names by path (the profile's
        ``keywords.yaml``); a path that is not in the tree is an error naming it, or (``strict=False``, for
        a tree that replaces the profile's) left out."""
        for label in keywords:
            if label not in self._by_label and strict:
                raise TaxonomyError(source, f"keywords.{label}", "is not a path in the category tree")

        def rebuild(node: Category) -> Category:
            extra = tuple(k.strip() for k in keywords.get(node.label, ()) if k.strip())
            return replace(node, keywords=tuple(dict.fromkeys(node.keywords + extra)),
                           children=tuple(rebuild(child) for child in node.children))

        return CategoryTree(tuple(rebuild(root) for root in self.roots), source=self.source)

    @classmethod
    def from_yaml(cls, path: str | Path) -> "CategoryTree":
        path = Path(path)
        raw = load_model(_RawTree, path)
        roots = tuple(
            _build(item, (), _Inherited(), path, f"categories[{i}]") for i, item in enumerate(raw.categories)
        )
        _check_siblings(roots, path, "categories")
        return cls(roots, source=str(path))

    @classmethod
    def from_csv(cls, path: str | Path) -> "CategoryTree":
        """Import a tree in the platform's shape: one row per leaf, columns 一级分类, 二级分类, 三级分类."""
        path = Path(path)
        columns = ("一级分类", "二级分类", "三级分类")
        try:
            with path.open(encoding="utf-8-sig", newline="") as fh:
                reader = csv.DictReader(fh)
                missing = [c for c in columns if c not in (reader.fieldnames or [])]
                if missing:
                    raise TaxonomyError(path, missing[0], f"missing column (found {reader.fieldnames})")
                tree: dict[str, dict[str, list[str]]] = {}
                for line, row in enumerate(reader, start=2):
                    names = [(row.get(c) or "").strip() for c in columns]
                    if not names[0]:
                        raise TaxonomyError(path, f"line {line}.一级分类", "empty category name")
                    level2 = tree.setdefault(names[0], {})
                    if names[1]:
                        leaves = level2.setdefault(names[1], [])
                        if names[2] and names[2] not in leaves:
                            leaves.append(names[2])
        except FileNotFoundError:
            raise TaxonomyError(path, None, "file not found") from None
        except UnicodeDecodeError as exc:
            raise TaxonomyError(path, None, f"not valid UTF-8 ({exc.reason})") from None
        if not tree:
            raise TaxonomyError(path, None, "no categories in file")
        roots = tuple(
            Category(
                name=n1,
                path=(n1,),
                children=tuple(
                    Category(
                        name=n2,
                        path=(n1, n2),
                        children=tuple(Category(name=n3, path=(n1, n2, n3)) for n3 in leaves),
                    )
                    for n2, leaves in level2.items()
                ),
            )
            for n1, level2 in tree.items()
        )
        return cls(roots, source=str(path))


@dataclass(frozen=True)
class _Inherited:
    owner: str | None = None
    company: str | None = None
    scope: Scope = "local"
    needs_place: bool = True


def _build(raw: _RawNode, parent: tuple[str, ...], inherited: _Inherited, file: Path, key: str) -> Category:
    name = raw.name.strip()
    if not name or PATH_SEP in name:
        raise TaxonomyError(file, f"{key}.name", f"invalid category name {raw.name!r}")
    path = (*parent, name)
    if len(path) > MAX_DEPTH:
        raise TaxonomyError(file, key, f"the tree has at most {MAX_DEPTH} levels; {PATH_SEP.join(path)} is deeper")
    here = _Inherited(
        owner=raw.owner or inherited.owner,
        company=raw.company or inherited.company,
        scope=raw.scope or inherited.scope,
        needs_place=inherited.needs_place if raw.needs_place is None else raw.needs_place,
    )
    children = tuple(
        _build(child, path, here, file, f"{key}.children[{i}]") for i, child in enumerate(raw.children)
    )
    _check_siblings(children, file, f"{key}.children")
    return Category(
        name=name,
        path=path,
        owner=here.owner,
        company=here.company,
        scope=here.scope,
        needs_place=here.needs_place,
        description=raw.description,
        keywords=tuple(k.strip() for k in raw.keywords if k.strip()),
        children=children,
    )


def _check_siblings(nodes: tuple[Category, ...], file: Path, key: str) -> None:
    seen: set[str] = set()
    for i, node in enumerate(nodes):
        if node.name in seen:
            raise TaxonomyError(file, f"{key}[{i}].name", f"duplicate sibling name {node.name!r}")
        seen.add(node.name)
