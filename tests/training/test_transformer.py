"""The transformer router end to end on a tiny, randomly initialised encoder built in the test:
encoding of long appeals, the fine-tune loop (seeded, resumable, early stopping), ONNX export and its
parity with PyTorch, transformer and ensemble bundles through ``jiesu train``, ``jiesu predict`` and
``jiesu evaluate``, and serving them in a process where torch cannot be imported."""

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
from serving.model.encoding import TextEncoding, assemble, encode_sequences, pad  # noqa: E402
from tests.conftest import ROOT, SAMPLE  # noqa: E402
from tests.tiny_encoder import build_tiny_encoder  # noqa: E402

JIESU = [sys.executable, "-m", "serving.cli"]


def sample_rows() -> list[dict]:
    return [json.loads(line) for line in SAMPLE.read_text(encoding="utf-8").splitlines() if line.strip()]


@pytest.fixture(scope="module")
def encoder(tmp_path_factory) -> Path:
    texts = [(r.get("title") or "") + r["text"] for r in sample_rows()]
    return build_tiny_encoder(tmp_path_factory.mktemp("tiny") / "encoder", texts)


def jiesu(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([*JIESU, *map(str, args)], capture_output=True, text=True, cwd=cwd, timeout=600)


def train_cli(encoder: Path, out: Path, *extra: str) -> subprocess.CompletedProcess:
    return jiesu("train", "--data", SAMPLE, "--out", out, "--base-model", encoder, "--max-length", "96",
                 "--batch-size", "16", *extra)


# --- encoding -------------------------------------------------------------------------------------

def test_a_long_appeal_keeps_its_start_and_its_request_at_the_end():
    encoding = TextEncoding(max_length=16, title_tokens=4, head_fraction=0.75, cls_id=0, sep_id=2, pad_id=1)
    title, body = [10, 11, 12, 13, 14, 15], list(range(100, 130))
    ids = assemble(title, body, encoding)
    assert len(ids) == 16
    assert ids[:6] == [0, 10, 11, 12, 13, 2]  # title cut to 4 tokens
    budget = 16 - 3 - 4
    head = int(np.ceil(budget * 0.75))
    assert ids[6:6 + head] == body[:head]  # the start of the body …
    assert ids[6 + head:-1] == body[-(budget - head):]  # … and its last tokens (请求…)
    assert ids[-1] == 2


def test_plain_truncation_when_head_fraction_is_one_and_short_appeals_are_whole():
    encoding = TextEncoding(max_length=16, title_tokens=4, head_fraction=1.0, cls_id=0, sep_id=2, pad_id=1)
    assert assemble([10], list(range(100, 130)), encoding)[3:-1] == list(range(100, 112))
    assert assemble([10], [100, 101], encoding) == [0, 10, 2, 100, 101, 2]


def test_bad_encoding_settings_are_refused():
    with pytest.raises(ValueError, match="head_fraction"):
        TextEncoding(head_fraction=0)
    with pytest.raises(ValueError, match="max_length"):
        TextEncoding(max_length=4)


def test_encoding_normalises_and_strips_masked_place_codes(encoder):
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(encoder / "tokenizer.json"))
    encoding = TextEncoding(max_length=64, cls_id=2, sep_id=3, pad_id=0)
    # full-width and traditional forms normalise to the same text; the masked code A3区 is removed
    (a,) = encode_sequences(tokenizer, ["小区噪音"], ["A3区某小区夜间施工噪音扰民"], encoding)
    (b,) = encode_sequences(tokenizer, ["小區噪音"], ["某小区夜间施工噪音扰民"], encoding)
    assert a == b
    ids, mask = pad([a, a[:5]], encoding.pad_id)
    assert ids.shape == mask.shape == (2, len(a)) and mask[1].sum() == 5 and ids[1, 5] == 0


# --- fine-tune loop -------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def prepared(encoder, tmp_path_factory, taxonomy) -> Path:
    from training.train import TrainConfig, train

    work = tmp_path_factory.mktemp("work")
    config = TrainConfig(data=[SAMPLE], out=work / "unused", kind="transformer", base_model=str(encoder),
                         work_dir=work, max_length=96, prepare_only=True)
    assert train(config, taxonomy, log=lambda m: None).bundle is None
    return work / "prepared"


def fit_config(**changes):
    from training.transformer.fit import FitConfig

    base = dict(epochs=3, batch_size=16, lr=1e-3, head_lr=3e-3, seed=7, device="cpu", save_every=3, patience=5)
    return FitConfig(**{**base, **changes})


