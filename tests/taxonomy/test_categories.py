"""The category tree is data: the Beijing tree, the platform importer, and errors that name file and key."""

from __future__ import annotations

import textwrap

import pytest

from taxonomy import CategoryTree, TaxonomyError

PLATFORM_TOP = ["交通运输", "党务政务", "农村农业", "劳动和社会保障", "卫生计生", "商贸旅游", "国土资源", "城乡建设",
                "政法", "教育文体", "民政", "环境保护", "科技与信息产业", "纪检监察", "经济管理"]


def test_beijing_tree_has_three_levels_and_the_platforms_fifteen_first_level_categories(taxonomy):
    tree = taxonomy.categories
    assert set(PLATFORM_TOP) <= set(tree.top_level_names)
    assert len(tree.level(2)) >= 90 and len(tree.level(3)) >= 300
    assert max(node.level for node in tree.walk()) == 3
    for node in tree.level(2):
        assert node.children, f"{node.label} has no third level"


def test_owner_and_company_are_inherited_and_overridden(taxonomy):
    tree = taxonomy.categories
    heating = tree.get("城乡建设/供暖/停暖与未供暖")
    assert heating.company == "heating"
    assert heating.owner == tree.get("城乡建设/供暖").owner
    illegal_parking = tree.get("交通运输/停车管理/违法停车")
    assert illegal_parking.owner == "traffic_police" != tree.get("交通运输").owner


def test_lookup_by_path_and_by_unique_name(taxonomy):
    tree = taxonomy.categories
    assert tree.get("燃气泄漏").label == "城乡建设/燃气/燃气泄漏"
    assert "城乡建设" in tree and "城乡建设/燃气" in tree
    assert "不存在的分类" not in tree
    with pytest.raises(TaxonomyError, match="not in the category tree"):
        tree.get("不存在的分类")


def test_platform_csv_imports_as_an_alternative_tree(data_dir):
    tree = CategoryTree.from_csv(data_dir / "tipdm2020c" / "category_tree.csv")
    assert sorted(tree.top_level_names) == sorted(PLATFORM_TOP)
    assert len({n.name for n in tree.level(2)}) == 103
    assert len({n.name for n in tree.level(3)}) == 390
    assert tree.get("城乡建设/安全生产/事故处理").level == 3


def test_csv_importer_names_the_missing_column(tmp_path):
    path = tmp_path / "tree.csv"
    path.write_text("一级分类,二级\n城乡建设,供暖\n", encoding="utf-8")
    with pytest.raises(TaxonomyError) as err:
        CategoryTree.from_csv(path)
    assert err.value.file == str(path) and err.value.key == "二级分类"


def write(tmp_path, text: str):
    path = tmp_path / "categories.yaml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


@pytest.mark.parametrize("yaml_text, key, reason", [
    ("categories:\n  - name: 城乡建设\n    children: [供暖, 供暖]\n", "categories[0].children[1].name", "duplicate"),
    ("categories:\n  - name: 城乡建设\n    colour: red\n", "categories[0].colour", "Extra inputs"),
    ("categories:\n  - name: A\n    children:\n      - name: B\n        children:\n          - name: C\n"
     "            children: [D]\n", "categories[0].children[0].children[0].children[0]", "at most 3 levels"),
    ("categories:\n  - name: 城乡建设\n    scope: everywhere\n", "categories[0].scope", "citywide"),
    ("categories: [\n", None, "not valid YAML"),
])
def test_tree_errors_name_file_key_and_reason(tmp_path, yaml_text, key, reason):
    path = write(tmp_path, yaml_text)
    with pytest.raises(TaxonomyError) as err:
        CategoryTree.from_yaml(path)
    assert err.value.file == str(path)
    if key is not None:
        assert err.value.key.startswith(key)
    assert reason in str(err.value)
