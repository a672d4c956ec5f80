"""Agreement between two independent readings of the same appeals: raw agreement and Cohen's κ per field.

Fields: the category at levels 1, 2 and 3 (a reading that stops above a level counts as the label
"(none)" there), urgency over four levels and as urgent (1–2) or not, appeal type, department, company
(``none`` included), and the handling unit's level. κ is scikit-learn's ``cohen_kappa_score``.
"""

from __future__ import annotations

from sklearn.metrics import cohen_kappa_score

from training.annotation.records import Annotation

FIELDS = {
    "category level 1": lambda a: a.path[0],
    "category level 2": lambda a: "/".join(a.path[:2]),
    "category level 3": lambda a: a.category if len(a.path) == 3 else "(none)",
    "urgency (4 levels)": lambda a: str(a.urgency),
    "urgent (1–2) or not": lambda a: a.urgency <= 2,
    "appeal type": lambda a: a.appeal_type,
    "department": lambda a: a.department,
    "company": lambda a: a.company or "none",
    "handling unit level": lambda a: a.handling_unit_level or "none",
}


def agreement(first: list[Annotation], second: list[Annotation]) -> dict[str, dict]:
    """Per field: appeals compared, raw agreement and κ; the two lists are matched by (file, id)."""
    other = {a.key: a for a in second}
    pairs = [(a, other[a.key]) for a in first if a.key in other]
    out = {}
    for name, value in FIELDS.items():
        x = [value(a) for a, _ in pairs]
        y = [value(b) for _, b in pairs]
        same = sum(p == q for p, q in zip(x, y))
        kappa = cohen_kappa_score([str(v) for v in x], [str(v) for v in y]) if len(set(x) | set(y)) > 1 else 1.0
        out[name] = {"n": len(pairs), "agreement": same / len(pairs) if pairs else None, "kappa": float(kappa)}
    return out