def test_prepare_labels_urgency_and_type_from_the_data(prepared):
    meta = json.loads((prepared / "meta.json").read_text(encoding="utf-8"))
    assert meta["heads"]["urgency"] == ["1", "2", "3", "4"]
    assert meta["heads"]["urgent"] == ["routine", "urgent"]
    assert set(meta["heads"]["appeal_type"]) == {"投诉", "举报", "求助", "咨询", "建议", "表扬"}
    assert len(meta["heads"]["category"]) == 15
    # the team's sample carries its own urgency and type labels on every row
    assert meta["label_sources"]["urgency"] == {"data": 240}


def test_prepare_leaves_rows_without_a_persons_label_out_of_that_head(taxonomy):
    """Urgency and type are learnt from people's labels only: the rule layer fills in nothing, so a
    row without a label is ignored by that head's loss (-1), and a head no row labels is left out."""
    import pandas as pd

    from training.transformer.prepare import head_labels

    frame = pd.DataFrame({"title": ["燃气泄漏", "咨询公积金"], "text": ["楼道里燃气泄漏，味道很大，请马上来人", "请问公积金怎么提取？"],
                          "category": ["城乡建设", "劳动和社会保障"], "category_path": ["城乡建设/燃气", "劳动和社会保障"],
                          "urgency": [-1, 3], "appeal_type": ["", ""], "department": ["management", ""],
                          "company": ["gas", ""], "split": ["train", "train"]})
    names, labels, sources = head_labels(frame, taxonomy, ["城乡建设", "劳动和社会保障"])
    assert labels["urgency"].tolist() == [-1, 0] and names["urgency"] == ["3"]
    assert "appeal_type" not in names
    assert names["category_l2"] == ["城乡建设/燃气"] and labels["category_l2"].tolist() == [0, -1]
    assert names["company"] == ["gas"] and sources["department"] == {"data": 1}


def test_the_loop_learns_and_is_reproducible_from_its_seed(prepared, encoder, tmp_path):
    from training.transformer.fit import fit

    first = fit(prepared, encoder, tmp_path / "a", fit_config(), log=lambda m: None, progress=False)
    again = fit(prepared, encoder, tmp_path / "b", fit_config(), log=lambda m: None, progress=False)
    losses = [h["train_loss"] for h in first["history"]]
    assert losses[-1] < losses[0]  # it learns something
    assert first["done"] and first["reason"] == "epochs"
    assert [h["train_loss"] for h in again["history"]] == pytest.approx(losses, rel=1e-5)
    assert (tmp_path / "a" / "best" / "model.safetensors").exists()
    assert not (tmp_path / "a" / "checkpoint.pt").exists()  # removed once finished


def test_a_stopped_run_resumes_to_the_same_result(prepared, encoder, tmp_path):
    from training.transformer.fit import fit

    whole = fit(prepared, encoder, tmp_path / "whole", fit_config(), log=lambda m: None, progress=False)
    part = fit(prepared, encoder, tmp_path / "part", fit_config(max_steps=17), log=lambda m: None, progress=False)
    assert part["reason"] == "max_steps" and (tmp_path / "part" / "checkpoint.pt").exists()
    messages = []
    rest = fit(prepared, encoder, tmp_path / "part", fit_config(), log=messages.append, progress=False)
    assert any("resuming" in m for m in messages)
    assert rest["global_step"] == whole["global_step"]
    assert [h["train_loss"] for h in rest["history"]] == pytest.approx([h["train_loss"] for h in whole["history"]],
                                                                         rel=1e-4)
    # asking again does nothing
    messages.clear()
    fit(prepared, encoder, tmp_path / "part", fit_config(), log=messages.append, progress=False)
    assert any("nothing to do" in m for m in messages)


def test_early_stopping_and_a_work_directory_of_another_run(prepared, encoder, tmp_path):
    from training.transformer.fit import FitError, fit

    record = fit(prepared, encoder, tmp_path / "r", fit_config(epochs=8, patience=1, lr=0.0, head_lr=0.0),
                 log=lambda m: None, progress=False)
    assert record["stopped_early"] and record["reason"] == "early_stop" and record["epoch"] == 2
    with pytest.raises(FitError, match="other settings"):
        fit(prepared, encoder, tmp_path / "r", fit_config(lr=5e-4), log=lambda m: None, progress=False)


