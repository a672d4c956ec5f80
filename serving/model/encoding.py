"""How an appeal becomes the token ids a transformer reads, shared by training and serving.

An encoder reads at most ``max_length`` tokens, but appeals run up to 7,000 characters. The choice
(measured in docs/BENCHMARKS.md, "Long appeals"): the sequence is

    <cls> title[:title_tokens] <sep> body_head … body_tail <sep>

where the title is normalised exactly as the linear model's (``taxonomy.text.normalize`` and the
bundle's ``strip_patterns``) and cut to ``title_tokens``; the body gets every token left, and when it
is longer, its first ``head_fraction`` of that budget and its last tokens. Appeals state the problem at
the start and the request (请求…/希望…) at the end; the middle retells it. Only ``tokenizers`` is
needed here, so the service encodes without torch or transformers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from serving.model.features import clean

DEFAULT_STRIP = (r"[A-Z]\d*[市区县]", r"西地省")


@dataclass(frozen=True)
class TextEncoding:
    max_length: int = 256
    title_tokens: int = 48
    head_fraction: float = 0.75  # 1.0 = keep only the start of long bodies (plain truncation)
    cls_id: int = 0
    sep_id: int = 2
    pad_id: int = 1
    strip_patterns: tuple[str, ...] = DEFAULT_STRIP

    def __post_init__(self) -> None:
        if self.max_length < 8:
            raise ValueError(f"max_length must be at least 8, got {self.max_length}")
        if not 0 <= self.title_tokens <= self.max_length - 4:
            raise ValueError(f"title_tokens must be between 0 and max_length - 4, got {self.title_tokens}")
        if not 0.0 < self.head_fraction <= 1.0:
            raise ValueError(f"head_fraction must be in (0, 1], got {self.head_fraction}")

    def to_dict(self) -> dict:
        data = asdict(self)
        data["strip_patterns"] = list(self.strip_patterns)
        return data

    @classmethod
    def from_dict(cls, data: dict) -> "TextEncoding":
        fields = {k: data[k] for k in ("max_length", "title_tokens", "head_fraction", "cls_id", "sep_id", "pad_id")}
        return cls(**fields, strip_patterns=tuple(data.get("strip_patterns", ())))


def assemble(title_ids: Sequence[int], body_ids: Sequence[int], encoding: TextEncoding) -> list[int]:
    """One sequence from a title's and a body's ids (no special tokens in either)."""
    title_ids = list(title_ids[: encoding.title_tokens])
    budget = encoding.max_length - 3 - len(title_ids)
    body_ids = list(body_ids)
    if len(body_ids) > budget:
        head = int(np.ceil(budget * encoding.head_fraction))
        tail = budget - head
        body_ids = body_ids[:head] + (body_ids[len(body_ids) - tail:] if tail else [])
    return [encoding.cls_id, *title_ids, encoding.sep_id, *body_ids, encoding.sep_id]


def encode_sequences(tokenizer, titles: Sequence[str], texts: Sequence[str], encoding: TextEncoding) -> list[list[int]]:
    """Token id lists for a batch of appeals; ``tokenizer`` is a ``tokenizers.Tokenizer``."""
    pairs = list(clean(titles, texts, encoding.strip_patterns))
    titles, texts = [title for title, _ in pairs], [text for _, text in pairs]
    # Bodies longer than this many characters cannot contribute more tokens than the budget from each end;
    # cutting them first keeps a 7,000-character appeal as cheap to tokenize as a short one.
    span = encoding.max_length * 4
    clipped = [t if len(t) <= 2 * span else t[:span] + "。" + t[-span:] for t in texts]
    title_enc = tokenizer.encode_batch(titles, add_special_tokens=False)
    body_enc = tokenizer.encode_batch(clipped, add_special_tokens=False)
    return [assemble(t.ids, b.ids, encoding) for t, b in zip(title_enc, body_enc)]


def pad(sequences: Sequence[Sequence[int]], pad_id: int) -> tuple[np.ndarray, np.ndarray]:
    """(input_ids, attention_mask) as int64 arrays, padded to the longest sequence."""
    width = max((len(s) for s in sequences), default=1)
    ids = np.full((len(sequences), width), pad_id, dtype=np.int64)
    mask = np.zeros((len(sequences), width), dtype=np.int64)
    for row, seq in enumerate(sequences):
        ids[row, : len(seq)] = seq
        mask[row, : len(seq)] = 1
    return ids, mask


def length_batches(lengths: Sequence[int], batch_size: int) -> list[np.ndarray]:
    """Row indices grouped into batches of similar length (less padding), in a stable order."""
    order = np.argsort(np.asarray(lengths), kind="stable")
    return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]


def run_in_batches(sequences: Sequence[Sequence[int]], pad_id: int, batch_size: int, run) -> list[np.ndarray]:
    """``run(input_ids, attention_mask)`` → one array per output, over batches of similar length; the
    outputs come back as whole arrays with rows in input order (an empty list for no sequences)."""
    outputs: list[np.ndarray] = []
    for rows in length_batches([len(s) for s in sequences], batch_size):
        results = run(*pad([sequences[r] for r in rows], pad_id))
        if not outputs:
            outputs = [np.zeros((len(sequences), *np.shape(r)[1:]), dtype=np.float32) for r in results]
        for out, values in zip(outputs, results):
            out[rows] = values
    return outputs


def special_ids(tokenizer) -> dict[str, int]:
    """cls/sep/pad ids of a ``tokenizers.Tokenizer`` (BERT's [CLS]/[SEP]/[PAD], XLM-R's <s>/</s>/<pad>, or
    Gemma's <bos>/<eos>/<pad>)."""
    def first(*names: str) -> int | None:
        for name in names:
            found = tokenizer.token_to_id(name)
            if found is not None:
                return found
        return None

    ids = {"cls_id": first("[CLS]", "<s>", "<bos>"), "sep_id": first("[SEP]", "</s>", "<eos>"),
           "pad_id": first("[PAD]", "<pad>")}
    missing = [k for k, v in ids.items() if v is None]
    if missing:
        raise ValueError(f"the tokenizer has no {', '.join(missing)} token ([CLS]/<s>/<bos>, [SEP]/</s>/<eos>, "
                         "[PAD]/<pad>)")
    return ids
