"""Choosing a bundle's decisions on validation: back-off thresholds, the owner rule's weight, the dispatch
threshold, the urgency threshold and which rules to trust.

Rules this module implements (every choice is made on the validation split, with the train-only model's
probabilities, and stored in the bundle's ``decision``):
- a level's threshold is the lowest confidence at which the paths shown at that level are right at least
  ``LEVEL_TARGETS`` of the time (a path backs off above a level it is unsure of);
- the department (company) rule weight is the mix of the tree's owner rule and the learned head with the
  best department accuracy (company co-dispatch F1); ties go to the rule;
- the dispatch threshold is the lowest department confidence at which the appeals dispatched without
  review are right at least ``DISPATCH_TARGET`` of the time;
- an urgency rule is trusted where it fired on at least ``MIN_FIRED`` validation appeals and set the
  level people gave at least ``TRUST`` of the time; the danger signals of level 1 (``DANGER_RULES``) are
  trusted unless validation shows them wrong that often; a type's signal rule is trusted like the others,
  and ``urgency.type_fixed`` (praise and suggestions are 普通) where the types it fixes were that precise;
- only rules that raise urgency (levels 1 and 2) and ``urgency.type_fixed`` can be trusted: trusting a
  level-3 phrase (停车, 物业) would hide the urgent appeals that mention it;
- the urgency threshold is the P(urgent) with the best F2 (recall counted twice as much as precision: a
  missed urgent appeal costs more than a reviewer's look) on the validation appeals the trusted rules
  leave to the head;
- the prior's strength (of ``PRIOR_STRENGTHS``), the first-level blend (of ``LEVEL1_BLENDS``) and the
  prior correction (of ``PRIOR_CORRECTIONS``) are the combination with the best first-level macro-F1 plus second-level accuracy on the appeals people labelled
  below the first level.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from serving.model.hierarchy import Decisions, Hierarchy
from serving.model.prior import TreePrior
from serving.model.rules import AppealTypeRules, UrgencyRules
from taxonomy import Taxonomy
from training.heads import cut, head_values
from training.metrics import macro_f1

LEVEL_TARGETS = (0.9, 0.8, 0.8)
DISPATCH_TARGET = 0.95
URGENT_BETA = 2.0
TRUST = 0.8
MIN_FIRED = 5
DANGER_RULES = ("urgency.1.phrase", "urgency.1.pattern")
RULE_WEIGHTS = (0.0, 0.25, 0.5, 0.75, 1.0)
PRIOR_STRENGTHS = (0.0, 0.5, 1.0)
LEVEL1_BLENDS = (0.0, 0.25, 0.5, 0.75, 1.0)
PRIOR_CORRECTIONS = (0.0, 0.25, 0.5)


@dataclass
class ValidationSet:
    frame: pd.DataFrame  # the validation rows (title, text, labels)
    probabilities: dict[str, np.ndarray]  # head -> rows × labels, train-only model
    heads: dict[str, list[str]]  # head -> labels
    counts: dict[str, dict[str, int]]  # head -> label -> training rows

    @property
    def texts(self) -> list[str]:
        return [f"{t}。{x}" for t, x in zip(self.frame["title"], self.frame["text"])]


def lowest_threshold(confidence: np.ndarray, correct: np.ndarray, target: float) -> float:
    """The lowest t with accuracy(confidence ≥ t) ≥ target; 1.0 where no t reaches it."""
    if not len(confidence):
        return 0.5
    order = np.argsort(-confidence)
    hits = np.cumsum(correct[order])
    accuracy = hits / np.arange(1, len(order) + 1)
    good = np.flatnonzero(accuracy >= target)
    if not len(good):
        return 1.0
    return float(confidence[order][good[-1]])


def choose_decisions(validation: ValidationSet, taxonomy: Taxonomy, log=None) -> Decisions:
    frame = validation.frame
    prior, blend, alpha = _choose_reading(validation, taxonomy)
    base = Decisions(levels=(0.0, 0.0, 0.0), prior=prior, level1_blend=blend, prior_correction=alpha)
    routes = _routes(validation, taxonomy, base)
    levels = []
    for depth in (1, 2, 3):
        truth = [cut(p, depth) for p in frame["category_path"]]
        rows = [i for i, t in enumerate(truth) if t and len(routes[i].full_path) >= depth]
        confidence = np.array([routes[i].confidences[depth - 1] for i in rows])
        correct = np.array(["/".join(routes[i].full_path[:depth]) == truth[i] for i in rows])
        levels.append(lowest_threshold(confidence, correct, LEVEL_TARGETS[depth - 1]) if rows else 0.5)
    department_weight = _best_weight(validation, taxonomy, base, "department")
    company_weight = _best_weight(validation, taxonomy, base, "company")
    decided = Decisions(levels=tuple(levels), department_rule_weight=department_weight,
                        company_rule_weight=company_weight, level1_blend=blend, prior_correction=alpha,
                        prior=prior)
    routes = _routes(validation, taxonomy, decided)
    truth = list(frame["department"])
    rows = [i for i, t in enumerate(truth) if t]
    dispatch = lowest_threshold(np.array([routes[i].department_confidence for i in rows]),
                                np.array([routes[i].department == truth[i] for i in rows]), DISPATCH_TARGET) \
        if rows else None
    urgency_rules, type_rules = _trusted_rules(validation, taxonomy, routes)
    urgent = _urgent_threshold(validation, taxonomy, routes, urgency_rules, type_rules)
    decided = Decisions(levels=tuple(levels), dispatch=dispatch, department_rule_weight=department_weight,
                        company_rule_weight=company_weight, level1_blend=blend, prior_correction=alpha,
                        urgent=urgent, urgency_rules=tuple(urgency_rules),
                        type_rules=tuple(type_rules), prior=prior)
    if log:
        log(f"decisions on validation: {decided.to_dict()}")
    return decided


def _routes(validation: ValidationSet, taxonomy: Taxonomy, decisions: Decisions):
    prior = TreePrior.from_dict(taxonomy.categories, decisions.prior)
    hierarchy = Hierarchy(taxonomy.categories, validation.heads, decisions, prior, validation.counts)
    return hierarchy.decide(validation.probabilities, validation.texts)


def _choose_reading(validation: ValidationSet, taxonomy: Taxonomy) -> tuple[dict, float, float]:
    """The prior's strength, the first-level blend and the prior correction with the best first-level
    macro-F1 plus second-level accuracy, over the validation appeals labelled below the first level
    (people's labels of all 15)."""
    frame = validation.frame
    truth2 = [cut(p, 2) for p in frame["category_path"]]
    rows = [i for i, t in enumerate(truth2) if t]
    if not rows:
        return {"strength": 0.0, "k": 5.0, "cap": 2}, 0.0, 0.0
    truth1 = [frame["category"].iloc[i] for i in rows]
    best, best_score = ({"strength": 0.0, "k": 5.0, "cap": 2}, 0.0, 0.0), -1.0
    blends = LEVEL1_BLENDS if "category_l2" in validation.heads else (0.0,)
    for strength in PRIOR_STRENGTHS:
        prior = {"strength": strength, "k": 5.0, "cap": 2}
        for blend in blends:
            for alpha in PRIOR_CORRECTIONS:
                routes = _routes(validation, taxonomy, Decisions(levels=(0.0, 0.0, 0.0), prior=prior,
                                                                 level1_blend=blend, prior_correction=alpha))
                pred1 = [routes[i].full_path[0] for i in rows]
                f1 = macro_f1(truth1, pred1)
                acc2 = np.mean(["/".join(routes[i].full_path[:2]) == truth2[i] for i in rows])
                if f1 + acc2 > best_score + 1e-9:
                    best, best_score = (prior, blend, alpha), f1 + acc2
    return best


def _best_weight(validation: ValidationSet, taxonomy: Taxonomy, base: Decisions, head: str) -> float:
    if head not in validation.heads:
        return 1.0
    truth = head_values(validation.frame, head)
    rows = [i for i, t in enumerate(truth) if t]
    if not rows:
        return 1.0
    scores = {}
    for weight in RULE_WEIGHTS:
        key = "department_rule_weight" if head == "department" else "company_rule_weight"
        routes = _routes(validation, taxonomy, Decisions(levels=(0.0, 0.0, 0.0), prior=base.prior,
                                                         level1_blend=base.level1_blend,
                                                         prior_correction=base.prior_correction, **{key: weight}))
        if head == "department":
            scores[weight] = float(np.mean([routes[i].department == truth[i] for i in rows]))
        else:
            got = [routes[i].company or "none" for i in rows]
            want = [truth[i] for i in rows]
            scores[weight] = _co_dispatch_f1(want, got)
    best = max(scores.values())
    return max(w for w, s in scores.items() if s >= best - 1e-9)


def _co_dispatch_f1(truth: list[str], predicted: list[str]) -> float:
    hits = sum(t == p and t != "none" for t, p in zip(truth, predicted))
    said = sum(p != "none" for p in predicted)
    real = sum(t != "none" for t in truth)
    if not said or not real or not hits:
        return 0.0
    precision, recall = hits / said, hits / real
    return 2 * precision * recall / (precision + recall)


def _trusted_rules(validation: ValidationSet, taxonomy: Taxonomy, routes) -> tuple[list[str], list[str]]:
    frame = validation.frame
    urgency_rules, type_rules = UrgencyRules(taxonomy.urgency), AppealTypeRules(taxonomy.appeal_types)
    fired: dict[str, list[bool]] = {}
    typed: dict[str, list[bool]] = {}
    for i, row in enumerate(frame.itertuples(index=False)):
        kind = type_rules.decide(row.title, row.text, normalized=True)
        if row.appeal_type and kind.from_signals:
            typed.setdefault(kind.appeal_type, []).append(kind.appeal_type == row.appeal_type)
        if row.urgency in (1, 2, 3, 4):
            decision = urgency_rules.decide(row.title, row.text, None, "/".join(routes[i].full_path),
                                            normalized=True)
            if decision.level <= 2 and decision.rule not in ("urgency.default", "urgency.type_default"):
                fired.setdefault(decision.rule, []).append(decision.level == row.urgency)
            fixed = taxonomy.urgency.fixed_for_types.get(row.appeal_type)
            if fixed is not None:
                fired.setdefault("urgency.type_fixed", []).append(fixed == row.urgency)
    shown = {r: len(hits) >= MIN_FIRED for r, hits in fired.items()}
    trusted_urgency = sorted({r for r, hits in fired.items() if shown[r] and np.mean(hits) >= TRUST}
                             | {r for r in DANGER_RULES if not (shown.get(r) and np.mean(fired[r]) < TRUST)})
    trusted_types = sorted(t for t, hits in typed.items() if len(hits) >= MIN_FIRED and np.mean(hits) >= TRUST)
    return trusted_urgency, trusted_types


def _urgent_threshold(validation: ValidationSet, taxonomy: Taxonomy, routes, urgency_rules, type_rules) -> float:
    if "urgency" not in validation.heads:
        return None
    frame = validation.frame
    if "urgent" in validation.heads:
        scores = validation.probabilities["urgent"][:, validation.heads["urgent"].index("urgent")]
    else:
        labels = validation.heads["urgency"]
        columns = [labels.index(x) for x in ("1", "2") if x in labels]
        scores = validation.probabilities["urgency"][:, columns].sum(axis=1)
    rules = UrgencyRules(taxonomy.urgency)
    left: list[tuple[float, bool]] = []
    for i, row in enumerate(frame.itertuples(index=False)):
        if row.urgency not in (1, 2, 3, 4):
            continue
        decision = rules.decide(row.title, row.text, None, "/".join(routes[i].full_path), normalized=True)
        if decision.rule in urgency_rules:
            continue
        if taxonomy.urgency.fixed_for_types.get(row.appeal_type) is not None and "urgency.type_fixed" in urgency_rules:
            continue
        left.append((float(scores[i]), row.urgency <= 2))
    if not any(u for _, u in left):
        return 0.5
    best, best_f = 0.5, -1.0
    for threshold in sorted({s for s, _ in left}):
        said = [u for s, u in left if s >= threshold]
        hits, real = sum(said), sum(u for _, u in left)
        if not hits:
            continue
        precision, recall = hits / len(said), hits / real
        b2 = URGENT_BETA ** 2
        f = (1 + b2) * precision * recall / (b2 * precision + recall)
        if f > best_f + 1e-12:
            best, best_f = threshold, f
    return float(best)
