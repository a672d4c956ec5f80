"""One function computes every number in an evaluation report, so they mean the same everywhere.

Report: accuracy, macro-F1, weighted-F1, per-class precision/recall/F1/support, the confusion matrix
(rows = true label, columns = predicted, in label order), calibration: expected calibration error
(ECE) of the top-1 probability over ``bins`` equal-width bins, with the per-bin table, and routing:
for review thresholds 0.3–0.9, the share of appeals a reviewer would see and the accuracy (and error
count) of those dispatched without review.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_recall_fscore_support

from serving.charts import cjk_font

if TYPE_CHECKING:
    from taxonomy import Taxonomy

ECE_BINS = 15


def expected_calibration_error(probabilities: np.ndarray, correct: np.ndarray, bins: int = ECE_BINS):
    confidence = probabilities.max(axis=1)
    edges = np.linspace(0.0, 1.0, bins + 1)
    table, ece = [], 0.0
    for low, high in zip(edges[:-1], edges[1:]):
        in_bin = (confidence > low) & (confidence <= high)
        if not in_bin.any():
            continue
        acc, conf = float(correct[in_bin].mean()), float(confidence[in_bin].mean())
        ece += in_bin.mean() * abs(acc - conf)
        table.append({"low": round(float(low), 4), "high": round(float(high), 4), "count": int(in_bin.sum()),
                      "accuracy": acc, "confidence": conf})
    return float(ece), table


ROUTING_THRESHOLDS = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)


def routing_table(probabilities: np.ndarray, correct: np.ndarray) -> list[dict]:
    """What each review threshold would do: the share of appeals sent to a reviewer (top-1 confidence
    below it) and how often the rest — dispatched without review — are right, with their error count."""
    confidence = probabilities.max(axis=1) if len(probabilities) else np.zeros(0)
    rows = []
    for threshold in ROUTING_THRESHOLDS:
        auto = confidence >= threshold
        rows.append({"threshold": threshold, "to_review": float((~auto).mean()) if len(auto) else 0.0,
                     "auto_accuracy": float(correct[auto].mean()) if auto.any() else None,
                     "auto_errors": int((~correct[auto]).sum())})
    return rows


def compute_metrics(labels: list[str], y_true: list[str], probabilities: np.ndarray) -> dict:
    """All metrics for one head; ``probabilities`` has one column per label, in ``labels`` order."""
    index = {label: i for i, label in enumerate(labels)}
    unknown = sorted({y for y in y_true if y not in index})
    if unknown:
        raise ValueError(f"labels not known to the model: {', '.join(unknown)}")
    true = np.array([index[y] for y in y_true])
    pred = probabilities.argmax(axis=1)
    present = list(range(len(labels)))
    precision, recall, f1, support = precision_recall_fscore_support(true, pred, labels=present, zero_division=0)
    ece, calibration = expected_calibration_error(probabilities, pred == true)
    in_data = sorted(set(true.tolist()) | set(pred.tolist()))
    return {
        "n": int(len(true)),
        "accuracy": float(accuracy_score(true, pred)),
        "macro_f1": float(f1_score(true, pred, labels=in_data, average="macro", zero_division=0)),
        "weighted_f1": float(f1_score(true, pred, labels=in_data, average="weighted", zero_division=0)),
        "ece": ece,
        "per_class": {
            labels[i]: {"precision": float(precision[i]), "recall": float(recall[i]), "f1": float(f1[i]),
                        "support": int(support[i])}
            for i in present
        },
        "labels": list(labels),
        "confusion_matrix": confusion_matrix(true, pred, labels=present).tolist(),
        "calibration": calibration,
        "routing": routing_table(probabilities, pred == true),
    }


def plot_confusion(metrics: dict, path: Path, title: str) -> str:
    """Write the confusion matrix as a PNG; returns how labels are shown ("names" or "numbers")."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels, matrix = metrics["labels"], np.array(metrics["confusion_matrix"])
    font = cjk_font()
    shown = labels if font else [str(i + 1) for i in range(len(labels))]
    size = max(5.0, 0.6 * len(labels) + 2)
    with plt.rc_context({"font.family": [font, "DejaVu Sans"]} if font else {}):
        fig, ax = plt.subplots(figsize=(size + 1, size))
        rows = matrix.sum(axis=1, keepdims=True).clip(min=1)
        image = ax.imshow(matrix / rows, cmap="Blues", vmin=0, vmax=1)
        ax.set_xticks(range(len(labels)), shown, rotation=45, ha="right")
        ax.set_yticks(range(len(labels)), shown)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.set_title(title)
        for (i, j), value in np.ndenumerate(matrix):
            if value:
                ax.text(j, i, str(value), ha="center", va="center", fontsize=8,
                        color="white" if value / rows[i, 0] > 0.5 else "black")
        fig.colorbar(image, ax=ax, fraction=0.046, label="share of true class")
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)
    return "names" if font else "numbers"


