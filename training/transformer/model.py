"""One encoder, one linear head per task, over the mean of the encoder's token states.

Mean pooling (not [CLS]) because the default encoder, multilingual-e5-small, was trained to be read
that way; for any BERT-family checkpoint it is a sound default too, and EmbeddingGemma mean-pools as
well. The forward pass takes ``input_ids`` and ``attention_mask`` and returns one logits tensor per
head, in ``head_names`` order: the same signature the ONNX graph has.

Gemma 3 encoders (``model_type`` ``gemma3_text`` with bidirectional attention) get their attention masks
from ``encoder_masks``, built with plain tensor operations: transformers builds them with ``vmap``, which
the ONNX tracer cannot follow. They mean the same: padding is never attended to; a full-attention layer
reads every other token, a sliding-window layer those less than ``sliding_window`` positions away.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

WEIGHTS = "model.safetensors"
ENCODER_CONFIG = "config.json"
HEADS_FILE = "heads.json"


class MultiHeadClassifier(nn.Module):
    def __init__(self, encoder: nn.Module, head_sizes: dict[str, int], dropout: float = 0.1):
        super().__init__()
        self.encoder = encoder
        self.head_names = list(head_sizes)
        hidden = encoder.config.hidden_size
        self.dropout = nn.Dropout(dropout)
        self.heads = nn.ModuleDict({name: nn.Linear(hidden, size) for name, size in head_sizes.items()})

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> tuple[torch.Tensor, ...]:
        states = self.encoder(input_ids=input_ids, attention_mask=encoder_masks(self.encoder.config, attention_mask)
                              ).last_hidden_state
        mask = attention_mask.unsqueeze(-1).to(states.dtype)
        pooled = (states * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)
        pooled = self.dropout(pooled)
        return tuple(self.heads[name](pooled) for name in self.head_names)


def encoder_masks(config, attention_mask: torch.Tensor):
    """What the encoder's ``attention_mask`` argument gets: the [batch, tokens] mask itself for BERT-family
    encoders; for bidirectional Gemma 3, additive float masks per layer type ([batch, 1, 1, tokens] for
    full attention, [batch, 1, tokens, tokens] for the sliding window)."""
    if getattr(config, "model_type", None) != "gemma3_text" or not getattr(config, "use_bidirectional_attention", 0):
        return attention_mask
    keys = attention_mask.bool()[:, None, None, :]
    positions = torch.arange(attention_mask.shape[1], device=attention_mask.device)
    near = (positions[:, None] - positions[None, :]).abs() < config.sliding_window
    zero = torch.zeros((), dtype=torch.float32, device=attention_mask.device)
    lowest = torch.full((), torch.finfo(torch.float32).min, dtype=torch.float32, device=attention_mask.device)
    return {"full_attention": torch.where(keys, zero, lowest),
            "sliding_attention": torch.where(keys & near, zero, lowest)}


def _encoder_from(source, *, config=None, pretrained: bool, attn: str | None):
    from transformers import AutoModel

    kwargs = {"attn_implementation": attn} if attn else {}
    # Weights may be stored in half precision; training and export always run in float32.
    build = (lambda **kw: AutoModel.from_pretrained(source, config=config, dtype=torch.float32, **kw)) if pretrained \
        else (lambda **kw: AutoModel.from_config(config, **kw))
    try:
        return build(add_pooling_layer=False, **kwargs)  # BERT-family: the pooler is never used
    except TypeError:
        return build(**kwargs)


def load_base(base_model: str | Path, head_sizes: dict[str, int], layers: int | None = None,
              dropout: float = 0.1, attn: str | None = None) -> MultiHeadClassifier:
    """A pretrained encoder (local directory or hub id) with fresh heads; ``layers`` keeps the first N."""
    from transformers import AutoConfig, logging as hf_logging

    config = AutoConfig.from_pretrained(str(base_model))
    if layers is not None:
        if not 1 <= layers <= config.num_hidden_layers:
            raise ValueError(f"--layers must be between 1 and {config.num_hidden_layers}, got {layers}")
        config.num_hidden_layers = layers
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # dropped layers and the absent pooler are expected, not news
    hf_logging.disable_progress_bar()
    try:
        encoder = _encoder_from(str(base_model), config=config, pretrained=True, attn=attn)
    finally:
        hf_logging.set_verbosity(verbosity)
        hf_logging.enable_progress_bar()
    return MultiHeadClassifier(encoder, head_sizes, dropout)


def save_model(model: MultiHeadClassifier, directory: Path, dtype: torch.dtype | None = None) -> None:
    from safetensors.torch import save_file

    directory.mkdir(parents=True, exist_ok=True)
    state = {k: (v.to(dtype) if dtype is not None and v.is_floating_point() else v).detach().cpu().contiguous()
             for k, v in model.state_dict().items()}
    save_file(state, str(directory / WEIGHTS))
    model.encoder.config.to_json_file(str(directory / ENCODER_CONFIG))
    heads = {name: model.heads[name].out_features for name in model.head_names}
    (directory / HEADS_FILE).write_text(json.dumps(heads, indent=2) + "\n", encoding="utf-8")


def load_model(directory: Path, attn: str | None = "eager") -> MultiHeadClassifier:
    """A fine-tuned model saved by ``save_model`` (weights may be stored in half precision)."""
    from safetensors.torch import load_file
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(str(directory))
    heads = json.loads((directory / HEADS_FILE).read_text(encoding="utf-8"))
    model = MultiHeadClassifier(_encoder_from(None, config=config, pretrained=False, attn=attn), heads)
    state = {k: v.float() if v.is_floating_point() else v for k, v in load_file(str(directory / WEIGHTS)).items()}
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [k for k in missing if "position_ids" not in k]
    if missing or unexpected:
        raise ValueError(f"{directory / WEIGHTS} does not fit the model: missing {missing[:3]}, unexpected {unexpected[:3]}")
    return model.eval()
