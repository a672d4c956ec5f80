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
