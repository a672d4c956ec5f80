"""The dispatch policy: a table with one or more cases per rule in the Beijing dispatch.yaml, deadlines
per urgency level, and the checks made when the rules are loaded."""

from __future__ import annotations

import itertools
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from typing import NamedTuple

import pytest

from serving.domain.dispatch import DispatchPolicy, decide_dispatch, deadlines
from serving.domain.records import Classification
from taxonomy import TaxonomyError
from taxonomy.categories import Category, CategoryTree
from taxonomy.dispatch import DispatchFacts, load_dispatch_rules
from taxonomy.profile import PROFILES_DIR
from taxonomy.urgency import UrgencyScheme

BEIJING_RULES = PROFILES_DIR / "beijing" / "dispatch.yaml"
CST = timezone(timedelta(hours=8))
MONDAY_9AM = datetime(2024, 1, 15, 9, 0, tzinfo=CST)


@pytest.fixture(scope="module")
def rules():
    return load_dispatch_rules(BEIJING_RULES)


@pytest.fixture(scope="module")
def beijing_plus(taxonomy):
    """Beijing plus two test-only categories. Beijing's tree has no local matter that needs no place
    and gives every category an owner, but other profiles and imported trees do, and the rules for them
    live in the Beijing file too."""
    extra = (
        Category(name="社区办事咨询", path=("社区办事咨询",), owner="civil_affairs", needs_place=False),
        Category(name="未归口事项", path=("未归口事项",)),
    )
    return replace(taxonomy, categories=CategoryTree(taxonomy.categories.roots + extra))


def unit_named(taxonomy, name: str):
    matches = [unit for unit in taxonomy.units if unit.name == name]
    assert len(matches) == 1, f"{name!r} names {len(matches)} units"
    return matches[0]


class Case(NamedTuple):
    category: str
    confidence: float
    district: str | None  # unit names, looked up in the taxonomy
    street: str | None
    mode: str
    primary: str | None
    co: tuple[str, ...]
    rule: str
    reasons: tuple[str, ...] = ()
    urgency: int = 3
    appeal_type: str = "投诉"


HEATING_OFF = "城乡建设/供暖/停暖与未供暖"
HEATING = "北京市热力集团有限责任公司"

