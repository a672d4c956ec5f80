"""Labelled appeals load from CSV, JSONL or Parquet into seeded, stratified, duplicate-safe splits."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from tests.conftest import SAMPLE
from training.data import DataError, SplitConfig, assign_splits, duplicate_groups, load_appeals, load_frame

ROWS = [
    {"id": "a1", "title": "小区暖气不热", "text": "朝阳区建外街道某小区暖气一直不热。", "category": "城乡建设", "urgency": "2"},
    {"id": "a2", "title": "噪音扰民", "text": "楼下商户夜间噪音。", "category": "环境保护", "urgency": ""},
    {"id": "a3", "title": "拖欠工资", "text": "", "category": "劳动和社会保障", "urgency": "2"},
]


def write_csv(tmp_path, rows, name="appeals.csv"):
    path = tmp_path / name
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "parquet"])
def test_reads_every_format(tmp_path, taxonomy, fmt):
    path = tmp_path / f"appeals.{fmt}"
    frame = pd.DataFrame(ROWS)
    if fmt == "csv":
        frame.to_csv(path, index=False)
    elif fmt == "jsonl":
        path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in ROWS), encoding="utf-8")
    else:
        frame.to_parquet(path)
    loaded = load_frame([path], taxonomy)
    assert list(loaded["category"]) == ["城乡建设", "环境保护", "劳动和社会保障"]
    assert list(loaded["urgency"]) == [2, -1, 2]
    assert loaded["text"][2] == ""  # a title-only appeal is allowed


def test_deeper_category_paths_map_to_the_trained_level(tmp_path, taxonomy):
    path = write_csv(tmp_path, [{"title": "暖气不热", "text": "家里冷", "category": "城乡建设/供暖/停暖与未供暖"},
                                {"title": "燃气", "text": "闻到味道", "category": "燃气泄漏"}])
    assert list(load_frame([path], taxonomy)["category"]) == ["城乡建设", "城乡建设"]
    assert list(load_frame([path], taxonomy, level=2)["category"]) == ["城乡建设/供暖", "城乡建设/燃气"]


@pytest.mark.parametrize("rows, column, row, reason", [
    ([{"title": "a", "category": "城乡建设"}], "text", None, "missing column"),
    ([{"title": "", "text": "   ", "category": "城乡建设"}], "text", 1, "empty appeal"),
    ([{"title": "噪音", "text": "很吵", "category": "城管"}], "category", 1, "not in the taxonomy"),
    ([{"title": "噪音", "text": "很吵", "category": "环境保护", "urgency": "5"}], "urgency", 1, "not a level 1–4"),
    ([{"title": "噪音", "text": "很吵", "category": "环境保护", "appeal_type": "抱怨"}], "appeal_type", 1,
     "not one of"),
])
def test_errors_name_file_row_and_column(tmp_path, taxonomy, rows, column, row, reason):
    path = write_csv(tmp_path, rows)
    with pytest.raises(DataError) as err:
        load_frame([path], taxonomy)
    assert err.value.file == str(path) and err.value.column == column and err.value.row == row
    assert reason in str(err.value)


def test_invalid_utf8_and_broken_json_are_clear_errors(tmp_path, taxonomy):
    bad = tmp_path / "bad.csv"
    bad.write_bytes("title,text,category\n".encode() + "噪音".encode("gbk") + b",x,\xff\n")
    with pytest.raises(DataError, match="not valid UTF-8"):
        load_frame([bad], taxonomy)
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"title": "a", "text": "b", "category": "环境保护"}\n{"title": \n', encoding="utf-8")
    with pytest.raises(DataError) as err:
        load_frame([broken], taxonomy)
    assert err.value.row == 2 and "not valid JSON" in str(err.value)
    with pytest.raises(DataError, match="unknown file type"):
        load_frame([tmp_path / "x.xlsx"], taxonomy) if (tmp_path / "x.xlsx").write_text("") is not None else None


def test_duplicates_share_a_group():
    groups = duplicate_groups(["暖气不热", "暖气不热", "停水", "别的标题"], ["a", "b", "c", "c"])
    assert groups[0] == groups[1] and groups[2] == groups[3] and groups[0] != groups[2]


def test_splits_are_seeded_stratified_order_free_and_keep_duplicates_together(data_dir, taxonomy):
    frame = load_frame([data_dir / "tipdm2020c" / "appeals_labelled.csv"], taxonomy)
    splits = assign_splits(frame, SplitConfig(seed=7))
    assert list(splits) == list(assign_splits(frame, SplitConfig(seed=7)))
    assert list(splits) != list(assign_splits(frame, SplitConfig(seed=8)))
    shuffled = frame.sample(frac=1.0, random_state=3)
    assert dict(zip(shuffled["id"], assign_splits(shuffled.reset_index(drop=True), SplitConfig(seed=7)))) == \
        dict(zip(frame["id"], splits))
    frame["split"] = splits
    shares = frame.groupby("category")["split"].value_counts(normalize=True).unstack()
    assert shares["test"].between(0.07, 0.13).all() and shares["validation"].between(0.07, 0.13).all()
    groups = duplicate_groups(list(frame["title"]), list(frame["text"]))
    frame["group"] = groups
    assert frame.groupby("group")["split"].nunique().max() == 1
    for column in ("title", "text"):
        nonempty = frame[frame[column] != ""]
        assert nonempty.groupby(column)["split"].nunique().max() == 1


def test_load_appeals_returns_a_datasetdict(taxonomy):
    dataset = load_appeals(SAMPLE, taxonomy, SplitConfig(seed=13))
    assert set(dataset) == {"train", "validation", "test"}
    assert sum(len(part) for part in dataset.values()) == 240
    assert {"id", "title", "text", "category", "urgency", "appeal_type", "district", "street"} <= set(
        dataset["train"].column_names)
