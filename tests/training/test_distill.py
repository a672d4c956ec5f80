"""Distilling the linear model into the transformer router: out-of-fold soft targets, unlabelled appeals
that never repeat a labelled one, the mixed loss, and ``jiesu train --distill --unlabelled`` end to end on
a tiny encoder."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from serving.model.bundle import read_manifest  # noqa: E402
from tests.conftest import ROOT, SAMPLE  # noqa: E402
from tests.tiny_encoder import build_tiny_encoder  # noqa: E402


def sample_frame(taxonomy) -> pd.DataFrame:
    from training.data import SplitConfig, assign_splits, load_frame

    frame = load_frame([SAMPLE], taxonomy)
    frame["split"] = assign_splits(frame, SplitConfig(seed=13))
    return frame


def test_a_mislabelled_training_appeal_is_not_taught_its_own_wrong_label(taxonomy):
    """Out of fold: the teacher that scores an appeal never saw it, so a wrong label is not echoed back —
    a model fitted on every training appeal learns the wrong labels by heart."""
    from training.linear import fit_linear
    from training.transformer.teacher import linear_soft_targets

    frame = sample_frame(taxonomy)
    categories = sorted(set(frame.loc[frame["split"] == "train", "category"]))
    train_positions = np.flatnonzero(frame["split"].to_numpy() == "train")
    planted = train_positions[:: len(train_positions) // 6][:6]
    truth = list(frame.loc[planted, "category"])
    wrong = [categories[(categories.index(c) + 5) % len(categories)] for c in truth]
    frame.loc[planted, "category"] = wrong

    targets = linear_soft_targets(frame, categories, folds=5, seed=13, log=lambda m: None)
    at = {row: i for i, row in enumerate(train_positions)}
    oof_says = [categories[int(targets.train[at[row]].argmax())] for row in planted]
    assert sum(s != w for s, w in zip(oof_says, wrong)) >= 5, oof_says  # not echoed back
    assert sum(s == t for s, t in zip(oof_says, truth)) >= 3, (oof_says, truth)  # often the real one

    train = frame[frame["split"] == "train"]
    seen = fit_linear(list(train["title"]), list(train["text"]), list(train["category"]),
                      list(train["title"]), list(train["text"]), list(train["category"]), refit=False)
    in_sample = [seen.labels[int(seen.validation_scores[at[row]].argmax())] for row in planted]
    assert in_sample == wrong  # what distillation without folds would have taught
    assert targets.train.shape == (len(train), len(categories))
    assert np.allclose(targets.train.sum(axis=1), 1.0, atol=1e-5)
    assert targets.record["out_of_fold_train"]["n"] == len(train)


def test_unlabelled_appeals_repeating_a_labelled_one_or_each_other_are_dropped(taxonomy):
    from training.transformer.teacher import unique_unlabelled

    frame = sample_frame(taxonomy)
    test_row = frame[frame["split"] == "test"].iloc[0]
    unlabelled = pd.DataFrame({
        "title": [test_row["title"], "另一个标题", "公交站台损坏", "公交站台损坏", "路灯不亮"],
        "text": ["完全不同的正文内容", test_row["text"], "公交站台的顶棚坏了，下雨没法躲。", "顶棚坏了两个月了",
                 "小区门口的路灯坏了一个月，晚上很黑。"],
    })
    kept, counts = unique_unlabelled(frame, unlabelled)
    # a test appeal's title or its text is enough to keep a row out of training
    assert list(kept["title"]) == ["公交站台损坏", "路灯不亮"]
    assert counts == {"given": 5, "kept": 2, "dropped_repeating_labelled": 2, "dropped_repeating_each_other": 1}


def test_the_category_loss_mixes_the_label_and_the_teachers_probabilities():
    from training.transformer.losses import category_loss

    ce = torch.nn.CrossEntropyLoss(ignore_index=-1)
    logits = torch.tensor([[2.0, 0.5, -1.0], [0.1, 0.2, 0.3], [1.0, -1.0, 0.0]], requires_grad=True)
    y = torch.tensor([0, 2, -1])
    assert torch.allclose(category_loss(logits, y, None, ce, 0.0), ce(logits, y))  # off: the old loss
    # a one-hot teacher agreeing with the label gives back the cross-entropy, whatever the weight
    onehot = torch.tensor([[1.0, 0, 0], [0, 0, 1.0], [0, 0, 0]])
    mixed = category_loss(logits, y, onehot, ce, 0.3)
    assert torch.allclose(mixed, ce(logits[:2], y[:2]) * 2 / 3, atol=1e-6)
    # the unlabelled third appeal learns from its soft target alone
    soft = onehot.clone()
    soft[2] = torch.tensor([0.2, 0.7, 0.1])
    loss = category_loss(logits, y, soft, ce, 0.5)
    loss.backward()
    assert logits.grad[2].abs().sum() > 0
    assert logits.grad[2, 1] < 0  # pushed towards the class the teacher favours


@pytest.fixture(scope="module")
def encoder(tmp_path_factory) -> Path:
    rows = [json.loads(line) for line in SAMPLE.read_text(encoding="utf-8").splitlines() if line.strip()]
    return build_tiny_encoder(tmp_path_factory.mktemp("tiny") / "encoder",
                              [(r.get("title") or "") + r["text"] for r in rows] + ["公交站台的顶棚坏了下雨没法躲路灯"])


def jiesu(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "serving.cli", *map(str, args)], capture_output=True, text=True,
                          cwd=ROOT, timeout=600)


def test_train_distils_the_linear_model_and_learns_from_unlabelled_appeals(encoder, tmp_path):
    rows = [json.loads(line) for line in SAMPLE.read_text(encoding="utf-8").splitlines() if line.strip()]
    unlabelled = tmp_path / "unlabelled.csv"
    pd.DataFrame([{"title": "公交站台损坏", "text": "公交站台的顶棚坏了，下雨没法躲。", "likes": "3"},
                  {"title": "路灯不亮", "text": "小区门口的路灯坏了一个月，晚上很黑。", "likes": "0"},
                  {"title": rows[5].get("title") or "", "text": rows[5]["text"], "likes": "1"}]).to_csv(unlabelled,
                                                                                                          index=False)
    out = tmp_path / "bundle"
    result = jiesu("train", "--data", SAMPLE, "--out", out, "--base-model", encoder, "--kind", "transformer",
                   "--epochs", "1", "--max-length", "64", "--batch-size", "16", "--distill", "0.5",
                   "--unlabelled", unlabelled)
    assert result.returncode == 0, result.stderr
    manifest = read_manifest(out)
    distillation = manifest.data["distillation"]
    assert distillation["weight"] == 0.5 and distillation["teacher"] == "linear"
    assert distillation["unlabelled"]["kept"] == 2 and distillation["unlabelled"]["dropped_repeating_labelled"] == 1
    assert "distilled from the linear model" in (out / "report.md").read_text(encoding="utf-8")
    fit_record = json.loads((out.with_name("bundle.work") / "fit" / "fit.json").read_text(encoding="utf-8"))
    split = manifest.data["training_data"]["split"]["sizes"]
    assert fit_record["train"] == split["train"] + 2  # the kept unlabelled appeals are trained on
    assert fit_record["config"]["distill"] == 0.5


@pytest.mark.parametrize("args, message", [
    (["--unlabelled", "x.csv"], "--unlabelled needs --distill"),
    (["--distill", "1.5"], "--distill must be in [0, 1)"),
])
def test_distillation_options_are_checked_in_one_line(args, message, encoder, tmp_path):
    result = jiesu("train", "--data", SAMPLE, "--out", tmp_path / "b", "--kind", "transformer", "--base-model",
                   encoder, *args)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.stderr


def test_an_unlabelled_file_without_a_text_column_is_named(encoder, tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("title,body\n路灯不亮,小区门口的路灯坏了\n", encoding="utf-8")
    result = jiesu("train", "--data", SAMPLE, "--out", tmp_path / "b", "--kind", "transformer", "--base-model",
                   encoder, "--distill", "0.5", "--unlabelled", bad, "--max-length", "64")
    assert result.returncode == 2
    assert "bad.csv" in result.stderr and "'text'" in result.stderr and len(result.stderr.strip().splitlines()) == 1
