"""Speed of the transformer router on this machine: PyTorch fp32 eager vs ONNX fp32 vs ONNX int8.

    python benchmarks/transformer_speed.py --work-dir var/work/e5-12 \
        --data ../shared/data/tipdm2020c/appeals_labelled.csv [--appeals 300] [--threads 2]

Appeals are drawn at random (seeded) from the data and encoded exactly as the service encodes them
(title + head + tail, the work directory's max_length), so the lengths are the ones the model reads.
Measured per runtime: single-appeal latency (batch 1, forward pass only, p50/p99 over every drawn
appeal after a warm-up) and throughput (batches of 32 sorted by length, as ``jiesu predict`` runs),
plus the tokenizer's own cost per appeal; with ``--bundle`` (repeatable), also the whole serving path
of each bundle (model, rule layer, place resolver). Prints a table and writes
``benchmarks/results/transformer_speed.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def percentile_ms(times: list[float], q: float) -> float:
    return float(np.percentile(np.array(times) * 1000, q))


def measure(run, sequences: list[list[int]], pad_id: int, batch: int = 32) -> dict:
    from serving.model.encoding import length_batches, pad

    for seq in sequences[:10]:  # warm-up
        run(*pad([seq], pad_id))
    single = []
    for seq in sequences:
        ids, mask = pad([seq], pad_id)
        started = time.perf_counter()
        run(ids, mask)
        single.append(time.perf_counter() - started)
    started = time.perf_counter()
    for rows in length_batches([len(s) for s in sequences], batch):
        run(*pad([sequences[r] for r in rows], pad_id))
    seconds = time.perf_counter() - started
    return {"p50_ms": percentile_ms(single, 50), "p99_ms": percentile_ms(single, 99),
            "mean_ms": float(np.mean(single) * 1000), "throughput_per_s": len(sequences) / seconds,
            "batch": batch}


def pipeline(bundles: list[Path], titles: list[str], texts: list[str], data_dir: Path | None) -> dict:
    """``Predictor.predict_one`` per appeal and ``Predictor.predict`` over all: what the service runs."""
    from serving.model.predictor import AppealInput, Predictor
    from taxonomy import load_taxonomy

    taxonomy = load_taxonomy("beijing", data_dir=data_dir)
    appeals = [AppealInput(text=x or t, title=t) for t, x in zip(titles, texts)]
    out = {}
    for bundle in bundles:
        predictor = Predictor(bundle, taxonomy)
        for appeal in appeals[:10]:
            predictor.predict_one(appeal)
        single = []
        for appeal in appeals:
            started = time.perf_counter()
            predictor.predict_one(appeal)
            single.append(time.perf_counter() - started)
        started = time.perf_counter()
        predictor.predict(appeals)
        out[f"{predictor.manifest.kind} ({bundle})"] = {
            "p50_ms": percentile_ms(single, 50), "p99_ms": percentile_ms(single, 99),
            "throughput_per_s": len(appeals) / (time.perf_counter() - started)}
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work-dir", type=Path, required=True, help="transformer work directory (fit/ and onnx/)")
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--appeals", type=int, default=300)
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "transformer_speed.json")
    parser.add_argument("--bundle", type=Path, action="append", default=[],
                        help="also time the whole serving path (model, rules, places) of this bundle; repeatable")
    parser.add_argument("--data-dir", type=Path, default=None, help="shared data directory (JIESU_DATA_DIR)")
    args = parser.parse_args()
    needed = [args.work_dir / "prepared" / "meta.json", args.work_dir / "fit" / "fit.json",
              args.work_dir / "fit" / "best" / "model.safetensors", args.work_dir / "onnx" / "model_int8.onnx",
              args.data, *args.bundle]
    missing = [str(path) for path in needed if not path.exists()]
    if missing:
        print(f"error: not found: {', '.join(missing)} (run jiesu train --kind transformer with this --work-dir first)",
              file=sys.stderr)
        return 2

    import torch
    from tokenizers import Tokenizer

    from serving.model.encoding import TextEncoding, encode_sequences
    from serving.model.transformer import cpu_description, open_session
    from training.data import read_table
    from training.transformer.model import load_model

    meta = json.loads((args.work_dir / "prepared" / "meta.json").read_text(encoding="utf-8"))
    encoding = TextEncoding.from_dict(meta["encoding"])
    base = json.loads((args.work_dir / "fit" / "fit.json").read_text(encoding="utf-8"))["key"]["base_model"]
    tokenizer = Tokenizer.from_file(str(Path(base) / "tokenizer.json"))
    frame = read_table(args.data).fillna("")
    rows = np.random.default_rng(args.seed).choice(len(frame), size=min(args.appeals, len(frame)), replace=False)
    titles = [str(frame.iloc[r]["title"]) for r in rows]
    texts = [str(frame.iloc[r]["text"]) for r in rows]
    started = time.perf_counter()
    sequences = [encode_sequences(tokenizer, [t], [x], encoding)[0] for t, x in zip(titles, texts)]
    tokenize_ms = (time.perf_counter() - started) / len(sequences) * 1000
    lengths = np.array([len(s) for s in sequences])

    torch.set_num_threads(args.threads)
    model = load_model(args.work_dir / "fit" / "best", attn=None)  # the default (sdpa) attention of transformers

    @torch.inference_mode()
    def eager(ids, mask):
        return model(torch.from_numpy(ids), torch.from_numpy(mask))

    results = {"pytorch_fp32_eager": measure(eager, sequences, encoding.pad_id)}
    for name in ("fp32", "int8"):
        session = open_session(args.work_dir / "onnx" / f"model_{name}.onnx", args.threads)
        outputs = [o.name for o in session.get_outputs()]
        results[f"onnx_{name}"] = measure(
            lambda ids, mask, s=session: s.run(outputs, {"input_ids": ids, "attention_mask": mask}),
            sequences, encoding.pad_id)
    eager_p50 = results["pytorch_fp32_eager"]["p50_ms"]
    for result in results.values():
        result["speedup_p50_vs_eager"] = eager_p50 / result["p50_ms"]

    record = {
        "machine": {"cpu": cpu_description(), "threads": args.threads,
                    "cores_visible": len(os.sched_getaffinity(0)), "python": platform.python_version(),
                    "torch": torch.__version__},
        "model": {"work_dir": str(args.work_dir), "max_length": encoding.max_length,
                  "layers": model.encoder.config.num_hidden_layers, "hidden": model.encoder.config.hidden_size},
        "appeals": len(sequences),
        "tokens": {"p50": float(np.median(lengths)), "p90": float(np.percentile(lengths, 90)),
                   "max": int(lengths.max())},
        "tokenize_ms_per_appeal": tokenize_ms,
        "results": results,
    }
    if args.bundle:
        record["pipeline"] = pipeline(args.bundle, titles, texts, args.data_dir)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=2), encoding="utf-8")
    print(f"{record['machine']['cpu']['model']} ({', '.join(record['machine']['cpu']['int8_isa']) or 'no AVX2'}); "
          f"{len(sequences)} appeals, tokens p50 {record['tokens']['p50']:.0f} / p90 {record['tokens']['p90']:.0f}, "
          f"{args.threads} threads; tokenizing {tokenize_ms:.2f} ms per appeal")
    print(f"{'runtime':<22}{'p50 ms':>9}{'p99 ms':>9}{'per s (b32)':>13}{'× eager':>9}")
    for name, r in results.items():
        print(f"{name:<22}{r['p50_ms']:>9.1f}{r['p99_ms']:>9.1f}{r['throughput_per_s']:>13.1f}"
              f"{r['speedup_p50_vs_eager']:>9.2f}")
    for name, r in record.get("pipeline", {}).items():
        print(f"whole path, {name}: p50 {r['p50_ms']:.1f} ms, p99 {r['p99_ms']:.1f} ms, "
              f"{r['throughput_per_s']:.0f} appeals/s in one process")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
