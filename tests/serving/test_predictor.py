"""The predictor as the service uses it: one validated appeal in, one classification out — a path down
the tree that backs off where it is unsure, the owning department, the place, and the reasons."""

from __future__ import annotations

import pytest

from serving.model.appeals import AppealInput, validate_appeal
from serving.model.predictor import Predictor

HEATING = AppealInput(title="暖气不热", text="朝阳区建外街道永安里小区3号楼暖气一直不热，室温只有14度，家里有老人。")


@pytest.fixture(scope="module")
def predictor(sample_model, taxonomy):
    return Predictor(sample_model, taxonomy)


def test_an_appeal_is_validated_and_normalised_once(predictor):
    raw = AppealInput(title="暖氣不熱", text="ＡＢＣ小區暖氣一直不熱，室溫只有１４度")
    checked = validate_appeal(raw)
    assert not raw.validated and checked.validated
    assert checked.clean_title == "暖气不热" and "ABC小区" in checked.clean_text and "14度" in checked.clean_text
    assert validate_appeal(checked) is checked  # a validated appeal is not checked again
    assert checked.text == raw.text  # what the citizen wrote is kept as written
    assert predictor.predict_one(raw).to_dict() == predictor.predict_one(checked).to_dict()


def test_the_classification_is_a_path_down_the_tree_with_its_best_guess_below(predictor, taxonomy):
    c = predictor.predict_one(HEATING)
    assert c.category == "/".join(c.category_path)
    assert c.category_guess[:len(c.category_path)] == c.category_path  # the guess extends the backed-off path
    assert taxonomy.categories.find(c.category) is not None
    assert len(c.category_confidences) == len(c.category_path)
    assert all(0.0 <= p <= 1.0 for p in c.category_guess_confidences)
    assert c.category_confidence == pytest.approx(c.category_confidences[-1])
    assert c.category_top3[0][0] == c.category_path[0]


def test_the_owner_is_a_department_of_the_profile_and_the_place_is_resolved(predictor, taxonomy):
    c = predictor.predict_one(HEATING)
    assert taxonomy.units.department(c.department) is not None
    assert (c.district, c.street) == ("朝阳区", "建外街道") and c.street_id.startswith("street:")
    assert c.urgency in (1, 2, 3, 4) and c.urgency_reason and c.appeal_type_reason


def test_an_address_field_places_an_appeal_whose_text_names_no_place(predictor):
    appeal = AppealInput(text="楼下垃圾三天没人清运，臭气熏天。", address="北京市海淀区中关村街道中关村大街1号")
    c = predictor.predict_one(appeal)
    assert (c.district, c.street) == ("海淀区", "中关村街道")
    assert predictor.predict_one(AppealInput(text=appeal.text)).street is None


def test_many_appeals_are_classified_in_order_and_keep_their_ids(predictor):
    appeals = [AppealInput(id=str(i), text=text) for i, text in enumerate(
        ["楼道里燃气泄漏，味道很大！", "请问居住证怎么办理？", "小区门口共享单车乱停放。"])]
    results = predictor.predict(appeals)
    assert [r.id for r in results] == ["0", "1", "2"]
    assert [r.to_dict() for r in results] == [predictor.predict_one(a).to_dict() for a in appeals]


def test_text_without_chinese_is_classified_with_a_warning(predictor):
    c = predictor.predict_one(AppealInput(text="The street light outside my building is broken."))
    assert "no_chinese_text" in c.warnings