def report_markdown(metrics: dict, title: str, label_display: str = "names") -> str:
    lines = [f"# {title}", "", f"- appeals: {metrics['n']}", f"- accuracy: {metrics['accuracy']:.4f}",
             f"- macro-F1: {metrics['macro_f1']:.4f}", f"- weighted-F1: {metrics['weighted_f1']:.4f}",
             f"- ECE ({ECE_BINS} bins, top-1): {metrics['ece']:.4f}", "",
             "| # | class | precision | recall | F1 | support |", "|---|---|---|---|---|---|"]
    for i, (label, row) in enumerate(metrics["per_class"].items(), start=1):
        lines.append(f"| {i} | {label} | {row['precision']:.3f} | {row['recall']:.3f} | {row['f1']:.3f} | "
                     f"{row['support']} |")
    if metrics.get("routing"):
        lines += ["", "Review threshold (dispatch sends appeals below it to a reviewer, `review_threshold`):", "",
                  "| threshold | to review | accuracy of the rest | dispatched with a wrong category |", "|---|---|---|---|"]
        for row in metrics["routing"]:
            accuracy = "—" if row["auto_accuracy"] is None else f"{row['auto_accuracy']:.3f}"
            lines.append(f"| {row['threshold']:.1f} | {row['to_review']:.1%} | {accuracy} | {row['auto_errors']} |")
    lines += ["", "Confusion matrix (rows true, columns predicted):", "", "```"]
    for label, row in zip(metrics["labels"], metrics["confusion_matrix"]):
        lines.append(f"{label:<10}" + " ".join(f"{v:5d}" for v in row))
    lines.append("```")
    if label_display == "numbers":
        lines += ["", "confusion_matrix.png numbers its classes as in the table above (no CJK font was found)."]
    return "\n".join(lines) + "\n"


def write_report(directory: Path, metrics: dict, title: str) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    display = plot_confusion(metrics, directory / "confusion_matrix.png", title)
    (directory / "report.json").write_text(json.dumps(metrics, ensure_ascii=False, indent=2), encoding="utf-8")
    (directory / "report.md").write_text(report_markdown(metrics, title, display), encoding="utf-8")


def evaluate_bundle(bundle: Path, data: list[Path], taxonomy: Taxonomy, out: Path | None = None) -> dict:
    """Recompute the report for a bundle on any labelled file(s)."""
    from serving.bundle import read_manifest
    from serving.predictor import load_category_model
    from training.data import load_frame

    manifest = read_manifest(bundle)
    model = load_category_model(manifest)
    level = int(manifest.heads["category"].get("level", 1))
    frame = load_frame(data, taxonomy, level)
    unknown = sorted(set(frame["category"]) - set(model.labels))
    if unknown:
        raise ValueError(f"the data has categories the model does not know: {', '.join(unknown)}")
    heads = model.predict_all(list(frame["title"]), list(frame["text"]))
    metrics = compute_metrics(model.labels, list(frame["category"]), heads["category"])
    extra = _head_metrics(model, heads, frame) | _served_metrics(bundle, taxonomy, frame)
    if extra:
        metrics["heads"] = {name: {k: m[k] for k in ("n", "accuracy", "macro_f1")} for name, m in extra.items()}
    if out is not None:
        write_report(Path(out), metrics, f"category ({len(frame)} appeals from {', '.join(p.name for p in data)})")
        if extra:
            (Path(out) / "report_heads.json").write_text(json.dumps(extra, ensure_ascii=False, indent=2),
                                                         encoding="utf-8")
    return metrics


def _labelled(frame, head: str) -> tuple[np.ndarray, list[str]]:
    """Rows of ``frame`` that carry a label for ``head`` and those labels."""
    if head == "urgency":
        rows = np.flatnonzero(frame["urgency"].isin([1, 2, 3, 4]).to_numpy())
        return rows, [str(int(v)) for v in frame["urgency"].iloc[rows]]
    if head == "appeal_type":
        rows = np.flatnonzero((frame["appeal_type"] != "").to_numpy())
        return rows, list(frame["appeal_type"].iloc[rows])
    depth = int(head.rsplit("_l", 1)[1])
    cut = ["/".join(p.split("/")[:depth]) if p.count("/") + 1 >= depth else "" for p in frame["category_path"]]
    rows = np.flatnonzero(np.array([bool(c) for c in cut], dtype=bool))
    return rows, [cut[r] for r in rows]


def _head_metrics(model, heads: dict, frame) -> dict:
    """Each extra head of the model against the data's own labels, where it has them."""
    out = {}
    for name, probabilities in heads.items():
        if name == "category":
            continue
        labels = model.heads[name]
        rows, truth = _labelled(frame, name)
        keep = [i for i, t in enumerate(truth) if t in labels]
        if keep:
            out[f"{name} (head)"] = compute_metrics(labels, [truth[i] for i in keep], probabilities[rows[keep]])
    return out


def _served_metrics(bundle: Path, taxonomy: Taxonomy, frame) -> dict:
    """Urgency and appeal type as the service assigns them (rules first, heads where no rule fired)."""
    from serving.appeals import AppealInputError
    from serving.predictor import AppealInput, Predictor, validate_appeal

    wanted = {name: _labelled(frame, name) for name in ("urgency", "appeal_type")}
    if not any(len(rows) for rows, _ in wanted.values()):
        return {}
    accepted = {}
    for row in sorted(set().union(*(rows.tolist() for rows, _ in wanted.values()))):
        title, text = frame["title"].iloc[row], frame["text"].iloc[row]
        try:
            accepted[row] = validate_appeal(AppealInput(text=text or title, title=title))
        except AppealInputError:
            continue  # too long for the service: it would refuse the appeal, so it has no served label
    served = dict(zip(accepted, Predictor(bundle, taxonomy).predict(list(accepted.values()))))
    out = {}
    for name, (rows, truth) in wanted.items():
        pairs = [(truth[i], r) for i, r in enumerate(rows) if r in served]
        if not pairs:
            continue
        labels = ["1", "2", "3", "4"] if name == "urgency" else list(taxonomy.appeal_types.names)
        got = [str(served[r].urgency) if name == "urgency" else served[r].appeal_type for _, r in pairs]
        onehot = np.zeros((len(pairs), len(labels)))
        onehot[np.arange(len(pairs)), [labels.index(g) for g in got]] = 1.0
        out[f"{name} (served)"] = compute_metrics(labels, [t for t, _ in pairs], onehot)
    return out
