"""Soft targets from the linear model, for distilling it into the transformer router (``--distill``).

The linear model reads every character and word of an appeal and is strong on this kind of data; the
fine-tuned encoder reads 256 tokens and generalises differently. Distillation gives the encoder the
linear model's probabilities as a second target beside the true label, and lets it learn from appeals
nobody labelled. Rules this module implements:

- a training appeal's soft target is **out of fold**: the train split is cut into ``folds`` parts along
  duplicate groups (repeats of one appeal stay in one part), and each part is scored by a linear model
  fitted on the other parts, so no appeal is scored by a model that saw it or its repeat;
- unlabelled appeals (``--unlabelled FILE``) are scored by a linear model fitted on the whole train
  split; one that repeats any labelled appeal (the same normalised title or text) is dropped, so nothing
  of the validation or test split enters training by the back door, and repeats among them are kept once;
- probabilities are the SVM margins through one temperature fitted on the validation split (the only
  use of validation here: no validation appeal is trained on);
- validation and test appeals get no soft target.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from serving.model.linear import softmax
from training.data import duplicate_groups
from training.evaluate import compute_metrics
from training.linear import LinearConfig, count_blocks, fit_blocks, fit_temperature, score_blocks, take_rows


@dataclass
class SoftTargets:
    train: np.ndarray  # (train appeals × categories), frame order of the train split
    unlabelled: pd.DataFrame  # the unlabelled appeals kept (title, text, source_file)
    unlabelled_probabilities: np.ndarray  # (kept unlabelled appeals × categories)
    record: dict = field(default_factory=dict)  # what the training report says about the teacher


def unique_unlabelled(labelled: pd.DataFrame, unlabelled: pd.DataFrame) -> tuple[pd.DataFrame, dict]:
    """Unlabelled appeals that repeat no labelled appeal, one per duplicate group; with the counts."""
    titles = list(labelled["title"]) + list(unlabelled["title"])
    texts = list(labelled["text"]) + list(unlabelled["text"])
    groups = duplicate_groups(titles, texts)
    labelled_groups = set(groups[:len(labelled)].tolist())
    seen: set[int] = set()
    keep = []
    repeats_labelled = repeats_unlabelled = 0
    for i, group in enumerate(groups[len(labelled):].tolist()):
        if group in labelled_groups:
            repeats_labelled += 1
        elif group in seen:
            repeats_unlabelled += 1
        else:
            seen.add(group)
            keep.append(i)
    kept = unlabelled.iloc[keep].reset_index(drop=True)
    return kept, {"given": int(len(unlabelled)), "kept": int(len(kept)),
                  "dropped_repeating_labelled": repeats_labelled, "dropped_repeating_each_other": repeats_unlabelled}


def linear_soft_targets(frame: pd.DataFrame, categories: list[str], unlabelled: pd.DataFrame | None = None,
                        folds: int = 5, seed: int = 13, config: LinearConfig = LinearConfig(),
                        log=print) -> SoftTargets:
    """Soft targets for the train split of ``frame`` (which has a ``split`` column) and for ``unlabelled``."""
    if folds < 2:
        raise ValueError(f"distillation needs at least 2 folds, got {folds}")
    index = {c: i for i, c in enumerate(categories)}
    train = frame[frame["split"] == "train"]
    validation = frame[(frame["split"] == "validation") & frame["category"].isin(index)]
    kept, counts = unique_unlabelled(frame, unlabelled if unlabelled is not None
                                     else pd.DataFrame({"title": [], "text": []}))
    titles = list(train["title"]) + list(validation["title"]) + list(kept["title"])
    texts = list(train["text"]) + list(validation["text"]) + list(kept["text"])
    blocks = count_blocks(config, titles, texts)  # segment once; every fold slices these rows
    n_train, n_val = len(train), len(validation)
    train_idx, val_idx = np.arange(n_train), np.arange(n_train, n_train + n_val)
    unlabelled_idx = np.arange(n_train + n_val, len(titles))
    y = np.array([index[c] for c in train["category"]])
    y_val = np.array([index[c] for c in validation["category"]])

    def fitted(rows: np.ndarray):
        weights = fit_blocks(config, take_rows(blocks, rows), y[rows], len(categories), seed)
        score = lambda idx: score_blocks(config, take_rows(blocks, idx), *weights)  # noqa: E731
        temperature = fit_temperature(score(val_idx), y_val) if n_val else 1.0
        return score, temperature

    groups = duplicate_groups(list(train["title"]), list(train["text"]))
    unique = np.unique(groups)
    fold_of_group = dict(zip(np.random.default_rng(seed).permutation(unique).tolist(),
                             np.arange(len(unique)) % folds))
    fold = np.array([fold_of_group[g] for g in groups.tolist()])
    soft = np.zeros((n_train, len(categories)), dtype=np.float32)
    temperatures = []
    for k in range(folds):
        held = train_idx[fold == k]
        if len(held) == 0:
            continue
        score, temperature = fitted(train_idx[fold != k])
        soft[held] = softmax(score(held), temperature)
        temperatures.append(temperature)
        log(f"distill: teacher fold {k + 1}/{folds} scored {len(held)} training appeals")
    probabilities = np.zeros((0, len(categories)), dtype=np.float32)
    record = {"teacher": "linear", "folds": folds, "temperatures": [round(t, 4) for t in temperatures],
              "unlabelled": counts}
    oof = compute_metrics(categories, list(train["category"]), soft)
    record["out_of_fold_train"] = {k: oof[k] for k in ("n", "accuracy", "macro_f1", "ece")}
    if len(kept) or n_val:
        score, temperature = fitted(train_idx)
        if len(kept):
            probabilities = softmax(score(unlabelled_idx), temperature).astype(np.float32)
            record["unlabelled_predicted"] = {c: int(n) for c, n in
                                              zip(categories, np.bincount(probabilities.argmax(1),
                                                                          minlength=len(categories)))}
        if n_val:
            val = compute_metrics(categories, list(validation["category"]), softmax(score(val_idx), temperature))
            record["validation"] = {k: val[k] for k in ("n", "accuracy", "macro_f1", "ece")}
    log(f"distill: teacher out-of-fold macro-F1 {oof['macro_f1']:.4f} on {n_train} training appeals; "
        f"{counts['kept']} of {counts['given']} unlabelled appeals kept")
    return SoftTargets(soft, kept, probabilities, record)
