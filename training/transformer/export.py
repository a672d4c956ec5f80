"""Export a fine-tuned model to ONNX, fuse it for CPU, quantize it to int8, and check both against PyTorch.

1. ``torch.onnx.export`` (TorchScript exporter, eager attention so the graph has the plain BERT shape):
   inputs ``input_ids`` and ``attention_mask`` (int64), outputs ``logits_<head>``; batch and sequence
   axes dynamic.
2. onnxruntime's transformer optimizer fuses attention, layer norms and GELU (``model_type="bert"``);
   where a graph does not match its patterns the unfused graph is kept and the report says so.
3. ``onnxruntime.quantization.quantize_dynamic``: int8 weights (per channel) for the MatMuls and the
   fused attention's QKV projection (QAttention), activations quantized on the fly, one range per
   tensor. Plans are tried in turn: everything int8; if that disagrees with PyTorch, the same on a
   copy of the graph whose MatMul inputs are smoothed (``training.transformer.smoothing``); the
   smoothed graph with the attention's QKV projection kept fp32 (the node int8 costs most on the e5
   router once everything is smoothed); then the FFN outputs, and then every MatMul, int8 with one
   range per token (``per_token_int8``: slower, but an outlier token no longer coarsens the others);
   last, the smoothed graph with the most sensitive nodes kept in fp32 (2, 4, 8, … of the FFN outputs
   and attentions, ranked by what each one costs when it alone is int8: ``node_sensitivity``), up to
   all of them.
4. Parity on the validation split: top-1 agreement of each ONNX model with PyTorch on every head and
   the largest probability difference; an int8 graph is judged in the service's batches and one appeal
   at a time, by the worse of the two (``served_parity``). The first int8 plan whose category agreement is at least
   ``MIN_AGREEMENT`` is shipped (a per-token one, or one with the attention fp32, only if it also runs
   faster than fp32 on the exporting machine); if none is, the fp32 graph is, and the report says which and why.
"""

from __future__ import annotations

import logging
import re
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from serving.model.encoding import run_in_batches
from serving.model.linear import softmax
from serving.model.transformer import BATCH, cpu_description, open_session, uint8_weights
from training.transformer.model import MultiHeadClassifier
from training.transformer.smoothing import apply_smoothing, smoothing_scales

MIN_AGREEMENT = 0.995
SENSITIVITY_APPEALS = 300  # check appeals each node's int8 cost is measured on
OPSET = 17
# Per-token activations use 0 … 127 (7 bits): their ranges are per row, so every row reaches the extremes,
# and on x86 CPUs without VNNI uint8 × int8 products saturate in pairs (see ``uint8_weights``); with 7
# bits they cannot, whatever CPU serves the graph. (7-bit weights, quantize_dynamic's reduce_range, would
# avoid it too but cost far more agreement: 0.9747 → 0.9540 on the e5 router.)
ACTIVATION_LEVELS = 127


def export_onnx(model: MultiHeadClassifier, path: Path, pad_id: int) -> None:
    model = model.eval().cpu()
    ids = torch.tensor([[0, 5, 6, 7, 2], [0, 8, 2, pad_id, pad_id]], dtype=torch.long).clamp(
        max=model.encoder.config.vocab_size - 1)
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]], dtype=torch.long)
    outputs = [f"logits_{name}" for name in model.head_names]
    axes = {"input_ids": {0: "batch", 1: "sequence"}, "attention_mask": {0: "batch", 1: "sequence"},
            **{name: {0: "batch"} for name in outputs}}
    with torch.no_grad(), warnings.catch_warnings():
        # The tracer warns about Python-side branches in transformers' mask code and about index ops;
        # dynamic shapes are checked by the parity step (and the tests), not assumed from silence.
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (ids, mask), str(path), input_names=["input_ids", "attention_mask"],
                          output_names=outputs, dynamic_axes=axes, opset_version=OPSET, do_constant_folding=True,
                          dynamo=False)