CASES = [
    pytest.param(Case(HEATING_OFF, 0.92, "朝阳区", "建外街道", "joint", "建外街道",
                      ("朝阳区城市管理委员会", HEATING), "street_first_dispatch", urgency=2),
                 id="建外街道停暖-首派街道联合区城管委和热力集团"),
    pytest.param(Case("环境保护/噪声污染/商业噪音", 0.81, "海淀区", "中关村街道", "joint", "中关村街道",
                      ("海淀区城市管理综合行政执法局",), "street_first_dispatch"),
                 id="中关村街道商业噪音-首派街道联合区城管执法局"),
    pytest.param(Case("城乡建设/供水/停水与水压低", 0.77, None, "建外街道", "joint", "建外街道",
                      ("朝阳区水务局", "北京市自来水集团有限责任公司"), "street_first_dispatch", urgency=2),
                 id="只给街道停水-街道所在区的水务局和自来水集团"),
    pytest.param(Case("城乡建设", 0.66, "朝阳区", "建外街道", "joint", "建外街道",
                      ("朝阳区住房和城乡建设委员会",), "street_first_dispatch"),
                 id="一级分类无企业-不加派企业"),
    pytest.param(Case(HEATING_OFF, 0.31, "朝阳区", "建外街道", "review", None, (), "low_confidence",
                      ("low_confidence",), urgency=2),
                 id="置信度低-转审核"),
    pytest.param(Case(HEATING_OFF, 0.92, None, None, "review", None, (), "no_place", ("no_place",),
                      urgency=2),
                 id="需要地点却无地点-转审核"),
    pytest.param(Case(HEATING_OFF, 0.92, "朝阳区", None, "joint", "朝阳区",
                      ("朝阳区城市管理委员会", HEATING), "district_first_dispatch", urgency=2),
                 id="只知道区停暖-派区联合区城管委和热力集团"),
    pytest.param(Case("交通运输/邮政快递/快递不送货上门", 0.88, "海淀区", None, "joint", "海淀区",
                      ("北京市邮政管理局",), "district_first_dispatch"),
                 id="只知道区快递-部门无区级对口派市级"),
    pytest.param(Case("交通运输/小客车指标/摇号与积分", 0.9, "朝阳区", None, "direct", "北京市交通委员会", (),
                      "citywide", urgency=4, appeal_type="咨询"),
                 id="摇号政策咨询-全市性事项知道区也派市交通委"),
    pytest.param(Case("城乡建设/供暖/供暖期调整", 0.7, None, None, "direct", "北京市城市管理委员会", (),
                      "citywide", urgency=4, appeal_type="建议"),
                 id="供暖期调整建议-无地点派市城管委"),
    pytest.param(Case("社区办事咨询", 0.8, "海淀区", None, "direct", "海淀区民政局", (), "no_place_needed",
                      urgency=4, appeal_type="咨询"),
                 id="纯咨询知道区-派区级对口部门"),
    pytest.param(Case("社区办事咨询", 0.8, None, None, "direct", "北京市民政局", (), "no_place_needed",
                      urgency=4, appeal_type="咨询"),
                 id="纯咨询不知道区-派市级部门"),
    pytest.param(Case("未归口事项", 0.95, "朝阳区", "建外街道", "review", None, (), "no_owner",
                      ("no_owner",)),
                 id="分类无主责部门-转审核"),
]


def classified(category: str, confidence: float, taxonomy, **fields) -> Classification:
    """A classification as the router gives one: the node's owner and company, at this confidence."""
    node = taxonomy.categories.find(category)
    base = dict(id=None, category=category, category_confidence=confidence, category_top3=[],
                urgency=3, urgency_reason="", urgency_rule="", appeal_type="投诉", appeal_type_reason="",
                district=None, street=None,
                category_path=category.split("/"), category_guess=category.split("/"),
                category_guess_confidences=[confidence] * (category.count("/") + 1),
                department=node.owner if node else None, department_confidence=confidence,
                company=node.company if node else None, company_confidence=1.0)
    return Classification(**{**base, **fields})


def decide(case: Case, taxonomy, rules, review_threshold=None, **overrides):
    district = unit_named(taxonomy, case.district).id if case.district else None
    street = unit_named(taxonomy, case.street).id if case.street else None
    fields = dict(urgency=case.urgency, appeal_type=case.appeal_type, district_id=district, street_id=street)
    fields.update(overrides)
    category = fields.pop("category", case.category)
    if taxonomy.categories.find(category) is None:
        fields.setdefault("department", None)
    return decide_dispatch(classified(category, case.confidence, taxonomy, **fields), MONDAY_9AM,
                           DispatchPolicy(taxonomy, rules, review_threshold))


@pytest.mark.parametrize("case", CASES)
def test_dispatch_table(case, beijing_plus, rules):
    decision = decide(case, beijing_plus, rules)
    names = {unit.id: unit.name for unit in beijing_plus.units}
    got_primary = names.get(decision.primary_unit_id or "")
    got_co = tuple(names[unit_id] for unit_id in decision.co_unit_ids)
    got = (decision.mode, got_primary, got_co, decision.rule_id, decision.reasons)
    assert got == (case.mode, case.primary, case.co, case.rule, case.reasons)
    assert (decision.respond_by is None) == (case.mode == "review")


def test_every_rule_in_the_beijing_file_has_a_case(beijing_plus, rules):
    fired = {decide(param.values[0], beijing_plus, rules).rule_id for param in CASES}
    assert fired == set(rules.rule_ids)


