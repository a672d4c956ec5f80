"""Reading head probabilities down the tree: joint confidences, back-off to the deepest confident level,
the department and company the path owns, the first-level blend, and the tree prior that routes a node
nobody labelled yet."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from serving.model.hierarchy import Decisions, Hierarchy
from serving.model.prior import TreePrior, node_phrases
from taxonomy.categories import Category, CategoryTree

HEADS = {
    "category": ["城乡建设", "环境保护"],
    "category_l2": ["城乡建设/供暖", "城乡建设/物业管理", "环境保护/噪声污染"],
    "category_l3": ["城乡建设/供暖/停暖与未供暖", "城乡建设/供暖/供暖费"],
}


def probabilities(l1, l2, l3):
    return {"category": np.array([l1]), "category_l2": np.array([l2]), "category_l3": np.array([l3])}


def decide(taxonomy, probs, levels=(0.5, 0.5, 0.5), **kwargs):
    return Hierarchy(taxonomy.categories, HEADS, Decisions(levels=levels, **kwargs)).decide(probs)[0]


def test_confidence_is_joint_down_the_tree_and_read_within_the_parent(taxonomy):
    # level 2: 供暖 has 0.6 of 城乡建设's children mass (0.3 of 0.5), so 0.9 × 0.6
    route = decide(taxonomy, probabilities([0.9, 0.1], [0.3, 0.2, 0.5], [0.8, 0.2]), levels=(0.4, 0.4, 0.4))
    assert route.full_path == ("城乡建设", "供暖", "停暖与未供暖")
    assert route.confidences == pytest.approx((0.9, 0.9 * 0.6, 0.9 * 0.6 * 0.8))
    assert route.level == 3 and route.failed_level is None


def test_the_path_backs_off_to_the_deepest_level_that_clears_its_threshold(taxonomy):
    probs = probabilities([0.9, 0.1], [0.3, 0.2, 0.5], [0.55, 0.45])  # level 3: 0.9 × 0.6 × 0.55 = 0.297
    route = decide(taxonomy, probs)
    assert route.path == ("城乡建设", "供暖") and route.failed_level == 3
    assert route.full_path[-1] == "停暖与未供暖"  # the guess stays visible
    strict = decide(taxonomy, probs, levels=(0.5, 0.6, 0.5))  # level 2 (0.54) no longer clears
    assert strict.path == ("城乡建设",) and strict.failed_level == 2
    unsure = decide(taxonomy, probabilities([0.45, 0.55], [0.3, 0.2, 0.5], [0.5, 0.5]), levels=(0.6, 0.5, 0.5))
    assert unsure.path == ("环境保护",) and unsure.failed_level == 1  # a path always has its first level


def test_the_department_and_company_come_from_the_path_not_the_first_level(taxonomy):
    """Heating under 城乡建设 is the 城管委's, with the heating company, although 城乡建设 is 住建委's; and
    backing off to the first level keeps the owner the mass below it points to."""
    route = decide(taxonomy, probabilities([0.9, 0.1], [0.3, 0.2, 0.5], [0.8, 0.2]))
    assert (route.department, route.company) == ("management", "heating")
    backed = decide(taxonomy, probabilities([0.9, 0.1], [0.3, 0.2, 0.5], [0.8, 0.2]), levels=(0.5, 0.99, 0.99))
    assert backed.path == ("城乡建设",) and backed.department == "management"
    property_firm = decide(taxonomy, probabilities([0.9, 0.1], [0.1, 0.6, 0.3], [0.5, 0.5]))
    assert (property_firm.department, property_firm.company) == ("housing", None)


def test_a_learned_department_head_is_mixed_in_by_its_weight(taxonomy):
    heads = {**HEADS, "department": ["housing", "management"]}
    probs = {**probabilities([0.9, 0.1], [0.3, 0.2, 0.5], [0.8, 0.2]), "department": np.array([[0.95, 0.05]])}
    rule = Hierarchy(taxonomy.categories, heads, Decisions(department_rule_weight=1.0)).decide(probs)[0]
    learned = Hierarchy(taxonomy.categories, heads, Decisions(department_rule_weight=0.0)).decide(probs)[0]
    assert rule.department == "management" and learned.department == "housing"
    assert learned.department_confidence == pytest.approx(0.95)


def test_the_second_level_heads_first_level_evidence_can_be_blended_in(taxonomy):
    probs = probabilities([0.6, 0.4], [0.05, 0.05, 0.9], [0.5, 0.5])
    assert decide(taxonomy, probs).full_path[0] == "城乡建设"
    assert decide(taxonomy, probs, level1_blend=1.0).full_path[0] == "环境保护"


@pytest.fixture
def with_epidemic_line(taxonomy):
    """The tree plus a node a hotline opens at run time, with signal phrases and no labelled appeal."""
    line = Category(name="疫情防控专线", path=("卫生计生", "疫情防控专线"), owner="health",
                    keywords=("核酸", "隔离", "健康码", "发热门诊"))
    roots = tuple(replace(r, children=r.children + (line,)) if r.name == "卫生计生" else r
                  for r in taxonomy.categories.roots)
    return CategoryTree(roots)


def test_the_prior_routes_a_node_that_has_no_labelled_appeal(with_epidemic_line):
    heads = {"category": ["卫生计生", "城乡建设"], "category_l2": ["卫生计生/医疗服务", "城乡建设/物业管理"]}
    probs = {"category": np.array([[0.7, 0.3], [0.7, 0.3]]),
             "category_l2": np.array([[0.6, 0.4], [0.6, 0.4]])}
    texts = ["小区有人健康码变红被隔离，核酸结果一直查不到", "医院挂号排队太久"]
    counts = {"category_l2": {"卫生计生/医疗服务": 300, "城乡建设/物业管理": 300}}
    without = Hierarchy(with_epidemic_line, heads, Decisions(levels=(0, 0, 0)), None, counts).decide(probs, texts)
    assert without[0].full_path == ("卫生计生", "医疗服务")  # the model alone cannot name the new node
    prior = TreePrior(with_epidemic_line, strength=1.0)
    routed = Hierarchy(with_epidemic_line, heads, Decisions(levels=(0, 0, 0)), prior, counts).decide(probs, texts)
    assert routed[0].full_path == ("卫生计生", "疫情防控专线")
    assert routed[1].full_path == ("卫生计生", "医疗服务")  # no phrase of the line: the model decides


def test_a_node_with_many_examples_is_left_to_the_model(with_epidemic_line):
    """w = k / (k + n): the prior barely moves a node the model learnt from hundreds of appeals."""
    prior = TreePrior(with_epidemic_line, strength=1.0, k=5.0)
    labels = prior.labels[1]
    mass = np.zeros((1, len(labels)))
    mass[0, labels.index("卫生计生/医疗服务")] = 0.9
    mass[0, labels.index("卫生计生/医政监管")] = 0.1
    counts = {"卫生计生/医政监管": 500, "卫生计生/医疗服务": 500}
    after = prior.apply(2, mass, ["医政监管部门对诊所的医疗机构管理"], counts)
    assert after[0, labels.index("卫生计生/医疗服务")] == pytest.approx(0.9)
    assert after[0, labels.index("卫生计生/医政监管")] < 0.11


def test_node_phrases_come_from_keywords_name_and_description():
    phrases = node_phrases("燃气收费与计量", "燃气费、表具计量等", ("气表",))
    assert {"燃气收费", "计量", "燃气费", "表具计量", "气表"} <= phrases
    assert "其他" not in node_phrases("其他", None)
