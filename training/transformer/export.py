"""Export a fine-tuned model to ONNX, fuse it for CPU, quantize it to int8, and check both against PyTorch.

1. ``torch.onnx.export`` (TorchScript exporter, eager attention so the graph has the plain BERT shape):
   inputs ``input_ids`` and ``attention_mask`` (int64), outputs ``logits_<head>``; batch and sequence
   axes dynamic.
2. onnxruntime's transformer optimizer fuses attention, layer norms and GELU (``model_type="bert"``);
   where a graph does not match its patterns the unfused graph is kept and the report says so.
3. ``onnxruntime.quantization.quantize_dynamic``: int8 weights (per channel) for the MatMuls and the
   fused attention's QKV projection (QAttention), activations quantized on the fly. Plans are tried
   fastest first: everything int8; if that disagrees with PyTorch, the same on a copy of the model
   whose FFN-output inputs are smoothed (``smooth_ffn_outputs``); then that with the most sensitive
   nodes kept in fp32 (2, 4, 8, … of the FFN outputs and attentions, ranked by what each one costs
   when it alone is int8: ``node_sensitivity``), up to all of them.
4. Parity on the validation split: top-1 agreement of each ONNX model with PyTorch on every head and
   the largest probability difference. The first int8 plan whose category agreement is at least
   ``MIN_AGREEMENT`` is shipped; if none is, the fp32 graph is, and the report says which and why.
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

from serving.encoding import run_in_batches
from serving.linear import softmax
from serving.transformer import open_session
from training.transformer.model import MultiHeadClassifier

MIN_AGREEMENT = 0.995
SMOOTH_ALPHAS = (0.5, 0.75, 0.9)  # smoothing strengths tried per layer (and none)
SENSITIVITY_APPEALS = 300  # check appeals each node's int8 cost is measured on
SMOOTH_SAMPLE = 32  # calibration appeals whose activations the int8 error is simulated on
OPSET = 17


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


def sensitive_nodes(path: Path) -> list[str]:
    """The nodes whose int8 versions disagree most with fp32 on the e5 router: each layer's FFN output
    MatMul (``…/layer.N/output/dense/MatMul``, its input comes from GELU) and each fused attention
    (the QKV projection, whose input is a layer norm's output)."""
    import onnx

    found = []
    for node in onnx.load(str(path), load_external_data=False).graph.node:
        if node.op_type == "Attention" or (node.op_type == "MatMul" and "attention" not in node.name
                                           and re.search(r"layer\.\d+/output/dense/MatMul", node.name)):
            found.append(node.name)
    return found


@dataclass(frozen=True)
class Plan:
    """One way to quantize: which graph (plain or with smoothed FFN outputs), which nodes stay fp32."""

    name: str
    smoothed: bool = False
    exclude: tuple[str, ...] = ()


def quantization_plans(ranked: list[str]) -> list[Plan]:
    """Plans for the smoothed graph after the plain one failed, fastest first: everything int8; then
    the 2, 4, 8, … nodes of ``ranked`` (most sensitive first) kept in fp32, up to all of them."""
    plans = [Plan("every MatMul and attention int8, FFN outputs smoothed", smoothed=True)]
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
                         weight_type=QuantType.QInt8, nodes_to_exclude=list(exclude), nodes_to_quantize=only,
                         extra_options={"DefaultTensorType": TensorProto.FLOAT})
    finally:
        root.setLevel(level)


class _ScaledActivation(torch.nn.Module):
    """The FFN's activation followed by a fixed per-channel scale (``act(x) * scale``)."""

    def __init__(self, activation, scale: torch.Tensor):
        super().__init__()
        self.activation = activation
        self.register_buffer("scale", scale)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.activation(hidden) * self.scale


