"""Benchmark of the fast category model: accuracy, training time, prediction speed.

Trains with ``jiesu train``'s code on a labelled file, evaluates the held-out test split, then measures
batch throughput (whole pipeline: category model, rule layer, place resolver) with 1 process and with
all cores, and single-appeal latency. Where the file has the tipdm ``source`` and ``text_match``
columns, the first seed's test accuracy is also broken down by them (does the model fail on the rows
whose title and text may be mis-paired?). Prints a table and writes JSON.

    python benchmarks/linear_model.py --data ../shared/data/tipdm2020c/appeals_labelled.csv \
        --seeds 13 1 2 --out benchmarks/results/linear.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import pandas as pd

from serving.model.batch import default_workers, predict_many
from serving.model.predictor import AppealInput, Predictor
from taxonomy import load_taxonomy
from training.data import SplitConfig, assign_splits, load_frame, read_table
from training.train import TrainConfig, train


def machine() -> dict:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "cores": default_workers(), "python": platform.python_version(), "os": platform.platform()}


def accuracy_by_source(data: Path, test, predictions) -> dict | None:
    """Test accuracy per ``source`` and, for ``rebuilt`` rows, per ``text_match`` quartile (tipdm columns)."""
    raw = read_table(data)
    if not {"id", "source", "text_match"} <= set(raw.columns):
        return None
    raw = raw.set_index("id")
    rows = test.assign(correct=[p.category == c for p, c in zip(predictions, test["category"])],
                       source=raw.loc[test["id"], "source"].to_numpy(),
                       text_match=pd.to_numeric(raw.loc[test["id"], "text_match"], errors="coerce").to_numpy())
    by_source = {name: {"n": int(len(g)), "accuracy": float(g["correct"].mean())}
                 for name, g in rows.groupby("source")}
    rebuilt = rows[rows["source"] == "rebuilt"].dropna(subset=["text_match"])
    quartiles = pd.qcut(rebuilt["text_match"], 4, duplicates="drop")
    by_match = [{"text_match": f"({q.left:.3f}, {q.right:.3f}]", "n": int(len(g)), "accuracy": float(g["correct"].mean())}
                for q, g in rebuilt.groupby(quartiles, observed=True)]
    return {"by_source": by_source, "rebuilt_by_text_match_quartile": by_match}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--seeds", type=int, nargs="+", default=[13])
    parser.add_argument("--throughput-appeals", type=int, default=5000)
    parser.add_argument("--latency-appeals", type=int, default=300)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/linear.json"))
    args = parser.parse_args()

    taxonomy = load_taxonomy()
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in args.seeds:
            bundle = Path(tmp) / f"model-{seed}"
            result = train(TrainConfig(data=[args.data], out=bundle, seed=seed), taxonomy, log=lambda m: None)
            test = result.metrics["test"]
            runs.append({"seed": seed, "train_seconds": round(result.seconds, 1), "macro_f1": test["macro_f1"],
                         "accuracy": test["accuracy"], "ece": test["ece"], "test_n": test["n"]})
            print(f"seed {seed}: macro-F1 {test['macro_f1']:.4f}  accuracy {test['accuracy']:.4f}  "
                  f"ECE {test['ece']:.4f}  train {result.seconds:.1f}s", flush=True)

        # speed, on the first seed's bundle and its test split
        seed = args.seeds[0]
        predictor = Predictor(Path(tmp) / f"model-{seed}", taxonomy)
        frame = load_frame([args.data], taxonomy)
        frame["split"] = assign_splits(frame, SplitConfig(seed=seed))
        test = frame[frame["split"] == "test"]
        appeals = [AppealInput(text=x or t, title=t, id=str(i)) for i, t, x in zip(test["id"], test["title"], test["text"])]
        batch = (appeals * (args.throughput_appeals // len(appeals) + 1))[: args.throughput_appeals]
        predictor.predict(batch[:50])  # warm-up: jieba dictionaries load once
        throughput = {}
        for workers in sorted({1, default_workers()}):
            started = time.perf_counter()
            predict_many(predictor, batch, workers=workers)
            seconds = time.perf_counter() - started
            throughput[workers] = len(batch) / seconds
            print(f"batch of {len(batch)}, {workers} process(es): {throughput[workers]:.0f} appeals/s", flush=True)
        latencies = []
        for appeal in appeals[: args.latency_appeals]:
            started = time.perf_counter()
            predictor.predict_one(appeal)
            latencies.append((time.perf_counter() - started) * 1000)
        breakdown = accuracy_by_source(args.data, test, predictor.predict(appeals))
        latencies.sort()
        p50 = statistics.median(latencies)
        p99 = latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))]
    mean_chars = statistics.mean(len(a.title) + len(a.text) for a in appeals)

    summary = {
        "data": str(args.data),
        "machine": machine(),
        "runs": runs,
        "macro_f1_mean": statistics.mean(r["macro_f1"] for r in runs),
        "throughput_appeals_per_s": {str(k): round(v, 1) for k, v in throughput.items()},
        "latency_ms": {"p50": round(p50, 2), "p99": round(p99, 2)},
        "mean_appeal_chars": round(mean_chars, 1),
        "test_accuracy_breakdown": breakdown,
    }
    print()
    print("| seed | macro-F1 | accuracy | ECE | train s |")
    print("|---|---|---|---|---|")
    for r in runs:
        print(f"| {r['seed']} | {r['macro_f1']:.4f} | {r['accuracy']:.4f} | {r['ece']:.4f} | {r['train_seconds']} |")
    print()
    print("| measure | value |")
    print("|---|---|")
    for workers, rate in throughput.items():
        print(f"| batch throughput, {workers} process(es) | {rate:.0f} appeals/s |")
    print(f"| single appeal latency p50 / p99 | {p50:.1f} / {p99:.1f} ms |")
    if breakdown:
        print()
        print(f"| seed {seed} test appeals | n | accuracy |")
        print("|---|---|---|")
        for name, r in breakdown["by_source"].items():
            print(f"| source {name} | {r['n']} | {r['accuracy']:.4f} |")
        for r in breakdown["rebuilt_by_text_match_quartile"]:
            print(f"| rebuilt, text_match {r['text_match']} | {r['n']} | {r['accuracy']:.4f} |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(summary, ensure_ascii=False, indent=2), encoding="utf-8")
    print(f"\nwritten {args.out}")


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    main()
