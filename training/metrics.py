"""The one macro-F1 every report and the fine-tune's model selection use (numpy only, so the fit step
runs on a GPU machine with nothing but torch and transformers)."""

from __future__ import annotations

import numpy as np


def macro_f1(y_true, y_pred) -> float:
    """Macro-F1 over the classes present in the truth or the prediction (scikit-learn's default)."""
    y_true, y_pred = np.asarray(y_true, dtype=object), np.asarray(y_pred, dtype=object)
    classes = set(y_true.tolist()) | set(y_pred.tolist())
    scores = []
    for c in classes:
        tp = np.sum((y_true == c) & (y_pred == c))
        fp = np.sum((y_true != c) & (y_pred == c))
        fn = np.sum((y_true == c) & (y_pred != c))
        scores.append(0.0 if tp == 0 else 2 * tp / (2 * tp + fp + fn))
    return float(np.mean(scores)) if scores else 0.0
