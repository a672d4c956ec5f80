"""The rule layer for urgency and appeal type: every decision names the rule that fired."""

from __future__ import annotations

import pytest

from serving.model.rules import AppealTypeRules, UrgencyRules, classify_rules


@pytest.fixture(scope="module")
def rules(taxonomy):
    return UrgencyRules(taxonomy.urgency), AppealTypeRules(taxonomy.appeal_types)


@pytest.mark.parametrize("title, text, level, rule", [
    ("楼道燃气泄漏", "市民来电称：楼道里燃气泄漏，味道很大，请马上派人。", 1, "urgency.1.phrase"),
    ("电梯困人", "小区5号楼电梯卡在7层，里面有老人被困。", 1, "urgency.1.phrase"),
    ("", "辅路路面突然塌陷出现大坑，已经有车掉进去了。", 1, "urgency.1.phrase"),
    ("", "工地食堂午饭后二十多人上吐下泻。", 1, "urgency.1.phrase"),
    ("", "幼儿园有12名孩子午饭后呕吐发烧。", 1, "urgency.1.pattern"),
    ("小区停水", "从昨天早上开始停水，到现在还没来水。", 2, "urgency.2.phrase"),
    ("", "我们楼没有水已经三天了", 2, "urgency.2.pattern"),
    ("暖气不热", "供暖已经一周了，家里室温只有14度。", 2, "urgency.2.phrase"),
    ("", "老板拖欠我们二十多个工人三个月的工资。", 2, "urgency.2.pattern"),
    ("楼下烧烤店噪音扰民", "每天夜里12点还很吵。", 3, "urgency.3.phrase"),
    ("小区里的树该修剪了", "树枝挡住了二楼的窗户。", 3, "urgency.default"),
])
def test_urgency_levels(rules, title, text, level, rule):
    urgency, types = rules
    decision, _ = classify_rules(urgency, types, title, text)
    assert decision.level == level
    assert decision.rule == rule
    assert rule in decision.reason


def test_negated_danger_does_not_raise_urgency(rules):
    urgency, types = rules
    decision, _ = classify_rules(urgency, types, "楼道有异味",
                                 "燃气公司来看过了，没有燃气泄漏，是下水道返上来的臭味，希望物业处理。")
    assert decision.level == 3


def test_hedged_danger_does_not_raise_urgency(rules):
    urgency, types = rules
    decision, _ = classify_rules(urgency, types, "举报私搭乱建", "院里私搭乱建的棚子堆满杂物，容易着火。")
    assert decision.level == 3


def test_praise_stays_level_four_even_when_it_tells_of_danger(rules):
    urgency, types = rules
    decision, kind = classify_rules(urgency, types, "表扬公交司机", "感谢司机师傅耐心帮助一位走失老人找到家人。")
    assert kind.appeal_type == "表扬"
    assert decision.level == 4 and decision.rule == "urgency.type_fixed"


def test_questions_default_to_level_four(rules):
    urgency, types = rules
    decision, kind = classify_rules(urgency, types, "咨询居住证办理", "请问在顺义办居住证需要什么材料？")
    assert kind.appeal_type == "咨询" and decision.level == 4 and decision.rule == "urgency.type_default"


def test_category_signal_sets_the_floor(rules):
    urgency, types = rules
    decision, _ = classify_rules(urgency, types, "", "家里的暖气片一直是温的", category="城乡建设/供暖/停暖与未供暖")
    assert decision.level == 2 and decision.rule == "urgency.2.category"


@pytest.mark.parametrize("title, text, expected", [
    ("举报饭店偷排污水", "饭店每天夜里把污水直接排进雨水井，请严查。", "举报"),
    ("咨询医保异地报销", "请问异地就医怎么办理备案？", "咨询"),
    ("建议增设公交线路", "建议在天通苑北增设一条直达望京的公交。", "建议"),
    ("感谢12345", "非常感谢接线员耐心解答，给你们点赞！", "表扬"),
    ("投诉物业不作为", "多次反映楼道堆物问题，物业拒不处理。", "投诉"),
    ("老人走失求助", "我父亲有老年痴呆，今天上午走失了，求助！", "求助"),
])
def test_appeal_types(rules, title, text, expected):
    _, types = rules
    decision = types.decide(title, text)
    assert decision.appeal_type == expected
    assert decision.evidence and "appeal_type.signals" in decision.reason


def test_a_signal_less_urgent_appeal_is_a_request_for_help(rules):
    urgency, types = rules
    level, kind = classify_rules(urgency, types, "", "楼道里电线落地冒火花。")
    assert level.level == 1 and kind.appeal_type == "求助"
    assert "default_when_urgent" in kind.reason


def test_traditional_and_full_width_text_is_read_the_same(rules):
    urgency, types = rules
    level, _ = classify_rules(urgency, types, "", "樓道裡燃氣洩漏，請馬上處理！")
    assert level.level == 1
    level, _ = classify_rules(urgency, types, "", "停水已经３天了")
    assert level.level == 2


def test_rules_agree_with_the_sample_labels(rules, sample_rows):
    """The first rule layer on the team's 240 labelled appeals (the sample was also used to write the rules)."""
    urgency, types = rules
    urgency_hits = type_hits = 0
    for row in sample_rows:
        level, kind = classify_rules(urgency, types, row["title"], row["text"])
        urgency_hits += level.level == row["urgency"]
        type_hits += kind.appeal_type == row["appeal_type"]
    assert urgency_hits / len(sample_rows) >= 0.8
    assert type_hits / len(sample_rows) >= 0.75
