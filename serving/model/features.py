"""How an appeal becomes the text the models read, shared by training and serving.

Rules: title and text are normalised (``taxonomy.text.normalize``); patterns named in the bundle
(``strip_patterns``, e.g. the masked place codes A市/A3区 of the public training data) are removed; the
body the models read is the title ``title_repeat`` times, then the text cut to ``max_chars``; word
features segment with jieba (dictionary words only, no HMM guessing, so segmentation is stable) and
join tokens with spaces.
"""

from __future__ import annotations

import logging
import re
from dataclasses import asdict, dataclass, field
from functools import lru_cache

from taxonomy.text import normalize


@dataclass(frozen=True)
class Preprocessing:
    max_chars: int = 1500
    title_repeat: int = 1
    strip_patterns: tuple[str, ...] = (r"[A-Z]\d*[市区县]", r"西地省")

    def to_dict(self) -> dict:
        data = asdict(self)
        data["strip_patterns"] = list(self.strip_patterns)
        return data

    @classmethod
    def from_dict(cls, data: dict) -> "Preprocessing":
        return cls(
            max_chars=int(data["max_chars"]),
            title_repeat=int(data["title_repeat"]),
            strip_patterns=tuple(data.get("strip_patterns", ())),
        )


@dataclass(frozen=True)
class FeatureSpec:
    """One TF-IDF block: which view of the appeal, which analyzer, which n-grams."""

    name: str
    source: str  # "title" or "body"
    analyzer: str  # "char" or "word"
    ngram_range: tuple[int, int]
    min_df: int = 2
    n_features: int = 2**20  # size of the hashing space; only columns seen min_df times in training are kept
    sublinear_tf: bool = True

    def to_dict(self) -> dict:
        data = asdict(self)
        data["ngram_range"] = list(self.ngram_range)
        return data

    @classmethod
    def from_dict(cls, data: dict) -> "FeatureSpec":
        return cls(**{**data, "ngram_range": tuple(data["ngram_range"])})


DEFAULT_FEATURES = (
    FeatureSpec("title_char", "title", "char", (1, 3), n_features=2**20),
    FeatureSpec("body_char", "body", "char", (1, 3), n_features=2**22),
    FeatureSpec("body_word", "body", "word", (1, 2), n_features=2**22),
)


@dataclass
class Views:
    """The texts each feature block reads, for a batch of appeals."""

    title: list[str] = field(default_factory=list)
    body: list[str] = field(default_factory=list)
    body_words: list[str] | None = None


@lru_cache(maxsize=8)
def _compiled(patterns: tuple[str, ...]) -> re.Pattern | None:
    return re.compile("|".join(f"(?:{p})" for p in patterns)) if patterns else None


def clean(titles, texts, strip_patterns: tuple[str, ...]):
    """(title, text) pairs normalised and with the bundle's ``strip_patterns`` removed."""
    strip = _compiled(strip_patterns)
    for title, text in zip(titles, texts):
        title, text = normalize(title or ""), normalize(text or "")
        if strip is not None:
            title, text = strip.sub("", title), strip.sub("", text)
        yield title, text


def views(titles: list[str], texts: list[str], prep: Preprocessing, need_words: bool) -> Views:
    out = Views(body_words=[] if need_words else None)
    for title, text in clean(titles, texts, prep.strip_patterns):
        body = "。".join([title] * prep.title_repeat + [text[: prep.max_chars]]) if title else text[: prep.max_chars]
        out.title.append(title)
        out.body.append(body)
        if need_words:
            out.body_words.append(segment(body))
    return out


@lru_cache(maxsize=1)
def _tokenizer():
    import jieba

    jieba.setLogLevel(logging.WARNING)
    tokenizer = jieba.Tokenizer()
    tokenizer.initialize()
    return tokenizer


def segment(text: str) -> str:
    return " ".join(tok for tok in _tokenizer().lcut(text, HMM=False) if not tok.isspace())


WORD_TOKEN_PATTERN = r"(?u)[^ ]+"
