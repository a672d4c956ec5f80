"""Annotations: ids and labels only, checked against the profile, joined to their texts by file and id;
the team's dataset holds what the dataset card says; agreement is Cohen's κ per field."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from training.annotation.agreement import agreement
from training.annotation.load import load_annotations
from training.annotation.records import AnnotationError, parse_row, read_annotations
from training.data import SplitConfig, assign_splits, load_frame

ROOT = Path(__file__).resolve().parents[2]
ANNOTATIONS = ROOT / "data" / "annotations"


@pytest.fixture
def tipdm_dir(tmp_path):
    """A shared-data directory in the tipdm shape, with appeals the tests write themselves."""
    tipdm = tmp_path / "tipdm2020c"
    tipdm.mkdir()
    pd.DataFrame([
        {"id": "11", "user": "u1", "created_at": "", "title": "小区暖气不热", "text": "家里暖气冰凉，室温只有十二度，老人受不了。",
         "category": "城乡建设", "source": "original", "title_match": "", "text_match": ""},
        {"id": "12", "user": "u2", "created_at": "", "title": "工地夜间施工", "text": "工地每天夜里十二点还在施工，噪音扰民。",
         "category": "环境保护", "source": "original", "title_match": "", "text_match": ""},
    ]).to_csv(tipdm / "appeals_labelled.csv", index=False)
    pd.DataFrame([{"id": "7", "user": "u3", "created_at": "", "title": "低保申请", "text": "请问低保怎么申请，需要什么材料？",
                   "likes": "0", "dislikes": "0"}]).to_csv(tipdm / "appeals_with_votes.csv", index=False)
    pd.DataFrame([{"id": "9", "user": "u4", "created_at": "", "title": "公交车不停站", "text": "12路公交车经常不停站。",
                   "reply": "经核实，已要求公交公司整改。A市交通运输局", "replied_at": ""}]).to_csv(
        tipdm / "appeals_with_replies.csv", index=False)
    return tmp_path


def write(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


HEATING = {"file": "appeals_labelled.csv", "id": "11", "category": "城乡建设/供暖/暖气不热", "urgency": 2,
           "appeal_type": "投诉", "department": "management", "company": "heating", "split": "test"}
LOW_INCOME = {"file": "appeals_with_votes.csv", "id": "7", "category": "民政/社会救助", "urgency": 4,
              "appeal_type": "咨询", "department": "civil_affairs", "company": None}
BUS = {"file": "appeals_with_replies.csv", "id": "9", "category": "城乡建设/公共交通/公交服务", "urgency": 3,
       "appeal_type": "投诉", "department": "transport", "company": "bus", "handling_unit": "A市交通运输局",
       "handling_unit_level": "city"}


def test_annotations_are_joined_to_their_texts_by_file_and_id(taxonomy, tipdm_dir, tmp_path):
    frame = load_annotations(write(tmp_path / "a.jsonl", [HEATING, LOW_INCOME, BUS]), taxonomy, tipdm_dir)
    assert list(frame["text"])[0].startswith("家里暖气冰凉")
    assert list(frame["category"]) == ["城乡建设", "民政", "城乡建设"]
    assert list(frame["company"]) == ["heating", "none", "bus"]  # null: a person decided no company
    assert list(frame["fixed_split"]) == ["test", "", ""]


def test_ids_the_data_does_not_hold_are_named_in_one_line(taxonomy, tipdm_dir, tmp_path):
    missing = [{**LOW_INCOME, "id": "404"}, {**BUS, "id": "405"}]
    with pytest.raises(AnnotationError) as caught:
        load_annotations(write(tmp_path / "a.jsonl", [HEATING, *missing]), taxonomy, tipdm_dir)
    message = str(caught.value)
    assert "\n" not in message and "2 id(s) not found" in message and "V:404" in message and "R:405" in message


@pytest.mark.parametrize("change, field", [
    ({"category": "城乡建设/不存在"}, "category"),
    ({"category": "城乡建设"}, "category"),  # level 2 at least
    ({"urgency": 5}, "urgency"),
    ({"appeal_type": "抱怨"}, "appeal_type"),
    ({"department": "mayor"}, "department"),
    ({"company": "tap_water"}, "company"),
    ({"handling_unit": "某局", "handling_unit_level": "province"}, "handling_unit_level"),
    ({"suggestion": {"source": "model"}}, "suggestion"),  # the test split is annotated blind
], ids=["未知分类", "只到一级", "紧急程度", "类型", "部门", "企业", "承办层级", "测试集不得有建议"])
def test_a_bad_label_names_its_line_and_field(change, field, taxonomy):
    with pytest.raises(AnnotationError, match=f"line 3, field '{field}'"):
        parse_row({**HEATING, **change}, taxonomy, file="a.jsonl", line=3)


def test_an_annotated_row_replaces_the_plain_row_and_its_repeats_stay_in_test(taxonomy, tipdm_dir, tmp_path):
    public = tipdm_dir / "tipdm2020c" / "appeals_labelled.csv"
    annotations = write(tmp_path / "a.jsonl", [HEATING, LOW_INCOME, BUS])
    frame = load_frame([public, annotations], taxonomy, 1, tipdm_dir)
    assert len(frame) == 4  # 2 public rows, one of them replaced by its annotation, + 2 more annotations
    heating = frame[frame["id"] == "11"]
    assert len(heating) == 1 and heating.iloc[0]["category_path"] == "城乡建设/供暖/暖气不热"
    frame["split"] = assign_splits(frame, SplitConfig(validation=0.0, test=0.0))
    assert frame.loc[frame["id"] == "11", "split"].item() == "test"
    assert set(frame.loc[frame["id"] != "11", "split"]) == {"train"}


def test_agreement_is_cohens_kappa_per_field(taxonomy):
    first = [parse_row({**HEATING, "split": "train"}, taxonomy), parse_row(LOW_INCOME, taxonomy),
             parse_row(BUS, taxonomy)]
    second = [parse_row({**HEATING, "split": "train", "urgency": 3}, taxonomy), parse_row(LOW_INCOME, taxonomy),
              parse_row({**BUS, "category": "城乡建设/公共交通/公交线路与站点", "company": None}, taxonomy)]
    result = agreement(first, second)
    assert result["category level 2"] == {"n": 3, "agreement": 1.0, "kappa": 1.0}
    assert result["category level 3"]["agreement"] == pytest.approx(2 / 3)
    assert result["urgent (1–2) or not"]["agreement"] == pytest.approx(2 / 3)
    assert result["urgent (1–2) or not"]["kappa"] < 1


def test_the_teams_annotations_hold_what_the_dataset_card_says(taxonomy):
    test = read_annotations(ANNOTATIONS / "test.jsonl", taxonomy)
    train = read_annotations(ANNOTATIONS / "train.jsonl", taxonomy)
    assert len(test) >= 600 and all(a.split == "test" and a.blind for a in test)
    assert len(train) + len(test) >= 3000 and all(len(a.path) >= 2 for a in train + test)
    keys = [a.key for a in train + test]
    assert len(keys) == len(set(keys))  # an appeal is annotated once
    per_category = pd.Series([a.path[0] for a in train + test]).value_counts()
    assert len(per_category) == 15 and per_category.min() >= 40
    first = read_annotations(ANNOTATIONS / "agreement" / "first.jsonl", taxonomy)
    second = read_annotations(ANNOTATIONS / "agreement" / "second.jsonl", taxonomy)
    assert len(first) == len(second) >= 300
    assert {a.annotator for a in first}.isdisjoint({a.annotator for a in second})  # independent readers
    assert agreement(first, second)["category level 1"]["kappa"] > 0.8


def test_a_focus_pool_is_drawn_from_what_nobody_read_and_its_readings_are_appended(taxonomy, tipdm_dir, tmp_path,
                                                                                      data_dir):
    from training.annotation.cli import main

    (tipdm_dir / "admin").symlink_to(Path(data_dir) / "admin")  # the street list the profile loads
    annotations = tmp_path / "annotations"
    annotations.mkdir()
    write(annotations / "test.jsonl", [HEATING])
    write(annotations / "train.jsonl", [])
    (annotations / "sampling.json").write_text(json.dumps({"seed": 13, "blind": ["L:11"]}), encoding="utf-8")
    pool_dir = tmp_path / "focus"
    import training.annotation.cli as cli

    original = cli.ANNOTATIONS
    cli.ANNOTATIONS = annotations
    try:
        assert main(["focus", "--out", str(pool_dir), "--random", "5", "--data-dir", str(tipdm_dir)]) == 0
    finally:
        cli.ANNOTATIONS = original
    pool = json.loads((pool_dir / "pool.json").read_text(encoding="utf-8"))
    assert "L:11" not in pool["refs"] and {"L:12", "V:7", "R:9"} == set(pool["refs"])  # the read one is not drawn
    assert "V:7" not in pool["candidates"]["urgent:living"]  # 低保怎么申请 holds no urgent phrase
    (pool_dir / "raw" / "a1").mkdir(parents=True)
    write(pool_dir / "raw" / "a1" / "F001.jsonl", [{**{k: v for k, v in LOW_INCOME.items() if k not in ("file", "id")},
                                                    "ref": "V:7"}])
    (pool_dir / "raw" / "pool.json").write_text((pool_dir / "pool.json").read_text(encoding="utf-8"), encoding="utf-8")
    args = ["append", str(pool_dir / "raw"), "--pool", "focus", "--annotations", str(annotations),
            "--data-dir", str(tipdm_dir)]
    assert main(args) == 0
    rows = [json.loads(line) for line in (annotations / "train.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [(r["id"], r["category"], r["annotator"], r["split"], r.get("suggestion")) for r in rows] == [
        ("7", "民政/社会救助", "a1", "train", None)]
    assert json.loads((annotations / "sampling.json").read_text(encoding="utf-8"))["focus"] == ["V:7"]
    assert main(args) == 2  # a pool is appended once
