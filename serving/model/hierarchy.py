"""From a bundle's head probabilities to a category path, its confidences, the department and the company.

Rules this module implements:
- every level is read in the space of the tree's nodes at that level; a head's labels are placed on their
  nodes, nodes the bundle never learnt start at zero (the tree prior, ``serving.model.prior``, may raise them);
- a head's probabilities may first be divided by its training label shares to the power ``prior_correction``
  (chosen on validation: the first level's largest class otherwise wins most close calls);
- level 1 is the ``category`` head, mixed (geometrically, weight ``level1_blend``) with the first-level
  mass of the ``category_l2`` head, which learnt every first-level category from people's labels; level 2 and 3 (``category_l2``, ``category_l3``) are read within their
  parent: P(node | parent) is the head's probability of the node over that of its siblings, and the joint
  confidence of a path is the product down the tree. A parent none of whose children carries mass ends
  the path there;
- the path is chosen top-down (the most probable first level, then its most probable child, …), and it
  backs off to the deepest level whose confidence clears that level's threshold (level 1 at least, so a
  path always has a first level; ``failed_level`` names the first level that did not clear);
- the owner rule: the probability that department d owns the appeal is the joint mass of the paths that
  end at a node d owns (a node's own owner where it sets one, else inherited); likewise for the company,
  with ``none`` for nodes that name none;
- with the rule alone (``rule_weight`` 1) the department is the owner with the most path mass under the
  backed-off node (its own owner where the model reads no deeper, so heating under 城乡建设 still goes to
  the heating owner) and the company likewise (联合双派 to the utility the node names); where a ``department``
  (``company``) head is mixed in with the weight ``1 - rule_weight`` chosen on validation, the most probable
  one of the mix. Either way its probability is the department confidence that dispatch compares with its
  threshold.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from taxonomy.categories import Category, CategoryTree

LEVEL_HEADS = ("category", "category_l2", "category_l3")
NO_COMPANY = "none"


@dataclass(frozen=True)
class Decisions:
    """The thresholds and weights a bundle chose on validation (``manifest.decision``)."""

    levels: tuple[float, float, float] = (0.5, 0.5, 0.5)
    dispatch: float | None = None  # department confidence for dispatch without review; None: the policy's
    department_rule_weight: float = 1.0
    company_rule_weight: float = 1.0
    level1_blend: float = 0.0  # weight of the deeper heads' own first-level evidence (geometric mix)
    prior_correction: float = 0.0  # α: each head's probabilities divided by its training label shares ** α
    urgent: float | None = None  # P(level 1 or 2) at which the urgency head calls an appeal urgent
    urgency_rules: tuple[str, ...] = ()  # rule ids that decide urgency over the head (precise on validation)
    type_rules: tuple[str, ...] = ()  # appeal types whose signal rule decides over the head
    prior: dict = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: dict | None) -> "Decisions":
        data = data or {}
        levels = tuple(float(x) for x in data.get("levels", (0.5, 0.5, 0.5)))
        levels = (levels + (0.5, 0.5, 0.5))[:3]
        return cls(levels=levels, dispatch=data.get("dispatch"),
                   department_rule_weight=float(data.get("department_rule_weight", 1.0)),
                   company_rule_weight=float(data.get("company_rule_weight", 1.0)),
                   level1_blend=float(data.get("level1_blend", 0.0)),
                   prior_correction=float(data.get("prior_correction", 0.0)),
                   urgent=data.get("urgent"), urgency_rules=tuple(data.get("urgency_rules") or ()),
                   type_rules=tuple(data.get("type_rules") or ()), prior=dict(data.get("prior") or {}))

    def to_dict(self) -> dict:
        return {"levels": list(self.levels), "dispatch": self.dispatch,
                "department_rule_weight": self.department_rule_weight,
                "company_rule_weight": self.company_rule_weight, "level1_blend": self.level1_blend,
                "prior_correction": self.prior_correction,
                "urgent": self.urgent,
                "urgency_rules": list(self.urgency_rules), "type_rules": list(self.type_rules), "prior": self.prior}


@dataclass(frozen=True)
class PathPrediction:
    full_path: tuple[str, ...]  # the most probable path, as deep as the model reads
    confidences: tuple[float, ...]  # joint confidence per level of ``full_path``
    level: int  # the deepest level whose confidence clears its threshold (1 at least)
    failed_level: int | None  # the first level below its threshold; None: every level cleared
    department: str | None
    department_confidence: float
    company: str | None
    company_confidence: float
    top: list[tuple[str, float]]  # the first level's three most probable categories

    @property
    def path(self) -> tuple[str, ...]:
        """The path backed off to the deepest confident level."""
        return self.full_path[:self.level]

    @property
    def label(self) -> str:
        return "/".join(self.path)


class TreeIndex:
    """The tree's nodes per level, with parent, owner and company indices for array arithmetic."""

    def __init__(self, tree: CategoryTree):
        self.tree = tree
        self.nodes: list[list[Category]] = [tree.level(n) for n in (1, 2, 3)]
        self.position = [{node.label: i for i, node in enumerate(level)} for level in self.nodes]
        self.parent = [np.zeros(0, dtype=np.int64)] + [
            np.array([self.position[k - 1]["/".join(node.path[:-1])] for node in self.nodes[k]], dtype=np.int64)
            for k in (1, 2)]
        self.departments = sorted({node.owner for level in self.nodes for node in level if node.owner})
        self.companies = [NO_COMPANY] + sorted({node.company for level in self.nodes for node in level if node.company})
        dep_index = {d: i for i, d in enumerate(self.departments)}
        com_index = {c: i for i, c in enumerate(self.companies)}
        self.owner_onehot = [self._onehot([dep_index.get(n.owner, -1) for n in level], len(self.departments))
                             for level in self.nodes]
        self.company_onehot = [self._onehot([com_index[n.company or NO_COMPANY] for n in level], len(self.companies))
                               for level in self.nodes]

    @staticmethod
    def _onehot(indices: list[int], width: int) -> np.ndarray:
        out = np.zeros((len(indices), width), dtype=np.float64)
        for row, col in enumerate(indices):
            if col >= 0:
                out[row, col] = 1.0
        return out

    def scatter(self, level: int, labels: list[str], probabilities: np.ndarray) -> np.ndarray:
        """Head probabilities (rows × labels) placed on the level's nodes (rows × nodes)."""
        out = np.zeros((probabilities.shape[0], len(self.nodes[level - 1])), dtype=np.float64)
        for j, label in enumerate(labels):
            i = self.position[level - 1].get(label)
            if i is not None:
                out[:, i] += probabilities[:, j]
        return out

    def within_parent(self, level: int, mass: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(P(node | parent), whether each parent has any child with mass) for level 2 or 3."""
        parent = self.parent[level - 1]
        n_parents = len(self.nodes[level - 2])
        totals = np.zeros((mass.shape[0], n_parents))
        np.add.at(totals.T, parent, mass.T)
        has_children = totals > 0
        denominator = totals[:, parent]
        conditional = np.divide(mass, denominator, out=np.zeros_like(mass), where=denominator > 0)
        return conditional, has_children


class Hierarchy:
    """Read a batch of head probabilities as paths, departments and companies."""

    def __init__(self, tree: CategoryTree, heads: dict[str, list[str]], decisions: Decisions = Decisions(),
                 prior=None, n_train: dict[str, dict[str, int]] | None = None):
        self.index = TreeIndex(tree)
        self.heads = heads
        self.decisions = decisions
        self.prior = prior
        self.n_train = n_train or {}
        self.depth = 1 + sum(1 for h in LEVEL_HEADS[1:] if h in heads)
        self.department_labels = heads.get("department")
        self.company_labels = heads.get("company")

    def level_mass(self, probabilities: dict[str, np.ndarray], texts: list[str] | None = None) -> list[np.ndarray]:
        """Per level, the head's probabilities on the level's nodes, with the prior added where given."""
        masses = []
        for level, head in enumerate(LEVEL_HEADS, start=1):
            rows = len(next(iter(probabilities.values())))
            if head in probabilities:
                mass = self.index.scatter(level, self.heads[head], self._corrected(head, probabilities[head]))
            else:
                mass = np.zeros((rows, len(self.index.nodes[level - 1])))
            if self.prior is not None and texts is not None and (head in probabilities or level == 1):
                mass = self.prior.apply(level, mass, texts, self.n_train.get(head, {}))
            masses.append(mass)
        return masses

    def _corrected(self, head: str, values: np.ndarray) -> np.ndarray:
        """Divide by the head's training label shares ** α: a large class learnt from many appeals no
        longer wins every close call (α chosen on validation for macro-F1)."""
        alpha = self.decisions.prior_correction
        counts = self.n_train.get(head)
        if alpha <= 0 or not counts:
            return values
        shares = np.array([max(counts.get(label, 0), 1) for label in self.heads[head]], dtype=np.float64)
        adjusted = values / (shares / shares.sum()) ** alpha
        return adjusted / adjusted.sum(axis=1, keepdims=True)

    def decide(self, probabilities: dict[str, np.ndarray], texts: list[str] | None = None) -> list[PathPrediction]:
        idx = self.index
        m1, m2, m3 = self.level_mass(probabilities, texts)
        p1 = m1 / np.clip(m1.sum(axis=1, keepdims=True), 1e-12, None)
        beta = self.decisions.level1_blend
        if beta > 0 and m2.any():
            # the second-level head learnt every first-level category from people's labels: its mass per
            # parent is a second opinion on the first level
            q = np.zeros_like(p1)
            np.add.at(q.T, idx.parent[1], m2.T)
            q = q / np.clip(q.sum(axis=1, keepdims=True), 1e-12, None)
            mixed = np.exp((1 - beta) * np.log(p1 + 1e-9) + beta * np.log(q + 1e-9))
            p1 = mixed / mixed.sum(axis=1, keepdims=True)
        c2, has2 = idx.within_parent(2, m2)
        j2 = c2 * p1[:, idx.parent[1]]
        c3, has3 = idx.within_parent(3, m3)
        j3 = c3 * j2[:, idx.parent[2]]
        # mass of the paths that end at each level: a node ends a path where none of its children has mass
        end1, end2, end3 = p1 * ~has2, j2 * ~has3, j3
        rule_dep = end1 @ idx.owner_onehot[0] + end2 @ idx.owner_onehot[1] + end3 @ idx.owner_onehot[2]
        rule_com = end1 @ idx.company_onehot[0] + end2 @ idx.company_onehot[1] + end3 @ idx.company_onehot[2]
        dep = self._mix(rule_dep, idx.departments, probabilities.get("department"), self.department_labels,
                        self.decisions.department_rule_weight)
        com_labels = idx.companies
        com = self._mix(rule_com, com_labels, probabilities.get("company"), self.company_labels,
                        self.decisions.company_rule_weight)
        departments = dep[1]
        companies = com[1]
        out = []
        thresholds = self.decisions.levels
        roots = idx.nodes[0]
        for r in range(p1.shape[0]):
            a = int(np.argmax(p1[r]))
            path, conf = [roots[a].name], [float(p1[r, a])]
            if has2[r, a]:
                kids = np.flatnonzero(idx.parent[1] == a)
                b = int(kids[np.argmax(j2[r, kids])])
                path.append(idx.nodes[1][b].name)
                conf.append(float(j2[r, b]))
                if has3[r, b]:
                    leaves = np.flatnonzero(idx.parent[2] == b)
                    c = int(leaves[np.argmax(j3[r, leaves])])
                    path.append(idx.nodes[2][c].name)
                    conf.append(float(j3[r, c]))
            level, failed = 1, None
            for k, value in enumerate(conf):
                if value >= thresholds[k]:
                    level = k + 1
                else:
                    failed = k + 1
                    break
            order = np.argsort(-p1[r])[:3]
            node = idx.tree.find("/".join(path[:level]))
            chosen = [a, b if level >= 2 else None, c if level >= 3 else None][level - 1]
            ends = (end1[r], end2[r], end3[r])
            owner = self._subtree_best(level, chosen, ends, idx.owner_onehot, idx.departments) or node.owner
            company_rule = self._subtree_best(level, chosen, ends, idx.company_onehot, idx.companies) \
                or node.company or NO_COMPANY
            d = self._pick(dep, owner, self.decisions.department_rule_weight, r)
            c_ = self._pick(com, company_rule, self.decisions.company_rule_weight, r)
            company = companies[c_]
            out.append(PathPrediction(
                full_path=tuple(path), confidences=tuple(conf), level=level, failed_level=failed,
                department=departments[d] if dep[0][r, d] > 0 else None, department_confidence=float(dep[0][r, d]),
                company=None if company == NO_COMPANY else company, company_confidence=float(com[0][r, c_]),
                top=[(roots[i].name, float(p1[r, i])) for i in order]))
        return out

    def _subtree_best(self, level: int, index: int, ends, onehots, labels) -> str | None:
        """The owner (or company) with the most path mass under the backed-off node."""
        idx = self.index
        mass = ends[level - 1][index] * onehots[level - 1][index]
        if level <= 2:
            kids = np.flatnonzero(idx.parent[level] == index)
            mass = mass + ends[level][kids] @ onehots[level][kids]
            if level == 1:
                leaves = np.flatnonzero(np.isin(idx.parent[2], kids))
                mass = mass + ends[2][leaves] @ onehots[2][leaves]
        return labels[int(np.argmax(mass))] if mass.max() > 0 else None

    @staticmethod
    def _pick(mixed: tuple[np.ndarray, list[str]], rule_choice: str | None, rule_weight: float, row: int) -> int:
        """The rule's choice (the backed-off node's) where the rule alone decides, else the mix's best."""
        values, labels = mixed
        if rule_weight >= 1.0 and rule_choice in labels:
            return labels.index(rule_choice)
        return int(np.argmax(values[row]))

    @staticmethod
    def _mix(rule: np.ndarray, rule_labels: list[str], head: np.ndarray | None, head_labels: list[str] | None,
             rule_weight: float) -> tuple[np.ndarray, list[str]]:
        """The rule's distribution, mixed with the head's where there is one, over the union of labels."""
        if head is None or not head_labels or rule_weight >= 1.0:
            return rule, rule_labels
        labels = list(rule_labels) + [x for x in head_labels if x not in rule_labels]
        position = {x: i for i, x in enumerate(labels)}
        out = np.zeros((rule.shape[0], len(labels)))
        out[:, :len(rule_labels)] = rule_weight * rule
        for j, label in enumerate(head_labels):
            out[:, position[label]] += (1.0 - rule_weight) * head[:, j]
        return out, labels
