"""A profile loads as a whole and its files are checked against each other."""

from __future__ import annotations

import shutil

import pytest
import yaml

from taxonomy import APPEAL_TYPES, TaxonomyError, load_taxonomy
from taxonomy.profile import PROFILES_DIR


def test_beijing_profile_holds_the_whole_vocabulary(taxonomy):
    assert [lvl.name for lvl in taxonomy.urgency.levels] == ["特急", "紧急", "一般", "普通"]
    for level in taxonomy.urgency.levels:
        assert level.definition and level.response_hours <= level.resolution_hours
    assert taxonomy.urgency.get(1).response_hours < taxonomy.urgency.get(3).response_hours
    assert "燃气泄漏" in taxonomy.urgency.get(1).signals.phrases
    assert "被困" in taxonomy.urgency.get(1).signals.phrases
    assert "塌陷" in taxonomy.urgency.get(1).signals.phrases
    assert {"停水", "停电", "停暖"} <= set(taxonomy.urgency.get(2).signals.phrases)
    assert set(taxonomy.appeal_types.names) == set(APPEAL_TYPES)
    weights = taxonomy.scoring.weights
    assert weights.response_rate + weights.resolution_rate + weights.satisfaction_rate == pytest.approx(1.0)


def test_units_come_from_the_profile_and_the_official_street_list(taxonomy):
    units = taxonomy.units
    assert len(units.of_kind("district")) == 16
    assert len(units.of_kind("street")) == 349
    assert units.district("110105").name == "朝阳区"
    services = {u.service for u in units.of_kind("company")}
    assert {"water", "power", "gas", "heating", "telecom", "transit"} <= services
    assert units.department("housing").name == "北京市住房和城乡建设委员会"
    assert units.department("housing", "110105").name == "朝阳区住房和城乡建设委员会"
    assert units.department("police", "110108").name == "北京市公安局海淀分局"
    # every category's owner is a registered department
    for node in taxonomy.categories.walk():
        assert units.department(node.owner) is not None, node.label


def copy_profile(tmp_path):
    target = tmp_path / "profile"
    shutil.copytree(PROFILES_DIR / "beijing", target)
    return target


def edit_yaml(path, change):
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    change(data)
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")


def test_unknown_owner_is_reported_with_the_category_path(tmp_path, data_dir):
    profile = copy_profile(tmp_path)
    edit_yaml(profile / "categories.yaml", lambda d: d["categories"][0].update(owner="no_such_department"))
    with pytest.raises(TaxonomyError) as err:
        load_taxonomy(profile, data_dir=data_dir)
    assert err.value.file.endswith("categories.yaml")
    assert "no_such_department" in err.value.reason


def test_missing_urgency_level_is_refused(tmp_path, data_dir):
    profile = copy_profile(tmp_path)
    edit_yaml(profile / "urgency.yaml", lambda d: d["levels"].pop())
    with pytest.raises(TaxonomyError) as err:
        load_taxonomy(profile, data_dir=data_dir)
    assert err.value.file.endswith("urgency.yaml") and err.value.key == "levels"
    assert "1, 2, 3, 4" in err.value.reason


def test_bad_signal_pattern_names_its_key(tmp_path, data_dir):
    profile = copy_profile(tmp_path)
    edit_yaml(profile / "urgency.yaml", lambda d: d["levels"][1]["signals"]["patterns"].append("(停水"))
    with pytest.raises(TaxonomyError) as err:
        load_taxonomy(profile, data_dir=data_dir)
    assert err.value.key.startswith("levels[1].signals.patterns")


def test_weights_must_sum_to_one(tmp_path, data_dir):
    profile = copy_profile(tmp_path)
    edit_yaml(profile / "scoring.yaml", lambda d: d["weights"].update(response_rate=0.5))
    with pytest.raises(TaxonomyError, match="sum to 1"):
        load_taxonomy(profile, data_dir=data_dir)


def test_missing_street_list_says_where_it_looked(tmp_path):
    with pytest.raises(TaxonomyError, match="street list not found"):
        load_taxonomy(data_dir=tmp_path)


def test_unknown_profile_lists_the_known_ones():
    with pytest.raises(TaxonomyError, match="beijing"):
        load_taxonomy("atlantis")


def test_alternative_category_tree_from_the_platform_csv(data_dir):
    tx = load_taxonomy(data_dir=data_dir, categories_file=data_dir / "tipdm2020c" / "category_tree.csv")
    assert "纪检监察/干部作风" in tx.categories