def test_some_rule_matches_every_combination_of_facts(taxonomy, rules):
    bools = (True, False)
    scopes, levels = ("local", "citywide"), (1, 2, 3, 4)
    for combo in itertools.product(bools, bools, scopes, bools, bools, bools, bools, levels,
                                   taxonomy.appeal_types.names):
        facts = DispatchFacts(*combo)
        if facts.has_street and not facts.has_district:
            continue  # a street always brings its district
        assert rules.first_match(facts) is not None, facts


def test_review_threshold_from_settings_overrides_the_file(taxonomy, rules):
    low = CASES[4].values[0]
    assert decide(low, taxonomy, rules).mode == "review"
    assert decide(low, taxonomy, rules, review_threshold=0.3).rule_id == "street_first_dispatch"
    assert decide(low, taxonomy, rules, review_threshold=0.31).mode != "review"  # equal is not below


def test_dispatched_ticket_carries_the_deadlines_of_its_level(taxonomy, rules):
    decision = decide(CASES[0].values[0], taxonomy, rules)
    assert decision.respond_by == MONDAY_9AM + timedelta(hours=2)
    assert decision.resolve_by == MONDAY_9AM + timedelta(hours=48)
    assert decision.assignment().unit_ids == (decision.primary_unit_id, *decision.co_unit_ids)


def test_low_confidence_says_where_it_failed(taxonomy, rules):
    low = CASES[4].values[0]
    decision = decide(low, taxonomy, rules, category_failed_level=2)
    assert decision.reasons == ("low_confidence",)
    assert decision.detail["failed"] == "category_level_2" and decision.detail["threshold"] == 0.5
    assert decide(low, taxonomy, rules).detail["failed"] == "department"


def test_the_classifications_department_and_company_are_dispatched(taxonomy, rules):
    """A level-2 node's owner and company: heating goes to the district's 城管委 with the heating company,
    not to the first level's 住建委; a classification that names no company co-dispatches none."""
    case = CASES[0].values[0]
    decision = decide(case, taxonomy, rules)
    assert decision.co_unit_ids == ("dept:management@110105", "company:heating")
    policy_question = decide(case, taxonomy, rules, company=None)
    assert policy_question.co_unit_ids == ("dept:management@110105",)
    learned = decide(case, taxonomy, rules, department="housing")
    assert learned.co_unit_ids[0] == "dept:housing@110105"


def test_the_street_decides_the_district_when_they_disagree(taxonomy, rules):
    haidian = unit_named(taxonomy, "海淀区").id
    decision = decide(CASES[0].values[0], taxonomy, rules, district_id=haidian)
    assert "dept:management@110105" in decision.co_unit_ids  # 建外街道 is in 朝阳区 (110105)


@pytest.mark.parametrize("overrides, key", [
    ({"category": "不存在的分类"}, "category"),
    ({"department": "mayor"}, "department"),
    ({"street_id": "street:000000000"}, "street_id"),
    ({"street_id": None, "district_id": "dept:management"}, "district_id"),
    ({"urgency": 5}, "urgency"),
], ids=["未知分类", "未知部门", "未知街道", "区不是区", "未知紧急程度"])
def test_caller_errors_are_value_errors_naming_the_argument(overrides, key, taxonomy, rules):
    with pytest.raises(ValueError, match=f"^{key}: "):
        decide(CASES[0].values[0], taxonomy, rules, **overrides)


@pytest.mark.parametrize("level, respond_by, resolve_by", [
    (1, datetime(2024, 1, 15, 9, 30, tzinfo=CST), datetime(2024, 1, 16, 9, 0, tzinfo=CST)),
    (2, datetime(2024, 1, 15, 11, 0, tzinfo=CST), datetime(2024, 1, 17, 9, 0, tzinfo=CST)),
    (3, datetime(2024, 1, 16, 9, 0, tzinfo=CST), datetime(2024, 1, 22, 9, 0, tzinfo=CST)),
    (4, datetime(2024, 1, 16, 9, 0, tzinfo=CST), datetime(2024, 1, 30, 9, 0, tzinfo=CST)),
], ids=["特急-半小时响应一天办结", "紧急-两小时响应两天办结",
        "一般-一天响应七天办结", "普通-一天响应十五天办结"])
