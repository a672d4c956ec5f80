"""Export a fine-tuned model to ONNX, fuse it for CPU, quantize it to int8, and check both against PyTorch.

1. ``torch.onnx.export`` (TorchScript exporter, eager attention so the graph has the plain BERT shape):
   inputs ``input_ids`` and ``attention_mask`` (int64), outputs ``logits_<head>``; batch and sequence
   axes dynamic.
2. onnxruntime's transformer optimizer fuses attention, layer norms and GELU (``model_type="bert"``);
   where a graph does not match its patterns the unfused graph is kept and the report says so.
3. ``onnxruntime.quantization.quantize_dynamic``: int8 weights (per channel) for the MatMuls,
   activations quantized on the fly. Plans are tried fastest first (``quantization_plans``): every
   MatMul; then the FFN outputs of the lower half of the layers kept in fp32; then every FFN output.
4. Parity on the validation split: top-1 agreement of each ONNX model with PyTorch on every head and
   the largest probability difference. The first int8 plan whose category agreement is at least
   ``MIN_AGREEMENT`` is shipped; if none is, the fp32 graph is, and the report says which and why.
"""

from __future__ import annotations

import logging
import re
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from serving.encoding import run_in_batches
from serving.linear import softmax
from serving.transformer import open_session
from training.transformer.model import MultiHeadClassifier

MIN_AGREEMENT = 0.995
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


def _ffn_output_matmuls(path: Path) -> list[tuple[int, str]]:
    """(layer, node name) of each layer's FFN output MatMul (``…/layer.N/output/dense/MatMul``)."""
    import onnx

    found = []
    for node in onnx.load(str(path), load_external_data=False).graph.node:
        match = re.search(r"layer\.(\d+)/output/dense/MatMul", node.name)
        if node.op_type == "MatMul" and match and "attention" not in node.name:
            found.append((int(match.group(1)), node.name))
    return found


def quantization_plans(path: Path, layers: int) -> list[tuple[str, list[str]]]:
    """Which MatMuls to leave in fp32, fastest plan first. Dynamic int8 hurts most at the FFN output,
    whose input (after GELU) has outliers; on the e5 router the sensitive ones sit in the lower layers."""
    ffn = _ffn_output_matmuls(path)
    plans = [("every MatMul int8", [])]
    if ffn and layers >= 2:
        plans.append((f"FFN output of layers 0–{layers // 2 - 1} kept fp32",
                      [name for layer, name in ffn if layer < layers // 2]))
    if ffn:
        plans.append(("FFN outputs kept fp32", [name for _, name in ffn]))
    return plans


def quantize_onnx(source: Path, target: Path, exclude: list[str] | None = None) -> None:
    from onnx import TensorProto
    from onnxruntime.quantization import QuantType, quantize_dynamic

    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # quantize_dynamic logs a generic pre-processing hint at WARNING on every call
    try:
        # The fused graph's contrib operators defeat ONNX shape inference; their outputs are float.
        quantize_dynamic(str(source), str(target), op_types_to_quantize=["MatMul"], per_channel=True,
                         weight_type=QuantType.QInt8, nodes_to_exclude=exclude or [],
                         extra_options={"DefaultTensorType": TensorProto.FLOAT})
    finally:
        root.setLevel(level)


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


def export_all(model: MultiHeadClassifier, directory: Path, pad_id: int, check_sequences: list[list[int]],
               log=print) -> dict:
    """Write fp32 and int8 graphs into ``directory``; returns the parity record and the chosen file."""
    directory.mkdir(parents=True, exist_ok=True)
    raw, fp32, int8 = directory / "raw.onnx", directory / "model_fp32.onnx", directory / "model_int8.onnx"
    started = time.perf_counter()
    export_onnx(model, raw, pad_id)
    config = model.encoder.config
    fused = optimize_onnx(raw, fp32, config.num_attention_heads, config.hidden_size)
    raw.unlink()
    seconds = time.perf_counter() - started
    reference = torch_logits(model, check_sequences, pad_id)
    checks = {"fp32": parity(reference, onnx_logits(fp32, model.head_names, check_sequences, pad_id))}
    tried = []
    for name, exclude in quantization_plans(fp32, config.num_hidden_layers):
        quantize_onnx(fp32, int8, exclude)
        checks["int8"] = parity(reference, onnx_logits(int8, model.head_names, check_sequences, pad_id))
        agreement = checks["int8"]["category"]["top1_agreement"]
        tried.append({"plan": name, "fp32_matmuls": len(exclude), "category_top1_agreement": agreement,
                      "max_prob_diff": checks["int8"]["category"]["max_prob_diff"]})
        log(f"export: int8 plan '{name}': category top-1 agreement {agreement:.4f}")
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
