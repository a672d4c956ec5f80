"""A tiny, randomly initialised BERT checkpoint with a character tokenizer, built in about a second.

Tests of the transformer path (fine-tune, export, parity, bundles, ``jiesu predict``) use it in place of
the real encoder: same file layout as any local checkpoint (config.json, model.safetensors,
tokenizer.json), no download, no pretrained weights.
"""

from __future__ import annotations

import json
from pathlib import Path


def build_tiny_encoder(out: Path, corpus: list[str], hidden: int = 32, layers: int = 2, heads: int = 2,
                       seed: int = 0) -> Path:
    import torch
    from tokenizers import Regex, Tokenizer, models, pre_tokenizers
    from transformers import BertConfig, BertModel

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    chars = sorted({ch for text in corpus for ch in text if not ch.isspace()})
    vocab = {tok: i for i, tok in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", *chars])}
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Split(Regex(r"\S"), behavior="isolated")
    tokenizer.save(str(out / "tokenizer.json"))
    (out / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "PreTrainedTokenizerFast", "cls_token": "[CLS]", "sep_token": "[SEP]",
        "pad_token": "[PAD]", "unk_token": "[UNK]", "model_max_length": 512}), encoding="utf-8")
    torch.manual_seed(seed)
    config = BertConfig(vocab_size=len(vocab), hidden_size=hidden, num_hidden_layers=layers,
                        num_attention_heads=heads, intermediate_size=hidden * 2, max_position_embeddings=512,
                        pad_token_id=0)
    BertModel(config, add_pooling_layer=False).save_pretrained(out)
    return out


def train_tiny_bundle(root: Path, taxonomy, kind: str = "transformer", data: Path | None = None,
                      encoder: Path | None = None) -> tuple[Path, Path]:
    """A bundle of ``kind`` on the team's sample (or ``data``) with a tiny encoder: (bundle, work dir)."""
    from tests.conftest import SAMPLE
    from training.train import TrainConfig, train

    data = data or SAMPLE
    if encoder is None:
        rows = [json.loads(line) for line in Path(data).read_text(encoding="utf-8").splitlines() if line.strip()]
        encoder = build_tiny_encoder(root / "encoder", [(r.get("title") or "") + r["text"] for r in rows])
    work = root / f"{kind}.work"
    config = TrainConfig(data=[data], out=root / kind, kind=kind, base_model=str(encoder), epochs=1,
                         max_length=64, progress=False, work_dir=work)
    return train(config, taxonomy, log=lambda m: None).bundle, work


GEMMA_SPECIALS = ["<pad>", "<eos>", "<bos>", "<unk>", "<mask>"]


def build_tiny_gemma_tokenizer(corpus: list[str], vocab_size: int = 2400) -> dict:
    """A byte-fallback BPE ``tokenizer.json`` (as a dict) shaped like EmbeddingGemma's: spaces become
    "▁", <bos> text <eos>, the 256 byte tokens, whitespace runs as added tokens."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    tokenizer.normalizer = normalizers.Replace(" ", "\u2581")
    tokenizer.pre_tokenizer = pre_tokenizers.Split(" ", behavior="merged_with_previous")
    tokenizer.decoder = decoders.Sequence([decoders.Replace("\u2581", " "), decoders.ByteFallback(), decoders.Fuse()])
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=GEMMA_SPECIALS, show_progress=False)
    tokenizer.train_from_iterator(corpus, trainer)
    data = json.loads(tokenizer.to_str())
    vocab = data["model"]["vocab"]
    for byte in range(256):
        vocab.setdefault(f"<0x{byte:02X}>", len(vocab))
    newline = len(vocab)
    data["added_tokens"].append({"id": newline, "content": "\n", "single_word": False, "lstrip": False,
                                 "rstrip": False, "normalized": False, "special": False})
    vocab["\n"] = newline
    data["post_processor"] = {"type": "TemplateProcessing",
                              "single": [{"SpecialToken": {"id": "<bos>", "type_id": 0}},
                                         {"Sequence": {"id": "A", "type_id": 0}},
                                         {"SpecialToken": {"id": "<eos>", "type_id": 0}}],
                              "pair": [{"SpecialToken": {"id": "<bos>", "type_id": 0}},
                                       {"Sequence": {"id": "A", "type_id": 0}},
                                       {"SpecialToken": {"id": "<eos>", "type_id": 0}},
                                       {"Sequence": {"id": "B", "type_id": 1}},
                                       {"SpecialToken": {"id": "<eos>", "type_id": 1}}],
                              "special_tokens": {"<bos>": {"id": "<bos>", "ids": [2], "tokens": ["<bos>"]},
                                                 "<eos>": {"id": "<eos>", "ids": [1], "tokens": ["<eos>"]}}}
    return data


def build_tiny_gemma(out: Path, corpus: list[str], hidden: int = 32, layers: int = 2, sliding_window: int = 8,
                     seed: int = 0) -> Path:
    """A tiny, randomly initialised bidirectional Gemma 3 encoder laid out as EmbeddingGemma's repository
    (config.json, model.safetensors, tokenizer.json), with a sliding window short enough to matter."""
    import torch
    from transformers import Gemma3TextConfig, Gemma3TextModel

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tiny_gemma_tokenizer(corpus)
    (out / "tokenizer.json").write_text(json.dumps(tokenizer, ensure_ascii=False), encoding="utf-8")
    torch.manual_seed(seed)
    config = Gemma3TextConfig(
        vocab_size=len(tokenizer["model"]["vocab"]), hidden_size=hidden, intermediate_size=hidden * 3 // 2,
        num_hidden_layers=layers, num_attention_heads=2, num_key_value_heads=1, head_dim=16,
        max_position_embeddings=512, sliding_window=sliding_window, query_pre_attn_scalar=16,
        layer_types=["sliding_attention" if i % 2 == 0 else "full_attention" for i in range(layers)],
        use_bidirectional_attention=True, pad_token_id=0, eos_token_id=1, bos_token_id=2,
        hidden_activation="gelu_pytorch_tanh")
    Gemma3TextModel(config).save_pretrained(out)
    return out
