"""Hotspots: the same problem in the same place within a window clusters; other problems do not."""

from __future__ import annotations

from datetime import datetime, timedelta

import json

from serving.analytics.hotspots import Appeal, cluster, find_hotspots
from tests.conftest import SAMPLE

T0 = datetime(2027, 1, 10, 8, 0)  # after the sample set's dates: its appeals give the vocabulary, not members
HEATING = ["朝阳区南磨房地区和馨家园{n}号楼暖气不热", "和馨家园暖气不热，室温只有{n}度", "南磨房和馨家园{n}号楼暖气片冰凉",
           "和馨家园小区暖气不热，家里老人受不了（{n}号楼）", "投诉和馨家园{n}号楼供暖不达标，暖气不热"]
OTHERS = ["望京西园三区门口共享单车乱停放", "建外街道永安里路灯不亮", "海淀区中关村大街夜间施工噪音扰民",
          "丰台区方庄芳城园停水一天", "通州区九棵树东路烧烤店油烟扰民", "西城区德胜街道加装电梯进度咨询"]


def heating_day(n=25, start=T0) -> list[Appeal]:
    """The service knows where each appeal happens (the resolved street): it is passed as the place."""
    return [Appeal(id=f"h{i}", title=HEATING[i % len(HEATING)].format(n=i % 9 + 3), place="南磨房地区",
                   text=f"市民来电：{HEATING[i % len(HEATING)].format(n=i % 9 + 3)}，请尽快处理。", at=start + timedelta(minutes=20 * i))
            for i in range(n)]


def background() -> list[Appeal]:
    """Other appeals around the same days, and the team's 240 sample appeals from the months before."""
    around = [Appeal(id=f"o{i}", title=t, text=f"{t}，已经好几天了，请有关部门处理。", at=T0 + timedelta(days=i % 20, hours=i))
              for i, t in enumerate(OTHERS)]
    earlier = [Appeal(id=r["id"], title=r["title"], text=r["text"], at=datetime.fromisoformat(r["created_at"]))
               for r in map(json.loads, SAMPLE.read_text(encoding="utf-8").splitlines())]
    return around + earlier


def test_twenty_five_heating_complaints_in_one_day_are_one_hotspot():
    appeals = heating_day() + background()
    hotspots = find_hotspots(appeals, min_size=3)
    top = hotspots[0]
    assert top.size == 25 and set(top.ticket_ids) == {f"h{i}" for i in range(25)}
    assert "暖气" in "".join(top.key_phrases) and top.place == "南磨房地区"
    assert top.first == T0 and top.last == T0 + timedelta(minutes=20 * 24)
    for other in hotspots[1:]:
        assert not any(t.startswith("h") for t in other.ticket_ids)


def test_different_problems_and_places_make_no_hotspot():
    assert find_hotspots(background(), min_size=3) == []


def test_the_window_closes_a_hotspot():
    early = heating_day(10)
    late = [Appeal(id=f"late{a.id}", title=a.title, text=a.text, at=a.at + timedelta(days=90)) for a in early]
    appeals = early + late + background()
    groups = [{appeals[i].id for i in g} for g in cluster(appeals, window_days=30)]
    early_ids, late_ids = {a.id for a in early}, {a.id for a in late}
    assert early_ids in groups  # one hotspot in January
    assert not any(g & early_ids and g & late_ids for g in groups)  # April's complaints open their own


def test_no_appeals_no_hotspots():
    assert find_hotspots([]) == []


def test_the_same_words_in_two_places_are_two_hotspots_and_places_are_never_compared():
    from datetime import datetime, timedelta, timezone

    start = datetime(2026, 11, 2, 9, tzinfo=timezone.utc)
    appeals = [Appeal(id=f"{place}{i}", title="小区暖气不热", text=f"家里暖气冰凉，室温只有十{i % 5}度，老人孩子受不了。",
                      at=start + timedelta(hours=i), place=place)
               for place in ("南磨房地区", "望京街道") for i in range(6)]
    groups = [{appeals[i].place for i in g} for g in cluster(appeals) if len(g) >= 3]
    assert sorted(len(g) for g in groups) == [1, 1]  # one hotspot per place, never one across both
    assert {next(iter(g)) for g in groups} == {"南磨房地区", "望京街道"}
