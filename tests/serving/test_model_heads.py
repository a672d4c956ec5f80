"""How the predictor combines the rule layer with a bundle's urgency and appeal-type heads.

Bundles that learnt urgency from people's labels (their manifest's ``decision`` names an urgency
threshold): a trusted danger rule decides, otherwise the learned head. Older bundles: a rule that fired
on a signal decides; a confident head decides only where the rules fell back to a default; a type the
head changes moves a default urgency with it, never a signalled one."""

from __future__ import annotations

import numpy as np
import pytest

import json
import shutil

from serving.model.bundle import write_manifest
from serving.model.predictor import AppealInput, Predictor

TYPES = ["投诉", "举报", "求助", "咨询", "建议", "表扬"]


class StubHeads:
    """Wraps the sample model's category and answers fixed urgency/type head probabilities."""

    parallel_safe = True

    def __init__(self, inner, urgency: dict[str, float], appeal_type: dict[str, float]):
        self.inner, self.labels = inner, inner.labels
        self.heads = {"category": inner.labels, "urgency": ["1", "2", "3", "4"], "appeal_type": TYPES}
        self.urgency = np.array([urgency.get(k, 0.0) for k in self.heads["urgency"]])
        self.appeal_type = np.array([appeal_type.get(k, 0.0) for k in TYPES])

    def predict_all(self, titles, texts):
        n = len(titles)
        return {"category": self.inner.predict_proba(titles, texts), "urgency": np.tile(self.urgency, (n, 1)),
                "appeal_type": np.tile(self.appeal_type, (n, 1))}


@pytest.fixture
def learned(sample_model, taxonomy):
    return Predictor(sample_model, taxonomy)


@pytest.fixture
def predictor(sample_model, taxonomy, tmp_path):
    """The sample bundle as an older bundle is: without decisions chosen on validation."""
    legacy = tmp_path / "legacy"
    shutil.copytree(sample_model, legacy)
    data = json.loads((legacy / "manifest.json").read_text(encoding="utf-8"))
    data.pop("decision")
    data.pop("files", None)
    write_manifest(legacy, data)
    return Predictor(legacy, taxonomy)


def with_heads(predictor, urgency, appeal_type):
    inner = predictor.model.inner if isinstance(predictor.model, StubHeads) else predictor.model
    predictor.model = StubHeads(inner, urgency, appeal_type)
    return predictor


def test_a_signal_in_the_text_beats_a_confident_head(predictor):
    p = with_heads(predictor, {"4": 0.95}, {"表扬": 0.95}).predict_one(
        AppealInput(text="楼道里燃气泄漏，味道很大，请马上来人！"))
    assert p.urgency == 1 and "燃气泄漏" in p.urgency_reason  # the head's 表扬 may not lower a gas leak
    assert p.urgency_rule == "urgency.1.phrase"


def test_a_confident_head_decides_where_the_rules_only_defaulted(predictor):
    appeal = AppealInput(text="单位附近的公交站牌字太小，看不清。")
    before = predictor.predict_one(appeal)
    assert before.urgency_rule in ("urgency.default", "urgency.type_default")
    p = with_heads(predictor, {"2": 0.9}, {"投诉": 0.9}).predict_one(appeal)
    assert p.urgency == 2 and p.urgency_rule == "model.urgency" and "模型判断" in p.urgency_reason


def test_an_unsure_head_changes_nothing(predictor):
    appeal = AppealInput(text="单位附近的公交站牌字太小，看不清。")
    before = predictor.predict_one(appeal)
    p = with_heads(predictor, {"1": 0.4, "4": 0.6 - 1e-9}, {"建议": 0.5}).predict_one(appeal)
    assert (p.urgency, p.appeal_type) == (before.urgency, before.appeal_type)


def test_a_type_from_the_head_takes_its_default_urgency_along(predictor):
    appeal = AppealInput(text="单位附近的公交站牌字太小，看不清。")
    p = with_heads(predictor, {}, {"建议": 0.9}).predict_one(appeal)
    assert p.appeal_type == "建议" and "model.appeal_type" in p.appeal_type_reason
    assert p.urgency == 4  # 建议 is fixed at 普通 in urgency.yaml, as the rules would have said for 建议


def test_the_sample_bundle_learnt_its_decisions(learned):
    assert learned.learned and learned.decisions.urgent is not None
    assert "urgency.1.phrase" in learned.decisions.urgency_rules  # a danger phrase stays a rule


def test_learned_a_danger_phrase_decides_whatever_the_heads_say(learned):
    p = with_heads(learned, {"4": 0.99}, {"表扬": 0.99}).predict_one(AppealInput(text="楼道里燃气泄漏，味道很大，请马上来人！"))
    assert p.urgency == 1 and p.urgency_rule == "urgency.1.phrase" and "燃气泄漏" in p.urgency_reason


def test_learned_the_head_decides_without_a_danger_signal_and_says_so(learned):
    appeal = AppealInput(text="单位附近的公交站牌字太小，看不清。")
    urgent = with_heads(learned, {"2": 0.97, "3": 0.03}, {"投诉": 0.9}).predict_one(appeal)
    assert urgent.urgency == 2 and urgent.urgency_rule == "model.urgency" and "模型判断" in urgent.urgency_reason
    routine = with_heads(learned, {"3": 0.1, "4": 0.9}, {"咨询": 0.9}).predict_one(appeal)
    assert routine.urgency == 4 and routine.appeal_type == "咨询" and "model.appeal_type" in routine.appeal_type_reason