def test_bfloat16_where_the_hardware_has_it_and_fp32_on_request(prepared, encoder, tmp_path, monkeypatch):
    from training.transformer import fit as fit_module
    from training.transformer import precision

    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: False)
    assert precision.choose_precision("auto", cpu) == "fp32"  # emulated bf16 would be slower than fp32
    assert precision.choose_precision("auto", cuda) == "bf16"
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: True)
    assert precision.choose_precision("auto", cpu) == "bf16"
    assert precision.choose_precision("fp32", cpu) == "fp32"
    with pytest.raises(precision.FitError, match="--precision must be one of"):
        precision.choose_precision("fp16", cpu)
    record = fit_module.fit(prepared, encoder, tmp_path / "bf16", fit_config(precision="bf16", epochs=2),
                            log=lambda m: None, progress=False)
    assert record["precision"] == "bf16" and record["done"]
    assert record["history"][-1]["train_loss"] < record["history"][0]["train_loss"]


def test_activation_checkpointing_where_memory_is_short_gives_the_same_training(prepared, encoder, tmp_path):
    """EmbeddingGemma's 24 layers at 32 × 256 tokens took 12–16 GB of activations and one run was killed
    for memory; checkpointing recomputes them in the backward pass, with the same gradients."""
    from safetensors.torch import load_file

    from training.transformer import fit as fit_module
    from training.transformer.precision import FitError, choose_checkpointing

    gigabyte = 2**30
    assert choose_checkpointing("auto", 32, 256, 768, 24, memory=24 * gigabyte)  # EmbeddingGemma on 24 GB
    assert not choose_checkpointing("auto", 32, 256, 384, 12, memory=24 * gigabyte)  # e5-small there
    assert not choose_checkpointing("auto", 32, 256, 768, 24, memory=140 * gigabyte)
    assert choose_checkpointing("on", 1, 1, 1, 1) and not choose_checkpointing("off", 32, 256, 768, 24, memory=1)
    with pytest.raises(FitError, match="--checkpointing must be one of"):
        choose_checkpointing("sometimes", 32, 256, 768, 24)
    weights = {}
    for setting in ("on", "off"):
        record = fit_module.fit(prepared, encoder, tmp_path / setting,
                                fit_config(checkpointing=setting, epochs=1, max_steps=4, dropout=0.2),
                                log=lambda m: None, progress=False)
        assert record["checkpointing"] is (setting == "on")
        weights[setting] = load_file(str(tmp_path / setting / "best" / "model.safetensors"))
    for name, value in weights["off"].items():  # dropout included: the recomputation replays its masks
        torch.testing.assert_close(weights["on"][name], value, atol=1e-5, rtol=1e-4)


# --- export and parity ----------------------------------------------------------------------------

def test_export_fp32_matches_pytorch_and_int8_is_checked(prepared, encoder, tmp_path):
    from training.transformer.export import export_all, onnx_logits, torch_logits
    from training.transformer.fit import fit, read_prepared
    from training.transformer.model import load_model

    fit(prepared, encoder, tmp_path / "fit", fit_config(epochs=1), log=lambda m: None, progress=False)
    model = load_model(tmp_path / "fit" / "best")
    meta, sequences, split, _ = read_prepared(prepared)
    check = [s.tolist() for s in sequences[:40]]
    record = export_all(model, tmp_path / "onnx", meta["pad_id"], check, log=lambda m: None)
    assert record["parity"]["fp32"]["category"]["top1_agreement"] == 1.0
    assert record["parity"]["fp32"]["category"]["max_prob_diff"] < 1e-4
    assert 0.0 <= record["parity"]["int8"]["category"]["max_prob_diff"] < 0.5
    assert record["shipped"] in ("int8", "fp32") and record["why"]
    # dynamic axes: other batch sizes and lengths than the export example
    odd = [s[:n] for s, n in zip(check, (3, 50, 7, 96, 11))]
    reference = torch_logits(model, odd, meta["pad_id"], batch_size=5)
    got = onnx_logits(tmp_path / "onnx" / "model_fp32.onnx", model.head_names, odd, meta["pad_id"], batch_size=2)
    for head in model.head_names:
        np.testing.assert_allclose(got[head], reference[head], atol=1e-4)


