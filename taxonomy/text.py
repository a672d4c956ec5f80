"""Text normalisation shared by the place resolver, the rule layer and the models.

Rules: Unicode NFKC (full-width letters, digits and punctuation become half-width; compatibility forms
unify), traditional characters become simplified (OpenCC t2s, only when the text has any), runs of
whitespace collapse to one space, control characters are dropped. The same function runs at training
and at prediction time, so a model never sees text in a form it was not trained on.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache
from pathlib import Path

_WHITESPACE = re.compile(r"\s+")
_CONTROL = re.compile(r"[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f\u200b-\u200f\ufeff]")
_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")


@lru_cache(maxsize=1)
def _t2s():
    import opencc  # imported lazily: building the converter reads its dictionaries

    converter = opencc.OpenCC("t2s")
    table = Path(opencc.__file__).parent / "dictionary" / "TSCharacters.txt"
    traditional: frozenset[str] | None = None
    if table.exists():
        chars = set()
        for line in table.read_text(encoding="utf-8").splitlines():
            parts = line.split("\t")
            if len(parts) == 2 and parts[0] not in parts[1].split():
                chars.add(parts[0])
        traditional = frozenset(chars)
    return converter, traditional


def to_simplified(text: str) -> str:
    converter, traditional = _t2s()
    if traditional is not None and not any(ch in traditional for ch in text):
        return text
    return converter.convert(text)


def normalize(text: str) -> str:
    """NFKC, simplified characters, no control characters, single spaces, stripped."""
    text = unicodedata.normalize("NFKC", text)
    text = _CONTROL.sub("", text)
    text = to_simplified(text)
    return _WHITESPACE.sub(" ", text).strip()


def cjk_ratio(text: str) -> float:
    """Share of non-space characters that are Chinese characters."""
    chars = [ch for ch in text if not ch.isspace()]
    if not chars:
        return 0.0
    return sum(1 for ch in chars if _CJK.match(ch)) / len(chars)
