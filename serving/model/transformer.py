"""Transformer and ensemble bundles as served: onnxruntime and ``tokenizers``, no torch.

A ``transformer`` bundle holds ``model.onnx`` (inputs ``input_ids`` and ``attention_mask``, int64,
dynamic batch and sequence axes; one output ``logits_<head>`` per head), ``tokenizer.json`` and, in
the manifest, ``encoding`` (``serving.model.encoding.TextEncoding``) and each head's labels and softmax
temperature. An ``ensemble`` bundle holds complete member bundles under ``members/<name>/`` and
averages their category probabilities with the weights in its manifest; the other heads come from
the member that has them.
"""

from __future__ import annotations

import functools
import logging
import os
from pathlib import Path

import numpy as np

from serving.model.bundle import BundleError, Manifest, read_manifest
from serving.model.encoding import TextEncoding, encode_sequences, run_in_batches
from serving.model.linear import softmax

MODEL_FILE = "model.onnx"
TOKENIZER_FILE = "tokenizer.json"
BATCH = 16


@functools.lru_cache(maxsize=1)
def _cpu() -> tuple[str, str, tuple[str, ...]]:
    import platform

    model, flags = platform.processor() or platform.machine(), set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name":
                model = value.strip()
            elif key.strip() == "flags":
                flags = set(value.split())
                break
    except OSError:
        pass
    wanted = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8")
    return model, platform.machine(), tuple(f for f in wanted if f in flags)


def cpu_description() -> dict:
    """This machine's processor and the instruction sets that decide how onnxruntime multiplies int8
    (read once per process)."""
    model, machine, isa = _cpu()
    return {"model": model, "machine": machine, "int8_isa": list(isa)}


def uint8_weights() -> bool:
    """Whether int8 weights should be stored as uint8 (with zero points) for this CPU: on x86 without
    VNNI. There onnxruntime multiplies uint8 activations by int8 weights with vpmaddubsw, which adds pairs
    of products into int16 and saturates when both are large (255 × 127 × 2 > 32767): on the e5 router
    that cost the smoothed graph 1.2 points of agreement (0.9862 vs 0.9977 with uint8 weights, whose
    kernel widens to int16 first). With VNNI (int32 sums) and on ARM, int8 weights are exact and faster."""
    _, machine, isa = _cpu()
    return machine.lower() in ("x86_64", "amd64") and not {"avx512_vnni", "avx_vnni", "amx_int8"} & set(isa)


def int8_mismatch(onnx_record: dict | None) -> str | None:
    """Why a bundle's int8 graph may not behave here as its parity check said, or None: one exported
    with int8 weights (on a CPU with VNNI) and served on an x86 CPU without it, where they can saturate."""
    record = onnx_record or {}
    if record.get("shipped") != "int8" or record.get("int8_weights", "int8") != "int8" or not uint8_weights():
        return None
    exported = record.get("exported_on", {}).get("model", "another CPU")
    return (f"its int8 weights were exported on {exported}; this CPU ({cpu_description()['model']}) has no VNNI, "
            "where onnxruntime's uint8 × int8 kernel can saturate, so predictions may differ from the "
            "parity measured at export: run jiesu train on a machine like this one to re-export")


def onnx_threads() -> int:
    """Threads per onnxruntime session: JIESU_ONNX_THREADS, else the cores this process may use."""
    value = os.environ.get("JIESU_ONNX_THREADS")
    if value:
        return max(1, int(value))
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def open_session(path, threads: int | None = None):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or onnx_threads()
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])