def test_smoothing_keeps_the_function_and_tames_an_outlier_channel_for_int8(prepared, encoder, tmp_path):
    """SmoothQuant on every MatMul input of the fused graph: the same logits, the attention still fused,
    and a planted outlier channel (the pattern that made dynamic int8 disagree with PyTorch on the e5
    router) no longer spoils the int8 graph."""
    import onnx

    from training.transformer.export import _export_fp32, onnx_logits, quantize_onnx, torch_logits
    from training.transformer.fit import fit, read_prepared
    from training.transformer.model import load_model
    from training.transformer.smoothing import SITES, apply_smoothing, int8_error, smoothing_scales

    fit(prepared, encoder, tmp_path / "fit", fit_config(epochs=1), log=lambda m: None, progress=False)
    model = load_model(tmp_path / "fit" / "best")
    layer = model.encoder.encoder.layer[1]
    with torch.no_grad():  # channel 5 of layer 1's GELU output becomes ~60× larger, its readers ~60× smaller
        layer.intermediate.dense.weight[5] *= 60
        layer.intermediate.dense.bias[5] = 60.0
        layer.output.dense.weight[:, 5] /= 60
    meta, sequences, _, _ = read_prepared(prepared)
    pad = meta["pad_id"]
    calibration, check = [s.tolist() for s in sequences[:24]], [s.tolist() for s in sequences[24:64]]
    scales = smoothing_scales(model, calibration, pad)
    assert {(s.layer, s.site) for s in scales} == {(i, site) for i in (0, 1) for site in SITES}
    outlier = next(s for s in scales if (s.layer, s.site) == (1, "ffn_output"))
    assert outlier.alpha is not None and outlier.int8_error < outlier.int8_error_unsmoothed / 4
    assert all(s.int8_error <= s.int8_error_unsmoothed for s in scales)
    assert int8_error([torch.ones(3, 4)], torch.eye(4)) < 1e-6  # the simulation itself: exact values stay exact

    plain, smoothed = tmp_path / "plain.onnx", tmp_path / "smoothed.onnx"
    _export_fp32(model, tmp_path, plain, pad)
    records = apply_smoothing(plain, smoothed, scales)
    applied = [r for r in records if r["applied"]]
    assert len(applied) == sum(s.scale is not None for s in scales) and applied
    graph = onnx.load(str(smoothed)).graph
    assert sum(n.op_type == "Mul" and n.name.startswith("smooth/") for n in graph.node) == len(applied)
    assert sum(n.op_type == "Attention" for n in graph.node) == 2  # smoothing after fusion keeps it fused
    before = torch_logits(model, check, pad)
    after = onnx_logits(smoothed, model.head_names, check, pad)
    for head in model.head_names:
        np.testing.assert_allclose(after[head], before[head], atol=1e-4)

    def int8_gap(graph_path, name):  # mean |int8 − fp32| of the category logits through ONNX
        quantize_onnx(graph_path, tmp_path / f"{name}_int8.onnx")
        got = onnx_logits(tmp_path / f"{name}_int8.onnx", model.head_names, check, pad)
        return float(np.abs(got["category"] - before["category"]).mean())

    assert int8_gap(smoothed, "smoothed") < int8_gap(plain, "plain") / 1.5
    # the fused attention is quantized too (its QKV projection is a quarter of a layer's multiply-adds)
    ops = {node.op_type for node in onnx.load(str(tmp_path / "smoothed_int8.onnx")).graph.node}
    assert "QAttention" in ops and "Attention" not in ops


def test_per_token_int8_gives_an_appeal_the_same_result_alone_or_in_any_batch(prepared, encoder, tmp_path):
    """Per-tensor dynamic int8 gives every token in a batch one range, so an appeal's logits change with
    the appeals it is batched with (the service predicts one at a time, `jiesu evaluate` 32 at a time).
    Per token, each row has its own range: the same appeal gets the same logits either way."""
    import onnx

    from training.transformer.export import (_export_fp32, onnx_logits, per_token_int8, quantize_onnx,
                                             sensitive_nodes, torch_logits)
    from training.transformer.fit import fit, read_prepared
    from training.transformer.model import load_model

    fit(prepared, encoder, tmp_path / "fit", fit_config(epochs=1), log=lambda m: None, progress=False)
    model = load_model(tmp_path / "fit" / "best")
    meta, sequences, _, _ = read_prepared(prepared)
    pad = meta["pad_id"]
    fp32 = tmp_path / "fp32.onnx"
    _export_fp32(model, tmp_path, fp32, pad)
    ffn_outputs = [n for n in sensitive_nodes(fp32) if n.endswith("MatMul")]
    assert len(ffn_outputs) == 2  # one per layer of the tiny encoder
    quantize_onnx(fp32, tmp_path / "per_tensor.onnx", only=ffn_outputs)
    assert per_token_int8(fp32, tmp_path / "per_token.onnx", ffn_outputs) == 2
    graph = onnx.load(str(tmp_path / "per_token.onnx")).graph
    assert not {n.name for n in graph.node} & set(ffn_outputs)  # the fp32 MatMuls are gone …
    assert sum(n.op_type == "MatMulInteger" for n in graph.node) == 2  # … replaced by int8 ones
    assert not any(i.name.endswith("/per_token/w_int8") and i.data_type != onnx.TensorProto.INT8
                   for i in graph.initializer)

    appeals = [s.tolist() for s in sequences[:32]]
    heads = model.head_names
    reference = torch_logits(model, appeals, pad)
    gaps = {}
    for name in ("per_tensor", "per_token"):
        path = tmp_path / f"{name}.onnx"
        alone = onnx_logits(path, heads, appeals, pad, batch_size=1)["category"]
        batched = onnx_logits(path, heads, appeals, pad, batch_size=32)["category"]
        gaps[name] = (float(np.abs(alone - batched).max()), float(np.abs(batched - reference["category"]).mean()))
    assert gaps["per_token"][0] < 1e-4, gaps  # alone or among 31 others (padded): the same logits
    assert gaps["per_tensor"][0] > 10 * gaps["per_token"][0], gaps  # the batch moved the per-tensor logits
    # as faithful to fp32 as per-tensor int8 on this tiny model (whose activations have no outlier tokens)
    assert gaps["per_token"][1] < 1.5 * gaps["per_tensor"][1], gaps