def _int8_weight(weight: torch.Tensor) -> torch.Tensor:
    """``weight`` ([out, in]) after int8 quantization as quantize_dynamic does it: symmetric, per output channel."""
    scale = weight.abs().amax(dim=1, keepdim=True).clamp(min=1e-12) / 127
    return (weight / scale).round().clamp(-127, 127) * scale


def _uint8_dynamic(values: torch.Tensor) -> torch.Tensor:
    """``values`` after DynamicQuantizeLinear: uint8, one asymmetric range per tensor (zero included)."""
    low, high = min(float(values.min()), 0.0), max(float(values.max()), 0.0)
    scale = max(high - low, 1e-12) / 255
    zero = round(-low / scale)
    return ((values / scale).round() + zero).clamp(0, 255).sub(zero) * scale


def int8_error(activations: list[torch.Tensor], weight: torch.Tensor, scale: torch.Tensor | None = None) -> float:
    """Relative squared error of ``x @ weight.T`` under dynamic int8, one quantization range per appeal
    (as served, batch 1), with the activation divided by ``scale`` and the weight multiplied by it."""
    quantized = _int8_weight(weight if scale is None else weight * scale)
    error = total = 0.0
    for x in activations:
        exact = x @ weight.T
        approx = _uint8_dynamic(x if scale is None else x / scale) @ quantized.T
        error += float((exact - approx).pow(2).sum())
        total += float(exact.pow(2).sum())
    return error / max(total, 1e-12)


@torch.no_grad()
def smooth_ffn_outputs(model: MultiHeadClassifier, sequences: list[list[int]], pad_id: int,
                       alphas: tuple[float, ...] = SMOOTH_ALPHAS,
                       sample: int = SMOOTH_SAMPLE) -> tuple[MultiHeadClassifier, list[dict]]:
    """A copy of ``model`` computing the same function, with each FFN output's input made easier to
    quantize (SmoothQuant, Xiao et al. 2023), and a record per layer.

    Dynamic int8 quantizes an activation with one range per tensor, so the few GELU channels with large
    values set the step for all 1536 and the rest lose their precision. Smoothing divides channel j by
    ``s_j = max|x_j|^alpha / max|w_j|^(1 - alpha)`` and multiplies the weights reading it by ``s_j``.
    Per layer, the strength ``alpha`` (or none) is the one with the least simulated int8 error on the
    calibration appeals (``int8_error``): the best strength differs between layers and some are better
    left alone. Post-LN BERT also feeds the layer norms' outputs to the residual stream, so only the FFN
    output (whose input is the activation alone) is smoothed, at the cost of one element-wise Mul per
    smoothed layer. ``sequences`` are calibration appeals (training rows, not the ones parity is checked
    on); padding positions are left out.
    """
    import copy

    smoothed = copy.deepcopy(model).eval().cpu()
    layers = smoothed.encoder.encoder.layer
    maxima: list[torch.Tensor | None] = [None] * len(layers)
    samples: list[list[torch.Tensor]] = [[] for _ in layers]
    current_mask: list[torch.Tensor] = []

    def record(index):
        def hook(_module, _inputs, output):
            mask = current_mask[0].bool()
            value = output.abs().masked_fill(~mask.unsqueeze(-1), 0).amax(dim=(0, 1))
            maxima[index] = value if maxima[index] is None else torch.maximum(maxima[index], value)
            for row in range(output.shape[0]):
                if len(samples[index]) < sample:
                    samples[index].append(output[row][mask[row]].clone())
        return hook

    handles = [layer.intermediate.register_forward_hook(record(i)) for i, layer in enumerate(layers)]
    try:
        def run(ids, mask):
            current_mask[:] = [torch.from_numpy(mask)]
            smoothed(torch.from_numpy(ids), current_mask[0])
            return [np.zeros((len(ids), 1), dtype=np.float32)]
        run_in_batches(sequences, pad_id, 32, run)
    finally:
        for handle in handles:
            handle.remove()
    report = []
    for index, (layer, act_max, xs) in enumerate(zip(layers, maxima, samples)):
        dense = layer.output.dense
        weight_max = dense.weight.abs().amax(dim=0).clamp(min=1e-5)
        candidates = {None: (int8_error(xs, dense.weight), None)}
        for alpha in alphas:
            scale = (act_max.clamp(min=1e-5) ** alpha / weight_max ** (1 - alpha)).clamp(min=1e-5)
            candidates[alpha] = (int8_error(xs, dense.weight, scale), scale)
        alpha = min(candidates, key=lambda a: candidates[a][0])
        error, scale = candidates[alpha]
        report.append({"layer": index, "alpha": alpha, "int8_error": error, "int8_error_unsmoothed": candidates[None][0]})
        if scale is not None:
            dense.weight.mul_(scale)
            layer.intermediate.intermediate_act_fn = _ScaledActivation(layer.intermediate.intermediate_act_fn,
                                                                       1.0 / scale)
    return smoothed, report


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


