"""The router's numbers, from what the service would decide for each appeal.

Rules this module implements (one function, so the numbers mean the same in every report):
- per level of the tree: accuracy and macro-F1 of the most probable path (``category_guess``), over the
  appeals labelled that deep, and the precision and coverage of the backed-off path (``category_path``);
- department accuracy; company co-dispatch precision, recall and F1 (a company named where people named
  one; ``none`` is the negative class);
- urgency: accuracy over the four levels, macro-F1 over three (urgent = 1–2, 3, 4), urgent recall and
  precision; appeal type: accuracy and macro-F1;
- the auto-dispatch curve: for each department-confidence threshold, the share of appeals dispatched
  without review and the department accuracy of those; and the same at the bundle's own threshold.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from training.heads import cut
from training.metrics import macro_f1

CURVE = tuple(round(x, 2) for x in np.arange(0.0, 1.0001, 0.05))


def _f1(truth, predicted) -> float:
    return macro_f1(truth, predicted) if truth else 0.0


def urgency_band(level: int) -> str:
    return "urgent" if level <= 2 else str(level)


def route_metrics(frame: pd.DataFrame, predictions: list, dispatch_threshold: float | None = None) -> dict:
    """``frame`` holds the labels (rows in the order of ``predictions``)."""
    out: dict = {"n": len(predictions)}
    for depth in (1, 2, 3):
        truth = [cut(p, depth) for p in frame["category_path"]]
        rows = [i for i, t in enumerate(truth) if t]
        if not rows:
            continue
        guess = ["/".join(predictions[i].category_guess[:depth]) for i in rows]
        want = [truth[i] for i in rows]
        shown = [i for i in rows if len(predictions[i].category_path) >= depth]
        shown_right = sum("/".join(predictions[i].category_path[:depth]) == truth[i] for i in shown)
        out[f"level{depth}"] = {
            "n": len(rows), "accuracy": float(np.mean([g == w for g, w in zip(guess, want)])),
            "macro_f1": _f1(want, guess), "labels": len(set(want)),
            "backed_off_coverage": len(shown) / len(rows),
            "backed_off_precision": shown_right / len(shown) if shown else None,
        }
    rows = [i for i, d in enumerate(frame["department"]) if d]
    if rows:
        out["department"] = {"n": len(rows), "accuracy": float(np.mean(
            [predictions[i].department == frame["department"].iloc[i] for i in rows]))}
        out["auto_dispatch"] = _curve(frame, predictions, rows, dispatch_threshold)
    rows = [i for i, c in enumerate(frame["company"]) if c]
    if rows:
        want = [frame["company"].iloc[i] for i in rows]
        got = [predictions[i].company or "none" for i in rows]
        hits = sum(w == g and w != "none" for w, g in zip(want, got))
        said, real = sum(g != "none" for g in got), sum(w != "none" for w in want)
        precision = hits / said if said else None
        recall = hits / real if real else None
        f1 = 2 * precision * recall / (precision + recall) if precision and recall else 0.0
        out["company"] = {"n": len(rows), "named": real, "precision": precision, "recall": recall, "f1": f1}
    rows = [i for i, u in enumerate(frame["urgency"]) if u in (1, 2, 3, 4)]
    if rows:
        want = [int(frame["urgency"].iloc[i]) for i in rows]
        got = [predictions[i].urgency for i in rows]
        urgent_true = [w <= 2 for w in want]
        urgent_pred = [g <= 2 for g in got]
        hits = sum(a and b for a, b in zip(urgent_true, urgent_pred))
        out["urgency"] = {
            "n": len(rows), "accuracy": float(np.mean([w == g for w, g in zip(want, got)])),
            "macro_f1_3way": _f1([urgency_band(w) for w in want], [urgency_band(g) for g in got]),
            "urgent": sum(urgent_true),
            "urgent_recall": hits / sum(urgent_true) if sum(urgent_true) else None,
            "urgent_precision": hits / sum(urgent_pred) if sum(urgent_pred) else None,
        }
    rows = [i for i, t in enumerate(frame["appeal_type"]) if t]
    if rows:
        want = [frame["appeal_type"].iloc[i] for i in rows]
        got = [predictions[i].appeal_type for i in rows]
        out["appeal_type"] = {"n": len(rows), "accuracy": float(np.mean([w == g for w, g in zip(want, got)])),
                              "macro_f1": _f1(want, got)}
    return out


def _curve(frame, predictions, rows, threshold) -> dict:
    confidence = np.array([predictions[i].department_confidence for i in rows])
    correct = np.array([predictions[i].department == frame["department"].iloc[i] for i in rows])
    points = []
    for t in CURVE:
        auto = confidence >= t
        points.append({"threshold": t, "share": float(auto.mean()),
                       "accuracy": float(correct[auto].mean()) if auto.any() else None})
    result = {"curve": points}
    if threshold is not None:
        auto = confidence >= threshold
        result.update({"threshold": threshold, "share": float(auto.mean()),
                       "accuracy": float(correct[auto].mean()) if auto.any() else None})
    return result


def route_markdown(metrics: dict, title: str) -> str:
    lines = [f"## {title}", "", f"appeals: {metrics['n']}", "", "| measure | value | appeals |", "|---|---|---|"]

    def row(name, value, n):
        shown = "—" if value is None else f"{value:.3f}" if isinstance(value, float) else str(value)
        lines.append(f"| {name} | {shown} | {n} |")

    for depth in (1, 2, 3):
        m = metrics.get(f"level{depth}")
        if m:
            row(f"level {depth} macro-F1 ({m['labels']} labels)", m["macro_f1"], m["n"])
            row(f"level {depth} accuracy", m["accuracy"], m["n"])
            row(f"level {depth} shown after back-off: precision", m["backed_off_precision"], m["n"])
            row(f"level {depth} shown after back-off: coverage", m["backed_off_coverage"], m["n"])
    if "department" in metrics:
        row("department accuracy", metrics["department"]["accuracy"], metrics["department"]["n"])
    if "company" in metrics:
        c = metrics["company"]
        row("company co-dispatch precision", c["precision"], c["n"])
        row("company co-dispatch recall", c["recall"], c["n"])
    if "urgency" in metrics:
        u = metrics["urgency"]
        row("urgency 3-way macro-F1", u["macro_f1_3way"], u["n"])
        row("urgent recall", u["urgent_recall"], u["urgent"])
        row("urgent precision", u["urgent_precision"], u["n"])
    if "appeal_type" in metrics:
        row("type macro-F1", metrics["appeal_type"]["macro_f1"], metrics["appeal_type"]["n"])
    auto = metrics.get("auto_dispatch")
    if auto and "threshold" in auto:
        row(f"auto-dispatched at department confidence ≥ {auto['threshold']:.2f}: share", auto["share"],
            metrics["department"]["n"])
        row("auto-dispatched: department accuracy", auto["accuracy"], metrics["department"]["n"])
    if auto:
        lines += ["", "Auto-dispatch curve (department confidence threshold → share dispatched without review, "
                  "department accuracy of those):", "", "| threshold | share | accuracy |", "|---|---|---|"]
        for point in auto["curve"]:
            accuracy = "—" if point["accuracy"] is None else f"{point['accuracy']:.3f}"
            lines.append(f"| {point['threshold']:.2f} | {point['share']:.3f} | {accuracy} |")
    return "\n".join(lines) + "\n"