def optimize_onnx(source: Path, target: Path, num_heads: int, hidden_size: int) -> dict:
    """Fuse the graph for CPU inference; returns the fused operator counts (empty when nothing fused)."""
    from onnxruntime.transformers import optimizer

    logging.getLogger("onnxruntime.transformers").setLevel(logging.ERROR)
    try:
        optimized = optimizer.optimize_model(str(source), model_type="bert", num_heads=num_heads,
                                             hidden_size=hidden_size, opt_level=1)
        fused = {k: int(v) for k, v in optimized.get_fused_operator_statistics().items() if v}
        optimized.save_model_to_file(str(target))
        return fused
    except Exception as exc:  # the optimizer raises assorted errors on graphs it does not recognise
        target.write_bytes(source.read_bytes())
        return {"error": f"not fused ({type(exc).__name__}: {exc})"}


def _nodes(path: Path):
    import onnx

    return onnx.load(str(path), load_external_data=False).graph.node


FFN_OUTPUT = re.compile(r"layer\.\d+/output/dense/MatMul|layers\.\d+/mlp/down_proj/MatMul")


def sensitive_nodes(path: Path) -> list[str]:
    """The nodes whose int8 versions disagree most with fp32 on the e5 router: each layer's FFN output
    MatMul (BERT's ``…/layer.N/output/dense/MatMul``, its input comes from GELU; Gemma's
    ``…/layers.N/mlp/down_proj/MatMul``, after the gated product) and each fused attention (the QKV
    projection, whose input is a layer norm's output; Gemma's attention is not fused)."""
    found = []
    for node in _nodes(path):
        if node.op_type == "Attention" or (node.op_type == "MatMul" and "attention" not in node.name
                                           and FFN_OUTPUT.search(node.name)):
            found.append(node.name)
    return found


SMOOTHED_PLAN = "every MatMul input smoothed, every MatMul and attention int8"
ATTENTION_FP32_PLAN = "smoothed; attention fp32, every MatMul int8"


@dataclass(frozen=True)
class Plan:
    """One way to quantize: which graph (plain or with smoothed MatMul inputs), which MatMuls are int8 per
    token (``per_token_int8``) rather than per tensor, which nodes stay fp32."""

    name: str
    smoothed: bool = False
    exclude: tuple[str, ...] = ()
    per_token: tuple[str, ...] = ()
    timed: bool = False  # ships only if faster than fp32 at batch 1 (per-token plans always are timed)


def per_token_plans(ffn_outputs: list[str], matmuls: list[str]) -> list[Plan]:
    """After plain and smoothed per-tensor int8: on the smoothed graph, the FFN outputs (the MatMuls whose
    inputs have outlier tokens), then every MatMul, quantized per token; attention stays per tensor."""
    return [Plan("smoothed; FFN outputs int8 per token, the rest per tensor", smoothed=True,
                 per_token=tuple(ffn_outputs)),
            Plan("smoothed; every MatMul int8 per token, attention per tensor", smoothed=True,
                 per_token=tuple(matmuls))]


def quantization_plans(ranked: list[str]) -> list[Plan]:
    """The last resort, when no graph with every node int8 agrees: the smoothed graph with the 2, 4, 8, …
    nodes of ``ranked`` (most sensitive first) kept in fp32, up to all of them."""
    plans = []
    count = 2
    while ranked and count < len(ranked) * 2:
        kept = ranked[:count]
        plans.append(Plan(f"smoothed; the {len(kept)} most sensitive of {len(ranked)} kept fp32", smoothed=True,
                          exclude=tuple(kept)))
        count *= 2
    return plans


def node_sensitivity(source: Path, nodes: list[str], heads: list[str], reference: dict[str, np.ndarray],
                     sequences: list[list[int]], pad_id: int, scratch: Path) -> dict[str, float]:
    """Mean absolute category-probability change when only that node is int8: what each costs alone.
    ``export_all`` measures it on the first check appeals, the same ones the agreement bar is judged on:
    the ranking then chooses among plans on that data, a mild selection effect the report's plans show."""
    result = {}
    for node in nodes:
        quantize_onnx(source, scratch, only=[node])
        got = onnx_logits(scratch, heads, sequences, pad_id)
        result[node] = parity(reference, got)["category"]["mean_prob_diff"]
    scratch.unlink(missing_ok=True)
    return result


