"""The fast category model as served: hashed TF-IDF blocks, a linear layer, temperature-scaled softmax.

Each feature block hashes its n-grams (``HashingVectorizer``: the hashing runs in compiled code, about
twice as fast as a vocabulary lookup) and keeps only the columns seen in at least ``min_df`` training
appeals; those columns are the block's vocabulary. Features are sublinear tf (1 + log tf) × smoothed idf,
L2-normalised per block, as scikit-learn's ``TfidfVectorizer`` computes them. Stored as arrays in
``linear/weights.npz``: ``coef``, ``intercept``, ``temperature`` and per block ``columns_<block>`` and
``idf_<block>``; the same ``tfidf`` function builds features at training and at serving time.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import scipy.sparse as sp
from sklearn.feature_extraction.text import HashingVectorizer

from serving.model.bundle import BundleError, Manifest
from serving.model.features import WORD_TOKEN_PATTERN, FeatureSpec, Preprocessing, views

WEIGHTS = "linear/weights.npz"


def make_hasher(spec: FeatureSpec) -> HashingVectorizer:
    return HashingVectorizer(
        analyzer=spec.analyzer,
        ngram_range=spec.ngram_range,
        n_features=spec.n_features,
        token_pattern=WORD_TOKEN_PATTERN if spec.analyzer == "word" else None,
        alternate_sign=False,
        norm=None,
        lowercase=True,
        dtype=np.float32,
    )


def block_texts(spec: FeatureSpec, batch) -> list[str]:
    if spec.analyzer == "word":
        return batch.body_words
    return batch.title if spec.source == "title" else batch.body


def document_frequency(counts: sp.csr_matrix) -> np.ndarray:
    return np.bincount(counts.indices, minlength=counts.shape[1])


def smooth_idf(df: np.ndarray, n_documents: int) -> np.ndarray:
    return (np.log((1.0 + n_documents) / (1.0 + df)) + 1.0).astype(np.float32)


def column_map(columns: np.ndarray, n_features: int) -> np.ndarray:
    """hashed column -> kept column index, or -1; built once so selecting columns costs O(non-zeros)."""
    remap = np.full(n_features, -1, dtype=np.int32)
    remap[columns] = np.arange(len(columns), dtype=np.int32)
    return remap


def select_columns(counts: sp.csr_matrix, remap: np.ndarray, width: int) -> sp.csr_matrix:
    counts = counts.tocsr()
    new = remap[counts.indices]
    keep = new >= 0
    rows = np.repeat(np.arange(counts.shape[0]), np.diff(counts.indptr))[keep]
    indptr = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=counts.shape[0]))])
    return sp.csr_matrix((counts.data[keep].astype(np.float32), new[keep], indptr), shape=(counts.shape[0], width))


def tfidf(counts: sp.csr_matrix, remap: np.ndarray, idf: np.ndarray, sublinear: bool = True) -> sp.csr_matrix:
    """Keep the training columns of a hashed count matrix, weight them, normalise rows."""
    x = select_columns(counts, remap, len(idf))
    if sublinear:
        np.log(x.data, out=x.data)
        x.data += 1.0
    x.data *= idf[x.indices]  # the same as x @ diag(idf), without building the diagonal matrix per call
    lengths = np.diff(x.indptr)
    rows = np.repeat(np.arange(x.shape[0]), lengths)
    norms = np.sqrt(np.bincount(rows, weights=x.data.astype(np.float64) ** 2, minlength=x.shape[0]))
    x.data /= norms[rows].astype(x.data.dtype)  # rows with no feature stay empty (the l2 norm of each row is 1)
    return x


def softmax(scores: np.ndarray, temperature: float) -> np.ndarray:
    z = scores / temperature
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def head_arrays(head: str) -> tuple[str, str, str]:
    """The array names of one head: the category head keeps the plain names older bundles use."""
    suffix = "" if head == "category" else f"__{head}"
    return f"coef{suffix}", f"intercept{suffix}", f"temperature{suffix}"


def write_weights(directory: Path, specs, columns, idfs, coef, intercept, temperature,
                  extra_heads: dict[str, tuple[np.ndarray, np.ndarray, float]] | None = None) -> None:
    """The arrays of a linear bundle; ``extra_heads`` holds (coef, intercept, temperature) per other head."""
    (directory / "linear").mkdir(parents=True, exist_ok=True)
    arrays = {}
    for head, (c, b, t) in {"category": (coef, intercept, temperature), **(extra_heads or {})}.items():
        names = head_arrays(head)
        arrays[names[0]] = c.astype(np.float32)
        arrays[names[1]] = b.astype(np.float32)
        arrays[names[2]] = np.array(t, dtype=np.float64)
    for spec, cols, idf in zip(specs, columns, idfs):
        arrays[f"columns_{spec.name}"] = cols.astype(np.int32)
        arrays[f"idf_{spec.name}"] = idf.astype(np.float32)
    np.savez_compressed(directory / WEIGHTS, **arrays)


class LinearCategoryModel:
    """``predict_proba(titles, texts)`` → probabilities over ``labels``; ``predict_all`` → {head: …}, the
    interface every bundle kind's model has. Every head (category, deeper category levels, urgency,
    appeal type, department, company) is a linear layer with its own temperature over the same features."""

    parallel_safe = True  # plain arrays: forked workers share them copy-on-write

    def __init__(self, manifest: Manifest):
        self.labels = manifest.labels("category")
        self.heads = {name: manifest.labels(name) for name in manifest.heads}
        self.prep = Preprocessing.from_dict(manifest.preprocessing)
        self.weights: dict[str, tuple[np.ndarray, np.ndarray, float]] = {}
        try:
            self.specs = [FeatureSpec.from_dict(d) for d in manifest.data["features"]]
            with np.load(manifest.file(WEIGHTS)) as arrays:
                for head in self.heads:
                    c, b, t = head_arrays(head)
                    self.weights[head] = (arrays[c], arrays[b], float(arrays[t]))
                self.columns = [arrays[f"columns_{s.name}"] for s in self.specs]
                self.idfs = [arrays[f"idf_{s.name}"] for s in self.specs]
        except (KeyError, ValueError, TypeError, OSError) as exc:
            raise BundleError(manifest.path, f"linear weights cannot be read ({exc})") from None
        self.coef, self.intercept, self.temperature = self.weights["category"]
        width = sum(len(c) for c in self.columns)
        for head, (coef, intercept, _) in self.weights.items():
            n = len(self.heads[head])
            if coef.shape != (n, width) or intercept.shape != (n,):
                raise BundleError(manifest.path, f"weights of head {head} have shape {coef.shape}, expected ({n}, {width})")
        for spec, cols, idf in zip(self.specs, self.columns, self.idfs):
            if len(cols) != len(idf) or (len(cols) and (cols.min() < 0 or cols.max() >= spec.n_features)):
                raise BundleError(manifest.path, f"feature block {spec.name} is inconsistent")
        # sparse @ dense wants the dense side contiguous: transposed once here, not copied on every call
        self.coef_t = {head: np.ascontiguousarray(coef.T) for head, (coef, _, _) in self.weights.items()}
        self.hashers = [make_hasher(s) for s in self.specs]
        self.remaps = [column_map(cols, spec.n_features) for spec, cols in zip(self.specs, self.columns)]
        self.needs_words = any(s.analyzer == "word" for s in self.specs)

    def features(self, titles: list[str], texts: list[str]) -> sp.csr_matrix:
        batch = views(titles, texts, self.prep, self.needs_words)
        blocks = [
            tfidf(hasher.transform(block_texts(spec, batch)), remap, idf, spec.sublinear_tf)
            for spec, hasher, remap, idf in zip(self.specs, self.hashers, self.remaps, self.idfs)
        ]
        return sp.hstack(blocks, format="csr")

    def decision_function(self, titles: list[str], texts: list[str]) -> np.ndarray:
        return np.asarray(self.features(titles, texts) @ self.coef_t["category"]) + self.intercept

    def predict_proba(self, titles: list[str], texts: list[str]) -> np.ndarray:
        return softmax(self.decision_function(titles, texts), self.temperature)

    def predict_all(self, titles: list[str], texts: list[str]) -> dict[str, np.ndarray]:
        x = self.features(titles, texts)
        return {head: softmax(np.asarray(x @ self.coef_t[head]) + intercept, temperature)
                for head, (_, intercept, temperature) in self.weights.items()}
