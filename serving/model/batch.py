"""Batch prediction over several processes: featurisation (jieba, n-grams) is pure Python and holds the
GIL, so a large batch is cut into chunks and spread over worker processes.

Workers are forked after the predictor is loaded, so they share its arrays copy-on-write and start in
milliseconds; where fork is unavailable, or the batch is small, prediction runs in this process. Results
come back in input order. Transformer bundles run in this process: onnxruntime already spreads one
batch over every core, and its thread pool does not survive a fork.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor

from serving.model.predictor import AppealInput, Classification, Predictor

CHUNK = 256
_worker_predictor: Predictor | None = None  # set in the parent just before forking; read by workers


def _predict_chunk(chunk: Sequence[AppealInput]) -> list[Classification]:
    assert _worker_predictor is not None
    return _worker_predictor.predict(chunk)


def default_workers() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def predict_many(predictor: Predictor, appeals: Sequence[AppealInput], workers: int | None = None,
                 chunk: int = CHUNK) -> list[Classification]:
    workers = default_workers() if workers is None else max(1, workers)
    chunks = [appeals[i:i + chunk] for i in range(0, len(appeals), chunk)]
    if (workers == 1 or len(chunks) < 2 or not predictor.model.parallel_safe
            or "fork" not in multiprocessing.get_all_start_methods()):
        return [p for c in chunks for p in predictor.predict(c)]
    global _worker_predictor
    _worker_predictor = predictor
    try:
        context = multiprocessing.get_context("fork")
        with ProcessPoolExecutor(max_workers=min(workers, len(chunks)), mp_context=context) as pool:
            return [p for result in pool.map(_predict_chunk, chunks) for p in result]
    finally:
        _worker_predictor = None
