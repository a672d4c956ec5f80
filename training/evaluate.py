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

from serving.analytics.charts import cjk_font
from training.metrics import macro_f1

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
        "macro_f1": macro_f1(true, pred),
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


def evaluate_bundle(bundle: Path, data: list[Path], taxonomy: Taxonomy, out: Path | None = None,
                    data_dir: Path | None = None) -> dict:
    """Recompute the report for a bundle on any labelled file(s): the first-level head on the appeals whose
    category it knows, each other head against the labels the data carries, and the routing numbers
    (``training.route_metrics``) as the service decides, on every appeal."""
    from serving.model.appeals import AppealInput
    from serving.model.predictor import Predictor
    from training.data import load_frame
    from training.route_metrics import route_markdown, route_metrics

    predictor = Predictor(bundle, taxonomy)
    model = predictor.model
    level = int(predictor.manifest.heads["category"].get("level", 1))
    frame = load_frame(data, taxonomy, level, data_dir)
    known = frame["category"].isin(model.labels).to_numpy()
    if not known.any():
        raise ValueError(f"the data has no appeal of a category the model knows ({', '.join(model.labels[:5])} …)")
    heads = model.predict_all(list(frame["title"]), list(frame["text"]))
    metrics = compute_metrics(model.labels, list(frame["category"][known]), heads["category"][known])
    extra = _head_metrics(model, heads, frame)
    predictions = predictor.predict([AppealInput(text=x or t, title=t) for t, x in zip(frame["title"], frame["text"])])
    routing = route_metrics(frame, predictions, predictor.decisions.dispatch)
    metrics["routing_report"] = routing
    if extra:
        metrics["heads"] = {name: {k: m[k] for k in ("n", "accuracy", "macro_f1")} for name, m in extra.items()}
    if out is not None:
        out = Path(out)
        write_report(out, metrics, f"category ({len(frame)} appeals from {', '.join(Path(p).name for p in data)})")
        with (out / "report.md").open("a", encoding="utf-8") as fh:
            fh.write("\n" + route_markdown(routing, f"Routing ({routing['n']} appeals, as the service decides)"))
        (out / "report_routing.json").write_text(json.dumps(routing, ensure_ascii=False, indent=2), encoding="utf-8")
        if extra:
            (out / "report_heads.json").write_text(json.dumps(extra, ensure_ascii=False, indent=2), encoding="utf-8")
    return metrics


def _head_metrics(model, heads: dict, frame) -> dict:
    """Each head of the model other than the first level, alone, against the data's own labels."""
    from training.heads import head_values

    out = {}
    for name, probabilities in heads.items():
        if name == "category":
            continue
        labels = model.heads[name]
        truth = head_values(frame, name)
        rows = [i for i, t in enumerate(truth) if t in labels]
        if rows:
            out[f"{name} (head)"] = compute_metrics(labels, [truth[i] for i in rows], probabilities[rows])
    return out
