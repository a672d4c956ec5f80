"""The tree prior: a node's own words route an appeal to it before (or while) labels for it are few.

Rules this module implements:
- a node's signal phrases are its ``keywords`` (profile data), its name and the parts of its name and
  description between 与/和/及/、/，/等 (two to eight characters, generic words such as 其他 and 管理 left
  out), and every phrase of its descendants, so that a first-level node is found through its leaves;
- an appeal's match with a node is the number of its distinct phrases found in the title or text, capped
  at ``cap`` and divided by it (0 … 1);
- the prior adds ``w × match`` times the mass of the node's siblings to the node, where for a node the
  bundle learnt from n labelled appeals ``w = strength × k / (k + n)`` (a node with many examples is left
  to the model), and for a node the bundle never saw (e.g. a special line an admin just opened) ``w =
  unseen``: the model cannot speak for it, so one of its phrases outweighs the model's whole mass there
  (``unseen`` 3, ``cap`` 2: one phrase gives it 1.5 times its siblings' mass). Where the model gives a
  parent's children no mass at all, the phrases alone decide among them.
"""

from __future__ import annotations

import re

import numpy as np

from taxonomy.categories import CategoryTree

GENERIC = frozenset({"其他", "管理", "问题", "服务", "工作", "事务", "建设", "其它", "相关", "综合", "政策", "咨询",
                     "投诉", "纠纷", "方面", "情况"})
SPLIT = re.compile(r"[与和及、，,；;/（）()\s]|等")


def node_phrases(name: str, description: str | None, keywords: tuple[str, ...] = ()) -> set[str]:
    phrases = {k.strip() for k in keywords if k.strip()}
    for source in (name, description or ""):
        for part in SPLIT.split(source):
            part = part.strip()
            if 2 <= len(part) <= 8 and part not in GENERIC:
                phrases.add(part)
    if 2 <= len(name) <= 8 and name not in GENERIC:
        phrases.add(name)
    return phrases


class TreePrior:
    def __init__(self, tree: CategoryTree, strength: float = 1.0, k: float = 5.0, cap: int = 2, unseen: float = 3.0):
        self.strength, self.k, self.cap, self.unseen = strength, k, cap, unseen
        self._weights: dict[tuple, tuple[dict, np.ndarray]] = {}  # per level and training counts (held, so ids stay)
        own = {node.label: node_phrases(node.name, node.description, getattr(node, "keywords", ()))
               for node in tree.walk()}
        self.phrases: list[list[tuple[str, ...]]] = []
        self.labels: list[list[str]] = []
        for level in (1, 2, 3):
            nodes = tree.level(level)
            self.labels.append([n.label for n in nodes])
            self.phrases.append([tuple(sorted(set().union(*(own[d.label] for d in _subtree(n))))) for n in nodes])
        self.parents = [None] + [
            np.array([self.labels[level - 1].index("/".join(label.split("/")[:-1])) for label in self.labels[level]])
            for level in (1, 2)]

    @classmethod
    def from_dict(cls, tree: CategoryTree, settings: dict | None) -> "TreePrior":
        settings = settings or {}
        return cls(tree, strength=float(settings.get("strength", 1.0)), k=float(settings.get("k", 5.0)),
                   cap=int(settings.get("cap", 2)), unseen=float(settings.get("unseen", 3.0)))

    def match(self, level: int, texts: list[str]) -> np.ndarray:
        phrases = self.phrases[level - 1]
        out = np.zeros((len(texts), len(phrases)))
        for r, text in enumerate(texts):
            for j, node in enumerate(phrases):
                hits = 0
                for phrase in node:
                    if phrase in text:
                        hits += 1
                        if hits >= self.cap:
                            break
                out[r, j] = hits / self.cap
        return out

    def apply(self, level: int, mass: np.ndarray, texts: list[str], n_train: dict[str, int]) -> np.ndarray:
        cache = self._weights
        key = (level, id(n_train), len(n_train), self.strength, self.k, self.unseen)
        if key not in cache:  # the same training counts on every call of a loaded bundle
            cache[key] = (n_train, np.array([self.strength * self.k / (self.k + n_train[label]) if n_train.get(label)
                                             else self.unseen for label in self.labels[level - 1]]))
        weight = cache[key][1]
        if not weight.any():
            return mass
        match = self.match(level, texts) * weight
        if level == 1:
            total = mass.sum(axis=1, keepdims=True)
            return mass + match * np.where(total > 0, total, 1.0)
        parent = self.parents[level - 1]
        totals = np.zeros((mass.shape[0], parent.max() + 1 if len(parent) else 0))
        np.add.at(totals.T, parent, mass.T)
        scale = totals[:, parent]
        return mass + match * np.where(scale > 0, scale, 1.0)


def _subtree(node):
    stack = [node]
    while stack:
        current = stack.pop()
        yield current
        stack.extend(current.children)
