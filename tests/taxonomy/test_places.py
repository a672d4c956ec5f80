"""The place resolver finds the district and 街乡 an appeal names, and says nothing rather than guess."""

from __future__ import annotations

import pytest

from taxonomy.places import PlaceResolver


@pytest.fixture(scope="module")
def resolver(taxonomy):
    return PlaceResolver(taxonomy.units, taxonomy.street_aliases, taxonomy.not_place_names)


@pytest.mark.parametrize("text, district, street", [
    ("市民来电反映：朝阳区建外街道永安里小区3号楼楼下垃圾堆了一周没人清运。", "朝阳区", "建外街道"),
    ("我住在建国门外街道光华里，暖气一直不热。", "朝阳区", "建外街道"),
    ("建外街道办事处对我们反映的问题一直不回复。", "朝阳区", "建外街道"),
    ("朝阳门外大街施工，夜里十二点还在打桩。", "朝阳区", "朝外街道"),
    ("东城区朝阳门街道的胡同里有人私搭乱建。", "东城区", "朝阳门街道"),
    ("海淀区八里庄街道某小区电梯经常坏。", "海淀区", "八里庄街道"),
    ("朝阳八里庄那边的菜市场占道经营。", "朝阳区", "八里庄街道"),
    ("北七家镇人民政府门口的路灯坏了半个月。", "昌平区", "北七家镇"),
    ("南磨房地区办事处辖区百子湾路积水。", "朝阳区", "南磨房地区"),
    ("来广营乡的一个村子里有人焚烧垃圾。", "朝阳区", "来广营地区"),
    ("我在昌平回龙观上班，地铁太挤了。", "昌平区", "回龙观街道"),
    ("德勝街道的老樓加裝電梯進展如何？", "西城区", "德胜街道"),  # traditional characters
    ("通州区的公交线路太少。", "通州区", None),
    ("朝阳区有没有针对老年人的助餐点？", "朝阳区", None),
])
def test_resolves_realistic_sentences(resolver, text, district, street):
    match = resolver.resolve(text)
    assert (match.district.name if match.district else None) == district
    assert (match.street.name if match.street else None) == street


@pytest.mark.parametrize("text", [
    "八里庄附近有人在路边烧烤，油烟很大。",  # 八里庄街道 is in both 朝阳区 and 海淀区
    "朝阳和通州交界的那条路没有路灯。",
    "A1区A2区华庭小区自来水有霉味。",  # masked places in the public data
    "请问居住证怎么办理？",
])
def test_returns_nothing_rather_than_a_guess(resolver, text):
    match = resolver.resolve(text)
    assert match.district is None and match.street is None


def test_ambiguity_is_reported(resolver):
    match = resolver.resolve("八里庄附近有人占道经营。")
    assert set(match.ambiguous) == {"朝阳区", "海淀区"}


def test_address_outweighs_a_passing_mention(resolver):
    match = resolver.resolve("我以前住在海淀，现在这里的路灯坏了。", address="北京市朝阳区望京街道望京西园三区")
    assert match.district.name == "朝阳区" and match.street.name == "望京街道"


def test_a_name_inside_a_longer_word_is_not_read(resolver):
    # 朝阳 inside 朝阳门 is not the district 朝阳区
    match = resolver.resolve("朝阳门附近的公交站牌被撞坏了。")
    assert match.district.name == "东城区"


def test_sample_set_places_agree_with_their_labels(resolver, sample_rows):
    """On the team's 240 labelled Beijing appeals (district null where the appeal names none or two)."""
    districts = streets = 0
    for row in sample_rows:
        match = resolver.resolve(f"{row['title']}。{row['text']}")
        districts += (match.district.name if match.district else None) == row["district"]
        streets += (match.street.name if match.street else None) == row["street"]
    assert districts / len(sample_rows) >= 0.9
    assert streets / len(sample_rows) >= 0.8


def test_a_bare_name_that_is_an_ordinary_word_is_not_a_place(resolver):
    assert resolver.resolve("我是河北来的务工人员，老板拖欠工资。").district is None
    assert resolver.resolve("房山区河北镇的村道坏了。").street.name == "河北镇"
