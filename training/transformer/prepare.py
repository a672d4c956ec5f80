"""Turn split, labelled appeals into what ``fit`` reads: token ids and one label per head.

Heads: ``category`` (the data's labels, at the bundle's level), ``urgency`` (levels "1"–"4"),
``appeal_type`` (投诉/举报/求助/咨询/建议/表扬), and ``category_l2``/``category_l3`` where the data labels
deeper levels of the tree (an appeal labelled only to the first level is left out of those heads). The public data labels only the category, so urgency
and appeal type come from the rule layer (``serving.model.rules``, evaluated with the true category), except
where a row carries its own label — reviewer corrections (``jiesu corrections export``) do — which wins.
``meta.json`` counts both sources per head; the training report repeats the counts.

Distillation (``--distill``, ``training.transformer.teacher``) adds a ``soft_category`` array (the
linear teacher's probabilities; zero rows where there is none) and may add unlabelled appeals, split
``unlabelled``: they carry no label for any head and are trained on through their soft target only.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd

from serving.model.encoding import TextEncoding, encode_sequences
from taxonomy import Taxonomy
from training.heads import ROUTER_HEADS, URGENCY_LABELS, head_values
from training.transformer.fit import SPLITS


def load_tokenizer(base_model: str | Path):
    """The fast tokenizer of a checkpoint (directory or hub id) as a ``tokenizers.Tokenizer``."""
    path = Path(str(base_model))
    if (path / "tokenizer.json").exists():
        from tokenizers import Tokenizer

        return Tokenizer.from_file(str(path / "tokenizer.json"))
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(base_model), use_fast=True)
    if not getattr(tokenizer, "is_fast", False):
        raise ValueError(f"{base_model} has no fast tokenizer; jiesu serves tokenizers' tokenizer.json only")
    return tokenizer.backend_tokenizer


def head_labels(frame: pd.DataFrame, taxonomy: Taxonomy, categories: list[str]) -> tuple[dict, dict, dict]:
    """(label names per head, label index arrays per head, {head: {"data": n}}): the router's heads
    (``training.heads``), each from the rows that carry its label; -1 elsewhere (the loss ignores it)."""
    names, labels, sources = {}, {}, {}
    unlabelled = frame["split"].eq("unlabelled").to_numpy() if "split" in frame.columns else np.zeros(len(frame), bool)
    train = frame["split"].eq("train").to_numpy() if "split" in frame.columns else np.ones(len(frame), bool)
    for head in ROUTER_HEADS:
        values = head_values(frame, head) if head != "category" else list(frame["category"])
        values = [None if unlabelled[i] else v for i, v in enumerate(values)]
        if head == "category":
            known = list(categories)
        else:
            known = sorted({v for i, v in enumerate(values) if v and train[i]})
            if head == "urgency":
                known = [x for x in URGENCY_LABELS if x in known]
            if not known:
                continue
        index = {c: i for i, c in enumerate(known)}
        names[head] = known
        labels[head] = np.array([index.get(v, -1) if v else -1 for v in values], dtype=np.int64)
        if head != "category":
            sources[head] = {"data": int((labels[head] >= 0).sum())}
    return names, labels, sources


def prepare(frame: pd.DataFrame, taxonomy: Taxonomy, categories: list[str], tokenizer, encoding: TextEncoding,
            out: Path, extra_meta: dict | None = None, soft: np.ndarray | None = None) -> dict:
    """Write ``sequences.npz`` and ``meta.json`` into ``out``; ``frame`` has a ``split`` column; ``soft``
    (rows × categories, optional) holds the soft category targets of distillation."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    sequences = encode_sequences(tokenizer, list(frame["title"]), list(frame["text"]), encoding)
    names, labels, sources = head_labels(frame, taxonomy, categories)
    offsets = np.concatenate([[0], np.cumsum([len(s) for s in sequences])]).astype(np.int64)
    ids = np.fromiter((t for s in sequences for t in s), dtype=np.int32, count=int(offsets[-1]))
    split = np.array([SPLITS[s] for s in frame["split"]], dtype=np.int8)
    arrays = {f"y_{head}": values for head, values in labels.items()}
    if soft is not None:
        if soft.shape != (len(frame), len(categories)):
            raise ValueError(f"soft targets have shape {soft.shape}, expected {(len(frame), len(categories))}")
        arrays["soft_category"] = soft.astype(np.float32)
    digest = hashlib.sha256()
    for array in (ids, offsets, split, *arrays.values()):
        digest.update(np.ascontiguousarray(array).tobytes())
    digest.update(json.dumps(names, ensure_ascii=False).encode())
    lengths = np.diff(offsets)
    meta = {
        "heads": names,
        "label_sources": sources,
        "pad_id": encoding.pad_id,
        "encoding": encoding.to_dict(),
        "rows": int(len(frame)),
        "fingerprint": digest.hexdigest(),
        "tokens": {"mean": float(lengths.mean()) if len(lengths) else 0.0,
                   "p50": float(np.percentile(lengths, 50)) if len(lengths) else 0.0,
                   "at_max_length": float((lengths >= encoding.max_length).mean()) if len(lengths) else 0.0},
        **(extra_meta or {}),
    }
    np.savez_compressed(out / "sequences.npz", ids=ids, offsets=offsets, split=split, **arrays)
    (out / "meta.json").write_text(json.dumps(meta, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return meta
