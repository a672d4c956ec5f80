"""Precision and recall of the trend alerts on synthetic series with injected spikes.

Each series is one category × place: a base rate (log-normal across series, 0.1–15 a day), a weekday
rhythm (busy Mondays, quiet Sundays), a slow seasonal swing, Poisson noise; then spikes are added on
random days: a burst of extra appeals of three to six times the day's expected count (at least five).
Detection runs on the days after the first four weeks, as it would in service.

    python benchmarks/alerts.py --out benchmarks/results/alerts.json
"""

from __future__ import annotations

import argparse
import json
import math
from datetime import date, timedelta
from pathlib import Path

import numpy as np

from serving.analytics.alerts import ALPHA, detect

WEEKDAY = [1.25, 1.1, 1.05, 1.0, 1.0, 0.8, 0.7]  # Monday … Sunday


def simulate(n_series: int, days: int, n_spikes: int, seed: int):
    rng = np.random.default_rng(seed)
    start = date(2026, 1, 5)  # a Monday
    series, truth = {}, set()
    rates = np.clip(rng.lognormal(mean=0.3, sigma=1.0, size=n_series), 0.1, 15)
    phases = rng.uniform(0, 2 * math.pi, size=n_series)
    for s in range(n_series):
        counts = {}
        for d in range(days):
            day = start + timedelta(days=d)
            season = 1 + 0.3 * math.sin(2 * math.pi * d / 365 + phases[s])
            counts[day] = int(rng.poisson(rates[s] * WEEKDAY[day.weekday()] * season))
        series[(f"c{s % 7}", f"p{s}")] = counts
    for _ in range(n_spikes):
        s, d = int(rng.integers(n_series)), int(rng.integers(28, days))
        day = start + timedelta(days=d)
        key = (f"c{s % 7}", f"p{s}")
        expected = rates[s] * WEEKDAY[day.weekday()]
        series[key][day] += int(max(5, round(expected * rng.uniform(3, 6))))
        truth.add((key, day))
    return series, truth, start + timedelta(days=28), start + timedelta(days=days)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", type=int, default=300)
    parser.add_argument("--days", type=int, default=140)
    parser.add_argument("--spikes", type=int, default=60)
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/alerts.json"))
    args = parser.parse_args()
    results = []
    print("| alpha | seed | spikes | alerts | true | precision | recall |\n|---|---|---|---|---|---|---|")
    for alpha in (1e-2, 1e-3, 1e-4):
        for seed in args.seeds:
            series, truth, first, last = simulate(args.series, args.days, args.spikes, seed)
            found = {((a.category, a.place_id), a.date) for a in detect(series, first, last, alpha=alpha)}
            true = len(found & truth)
            precision = true / len(found) if found else 1.0
            recall = true / len(truth)
            results.append({"alpha": alpha, "seed": seed, "spikes": len(truth), "alerts": len(found), "true": true,
                            "precision": precision, "recall": recall})
            print(f"| {alpha:g}{' (default)' if alpha == ALPHA else ''} | {seed} | {len(truth)} | {len(found)} | "
                  f"{true} | {precision:.3f} | {recall:.3f} |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"series": args.series, "days": args.days, "runs": results}, indent=2))
    print(f"\nwritten {args.out}")


if __name__ == "__main__":
    main()
