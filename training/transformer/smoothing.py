"""SmoothQuant (Xiao et al. 2023) for dynamic int8: every MatMul input of a BERT or Gemma 3 graph, smoothed.

Dynamic int8 quantizes an activation with one range per tensor, so the few channels with large values
set the step for all the others, which lose their precision. Smoothing divides channel j of a MatMul's
input by ``s_j = max|x_j|^alpha / max|w_j|^(1 - alpha)`` and multiplies the weights reading it by
``s_j``: the same function, with the difficulty moved from the activation to the weights, which are
quantized per output channel. Rules this module implements:

- four sites per layer: the attention's QKV projection (input: the previous layer norm's output), the
  attention's output projection (input: the attention context), the FFN input (input: a layer norm's
  output; Gemma's gate and up projections share it) and the FFN output (input: GELU's output, or
  Gemma's gated product). Layer-norm outputs of BERT carry outlier channels
  (on the 6-layer e5 router the FFN input's largest channel maximum was 18–35 against a median of 2);
- per site, the strength ``alpha`` (or none) is the one with the least simulated int8 error on the
  calibration appeals (``int8_error``, one range per appeal as served at batch 1): the best strength
  differs between sites and some are better left alone;
- scales are measured in PyTorch (forward pre-hooks on the four Linear modules, padding left out) and
  applied to the *fused* ONNX graph: a ``Mul`` by ``1/s`` in front of the node and the rows of its weight
  multiplied by ``s``. Inserted before fusion, a Mul inside the attention pattern would stop onnxruntime
  fusing it; after fusion it is one element-wise node per site and the weights it reads;
- post-LN BERT feeds the same layer-norm output to the residual stream, so the ``Mul`` feeds only the
  smoothed nodes, never the residual (pre-norm Gemma's residual never passes the norm at all).

On the 6-layer e5 router (AMD EPYC with VNNI, 870 validation appeals, worse of batched and one at a
time): every MatMul and attention int8 agreed with PyTorch on 98.4%; FFN outputs alone smoothed 98.9%;
every site smoothed 99.3%, and with four of its most sensitive nodes kept fp32 99.9%, where with only
the FFN outputs smoothed no plan passed 99.3% (docs/BENCHMARKS.md, sixth session).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from serving.model.encoding import run_in_batches

SITES = ("attention", "attention_output", "ffn_input", "ffn_output")
ALPHAS = (0.5, 0.75, 0.9)  # smoothing strengths tried per site (and none)
SAMPLE = 32  # calibration appeals whose activations the int8 error is simulated on


@dataclass
class SiteScale:
    layer: int
    site: str
    alpha: float | None
    int8_error_unsmoothed: float
    int8_error: float
    scale: np.ndarray | None  # per input channel; None: left alone

    def record(self) -> dict:
        return {"layer": self.layer, "site": self.site, "alpha": self.alpha,
                "int8_error_unsmoothed": self.int8_error_unsmoothed, "int8_error": self.int8_error}


def int8_weight(weight: torch.Tensor) -> torch.Tensor:
    """``weight`` ([out, in]) after int8 quantization as quantize_dynamic does it: symmetric, per output channel."""
    scale = weight.abs().amax(dim=1, keepdim=True).clamp(min=1e-12) / 127
    return (weight / scale).round().clamp(-127, 127) * scale


def uint8_dynamic(values: torch.Tensor) -> torch.Tensor:
    """``values`` after DynamicQuantizeLinear: uint8, one asymmetric range per tensor (zero included)."""
    low, high = min(float(values.min()), 0.0), max(float(values.max()), 0.0)
    scale = max(high - low, 1e-12) / 255
    zero = round(-low / scale)
    return ((values / scale).round() + zero).clamp(0, 255).sub(zero) * scale


def int8_error(activations: list[torch.Tensor], weight: torch.Tensor, scale: torch.Tensor | None = None) -> float:
    """Relative squared error of ``x @ weight.T`` under dynamic int8, one quantization range per appeal
    (as served, batch 1), with the activation divided by ``scale`` and the weight multiplied by it."""
    quantized = int8_weight(weight if scale is None else weight * scale)
    error = total = 0.0
    for x in activations:
        exact = x @ weight.T
        approx = uint8_dynamic(x if scale is None else x / scale) @ quantized.T
        error += float((exact - approx).pow(2).sum())
        total += float(exact.pow(2).sum())
    return error / max(total, 1e-12)


def _site_modules(layer) -> dict[str, tuple[torch.nn.Module, torch.Tensor]]:
    """Per site: the Linear whose input is recorded, and the weight ([out, in]) that reads that input.
    A BERT layer (``attention.self.query`` …) or a Gemma 3 layer (``self_attn.q_proj`` …, ``mlp.gate_proj``
    and ``up_proj`` reading one input); anything else raises AttributeError."""
    if hasattr(layer, "self_attn"):
        attention, mlp = layer.self_attn, layer.mlp
        qkv = torch.cat([attention.q_proj.weight, attention.k_proj.weight, attention.v_proj.weight], dim=0)
        return {"attention": (attention.q_proj, qkv),
                "attention_output": (attention.o_proj, attention.o_proj.weight),
                "ffn_input": (mlp.gate_proj, torch.cat([mlp.gate_proj.weight, mlp.up_proj.weight], dim=0)),
                "ffn_output": (mlp.down_proj, mlp.down_proj.weight)}
    attention = layer.attention.self
    qkv = torch.cat([attention.query.weight, attention.key.weight, attention.value.weight], dim=0)
    return {"attention": (attention.query, qkv),
            "attention_output": (layer.attention.output.dense, layer.attention.output.dense.weight),
            "ffn_input": (layer.intermediate.dense, layer.intermediate.dense.weight),
            "ffn_output": (layer.output.dense, layer.output.dense.weight)}


def _layers(model):
    encoder = getattr(model, "encoder", None)
    layers = getattr(getattr(encoder, "encoder", None), "layer", None)  # BERT
    if layers is None:
        layers = getattr(encoder, "layers", None)  # Gemma 3
    if layers is None:
        return []
    try:
        for layer in layers:
            _site_modules(layer)
    except AttributeError:  # not a shape this module knows: nothing is smoothed
        return []
    return list(layers)


@torch.no_grad()
def smoothing_scales(model, sequences: list[list[int]], pad_id: int, alphas: tuple[float, ...] = ALPHAS,
                     sample: int = SAMPLE, sites: tuple[str, ...] = SITES) -> list[SiteScale]:
    """Measure each site's activations on ``sequences`` (calibration appeals: training rows, not the ones
    parity is checked on) and choose its smoothing; the model is not changed."""
    model = model.eval().cpu()
    layers = _layers(model)
    maxima: dict[tuple[int, str], torch.Tensor] = {}
    samples: dict[tuple[int, str], list[torch.Tensor]] = {}
    current_mask: list[torch.Tensor] = []

    def record(key):
        def hook(_module, args):
            x, mask = args[0], current_mask[0].bool()
            value = x.abs().masked_fill(~mask.unsqueeze(-1), 0).amax(dim=(0, 1))
            maxima[key] = value if key not in maxima else torch.maximum(maxima[key], value)
            rows = samples.setdefault(key, [])
            for row in range(x.shape[0]):
                if len(rows) < sample:
                    rows.append(x[row][mask[row]].clone())
        return hook

    handles = [module.register_forward_pre_hook(record((index, site)))
               for index, layer in enumerate(layers) for site, (module, _) in _site_modules(layer).items()
               if site in sites]
    try:
        def run(ids, mask):
            current_mask[:] = [torch.from_numpy(mask)]
            model(torch.from_numpy(ids), current_mask[0])
            return [np.zeros((len(ids), 1), dtype=np.float32)]
        run_in_batches(sequences, pad_id, 32, run)
    finally:
        for handle in handles:
            handle.remove()
    chosen = []
    for index, layer in enumerate(layers):
        for site, (_, weight) in _site_modules(layer).items():
            if (index, site) not in maxima:
                continue
            xs, act_max = samples[(index, site)], maxima[(index, site)].clamp(min=1e-5)
            weight_max = weight.abs().amax(dim=0).clamp(min=1e-5)
            candidates = {None: (int8_error(xs, weight), None)}
            for alpha in alphas:
                scale = (act_max ** alpha / weight_max ** (1 - alpha)).clamp(min=1e-5)
                candidates[alpha] = (int8_error(xs, weight, scale), scale)
            alpha = min(candidates, key=lambda a: candidates[a][0])
            error, scale = candidates[alpha]
            chosen.append(SiteScale(index, site, alpha, candidates[None][0], error,
                                    None if scale is None else scale.numpy().astype(np.float32)))
    return chosen


# ONNX node names per site, as the TorchScript exporter names a BERT layer's and a Gemma 3 layer's MatMuls
SITE_PATTERNS = {
    "attention": (r"layer\.{n}/attention/self/(query|key|value)/MatMul$",
                  r"layers\.{n}/self_attn/(q_proj|k_proj|v_proj)/MatMul$"),
    "attention_output": (r"layer\.{n}/attention/output/dense/MatMul$", r"layers\.{n}/self_attn/o_proj/MatMul$"),
    "ffn_input": (r"layer\.{n}/intermediate/dense/MatMul$", r"layers\.{n}/mlp/(gate_proj|up_proj)/MatMul$"),
    "ffn_output": (r"layer\.{n}/output/dense/MatMul$", r"layers\.{n}/mlp/down_proj/MatMul$"),
}


def _targets(graph, layer: int, site: str) -> list:
    """The fused graph's nodes that read a site's input (one fused attention, or the MatMuls that share it)."""
    if site == "attention":
        fused = [node for node in graph.node if node.op_type == "Attention"]
        if fused:
            return fused[layer:layer + 1]
    patterns = [p.format(n=layer) for p in SITE_PATTERNS[site]]
    return [node for node in graph.node
            if node.op_type == "MatMul" and any(re.search(p, node.name) for p in patterns)]


def apply_smoothing(source: Path, target: Path, scales: list[SiteScale]) -> list[dict]:
    """Write ``source`` with each scaled site's input divided by its scale and the weights reading it
    multiplied by it; returns a record per site (``applied`` False where the graph had no such node)."""
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(source))
    graph = model.graph
    weights = {item.name: item for item in graph.initializer}
    readers: dict[str, int] = {}
    for node in graph.node:
        for name in node.input:
            readers[name] = readers.get(name, 0) + 1
    inserted: dict[int, list] = {}
    records = []
    for item in scales:
        entry = item.record()
        nodes = _targets(graph, item.layer, item.site) if item.scale is not None else []
        if item.scale is None or not nodes or len({n.input[0] for n in nodes}) != 1 \
                or any(n.input[1] not in weights or readers[n.input[1]] != 1 for n in nodes):  # shared: leave
            entry["applied"] = False
            records.append(entry)
            continue
        name = f"smooth/layer{item.layer}/{item.site}"
        inverse = numpy_helper.from_array((1.0 / item.scale).astype(np.float32), f"{name}/inverse")
        graph.initializer.append(inverse)
        smoothed_input = f"{name}/input"
        mul = helper.make_node("Mul", [nodes[0].input[0], inverse.name], [smoothed_input], name=f"{name}/Mul")
        for node in nodes:
            weight = numpy_helper.to_array(weights[node.input[1]]).astype(np.float32)  # [in, out]
            weights[node.input[1]].CopyFrom(numpy_helper.from_array(weight * item.scale[:, None], node.input[1]))
            node.input[0] = smoothed_input
        first = min(list(graph.node).index(node) for node in nodes)
        inserted.setdefault(first, []).append(mul)
        entry["applied"] = True
        records.append(entry)
    ordered = []
    for position, node in enumerate(graph.node):
        ordered.extend(inserted.get(position, []))
        ordered.append(node)
    del graph.node[:]
    graph.node.extend(ordered)
    onnx.save(model, str(target))
    return records
