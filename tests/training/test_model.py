"""The fast model end to end: train on the sample set, load the bundle, predict, evaluate, refuse corrupt bundles."""

from __future__ import annotations

import json
import shutil
import time

import numpy as np
import pytest

from serving.model.bundle import BundleError, read_manifest
from serving.model.predictor import AppealInput, AppealInputError, Predictor
from tests.conftest import SAMPLE
from training.evaluate import compute_metrics, expected_calibration_error
from training.train import TrainConfig, evaluate_bundle, train

FIFTEEN = 15


def test_training_on_the_sample_writes_a_complete_bundle_quickly(tmp_path, taxonomy):
    started = time.perf_counter()
    result = train(TrainConfig(data=[SAMPLE], out=tmp_path / "bundle"), taxonomy, log=lambda m: None)
    bundle = result.bundle
    predictor = Predictor(bundle, taxonomy)
    predictions = predictor.predict([AppealInput(text="朝阳区建外街道小区楼道里燃气泄漏，味道很大！", title="燃气泄漏", id="x")])
    assert time.perf_counter() - started < 30
    manifest = read_manifest(bundle)
    assert manifest.kind == "linear" and manifest.data["format_version"] == 1
    assert len(manifest.labels()) == FIFTEEN
    assert manifest.data["training_data"]["fingerprint"] and manifest.data["training_data"]["rows"] == 240
    assert {"validation", "test"} <= set(manifest.data["metrics"])
    for name in ("report.json", "report.md", "confusion_matrix.png", "linear/weights.npz"):
        assert (bundle / name).exists() and name in manifest.data["files"]
    report = json.loads((bundle / "report.json").read_text(encoding="utf-8"))
    assert {"macro_f1", "accuracy", "per_class", "confusion_matrix", "ece", "calibration"} <= set(report)
    p = predictions[0]
    assert p.urgency == 1 and "燃气泄漏" in p.urgency_reason
    assert p.district == "朝阳区" and p.street == "建外街道"
    assert len(p.category_top3) == 3 and p.category_top3[0][0] == p.category
    assert 0 < p.category_confidence <= 1


def test_same_data_and_seed_give_the_same_model(tmp_path, taxonomy):
    a = train(TrainConfig(data=[SAMPLE], out=tmp_path / "a"), taxonomy, log=lambda m: None)
    b = train(TrainConfig(data=[SAMPLE], out=tmp_path / "b"), taxonomy, log=lambda m: None)
    wa, wb = np.load(a.bundle / "linear/weights.npz"), np.load(b.bundle / "linear/weights.npz")
    assert np.allclose(wa["coef"], wb["coef"])
    assert a.metrics["test"]["macro_f1"] == b.metrics["test"]["macro_f1"]


def test_evaluate_recomputes_the_report(sample_model, taxonomy, tmp_path):
    metrics = evaluate_bundle(sample_model, [SAMPLE], taxonomy, tmp_path / "report")
    assert metrics["n"] == 240
    assert (tmp_path / "report" / "confusion_matrix.png").stat().st_size > 1000
    assert np.array(metrics["confusion_matrix"]).sum() == 240


def test_probabilities_are_a_distribution(sample_model, taxonomy):
    predictor = Predictor(sample_model, taxonomy)
    probabilities = predictor.model.predict_proba(["暖气不热"], ["家里只有十二度"])
    assert probabilities.shape == (1, FIFTEEN) and probabilities.sum() == pytest.approx(1.0, abs=1e-5)


def test_metrics_on_a_known_case():
    labels = ["甲", "乙"]
    probabilities = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7]])
    metrics = compute_metrics(labels, ["甲", "乙", "乙", "乙"], probabilities)
    assert metrics["accuracy"] == 0.75
    assert metrics["confusion_matrix"] == [[1, 0], [1, 2]]
    assert metrics["per_class"]["乙"]["recall"] == pytest.approx(2 / 3)
    routing = {row["threshold"]: row for row in metrics["routing"]}
    # at 0.7 the one wrong prediction (0.6 sure) goes to a reviewer and the rest are all right
    assert routing[0.7] == {"threshold": 0.7, "to_review": 0.25, "auto_accuracy": 1.0, "auto_errors": 0}
    assert routing[0.5]["to_review"] == 0.0 and routing[0.5]["auto_errors"] == 1
    assert routing[0.9]["to_review"] == 0.75
    ece, _ = expected_calibration_error(np.array([[1.0, 0.0], [1.0, 0.0]]), np.array([True, False]))
    assert ece == pytest.approx(0.5)


