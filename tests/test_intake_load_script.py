"""The intake load benchmark runs end to end at a tiny size: it starts the service, drives it, measures the
model alone, prints the table and writes the JSON the docs quote."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.conftest import ROOT


def test_intake_load_prints_a_table_and_writes_json(sample_model, data_dir, tmp_path):
    out = tmp_path / "load.json"
    result = subprocess.run([sys.executable, "benchmarks/intake_load.py", "--model", str(sample_model),
                             "--data-dir", str(data_dir), "--seconds", "2", "--warmup", "0.5", "--clients", "2",
                             "--appeals", "40", "--config", "sqlite:1", "--config", "postgresql:1", "--out", str(out)],
                            capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "appeals/s" in result.stdout and "model alone" in result.stdout
    record = json.loads(out.read_text(encoding="utf-8"))
    assert [(r["database"], r["workers"]) for r in record["results"]] == [("sqlite", 1), ("postgresql", 1)]
    for row in record["results"]:
        assert row["acknowledged"] > 0 and row["errors"] == 0 and 0 < row["p50_ms"] <= row["p99_ms"]
    assert record["model_alone"]["per_s"] > 0 and record["machine"]["cpus"] >= 1