def test_beijing_calendar_deadlines(level, respond_by, resolve_by, taxonomy):
    assert taxonomy.urgency.get(level).basis == "calendar"
    assert deadlines(level, MONDAY_9AM, taxonomy.urgency) == (respond_by, resolve_by)


@pytest.mark.parametrize("start, hours, expected", [
    (datetime(2024, 1, 15, 9, 0), 24, datetime(2024, 1, 16, 9, 0)),
    (datetime(2024, 1, 19, 20, 0), 24, datetime(2024, 1, 22, 20, 0)),
    (datetime(2024, 1, 20, 10, 0), 2, datetime(2024, 1, 22, 2, 0)),
    (datetime(2024, 1, 19, 22, 0), 2, datetime(2024, 1, 20, 0, 0)),
    (datetime(2024, 1, 19, 20, 0), 120, datetime(2024, 1, 26, 20, 0)),
], ids=["周一起算不跨周末", "周五晚起算跨过周末", "周六收到从周一零点起算", "恰好用完周五", "五个工作日"])
def test_working_deadlines_skip_saturday_and_sunday(start, hours, expected, taxonomy):
    data = taxonomy.urgency.model_dump()
    data["levels"][2].update(basis="working", response_hours=hours, resolution_hours=120)
    scheme = UrgencyScheme.model_validate(data)
    respond_by, resolve_by = deadlines(3, start, scheme)
    assert respond_by == expected
    assert resolve_by >= respond_by


def write_rules(tmp_path, rules_yaml: str):
    path = tmp_path / "dispatch.yaml"
    path.write_text("review_threshold: 0.5\nrules:\n" + rules_yaml, encoding="utf-8")
    return path


@pytest.mark.parametrize("rules_yaml, key", [
    ("  - {id: a, description: 说明, when: {has_place: true}, then: {review: no_place}}\n",
     "rules[0].when.has_place"),
    ("  - {id: a, description: 说明, then: {primary: mayor}}\n", "rules[0].then.primary"),
    ("  - {id: a, description: 说明, then: {review: guess}}\n", "rules[0].then.review"),
    ("  - {id: a, description: 说明, then: {review: no_place, primary: district}}\n", "rules[0].then"),
    ("  - {id: a, description: 说明, then: {primary: street}}\n", "rules[0].then.primary"),
    ("  - {id: a, description: 说明, then: {review: no_place}}\n"
     "  - {id: a, description: 说明, then: {review: no_owner}}\n", "rules[1].id"),
], ids=["未知事实", "未知派单对象", "未知审核原因", "既审核又派单", "派街道却不要求有街道", "规则id重复"])
def test_malformed_rules_are_rejected_naming_the_key(rules_yaml, key, tmp_path):
    with pytest.raises(TaxonomyError) as caught:
        load_dispatch_rules(write_rules(tmp_path, rules_yaml))
    assert caught.value.key == key
    assert key in str(caught.value)


def test_urgency_and_appeal_type_conditions_accept_one_value_or_a_list(tmp_path):
    rules = load_dispatch_rules(write_rules(tmp_path, (
        "  - {id: urgent_help, description: 说明, when: {urgency: [1, 2], appeal_type: 求助},"
        " then: {primary: owner_department_city}}\n")))
    facts = DispatchFacts(False, True, "local", True, False, False, False, 2, "求助")
    assert rules.first_match(facts).id == "urgent_help"
    assert rules.first_match(replace(facts, urgency=3)) is None
    assert rules.first_match(replace(facts, appeal_type="投诉")) is None
