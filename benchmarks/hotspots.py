"""Benchmark of hotspot discovery: time and cluster counts on the real votes file, and on N appeals.

The N-appeal set resamples the real messages of all three public files (labelled, votes, replies)
with seeded random times over two years, so the text is real and the volume is a city's month or more.

    python benchmarks/hotspots.py --n 100000 --out benchmarks/results/hotspots.json
"""

from __future__ import annotations

import argparse
import json
import random
import time
from datetime import datetime, timedelta
from pathlib import Path

import pandas as pd

from serving.analytics.hotspots import Appeal, find_hotspots
from serving.analytics.sources import appeals_from_file
from taxonomy import default_data_dir


def synthetic(n: int, seed: int) -> list[Appeal]:
    base = default_data_dir() / "tipdm2020c"
    texts = []
    for name in ("appeals_labelled.csv", "appeals_with_votes.csv", "appeals_with_replies.csv"):
        frame = pd.read_csv(base / name, dtype=str, keep_default_na=False)
        texts += list(zip(frame["title"], frame["text"]))
    rng = random.Random(seed)
    start = datetime(2024, 1, 1)
    return [Appeal(id=str(i), title=t, text=x, at=start + timedelta(minutes=rng.randrange(2 * 365 * 24 * 60)))
            for i, (t, x) in enumerate(rng.choices(texts, k=n))]


def measure(name: str, appeals: list[Appeal]) -> dict:
    started = time.perf_counter()
    hotspots = find_hotspots(appeals, top=None)
    seconds = time.perf_counter() - started
    result = {"set": name, "appeals": len(appeals), "seconds": round(seconds, 1), "hotspots": len(hotspots),
              "largest": hotspots[0].size if hotspots else 0}
    print(f"| {name} | {len(appeals)} | {seconds:.1f} | {len(hotspots)} | {result['largest']} |", flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/hotspots.json"))
    args = parser.parse_args()
    print("| set | appeals | seconds | hotspots (≥3) | largest |\n|---|---|---|---|---|")
    votes, _ = appeals_from_file(default_data_dir() / "tipdm2020c" / "appeals_with_votes.csv")
    results = [measure("appeals_with_votes.csv", votes), measure(f"resampled, {args.n}", synthetic(args.n, args.seed))]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, ensure_ascii=False, indent=2), encoding="utf-8")
    print(f"\nwritten {args.out}")


if __name__ == "__main__":
    main()