@pytest.mark.parametrize("damage, reason", [
    (lambda b: (b / "manifest.json").unlink(), "manifest.json is missing"),
    (lambda b: (b / "manifest.json").write_text("{not json", encoding="utf-8"), "not valid JSON"),
    (lambda b: (b / "linear/weights.npz").write_bytes(b"garbage"), "does not match its checksum"),
    (lambda b: (b / "linear/weights.npz").unlink(), "weights.npz is missing"),
])
def test_corrupt_bundles_are_refused_with_a_reason(sample_model, taxonomy, tmp_path, damage, reason):
    bundle = tmp_path / "bundle"
    shutil.copytree(sample_model, bundle)
    damage(bundle)
    with pytest.raises(BundleError, match=reason):
        Predictor(bundle, taxonomy)


@pytest.mark.parametrize("appeal, field, reason", [
    (AppealInput(text=""), "text", "is empty"),
    (AppealInput(text=" \n\t\u3000 "), "text", "is empty"),
    (AppealInput(text="长" * 20_001), "text", "limit is 20000"),
    (AppealInput(text="有问题", title="题" * 501), "title", "limit is 500"),
])
def test_bad_appeals_get_a_clear_error(sample_model, taxonomy, appeal, field, reason):
    predictor = Predictor(sample_model, taxonomy)
    with pytest.raises(AppealInputError) as err:
        predictor.predict([appeal])
    assert err.value.field == field and reason in err.value.reason


@pytest.mark.parametrize("text", [
    "The street light outside my building has been broken for two weeks.",  # no Chinese
    "楼下垃圾没人清运😡😡😡，臭死了🤢",  # emoji
    "ＡＢＣ小区楼下垃圾没人清运，１２３４５已反映多次",  # full-width
    "樓下垃圾沒人清運，臭氣熏天，請儘快處理",  # traditional
    "!!!???。。。",
])
def test_odd_but_valid_text_gets_a_sensible_prediction(sample_model, taxonomy, text):
    prediction = Predictor(sample_model, taxonomy).predict_one(AppealInput(text=text))
    assert prediction.category in taxonomy.categories
    assert prediction.urgency in (1, 2, 3, 4) and prediction.appeal_type
    if not any("\u4e00" <= ch <= "\u9fff" for ch in text):
        assert "no_chinese_text" in prediction.warnings


def test_traditional_text_is_classified_like_simplified(sample_model, taxonomy):
    predictor = Predictor(sample_model, taxonomy)
    simplified = predictor.predict_one(AppealInput(text="楼下垃圾没人清运，臭气熏天，请尽快处理"))
    traditional = predictor.predict_one(AppealInput(text="樓下垃圾沒人清運，臭氣熏天，請儘快處理"))
    assert simplified.category == traditional.category
    assert simplified.category_confidence == pytest.approx(traditional.category_confidence, abs=1e-6)


def test_a_bundle_whose_labels_are_not_in_the_taxonomy_is_refused(sample_model, taxonomy, tmp_path):
    from serving.model.bundle import write_manifest

    bundle = tmp_path / "bundle"
    shutil.copytree(sample_model, bundle)
    data = json.loads((bundle / "manifest.json").read_text(encoding="utf-8"))
    data["heads"]["category"]["labels"][0] = "外星事务"
    (bundle / "manifest.json").unlink()
    write_manifest(bundle, {k: v for k, v in data.items() if k not in ("files", "format_version", "created_at")})
    with pytest.raises(BundleError, match="外星事务"):
        Predictor(bundle, taxonomy)
