"""The router on a Gemma 3 encoder (EmbeddingGemma's architecture), tiny and random, built in the test:
its attention masks mean what transformers' own do, its ONNX graph computes what PyTorch does (padding
and a sliding window included), SmoothQuant finds and keeps its four sites a layer, and ``jiesu train``
writes a bundle that ``jiesu predict`` serves."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("onnx")

from serving.model.bundle import read_manifest  # noqa: E402
from tests.conftest import ROOT, SAMPLE  # noqa: E402
from tests.tiny_encoder import build_tiny_gemma  # noqa: E402

HEADS = {"category": 5, "urgency": 4, "appeal_type": 6}


@pytest.fixture(scope="module")
def gemma(tmp_path_factory) -> Path:
    rows = [json.loads(line) for line in SAMPLE.read_text(encoding="utf-8").splitlines() if line.strip()]
    return build_tiny_gemma(tmp_path_factory.mktemp("gemma") / "encoder",
                            [(r.get("title") or "") + r["text"] for r in rows], sliding_window=8)


def batch() -> tuple[torch.Tensor, torch.Tensor]:
    """Two appeals longer than the sliding window, the second padded."""
    ids = torch.tensor([[2, *range(100, 118), 1], [2, *range(200, 210), 1, *[0] * 8]])
    return ids, (ids != 0).long()


def test_our_masks_mean_what_transformers_masks_mean(gemma):
    from training.transformer.model import encoder_masks, load_base

    ids, mask = batch()
    for attn in ("eager", "sdpa"):
        model = load_base(gemma, HEADS, attn=attn).eval()
        with torch.no_grad():
            ours = model.encoder(input_ids=ids, attention_mask=encoder_masks(model.encoder.config, mask))
            theirs = model.encoder(input_ids=ids, attention_mask=mask)
        real = mask.bool()
        assert torch.allclose(ours.last_hidden_state[real], theirs.last_hidden_state[real], atol=1e-6), attn
    masks = encoder_masks(model.encoder.config, mask)
    sliding, reach = masks["sliding_attention"][0, 0], model.encoder.config.sliding_window
    # a bidirectional window of 8 reads 4 tokens either way (transformers keeps it as the bound 8 // 2 + 1)
    assert reach == 5 and sliding[0, 4] == 0 and sliding[0, 5] < -1e30 and sliding[9, 5] == 0
    assert (masks["full_attention"][1, 0, 0, 12:] < -1e30).all()  # padding is never read


def test_the_onnx_graph_computes_what_pytorch_does_and_smoothing_keeps_it(gemma, tmp_path):
    from training.transformer.export import _export_fp32, onnx_logits, torch_logits
    from training.transformer.model import load_base
    from training.transformer.smoothing import SITES, _site_modules, apply_smoothing, smoothing_scales

    model = load_base(gemma, HEADS, attn="eager").eval()
    sequences = [[2, *range(100, 100 + n), 1] for n in (3, 30, 11, 19)]
    graph = tmp_path / "model.onnx"
    fused = _export_fp32(model, tmp_path, graph, pad_id=0)
    assert "error" not in fused
    reference = torch_logits(model, sequences, 0)
    for batch_size in (1, 4):
        got = onnx_logits(graph, model.head_names, sequences, 0, batch_size=batch_size)
        for head in model.head_names:
            np.testing.assert_allclose(got[head], reference[head], atol=1e-4)

    scales = smoothing_scales(model, sequences, 0, alphas=(0.5,))
    assert {(s.layer, s.site) for s in scales} == {(i, site) for i in (0, 1) for site in SITES}
    layers = model.encoder.layers
    for item in scales:  # every site smoothed with uneven scales, so each rewrite is checked
        channels = _site_modules(layers[item.layer])[item.site][1].shape[1]
        item.scale = np.linspace(0.5, 2.0, channels).astype(np.float32)
    records = apply_smoothing(graph, tmp_path / "smoothed.onnx", scales)
    assert all(r["applied"] for r in records)
    got = onnx_logits(tmp_path / "smoothed.onnx", model.head_names, sequences, 0)
    for head in model.head_names:
        np.testing.assert_allclose(got[head], reference[head], atol=1e-4)


def test_jiesu_train_and_predict_on_a_gemma_encoder(gemma, tmp_path):
    out = tmp_path / "router"
    command = [sys.executable, "-m", "serving.cli"]
    result = subprocess.run([*command, "train", "--data", str(SAMPLE), "--out", str(out), "--kind", "transformer",
                             "--base-model", str(gemma), "--max-length", "64", "--batch-size", "16", "--epochs", "1"],
                            capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert result.returncode == 0, result.stderr
    manifest = read_manifest(out)
    encoding = manifest.data["encoding"]
    assert (encoding["cls_id"], encoding["sep_id"], encoding["pad_id"]) == (2, 1, 0)  # <bos>, <eos>, <pad>
    assert manifest.data["onnx"]["parity"]["fp32"]["category"]["top1_agreement"] == 1.0
    appeals = tmp_path / "in.jsonl"
    appeals.write_text(json.dumps({"id": "1", "title": "夜间施工噪音", "text": "工地每天夜里十二点还在施工，噪音扰民。"},
                                  ensure_ascii=False) + "\n", encoding="utf-8")
    result = subprocess.run([*command, "predict", "--model", str(out), "--input", str(appeals),
                             "--output", str(tmp_path / "out.jsonl")], capture_output=True, text=True, cwd=ROOT,
                            timeout=300)
    assert result.returncode == 0, result.stderr
    row = json.loads((tmp_path / "out.jsonl").read_text(encoding="utf-8"))
    assert row["category"] in manifest.labels() and 0 < row["category_confidence"] <= 1