def test_when_int8_disagrees_the_plans_keep_the_most_sensitive_nodes_in_fp32(prepared, encoder, tmp_path,
                                                                            monkeypatch):
    """An agreement bar no int8 graph can reach walks every plan: smoothing first, then ranges per token,
    then the nodes that cost most when quantized alone kept in fp32, up to all of them; then the fp32
    graph is shipped."""
    from training.transformer import export
    from training.transformer.fit import fit, read_prepared
    from training.transformer.model import load_model

    fit(prepared, encoder, tmp_path / "fit", fit_config(epochs=1), log=lambda m: None, progress=False)
    model = load_model(tmp_path / "fit" / "best")
    meta, sequences, _, _ = read_prepared(prepared)
    monkeypatch.setattr(export, "MIN_AGREEMENT", 1.01)
    record = export.export_all(model, tmp_path / "onnx", meta["pad_id"], [s.tolist() for s in sequences[:30]],
                               [s.tolist() for s in sequences[30:50]], log=lambda m: None)
    plans = [t["plan"] for t in record["quantization_plans"]]
    # per tensor, smoothed, smoothed with the 2 attentions fp32, then per token: the 2 FFN outputs, then all
    # 6 MatMuls (3 a layer); last, of the 2 FFN outputs + 2 attentions, the 2 most sensitive and then all 4
    # kept in fp32
    assert plans == ["every MatMul and attention int8", "every MatMul input smoothed, every MatMul and attention int8",
                     "smoothed; attention fp32, every MatMul int8",
                     "smoothed; FFN outputs int8 per token, the rest per tensor",
                     "smoothed; every MatMul int8 per token, attention per tensor",
                     "smoothed; the 2 most sensitive of 4 kept fp32", "smoothed; the 4 most sensitive of 4 kept fp32"]
    assert [t["fp32_matmuls"] for t in record["quantization_plans"]] == [0, 0, 2, 0, 0, 2, 4]
    assert [t["per_token_matmuls"] for t in record["quantization_plans"]] == [0, 0, 0, 2, 6, 0, 0]
    # each plan is judged both ways it is served, by the worse
    assert all(t["category_top1_agreement"] == min(t["agreement_batched"], t["agreement_alone"])
               for t in record["quantization_plans"])
    assert len(record["sensitivity"]) == 4 and all(v >= 0 for v in record["sensitivity"].values())
    assert {(row["layer"], row["site"]) for row in record["smoothing"]} == {
        (i, site) for i in (0, 1) for site in ("attention", "attention_output", "ffn_input", "ffn_output")}
    assert record["parity"]["fp32_smoothed"]["category"]["top1_agreement"] == 1.0  # smoothing keeps the function
    assert record["shipped"] == "fp32" and "no int8 plan" in record["why"]
    assert not (tmp_path / "onnx" / "probe.onnx").exists()


