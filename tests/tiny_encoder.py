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