def quantize_onnx(source: Path, target: Path, exclude: tuple[str, ...] | list[str] = (),
                  only: list[str] | None = None) -> None:
    from onnx import TensorProto
    from onnxruntime.quantization import QuantType, quantize_dynamic

    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # quantize_dynamic logs a generic pre-processing hint at WARNING on every call
    try:
        # "Attention" is the fused attention's QKV projection (QAttention); without it a quarter of
        # each layer's multiply-adds stay fp32. The fused graph's contrib operators defeat ONNX shape
        # inference; their outputs are float.
        quantize_dynamic(str(source), str(target), op_types_to_quantize=["MatMul", "Attention"], per_channel=True,
                         weight_type=QuantType.QUInt8 if uint8_weights() else QuantType.QInt8,
                         nodes_to_exclude=list(exclude),
                         nodes_to_quantize=only,
                         extra_options={"DefaultTensorType": TensorProto.FLOAT})
    finally:
        root.setLevel(level)


def per_token_int8(source: Path, target: Path, nodes: list[str] | tuple[str, ...]) -> int:
    """Rewrite the fp32 MatMuls named in ``nodes`` (constant weights) as int8 with one quantization range
    per token (per row of the activation) instead of one per tensor; returns how many were rewritten.

    onnxruntime's dynamic quantization gives a whole tensor (every token of every appeal in the batch)
    one uint8 range, so a single token with large activations (the FFN outputs' inputs have them) sets
    the step for all the others, and an appeal's result depends on which appeals share its batch. Per
    token, each row ``x`` of ``[tokens, K]`` gets ``scale = (max(x,0) − min(x,0)) / ACTIVATION_LEVELS``
    and ``zero = round(−min/scale)``; ``QuantizeLinear`` (per axis) quantizes it, ``MatMulInteger``
    multiplies it by the weights (int8, symmetric, per output channel, as ``quantize_dynamic`` makes
    them), and the zero point is taken out afterwards: ``y = scale·(acc − zero·Σ_k Wq[k, :])·w_scale``
    (onnxruntime's MatMulInteger takes only a scalar zero point for its first input). Standard ONNX
    operators only (opset 13+), so any onnxruntime serves it.
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    model = onnx.load(str(source))
    graph = model.graph
    weights = {item.name: item for item in graph.initializer}
    wanted = set(nodes)
    rewritten: list = []
    count = 0
    for node in graph.node:
        if node.op_type != "MatMul" or node.name not in wanted or node.input[1] not in weights:
            rewritten.append(node)
            continue
        weight = numpy_helper.to_array(weights[node.input[1]]).astype(np.float32)  # [K, N]
        inner, outer = weight.shape
        w_scale = np.maximum(np.abs(weight).max(axis=0), 1e-12) / 127
        quantized = np.clip(np.round(weight / w_scale), -127, 127).astype(np.int8)
        prefix = f"{node.name}/per_token"
        constants = {
            "w_int8": quantized, "w_scale": w_scale.astype(np.float32),
            "w_colsum": quantized.astype(np.float32).sum(axis=0),
            "rows_shape": np.array([-1, inner], np.int64), "n_out": np.array([outer], np.int64),
            "zero": np.array(0, np.float32), "step": np.array(1 / ACTIVATION_LEVELS, np.float32),
            "tiny": np.array(1e-12, np.float32), "axis1": np.array([1], np.int64),
            "first": np.array([0], np.int64), "last": np.array([-1], np.int64)}
        graph.initializer.extend(numpy_helper.from_array(value, f"{prefix}/{key}") for key, value in constants.items())

        def add(op, inputs, output, **attributes):
            names = [i if i == node.input[0] else f"{prefix}/{i}" for i in inputs]
            out = output if output == node.output[0] else f"{prefix}/{output}"
            rewritten.append(helper.make_node(op, names, [out], name=f"{prefix}/{output.split('/')[-1]}", **attributes))

        x = node.input[0]
        add("Shape", [x], "x_shape")
        add("Reshape", [x, "rows_shape"], "rows")                       # [M, K], M = batch × tokens
        add("ReduceMax", ["rows"], "row_max", axes=[1], keepdims=0)
        add("ReduceMin", ["rows"], "row_min", axes=[1], keepdims=0)
        add("Max", ["row_max", "zero"], "high")                         # the range holds 0 exactly
        add("Min", ["row_min", "zero"], "low")
        add("Sub", ["high", "low"], "width")
        add("Mul", ["width", "step"], "raw_scale")
        add("Max", ["raw_scale", "tiny"], "scale")                      # [M]
        add("Div", ["low", "scale"], "neg_zero")
        add("Neg", ["neg_zero"], "zero_unrounded")
        add("Round", ["zero_unrounded"], "zero_point")                  # [M], in 0 … 127
        add("Cast", ["zero_point"], "zero_u8", to=TensorProto.UINT8)
        add("QuantizeLinear", ["rows", "scale", "zero_u8"], "rows_u8", axis=0)
        add("MatMulInteger", ["rows_u8", "w_int8"], "acc")
        add("Cast", ["acc"], "acc_f", to=TensorProto.FLOAT)
        add("Unsqueeze", ["zero_point", "axis1"], "zero_col")
        add("Mul", ["zero_col", "w_colsum"], "correction")
        add("Sub", ["acc_f", "correction"], "centred")
        add("Unsqueeze", ["scale", "axis1"], "scale_col")
        add("Mul", ["centred", "scale_col"], "rescaled")
        add("Mul", ["rescaled", "w_scale"], "product")
        add("Slice", ["x_shape", "first", "last"], "lead_shape")
        add("Concat", ["lead_shape", "n_out"], "y_shape", axis=0)
        add("Reshape", ["product", "y_shape"], node.output[0])
        count += 1
    del graph.node[:]
    graph.node.extend(rewritten)
    used = {name for node in graph.node for name in node.input}
    kept = [item for item in graph.initializer if item.name in used]
    del graph.initializer[:]
    graph.initializer.extend(kept)
    onnx.save(model, str(target))
    return count


@torch.no_grad()
def torch_logits(model: MultiHeadClassifier, sequences: list[list[int]], pad_id: int,
                 batch_size: int = 32) -> dict[str, np.ndarray]:
    model = model.eval().cpu()
    values = run_in_batches(sequences, pad_id, batch_size, lambda ids, mask: [
        v.numpy() for v in model(torch.from_numpy(ids), torch.from_numpy(mask))])
    return dict(zip(model.head_names, values))


def onnx_logits(path: Path, heads: list[str], sequences: list[list[int]], pad_id: int,
                batch_size: int = 32) -> dict[str, np.ndarray]:
    session = open_session(path)
    names = [f"logits_{h}" for h in heads]
    values = run_in_batches(sequences, pad_id, batch_size, lambda ids, mask: session.run(
        names, {"input_ids": ids, "attention_mask": mask}))
    return dict(zip(heads, values))


def batch1_ms(path: Path, sequences: list[list[int]], count: int = 40) -> float:
    """Median milliseconds of one appeal at a time (as the service runs) over ``count`` of ``sequences``."""
    session = open_session(path)
    outputs = [o.name for o in session.get_outputs()]
    times = []
    for sequence in sequences[:3] + sequences[:count]:  # the first three warm the session up
        ids = np.array([sequence], dtype=np.int64)
        started = time.perf_counter()
        session.run(outputs, {"input_ids": ids, "attention_mask": np.ones_like(ids)})
        times.append(time.perf_counter() - started)
    return float(np.median(times[3:]) * 1000)


def parity(reference: dict[str, np.ndarray], candidate: dict[str, np.ndarray]) -> dict:
    result = {}
    for head, ref in reference.items():
        p_ref, p_new = softmax(ref, 1.0), softmax(candidate[head], 1.0)
        result[head] = {"top1_agreement": float((p_ref.argmax(1) == p_new.argmax(1)).mean()),
                        "max_prob_diff": float(np.abs(p_ref - p_new).max()),
                        "mean_prob_diff": float(np.abs(p_ref - p_new).mean())}
    return result


def served_parity(reference: dict[str, np.ndarray], path: Path, heads: list[str], sequences: list[list[int]],
                  pad_id: int) -> dict:
    """Parity of an int8 graph both ways it is served: in the batches ``TransformerModel`` runs
    (``serving.model.transformer.BATCH``: ``jiesu predict``, ``jiesu evaluate``, the batch endpoint) and one
    appeal at a time (the routing API). With one quantization range
    per tensor an appeal's logits depend on the appeals (and padding) batched with it, so the two differ —
    an int8 graph of the 6-layer router agreed on 99.54% in batches and 99.08% alone. Each head's
    agreement is the lower of the two and its probability differences the larger; both agreements are
    kept."""
    batched = parity(reference, onnx_logits(path, heads, sequences, pad_id, batch_size=BATCH))
    alone = parity(reference, onnx_logits(path, heads, sequences, pad_id, batch_size=1))
    return {head: {"top1_agreement": min(batched[head]["top1_agreement"], alone[head]["top1_agreement"]),
                   "max_prob_diff": max(batched[head]["max_prob_diff"], alone[head]["max_prob_diff"]),
                   "mean_prob_diff": max(batched[head]["mean_prob_diff"], alone[head]["mean_prob_diff"]),
                   "top1_agreement_batched": batched[head]["top1_agreement"],
                   "top1_agreement_alone": alone[head]["top1_agreement"]}
            for head in batched}


def _export_fp32(model: MultiHeadClassifier, directory: Path, target: Path, pad_id: int) -> dict:
    raw = directory / "raw.onnx"
    export_onnx(model, raw, pad_id)
    config = model.encoder.config
    fused = optimize_onnx(raw, target, config.num_attention_heads, config.hidden_size)
    raw.unlink()
    return fused


def export_all(model: MultiHeadClassifier, directory: Path, pad_id: int, check_sequences: list[list[int]],
               calibration_sequences: list[list[int]] | None = None, log=print) -> dict:
    """Write fp32 and int8 graphs into ``directory``; returns the parity record and the chosen file.
    ``calibration_sequences`` (training appeals; default the check ones) set the smoothing scales."""
    directory.mkdir(parents=True, exist_ok=True)
    fp32, smoothed, int8 = (directory / "model_fp32.onnx", directory / "model_fp32_smoothed.onnx",
                            directory / "model_int8.onnx")
    started = time.perf_counter()
    fused = _export_fp32(model, directory, fp32, pad_id)
    seconds = time.perf_counter() - started
    reference = torch_logits(model, check_sequences, pad_id)
    checks = {"fp32": parity(reference, onnx_logits(fp32, model.head_names, check_sequences, pad_id))}
    tried: list[dict] = []
    smoothing: list[dict] = []

    fp32_ms: list[float] = []

    def attempt(plan: Plan) -> bool:
        source = smoothed if plan.smoothed else fp32
        if plan.per_token:
            partial = directory / "partial.onnx"
            quantize_onnx(source, partial, plan.exclude + plan.per_token)
            per_token_int8(partial, int8, plan.per_token)
            partial.unlink()
        else:
            quantize_onnx(source, int8, plan.exclude)
        checks["int8"] = served_parity(reference, int8, model.head_names, check_sequences, pad_id)
        category = checks["int8"]["category"]
        agreement = category["top1_agreement"]
        entry = {"plan": plan.name, "smoothed": plan.smoothed, "fp32_matmuls": len(plan.exclude),
                 "per_token_matmuls": len(plan.per_token), "category_top1_agreement": agreement,
                 "served_batch": BATCH, "agreement_batched": category["top1_agreement_batched"],
                 "agreement_alone": category["top1_agreement_alone"],
                 "max_prob_diff": category["max_prob_diff"]}
        ok = agreement >= MIN_AGREEMENT
        if ok and (plan.per_token or plan.timed):
            # per-token ranges cost element-wise work around each MatMul, and an fp32 attention keeps the
            # costliest int8 node out; on a CPU without VNNI that can outweigh int8's gain, and an int8
            # graph slower than fp32 has no reason to ship
            fp32_ms[:] = fp32_ms or [batch1_ms(fp32, check_sequences)]
            entry.update(batch1_ms=batch1_ms(int8, check_sequences), fp32_batch1_ms=fp32_ms[0])
            if entry["batch1_ms"] >= fp32_ms[0]:
                ok, entry["refused"] = False, "not faster than fp32 on the exporting machine"
        tried.append(entry)
        log(f"export: int8 plan '{plan.name}': category top-1 agreement {agreement:.4f}"
            + (f" ({entry['refused']})" if "refused" in entry else ""))
        return ok

    ok = attempt(Plan("every MatMul and attention int8"))
    sensitivity: dict[str, float] = {}
    if not ok:
        scales = smoothing_scales(model, calibration_sequences or check_sequences, pad_id)
        smoothing = apply_smoothing(fp32, smoothed, scales)
        checks["fp32_smoothed"] = parity(reference, onnx_logits(smoothed, model.head_names, check_sequences, pad_id))
        nodes = _nodes(smoothed)
        matmuls = [node.name for node in nodes if node.op_type == "MatMul"]
        attentions = tuple(node.name for node in nodes if node.op_type == "Attention")
        candidates = sensitive_nodes(smoothed)  # the FFN outputs and attentions
        ffn_outputs = [name for name in candidates if name in matmuls]
        plans = [Plan(SMOOTHED_PLAN, smoothed=True)]
        if attentions:
            plans.append(Plan(ATTENTION_FP32_PLAN, smoothed=True, exclude=attentions, timed=True))
        for plan in [*plans, *per_token_plans(ffn_outputs, matmuls)]:
            if ok := attempt(plan):
                break
    if not ok:
        probe = check_sequences[:SENSITIVITY_APPEALS]
        sensitivity = node_sensitivity(smoothed, candidates, model.head_names,
                                       {h: v[:len(probe)] for h, v in reference.items()}, probe, pad_id,
                                       directory / "probe.onnx")
        for plan in quantization_plans(sorted(sensitivity, key=sensitivity.get, reverse=True)):
            if ok := attempt(plan):
                break
    chosen = "int8" if ok else "fp32"
    agreement = tried[-1]["category_top1_agreement"]
    refused = [t["plan"] for t in tried if "refused" in t]
    record = {
        "appeals": len(check_sequences),
        "fused_operators": fused,
        "export_seconds": round(seconds, 1),
        "sizes_mb": {"fp32": round(fp32.stat().st_size / 2**20, 1), "int8": round(int8.stat().st_size / 2**20, 1)},
        "parity": checks,
        "quantization_plans": tried,
        "smoothing": smoothing,
        "sensitivity": sensitivity,
        "min_agreement": MIN_AGREEMENT,
        "exported_on": cpu_description(),
        "int8_weights": "uint8 (x86 without VNNI)" if uint8_weights() else "int8",
        "shipped": chosen,
        "why": (f"int8 ({tried[-1]['plan']}) agrees with PyTorch on {agreement:.2%} of category predictions "
                f"(≥ {MIN_AGREEMENT:.1%})" if chosen == "int8" else
                f"no int8 plan agrees with PyTorch on ≥ {MIN_AGREEMENT:.1%} of category predictions (best "
                f"{max(t['category_top1_agreement'] for t in tried):.2%}"
                + (f"; {', '.join(refused)}: agrees but is not faster than fp32 here" if refused else "")
                + "); the fp32 graph is shipped instead"),
    }
    log(f"export: fp32 {record['sizes_mb']['fp32']} MB, int8 {record['sizes_mb']['int8']} MB; "
        f"category top-1 agreement fp32 {checks['fp32']['category']['top1_agreement']:.4f}, "
        f"int8 {agreement:.4f} (last plan tried); shipping {chosen}")
    return record
