"""The router on the blind test split: every bundle's numbers side by side, the tree prior on the nodes
with the fewest examples, and nodes the router never saw routed by the prior alone.

    .venv/bin/python benchmarks/router.py --bundle var/models/router [--bundle var/bundles/e5-6 …] \\
        --data data/annotations/test.jsonl --out benchmarks/results/router.json [--leave-out 6]

Prints a table and writes JSON:
- per bundle, as the service decides (``training.route_metrics``): first-level macro-F1 and accuracy,
  second- and third-level accuracy, department accuracy, company co-dispatch precision/recall, urgency
  (three-way macro-F1, urgent recall and precision), type macro-F1, the share dispatched without review at
  the bundle's own threshold and the department accuracy of those, and milliseconds per appeal;
- for the first bundle, the second-level nodes with the fewest training appeals (under 20) that the test
  split holds: their recall with the tree prior and without it;
- ``--leave-out N``: N second-level nodes the test split holds are dropped from the training data, a
  linear router (first and second level) is fitted without them, and their test appeals' second-level
  recall is measured with the prior (names, descriptions, keywords) and without it.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from serving.model.appeals import AppealInput
from serving.model.hierarchy import Decisions, Hierarchy
from serving.model.predictor import Predictor
from serving.model.prior import TreePrior
from taxonomy import load_taxonomy
from training.data import SplitConfig, assign_splits, load_frame
from training.heads import cut, head_values, parents
from training.linear import HeadSpec, LinearConfig, fit_heads
from training.route_metrics import route_metrics

FEW = 20


def summary(metrics: dict) -> dict:
    auto = metrics.get("auto_dispatch", {})
    company = metrics.get("company", {})
    urgency = metrics.get("urgency", {})
    return {
        "level1_macro_f1": metrics["level1"]["macro_f1"], "level1_accuracy": metrics["level1"]["accuracy"],
        "level2_accuracy": metrics.get("level2", {}).get("accuracy"),
        "level3_accuracy": metrics.get("level3", {}).get("accuracy"),
        "department_accuracy": metrics.get("department", {}).get("accuracy"),
        "company_precision": company.get("precision"), "company_recall": company.get("recall"),
        "urgency_macro_f1_3way": urgency.get("macro_f1_3way"), "urgent_recall": urgency.get("urgent_recall"),
        "urgent_precision": urgency.get("urgent_precision"),
        "type_macro_f1": metrics.get("appeal_type", {}).get("macro_f1"),
        "auto_dispatch_threshold": auto.get("threshold"), "auto_dispatch_share": auto.get("share"),
        "auto_dispatch_accuracy": auto.get("accuracy"),
    }


def appeals(frame) -> list[AppealInput]:
    return [AppealInput(text=x or t, title=t) for t, x in zip(frame["title"], frame["text"])]


def evaluate(bundle: Path, frame, taxonomy) -> dict:
    predictor = Predictor(bundle, taxonomy)
    batch = appeals(frame)
    started = time.perf_counter()
    predictions = predictor.predict(batch)
    seconds = time.perf_counter() - started
    metrics = route_metrics(frame, predictions, predictor.decisions.dispatch)
    return {"kind": predictor.manifest.kind, "ms_per_appeal": 1000 * seconds / len(batch), **summary(metrics),
            "routing": metrics, "predictor": predictor}


def few_examples(predictor: Predictor, frame, taxonomy) -> list[dict]:
    """Second-level nodes learnt from fewer than ``FEW`` appeals: their test recall with and without the prior."""
    counts = predictor.manifest.data.get("head_counts", {}).get("category_l2", {})
    truth = [cut(p, 2) for p in frame["category_path"]]
    batch = appeals(frame)
    with_prior = predictor.predict(batch)
    prior = predictor.hierarchy.prior
    predictor.hierarchy.prior = None
    try:
        without = predictor.predict(batch)
    finally:
        predictor.hierarchy.prior = prior
    rows = []
    for node in taxonomy.categories.level(2):
        n = counts.get(node.label, 0)
        where = [i for i, t in enumerate(truth) if t == node.label]
        if n >= FEW or not where:
            continue
        hit = lambda preds: sum("/".join(preds[i].category_guess[:2]) == node.label for i in where)  # noqa: E731
        rows.append({"node": node.label, "training_appeals": n, "test_appeals": len(where),
                     "recall_with_prior": hit(with_prior) / len(where), "recall_without": hit(without) / len(where)})
    return sorted(rows, key=lambda r: r["training_appeals"])


def leave_out(taxonomy, test, n_nodes: int, seed: int = 13) -> dict:
    """Drop ``n_nodes`` second-level nodes from training; route their test appeals with and without the prior."""
    frame = load_frame(["default"], taxonomy, 1)
    frame["split"] = assign_splits(frame, SplitConfig(0.1, 0.0, seed))
    truth_test = [cut(p, 2) for p in test["category_path"]]
    present = {t for t in truth_test if t}
    counts = {t: truth_test.count(t) for t in present}
    rng = np.random.default_rng(seed)
    candidates = sorted(t for t in present if counts[t] >= 3)
    chosen = sorted(rng.choice(candidates, size=min(n_nodes, len(candidates)), replace=False).tolist())
    level2 = [cut(p, 2) for p in frame["category_path"]]
    keep = np.array([t not in chosen for t in level2])
    train = frame[(frame["split"] == "train") & keep]
    validation = frame[(frame["split"] == "validation") & keep]
    specs = []
    blank = [None] * len(test)  # the test appeals ride along unlabelled: calibration sees only validation
    for head in ("category", "category_l2"):
        values = head_values(train, head)
        specs.append(HeadSpec(head, values, head_values(validation, head) + blank,
                              parents(sorted({v for v in values if v})) if head == "category_l2" else None))
    fitted = fit_heads(list(train["title"]), list(train["text"]), list(validation["title"]) + list(test["title"]),
                       list(validation["text"]) + list(test["text"]), specs, LinearConfig(), seed=seed, refit=False)
    heads = {name: h.labels for name, h in fitted.heads.items()}
    probabilities = {name: h.validation_probabilities[len(validation):] for name, h in fitted.heads.items()}
    n_train = {name: {label: 1000 for label in h.labels} for name, h in fitted.heads.items()}
    texts = [f"{t}。{x}" for t, x in zip(test["title"], test["text"])]
    rows = [i for i, t in enumerate(truth_test) if t in chosen]
    out = {"left_out": chosen, "test_appeals": len(rows)}
    for name, prior in (("with_prior", TreePrior(taxonomy.categories)), ("without", None)):
        routes = Hierarchy(taxonomy.categories, heads, Decisions(levels=(0, 0, 0)), prior, n_train).decide(
            {h: probabilities[h] for h in heads}, texts)
        out[f"recall_{name}"] = float(np.mean(["/".join(routes[i].full_path[:2]) == truth_test[i] for i in rows]))
        out[f"level1_accuracy_{name}"] = float(np.mean([routes[i].full_path[0] == truth_test[i].split("/")[0]
                                                         for i in rows]))
    return out


def fmt(value) -> str:
    return "—" if value is None else f"{value:.3f}" if isinstance(value, float) else str(value)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bundle", type=Path, action="append", required=True)
    parser.add_argument("--data", type=Path, default=Path("data/annotations/test.jsonl"))
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--leave-out", type=int, default=0)
    args = parser.parse_args()
    taxonomy = load_taxonomy()
    frame = load_frame([args.data], taxonomy, 1).reset_index(drop=True)
    results, first = {}, None
    for bundle in args.bundle:
        result = evaluate(bundle, frame, taxonomy)
        first = first or result["predictor"]
        result.pop("predictor")
        results[str(bundle)] = result
    keys = [k for k in summary(next(iter(results.values()))["routing"])] + ["ms_per_appeal"]
    print(f"{len(frame)} appeals from {args.data}")
    print(f"{'measure':<28}" + "".join(f"{Path(b).name:>16}" for b in results))
    for key in keys:
        print(f"{key:<28}" + "".join(f"{fmt(r[key]):>16}" for r in results.values()))
    report = {"data": str(args.data), "appeals": len(frame), "bundles": results,
              "few_examples": few_examples(first, frame, taxonomy)}
    print("\nsecond-level nodes learnt from fewer than 20 appeals (recall on test: with the prior / without):")
    for row in report["few_examples"]:
        print(f"  {row['node']:<28} {row['training_appeals']:>3} trained {row['test_appeals']:>3} test  "
              f"{row['recall_with_prior']:.2f} / {row['recall_without']:.2f}")
    if args.leave_out:
        report["leave_out"] = leave_out(taxonomy, frame, args.leave_out)
        lo = report["leave_out"]
        print(f"\nleft out of training: {', '.join(lo['left_out'])} ({lo['test_appeals']} test appeals); "
              f"second-level recall with the prior {lo['recall_with_prior']:.3f}, without {lo['recall_without']:.3f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, ensure_ascii=False, indent=1, default=float), encoding="utf-8")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
