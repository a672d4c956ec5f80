"""The fine-tune's losses: each head's class-weighted cross-entropy, and for the category head the mix
of label and teacher that distillation (``--distill``) asks for.

Weights: category 1, every other head (urgency, appeal type, deeper categories) ``OTHER_HEAD_WEIGHT``; a
class's weight is ``(N / (K · n_c)) ** 0.5``, so rare categories are not drowned and not overrated.
"""

from __future__ import annotations

import numpy as np
import torch

HEAD_WEIGHT = {"category": 1.0}
OTHER_HEAD_WEIGHT = 0.5


def class_weights(y: np.ndarray, n_classes: int) -> torch.Tensor:
    counts = np.bincount(y[y >= 0], minlength=n_classes).astype(np.float64)
    total = counts.sum()
    weights = np.where(counts > 0, (total / (n_classes * np.maximum(counts, 1))) ** 0.5, 0.0)
    return torch.tensor(weights, dtype=torch.float32)


def category_loss(logits: torch.Tensor, y: torch.Tensor, soft: torch.Tensor | None, hard_loss, distill: float):
    """The category head's loss over a batch that may mix labelled and unlabelled appeals.

    Without distillation: the class-weighted cross-entropy of the labelled appeals. With it, each appeal
    adds ``(1 - distill)`` × its cross-entropy (when labelled) and ``distill`` × KL(teacher ‖ model) (when
    it has a soft target), each term averaged over its own appeals and weighted by their share of the
    batch, so an unlabelled appeal counts as much as the soft half of a labelled one.
    """
    labelled = y >= 0
    if soft is None or distill <= 0:
        return hard_loss(logits, y) if labelled.any() else None
    has_soft = soft.sum(dim=1) > 0
    n = float(len(y))
    total = logits.new_zeros(())
    if labelled.any():
        total = total + (1 - distill) * hard_loss(logits[labelled], y[labelled]) * (labelled.sum() / n)
    if has_soft.any():
        log_p = torch.log_softmax(logits[has_soft], dim=-1)
        teacher = soft[has_soft]
        kl = (teacher * (torch.log(teacher.clamp_min(1e-8)) - log_p)).sum(dim=-1).mean()
        total = total + distill * kl * (has_soft.sum() / n)
    return total


def batch_loss(head_names, logits, labels, rows, losses, soft, distill: float, device) -> torch.Tensor:
    """Each head's loss, weighted (category 1, the others ``OTHER_HEAD_WEIGHT``); a head with no label in
    the batch adds nothing."""
    total = None
    for name, values in zip(head_names, logits):
        y = torch.from_numpy(labels[name][rows]).to(device)
        if name == "category":
            teacher = None if soft is None else torch.from_numpy(soft[rows]).to(device)
            part = category_loss(values.float(), y, teacher, losses[name], distill)
        else:
            part = losses[name](values.float(), y) if (y >= 0).any() else None
        if part is not None:
            part = HEAD_WEIGHT.get(name, OTHER_HEAD_WEIGHT) * part
            total = part if total is None else total + part
    return total