def parity(reference: dict[str, np.ndarray], candidate: dict[str, np.ndarray]) -> dict:
    result = {}
    for head, ref in reference.items():
        p_ref, p_new = softmax(ref, 1.0), softmax(candidate[head], 1.0)
        result[head] = {"top1_agreement": float((p_ref.argmax(1) == p_new.argmax(1)).mean()),
                        "max_prob_diff": float(np.abs(p_ref - p_new).max()),
                        "mean_prob_diff": float(np.abs(p_ref - p_new).mean())}
    return result


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

    def attempt(plan: Plan) -> float:
        quantize_onnx(smoothed if plan.smoothed else fp32, int8, plan.exclude)
        checks["int8"] = parity(reference, onnx_logits(int8, model.head_names, check_sequences, pad_id))
        agreement = checks["int8"]["category"]["top1_agreement"]
        tried.append({"plan": plan.name, "smoothed": plan.smoothed, "fp32_matmuls": len(plan.exclude),
                      "category_top1_agreement": agreement,
                      "max_prob_diff": checks["int8"]["category"]["max_prob_diff"]})
        log(f"export: int8 plan '{plan.name}': category top-1 agreement {agreement:.4f}")
        return agreement

    agreement = attempt(Plan("every MatMul and attention int8"))
    sensitivity: dict[str, float] = {}
    if agreement < MIN_AGREEMENT:
        smoothed_model, smoothing = smooth_ffn_outputs(model, calibration_sequences or check_sequences, pad_id)
        _export_fp32(smoothed_model, directory, smoothed, pad_id)
        probe = check_sequences[:SENSITIVITY_APPEALS]
        sensitivity = node_sensitivity(smoothed, sensitive_nodes(smoothed), model.head_names,
                                       {h: v[:len(probe)] for h, v in reference.items()}, probe, pad_id,
                                       directory / "probe.onnx")
        for plan in quantization_plans(sorted(sensitivity, key=sensitivity.get, reverse=True)):
            agreement = attempt(plan)
            if agreement >= MIN_AGREEMENT:
                break
    chosen = "int8" if agreement >= MIN_AGREEMENT else "fp32"
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
        "shipped": chosen,
        "why": (f"int8 ({tried[-1]['plan']}) agrees with PyTorch on {agreement:.2%} of category predictions "
                f"(≥ {MIN_AGREEMENT:.1%})" if chosen == "int8" else
                f"no int8 plan agrees with PyTorch on ≥ {MIN_AGREEMENT:.1%} of category predictions (best "
                f"{max(t['category_top1_agreement'] for t in tried):.2%}); the fp32 graph is shipped instead"),
    }
    log(f"export: fp32 {record['sizes_mb']['fp32']} MB, int8 {record['sizes_mb']['int8']} MB; "
        f"category top-1 agreement fp32 {checks['fp32']['category']['top1_agreement']:.4f}, "
        f"int8 {agreement:.4f}; shipping {chosen}")
    return record