class TransformerModel:
    """``predict_all(titles, texts)`` → {head: probabilities}; ``predict_proba`` → category only."""

    parallel_safe = False  # onnxruntime already uses every core, and its thread pool does not survive fork

    def __init__(self, manifest: Manifest, threads: int | None = None):
        from tokenizers import Tokenizer

        self.manifest = manifest
        self.labels = manifest.labels("category")
        self.heads = {name: list(head["labels"]) for name, head in manifest.heads.items()}
        self.temperatures = {name: float(head.get("temperature", 1.0)) for name, head in manifest.heads.items()}
        try:
            self.encoding = TextEncoding.from_dict(manifest.data["encoding"])
        except (KeyError, TypeError, ValueError) as exc:
            raise BundleError(manifest.path, f"the manifest's encoding is unusable ({exc})") from None
        for name in (MODEL_FILE, TOKENIZER_FILE):
            if not manifest.file(name).exists():
                raise BundleError(manifest.path, f"{name} is missing")
        try:
            self.tokenizer = Tokenizer.from_file(str(manifest.file(TOKENIZER_FILE)))
        except Exception as exc:  # tokenizers raises its own exception type for a malformed file
            raise BundleError(manifest.path, f"{TOKENIZER_FILE} cannot be read ({exc})") from None
        mismatch = int8_mismatch(manifest.data.get("onnx"))
        if mismatch:
            logging.getLogger("jiesu.transformer").warning("bundle %s: %s", manifest.path, mismatch)
        try:
            self.session = open_session(manifest.file(MODEL_FILE), threads)
        except Exception as exc:  # onnxruntime raises its own types for a malformed graph
            raise BundleError(manifest.path, f"{MODEL_FILE} cannot be loaded by onnxruntime ({exc})") from None
        outputs = {o.name: o for o in self.session.get_outputs()}
        missing = [h for h in self.heads if f"logits_{h}" not in outputs]
        if missing:
            raise BundleError(manifest.path, f"{MODEL_FILE} has no output for head(s) {', '.join(missing)}")
        self.output_names = [f"logits_{h}" for h in self.heads]
        for head, labels in self.heads.items():
            width = outputs[f"logits_{head}"].shape[-1]
            if isinstance(width, int) and width != len(labels):
                raise BundleError(manifest.path, f"head {head} has {width} outputs but {len(labels)} labels")

    def encode(self, titles: list[str], texts: list[str]) -> list[list[int]]:
        return encode_sequences(self.tokenizer, titles, texts, self.encoding)

    def logits(self, sequences: list[list[int]], batch_size: int = BATCH) -> dict[str, np.ndarray]:
        if not sequences:
            return {h: np.zeros((0, len(labels)), dtype=np.float32) for h, labels in self.heads.items()}
        values = run_in_batches(sequences, self.encoding.pad_id, batch_size, lambda ids, mask: self.session.run(
            self.output_names, {"input_ids": ids, "attention_mask": mask}))
        return dict(zip(self.heads, values))

    def predict_all(self, titles: list[str], texts: list[str]) -> dict[str, np.ndarray]:
        logits = self.logits(self.encode(titles, texts) if titles else [])
        return {h: softmax(v, self.temperatures[h]) for h, v in logits.items()}

    def predict_proba(self, titles: list[str], texts: list[str]) -> np.ndarray:
        return self.predict_all(titles, texts)["category"]


class EnsembleModel:
    """Weighted average of member bundles' head probabilities."""

    def __init__(self, manifest: Manifest, load_member):
        self.manifest = manifest
        self.labels = manifest.labels("category")
        members = manifest.data.get("members")
        if not isinstance(members, list) or not members:
            raise BundleError(manifest.path, "an ensemble manifest needs a non-empty 'members' list")
        self.members, self.weights = [], []
        for member in members:
            try:
                path, weight = manifest.path / member["path"], float(member["weight"])
            except (KeyError, TypeError, ValueError):
                raise BundleError(manifest.path, "each member needs 'path' and a numeric 'weight'") from None
            model = load_member(read_manifest(path, verify=False))  # the ensemble's manifest verified every file
            if list(model.labels) != self.labels:
                raise BundleError(manifest.path, f"member {member['path']} has different category labels")
            self.members.append(model)
            self.weights.append(weight)
        total = sum(self.weights)
        if total <= 0 or any(w < 0 for w in self.weights):
            raise BundleError(manifest.path, "member weights must be non-negative and not all zero")
        self.weights = [w / total for w in self.weights]
        self.heads = {"category": self.labels}
        for model in reversed(self.members):
            for head, labels in model.heads.items():
                self.heads.setdefault(head, labels)
        self.head_weights = dict(manifest.data.get("head_weights") or {})
        self.parallel_safe = all(m.parallel_safe for m in self.members)

    def predict_all(self, titles: list[str], texts: list[str]) -> dict[str, np.ndarray]:
        """Every head the members share with the same labels is averaged (the category head with the member
        weights, the others with ``head_weights`` where the manifest has them); any other head is the last
        member's that has it."""
        results = [model.predict_all(titles, texts) for model in self.members]
        out = {}
        for head, labels in self.heads.items():
            having = [(m, r, w) for m, r, w in zip(self.members, results, self.weights)
                      if head in r and list(m.heads.get(head, [])) == list(labels)]
            if len(having) < 2:
                owner = [r for m, r in zip(self.members, results) if head in r]
                if owner:
                    out[head] = owner[-1][head]
                continue
            if head != "category" and head in self.head_weights:
                linear = float(self.head_weights[head])
                weights = [linear, 1.0 - linear][:len(having)]
            else:
                weights = [w for _, _, w in having]
            total = sum(weights) or 1.0
            out[head] = sum(w / total * r[head] for (_, r, _), w in zip(having, weights))
        return out

    def predict_proba(self, titles: list[str], texts: list[str]) -> np.ndarray:
        return self.predict_all(titles, texts)["category"]