def test_int8_parity_is_the_worse_of_batched_and_one_appeal_at_a_time(monkeypatch):
    """Per-tensor int8 ranges make an appeal's result depend on its batch: the API serves one appeal at a
    time, ``jiesu predict`` in batches of ``serving.model.transformer.BATCH``, and the parity bar must hold for
    both. Here the graph agrees with PyTorch on all four appeals in batches but flips one of them alone."""
    from serving.model.transformer import BATCH
    from training.transformer import export

    reference = {"category": np.array([[2.0, 0.0], [0.0, 2.0], [2.0, 0.0], [0.0, 2.0]], dtype=np.float32)}
    alone = reference["category"].copy()
    alone[3] = [1.0, 0.5]  # 办理类别 flips when the appeal is quantized without its batch

    def onnx_logits(path, heads, sequences, pad_id, batch_size=32):
        assert batch_size in (BATCH, 1)  # the batches the service runs, and one appeal alone
        return {"category": reference["category"] if batch_size == BATCH else alone}

    monkeypatch.setattr(export, "onnx_logits", onnx_logits)
    result = export.served_parity(reference, Path("model_int8.onnx"), ["category"], [[5]] * 4, 1)["category"]
    assert result["top1_agreement_batched"] == 1.0 and result["top1_agreement_alone"] == 0.75
    assert result["top1_agreement"] == 0.75
    assert result["max_prob_diff"] == pytest.approx(float(np.abs(export.softmax(reference["category"][3:], 1.0)
                                                              - export.softmax(alone[3:], 1.0)).max()))


def test_a_per_token_graph_that_agrees_but_runs_slower_than_fp32_is_not_shipped(prepared, encoder, tmp_path,
                                                                                 monkeypatch):
    """On a CPU where per-token ranges (or an fp32 attention) cost more than int8 saves, those plans are
    refused even though they agree, and the next plan (nodes kept fp32, all per tensor) ships; the report
    says why."""
    from training.transformer import export
    from training.transformer.fit import fit, read_prepared
    from training.transformer.model import load_model

    fit(prepared, encoder, tmp_path / "fit", fit_config(epochs=1), log=lambda m: None, progress=False)
    model = load_model(tmp_path / "fit" / "best")
    meta, sequences, _, _ = read_prepared(prepared)
    real_parity, calls = export.served_parity, []

    def served_parity(*args):  # the plain and the smoothed per-tensor plans (the first two) disagree
        result = real_parity(*args)
        calls.append(1)
        result["category"]["top1_agreement"] = 0.0 if len(calls) <= 2 else 1.0
        return result

    monkeypatch.setattr(export, "served_parity", served_parity)
    monkeypatch.setattr(export, "batch1_ms", lambda path, seqs: 9.0 if path.name == "model_int8.onnx" else 5.0)
    record = export.export_all(model, tmp_path / "onnx", meta["pad_id"], [s.tolist() for s in sequences[:30]],
                               [s.tolist() for s in sequences[30:50]], log=lambda m: None)
    tried = record["quantization_plans"]
    assert [t["plan"] for t in tried] == [
        "every MatMul and attention int8", "every MatMul input smoothed, every MatMul and attention int8",
        "smoothed; attention fp32, every MatMul int8",
        "smoothed; FFN outputs int8 per token, the rest per tensor",
        "smoothed; every MatMul int8 per token, attention per tensor",
        "smoothed; the 2 most sensitive of 4 kept fp32"]
    refused = [t for t in tried if "refused" in t]
    assert [(t["fp32_matmuls"], t["per_token_matmuls"]) for t in refused] == [(2, 0), (0, 2), (0, 6)]
    assert all(t["batch1_ms"] == 9.0 and t["fp32_batch1_ms"] == 5.0 for t in refused)
    assert record["shipped"] == "int8" and "2 most sensitive" in record["why"]


# --- bundles through the command line -------------------------------------------------------------

