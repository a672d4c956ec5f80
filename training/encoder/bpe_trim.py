"""Trim a byte-level-fallback BPE tokenizer (``tokenizer.json``) to the tokens a corpus uses.

Why: EmbeddingGemma's vocabulary has 262,144 tokens for 100+ languages; its embedding matrix is two
thirds of the model. Chinese appeals use a few tens of thousands of them. Rules:

- ``keep`` (old ids) is closed under BPE ancestry: every token that some merge produces brings the
  two parts of each merge that produces it, recursively. A merge survives when its parts and its
  result all survive, in its old priority order. So a text whose old tokens were all kept is split
  into the same tokens, renumbered: each merge the old tokenizer applied is still there, and none
  that outranks it has appeared.
- Kept ids are renumbered in ascending order (the embedding rows are sliced in the same order).
- Added tokens survive when kept; ``always_added`` (the special tokens and the whitespace runs the
  model reads as one token) are always kept, unless past the embedding's rows. ``<unusedN>`` slots go.
- The post-processor's special token ids are renumbered too. Anything unseen falls back to shorter
  tokens, single characters, or UTF-8 bytes (``byte_fallback``), never to a wrong word.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable

# Han ideographs (incl. extensions and compatibility forms), CJK punctuation, full-width forms.
CJK_RANGES = ((0x3000, 0x303F), (0x3400, 0x4DBF), (0x4E00, 0x9FFF), (0xF900, 0xFAFF),
              (0xFF00, 0xFFEF), (0x20000, 0x323AF))
METASPACE = "\u2581"


def _merge_pair(merge) -> tuple[str, str]:
    if isinstance(merge, str):
        left, right = merge.split(" ", 1)
        return left, right
    return merge[0], merge[1]


def is_margin_token(token: str) -> bool:
    """One CJK or printable ASCII character (with or without the leading "▁"), or a fallback byte."""
    if len(token) == 6 and token.startswith("<0x") and token.endswith(">"):
        return True
    char = token[1:] if token.startswith(METASPACE) else token
    if len(char) != 1:
        return False
    cp = ord(char)
    return 0x21 <= cp <= 0x7E or any(lo <= cp <= hi for lo, hi in CJK_RANGES)


def always_added(content: str, special: bool) -> bool:
    """Added tokens every trimmed tokenizer keeps: the special ones and runs of whitespace."""
    return special or (content != "" and set(content) <= {"\n", "\t", " ", METASPACE})


def tokens_for_corpus(texts: Iterable[str], tokenizer, margin: bool = True) -> set[int]:
    """Old ids that tokenising ``texts`` (a ``tokenizers.Tokenizer``) uses, plus the margin tokens."""
    keep: set[int] = set()
    batch = [t for t in texts if t]
    for start in range(0, len(batch), 4096):
        for encoding in tokenizer.encode_batch(batch[start:start + 4096], add_special_tokens=False):
            keep.update(encoding.ids)
    if margin:
        keep.update(i for token, i in tokenizer.get_vocab(with_added_tokens=False).items() if is_margin_token(token))
    return keep


def trim_bpe(tokenizer_json: dict, keep: Iterable[int], rows: int | None = None) -> tuple[dict, list[int]]:
    """(the trimmed ``tokenizer.json`` as a dict, the kept old ids in new-id order). ``rows``: the
    embedding matrix's rows; tokens past it (Gemma's image placeholder) have no embedding and go."""
    model = tokenizer_json.get("model", {})
    if model.get("type") != "BPE":
        raise ValueError(f"tokenizer.json: model type {model.get('type')!r}, expected 'BPE'")
    vocab: dict[str, int] = model["vocab"]
    added = {a["id"]: a for a in tokenizer_json.get("added_tokens", [])}
    by_id = {i: t for t, i in vocab.items()}
    size = max([*by_id, *added]) + 1 if rows is None else rows
    wanted = set(keep) | {i for i, a in added.items()
                          if always_added(a["content"], a.get("special", False)) and i < size}
    outside = sorted(i for i in wanted if not 0 <= i < size)
    if outside:
        raise ValueError(f"keep: ids {outside[:5]} are outside 0..{size - 1}")

    merges = [_merge_pair(m) for m in model.get("merges", [])]
    producers: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for left, right in merges:
        producers[left + right].append((left, right))
    kept_tokens = {by_id[i] for i in wanted if i in by_id}
    stack = list(kept_tokens)
    while stack:
        for left, right in producers.get(stack.pop(), ()):
            for part in (left, right):
                if part in vocab and part not in kept_tokens:
                    kept_tokens.add(part)
                    stack.append(part)
    ids = sorted({vocab[t] for t in kept_tokens} | {i for i in wanted if i in added})
    new_id = {old: new for new, old in enumerate(ids)}

    trimmed = json.loads(json.dumps(tokenizer_json))  # a deep copy that stays plain JSON
    trimmed_model = trimmed["model"]
    trimmed_model["vocab"] = {t: new_id[i] for t, i in sorted(vocab.items(), key=lambda item: item[1])
                              if i in new_id}
    keep_merge = [left in kept_tokens and right in kept_tokens and left + right in kept_tokens
                  for left, right in merges]
    trimmed_model["merges"] = [m for m, ok in zip(model.get("merges", []), keep_merge) if ok]
    unk = model.get("unk_token")
    if unk is not None and unk not in trimmed_model["vocab"] and not any(
            a["content"] == unk for i, a in added.items() if i in new_id):
        raise ValueError(f"the unknown token {unk!r} would be trimmed away")
    trimmed["added_tokens"] = [{**a, "id": new_id[i]} for i, a in sorted(added.items()) if i in new_id]
    _renumber_post_processor(trimmed.get("post_processor"), new_id)
    return trimmed, ids


def _renumber_post_processor(processor: dict | None, new_id: dict[int, int]) -> None:
    if not processor:
        return
    for inner in processor.get("processors", []):
        _renumber_post_processor(inner, new_id)
    for name, special in (processor.get("special_tokens") or {}).items():
        missing = [i for i in special["ids"] if i not in new_id]
        if missing:
            raise ValueError(f"the post-processor's special token {name!r} would be trimmed away")
        special["ids"] = [new_id[i] for i in special["ids"]]
