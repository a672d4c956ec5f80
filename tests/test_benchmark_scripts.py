"""The transformer benchmark scripts run end to end on a tiny model, so they cannot rot between the
sessions that have the real model and a GPU."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from tests.conftest import ROOT, SAMPLE

torch = pytest.importorskip("torch")
pytest.importorskip("onnx")


@pytest.fixture(scope="module")
def work(tmp_path_factory, taxonomy):
    from tests.tiny_encoder import train_tiny_bundle

    bundle, work = train_tiny_bundle(tmp_path_factory.mktemp("bench"), taxonomy, "transformer")
    work.joinpath("bundle-path").write_text(str(bundle))
    return work


def test_speed_benchmark_prints_a_table_and_writes_json(work, tmp_path, data_dir):
    out = tmp_path / "speed.json"
    bundle = (work / "bundle-path").read_text()
    result = subprocess.run([sys.executable, "benchmarks/transformer_speed.py", "--work-dir", str(work),
                             "--data", str(SAMPLE), "--appeals", "30", "--threads", "1", "--out", str(out),
                             "--bundle", bundle, "--data-dir", str(data_dir)],
                            capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "onnx_int8" in result.stdout and "p50 ms" in result.stdout
    record = json.loads(out.read_text(encoding="utf-8"))
    assert set(record["results"]) == {"pytorch_fp32_eager", "onnx_fp32", "onnx_int8"}
    for row in record["results"].values():
        assert 0 < row["p50_ms"] <= row["p99_ms"] and row["throughput_per_s"] > 0
    assert record["appeals"] == 30 and record["tokens"]["max"] <= 64
    (whole,) = record["pipeline"].values()  # the serving path of the bundle: model, rules, places
    assert 0 < whole["p50_ms"] <= whole["p99_ms"] and "whole path, transformer" in result.stdout


def test_a_packed_fit_unpacks_to_the_same_weights(work, tmp_path):
    from safetensors.numpy import load_file

    parts = tmp_path / "parts"
    for args in (["pack", "--fit", str(work / "fit"), "--out", str(parts), "--part-mb", "0.05"],
                 ["unpack", "--parts", str(parts), "--fit", str(tmp_path / "fit")]):
        result = subprocess.run([sys.executable, "benchmarks/pack_fit.py", *args], capture_output=True, text=True,
                                cwd=ROOT, timeout=120)
        assert result.returncode == 0, result.stderr
    assert len(list(parts.glob("weights.part*"))) > 1  # really cut into parts
    before = load_file(str(work / "fit" / "best" / "model.safetensors"))
    after = load_file(str(tmp_path / "fit" / "best" / "model.safetensors"))
    assert before.keys() == after.keys()
    for name, value in before.items():
        np.testing.assert_allclose(after[name].astype(np.float32), value, rtol=2**-10, atol=1e-6)
    assert json.loads((tmp_path / "fit" / "fit.json").read_text())["done"] is True
    (parts / "weights.part00").write_bytes(b"x")
    result = subprocess.run([sys.executable, "benchmarks/pack_fit.py", "unpack", "--parts", str(parts), "--fit",
                             str(tmp_path / "again")], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert result.returncode != 0 and "sha256" in result.stderr