@pytest.fixture(scope="module")
def transformer_bundle(encoder, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("bundles") / "transformer"
    result = train_cli(encoder, out, "--kind", "transformer", "--epochs", "2")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["bundle"] == str(out) and 0.0 <= summary["macro_f1"] <= 1.0
    return out


@pytest.fixture(scope="module")
def ensemble_bundle(encoder, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("bundles") / "ensemble"
    result = train_cli(encoder, out, "--kind", "ensemble", "--epochs", "1")
    assert result.returncode == 0, result.stderr
    return out


def test_transformer_bundle_has_the_linear_bundles_format_and_says_where_labels_came_from(transformer_bundle):
    manifest = read_manifest(transformer_bundle)
    assert manifest.kind == "transformer"
    assert set(manifest.heads) == {"category", "urgency", "urgent", "appeal_type"}  # what the sample labels
    assert all(manifest.heads[h]["temperature"] > 0 for h in manifest.heads)
    assert manifest.data["onnx"]["shipped"] in ("int8", "fp32")
    assert set(manifest.data["files"]) >= {"model.onnx", "tokenizer.json", "report.json", "report.md"}
    report = (transformer_bundle / "report.md").read_text(encoding="utf-8")
    assert "labels people gave" in report and "240 labelled appeals" in report
    assert "decision" in manifest.data and "Routing on test" in report
    assert "top-1 agreement" in report


def test_ensemble_bundle_weighs_its_members_on_validation_and_compares_them(ensemble_bundle):
    manifest = read_manifest(ensemble_bundle)
    assert manifest.kind == "ensemble"
    members = {m["kind"]: m for m in manifest.data["members"]}
    assert set(members) == {"linear", "transformer"}
    assert members["linear"]["weight"] + members["transformer"]["weight"] == pytest.approx(1.0)
    assert len(manifest.data["weight_search"]) == 11
    comparison = json.loads((ensemble_bundle / "comparison.json").read_text(encoding="utf-8"))
    assert set(comparison) == {"linear", "transformer", "ensemble"}
    assert "Linear, transformer and ensemble" in (ensemble_bundle / "report.md").read_text(encoding="utf-8")


@pytest.mark.parametrize("kind", ["transformer", "ensemble"])
def test_jiesu_predict_and_evaluate_on_both_kinds(kind, transformer_bundle, ensemble_bundle, tmp_path):
    bundle = transformer_bundle if kind == "transformer" else ensemble_bundle
    appeals = tmp_path / "in.jsonl"
    appeals.write_text("\n".join(json.dumps(a, ensure_ascii=False) for a in [
        {"id": "1", "title": "朝阳区建外街道夜间施工噪音", "text": "工地每天夜里十二点还在施工，噪音扰民，请尽快处理。"},
        {"id": "2", "text": "小区楼道燃气泄漏，味道很大！"},
    ]) + "\n", encoding="utf-8")
    out = tmp_path / "out.jsonl"
    result = jiesu("predict", "--model", bundle, "--input", appeals, "--output", out)
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [r["id"] for r in rows] == ["1", "2"]
    labels = read_manifest(bundle).labels()
    assert all(r["category"] in labels and 0 < r["category_confidence"] <= 1 for r in rows)
    assert rows[1]["urgency"] == 1 and "燃气泄漏" in rows[1]["urgency_reason"]  # a signal: the rule decides
    assert rows[0]["district"] == "朝阳区"
    report = tmp_path / "report"
    result = jiesu("evaluate", "--model", bundle, "--data", SAMPLE, "--out", report)
    assert result.returncode == 0, result.stderr
    assert json.loads((report / "report.json").read_text(encoding="utf-8"))["n"] == 240
    # the sample carries urgency and type labels: the heads and what the service assigns are scored too
    printed = json.loads(result.stdout)
    assert {"urgency (head)", "appeal_type (head)"} <= set(printed["heads"])
    served = printed["routing"]
    assert served["urgency"]["n"] == 240 and 0 <= served["urgency"]["urgent_recall"] <= 1
    assert served["appeal_type"]["n"] == 240 and served["level1"]["n"] == 240
    assert (report / "report_heads.json").exists()


def test_serving_loads_both_kinds_without_torch(transformer_bundle, ensemble_bundle, data_dir):
    script = f"""
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in ('torch', 'transformers', 'training'):
            raise ImportError('blocked: ' + name)
sys.meta_path.insert(0, Block())
from serving.model.predictor import AppealInput, Predictor
from taxonomy import load_taxonomy
tx = load_taxonomy('beijing', data_dir={str(data_dir)!r})
for bundle in ({str(transformer_bundle)!r}, {str(ensemble_bundle)!r}):
    p = Predictor(bundle, tx).predict_one(AppealInput(id='x', title='噪音', text='夜间施工噪音扰民'))
    print(p.category, p.urgency)
assert 'torch' not in sys.modules
print('ok')
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith("ok")


def test_an_int8_bundle_from_a_vnni_cpu_is_flagged_on_a_cpu_without_it(monkeypatch):
    """int8 weights are exact where the CPU has VNNI and can saturate on x86 without it; a bundle says
    which it was exported with, and loading it on the other kind says so (parity no longer holds)."""
    from serving.model import transformer

    exported = {"shipped": "int8", "int8_weights": "int8", "exported_on": {"model": "Intel Xeon", "int8_isa": []}}
    monkeypatch.setattr(transformer, "uint8_weights", lambda: True)  # this CPU: x86 without VNNI
    assert "Intel Xeon" in transformer.int8_mismatch(exported)
    assert transformer.int8_mismatch({**exported, "int8_weights": "uint8 (x86 without VNNI)"}) is None
    assert transformer.int8_mismatch({**exported, "shipped": "fp32"}) is None
    assert transformer.int8_mismatch({"shipped": "int8"})  # bundles from before the record: int8 weights
    monkeypatch.setattr(transformer, "uint8_weights", lambda: False)  # a CPU with VNNI, or ARM
    assert transformer.int8_mismatch(exported) is None


def test_a_corrupt_graph_is_refused_with_the_reason(transformer_bundle, tmp_path):
    import shutil

    from serving.model.bundle import BundleError
    from serving.model.predictor import load_category_model

    copy = tmp_path / "copy"
    shutil.copytree(transformer_bundle, copy)
    (copy / "model.onnx").write_bytes(b"not a graph")
    with pytest.raises(BundleError, match="does not match its checksum"):
        read_manifest(copy)
    with pytest.raises(BundleError, match="cannot be loaded by onnxruntime"):
        load_category_model(read_manifest(copy, verify=False))


@pytest.mark.parametrize("args, message", [
    (["--kind", "transformer"], "needs --base-model"),
    (["--kind", "bert"], "--kind must be one of"),
    (["--kind", "transformer", "--base-model", "/nonexistent/encoder"], "--base-model"),
    (["--kind", "transformer", "--base-model", "ENC", "--device", "tpu"], "--device must be"),
    pytest.param(["--kind", "transformer", "--base-model", "ENC", "--device", "cuda"], "no CUDA device",
                 marks=pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")),
])
def test_train_refuses_bad_options_in_one_line(args, message, encoder, tmp_path):
    args = [str(encoder) if a == "ENC" else a for a in args]
    result = jiesu("train", "--data", SAMPLE, "--out", tmp_path / "b", *args)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.stderr


def test_deeper_category_labels_get_their_own_head_and_a_detail_under_the_predicted_category(
        encoder, taxonomy, tmp_path, data_dir):
    """Data labelled to the second level of the tree trains a ``category_l2`` head beside the first-level
    head; the prediction's ``category_detail`` always lies under the predicted category."""
    second = {}
    for node in taxonomy.categories.level(2):
        second.setdefault(node.path[0], []).append(node.label)
    rows = sample_rows()
    for i, row in enumerate(rows):
        if i % 4:  # three of four rows labelled to the second level, the rest only to the first
            children = second[row["category"]]
            row["category"] = children[i % len(children)]
    data = tmp_path / "deep.jsonl"
    data.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n", encoding="utf-8")
    out = tmp_path / "bundle"
    result = jiesu("train", "--data", data, "--out", out, "--base-model", encoder, "--kind", "transformer",
                   "--epochs", "1", "--max-length", "64")
    assert result.returncode == 0, result.stderr
    manifest = read_manifest(out)
    assert len(manifest.labels()) == 15  # the main head stays at the first level
    deep = manifest.labels("category_l2")
    assert all(label.count("/") == 1 for label in deep) and len(deep) > 15
    assert "category_l2" in (out / "report.md").read_text(encoding="utf-8")

    from serving.model.predictor import AppealInput, Predictor

    predictor = Predictor(out, taxonomy)
    for p in predictor.predict([AppealInput(id=str(i), title=r.get("title"), text=r["text"]) for i, r in
                                enumerate(rows[:20])]):
        assert p.category_detail is None or p.category_detail.startswith(p.category + "/")


def test_layer_decay_slows_the_lower_layers_and_heads_keep_their_own_rate(encoder):
    from training.transformer.fit import FitConfig, parameter_groups
    from training.transformer.model import load_base

    model = load_base(encoder, {"category": 3})
    groups = parameter_groups(model, FitConfig(lr=1e-4, head_lr=1e-3, layer_decay=0.5))
    by_param = {id(p): g for g in groups for p in g["params"]}
    named = dict(model.named_parameters())
    lr = lambda name: by_param[id(named[name])]["lr"]  # noqa: E731
    assert lr("heads.category.weight") == 1e-3
    assert lr("encoder.encoder.layer.1.output.dense.weight") == pytest.approx(1e-4)  # the top layer
    assert lr("encoder.encoder.layer.0.output.dense.weight") == pytest.approx(5e-5)
    assert lr("encoder.embeddings.word_embeddings.weight") == pytest.approx(2.5e-5)
    assert by_param[id(named["encoder.encoder.layer.0.output.dense.bias"])]["weight_decay"] == 0.0
    assert sum(len(g["params"]) for g in groups) == len(named)
    # switched off, the recipe (and a finished run's identity) is what it was before the option existed
    assert "layer_decay" not in FitConfig().key() and "layer_decay" in FitConfig(layer_decay=0.9).key()
