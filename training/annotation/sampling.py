"""Which appeals are read: a blind pool (the test split and the double annotations come from it) and a
training pool, drawn once, seeded, from the three tipdm message files.

Rules this module implements:
- an appeal repeated within or across files (the same normalised title or body) is read once: one row
  stands for its group, and no other member of the group enters any pool;
- labelled rows are drawn only where both title and body are known, stratified by the public label;
- the unlabelled files hold the first-level categories the public labels lack; keyword patterns find
  **candidates** for them (reading decides the label), drawn per category up to a quota, the rest of a
  pool drawn at random;
- the draw depends on the seed only, not on the order of the files.
"""

from __future__ import annotations

import hashlib
import random
import re
from collections import defaultdict
from dataclasses import dataclass

from taxonomy.text import normalize
from training.annotation.tasks import SourceRow

LABELLED = "appeals_labelled.csv"
# Candidate finders for the first-level categories the public labels lack. They only decide which
# appeals are read first; an appeal they find may be labelled anything.
CANDIDATE_PATTERNS = {
    "农村农业": r"村委|村民|村组|农田|耕地|养殖|种植|农业|合作社|扶贫|惠农|林地|山塘|灌溉|宅基地|土地承包|流转|畜禽",
    "政法": r"派出所|公安|民警|警察|诈骗|传销|黑恶|涉黑|赌博|治安|户口|户籍|落户|法院|判决|律师|身份证|盗窃|被偷",
    "民政": r"低保|养老院|敬老院|高龄|残疾|殡葬|墓地|公墓|婚姻登记|救助|福利院|社会组织|居委会|退役军人|优抚|孤儿|留守",
    "党务政务": r"党员|党组织|党支部|干部作风|信访|政务服务|行政审批|办事大厅|不作为|懒政|热线|政府网站|政务公开",
    "经济管理": r"物价|价格|收费标准|发票|国企|国有企业|招标|投标|采购|企业改制|统计|营商环境|非法集资|理财|银行|保险|金融",
    "纪检监察": r"腐败|贪污|受贿|行贿|违纪|纪委|吃空饷|公款|挪用|侵占|套取|虚报|私分|公车|滥用职权",
    "国土资源": r"国土|征地|采砂|挖沙|砂石|矿|采石|不动产|土地证|山体|地质灾害|用地",
    "科技与信息产业": r"宽带|信号|通信|移动公司|联通|电信|5G|4G|基站|知识产权|专利|科技|手机卡|光纤|网速|软件|互联网",
}


@dataclass(frozen=True)
class Pools:
    blind: list[SourceRow]
    training: list[SourceRow]
    candidates: dict[str, list[str]]  # category -> refs drawn as its candidates


def representatives(rows: dict[tuple[str, str], SourceRow]) -> list[SourceRow]:
    """One row per group of repeated appeals, chosen independently of the input order."""
    parent: dict[tuple[str, str], tuple[str, str]] = {}

    def find(key):
        while parent[key] != key:
            parent[key] = parent[parent[key]]
            key = parent[key]
        return key

    first_by_value: dict[str, tuple[str, str]] = {}
    for key in sorted(rows):
        parent[key] = key
    for key in sorted(rows):
        row = rows[key]
        for value in (f"t:{normalize(row.title)}" if len(normalize(row.title)) >= 6 else None,
                      f"x:{normalize(row.text)}" if len(normalize(row.text)) >= 20 else None):
            if value is None:
                continue
            if value in first_by_value:
                a, b = find(key), find(first_by_value[value])
                if a != b:
                    parent[max(a, b)] = min(a, b)
            else:
                first_by_value[value] = key
    groups: dict[tuple[str, str], list[tuple[str, str]]] = defaultdict(list)
    for key in rows:
        groups[find(key)].append(key)
    # a labelled row stands for its group where there is one (it carries the public label)
    chosen = [min(members, key=lambda k: (k[0] != LABELLED, k)) for members in groups.values()]
    return [rows[k] for k in sorted(chosen)]


def _rng(seed: int, salt: str) -> random.Random:
    return random.Random(int(hashlib.sha256(f"{seed}:{salt}".encode()).hexdigest()[:16], 16))


def draw_pools(rows: dict[tuple[str, str], SourceRow], *, seed: int = 13, blind_labelled_per_class: int = 50,
               blind_candidates_per_category: int = 45, blind_random: int = 300,
               training_labelled: int = 1100, training_unlabelled: int = 1800) -> Pools:
    reps = representatives(rows)
    labelled = [r for r in reps if r.file == LABELLED and normalize(r.title) and normalize(r.text)]
    unlabelled = [r for r in reps if r.file != LABELLED and (normalize(r.title) or normalize(r.text))]

    by_class: dict[str, list[SourceRow]] = defaultdict(list)
    for row in labelled:
        by_class[row.public_category].append(row)
    blind: list[SourceRow] = []
    for name in sorted(by_class):
        members = sorted(by_class[name], key=lambda r: r.ref)
        _rng(seed, f"labelled:{name}").shuffle(members)
        blind += members[:blind_labelled_per_class]
        by_class[name] = members[blind_labelled_per_class:]

    taken: set[str] = set()
    candidates: dict[str, list[str]] = {}
    remaining_candidates: list[SourceRow] = []
    for name, pattern in CANDIDATE_PATTERNS.items():
        regex = re.compile(pattern)
        found = [r for r in sorted(unlabelled, key=lambda r: r.ref)
                 if r.ref not in taken and regex.search(normalize(r.title) + " " + normalize(r.text))]
        _rng(seed, f"candidates:{name}").shuffle(found)
        chosen = found[:blind_candidates_per_category]
        candidates[name] = [r.ref for r in chosen]
        taken.update(candidates[name])
        blind += chosen
        remaining_candidates += found[blind_candidates_per_category:blind_candidates_per_category * 3]
    rest = sorted((r for r in unlabelled if r.ref not in taken), key=lambda r: r.ref)
    _rng(seed, "random").shuffle(rest)
    blind += rest[:blind_random]
    taken.update(r.ref for r in rest[:blind_random])

    training: list[SourceRow] = []
    total = sum(len(v) for v in by_class.values())
    for name in sorted(by_class):
        share = round(training_labelled * len(by_class[name]) / total)
        training += by_class[name][:share]
    extra = [r for r in dict.fromkeys(remaining_candidates) if r.ref not in taken]
    taken.update(r.ref for r in extra)
    training += extra[:training_unlabelled]
    others = [r for r in rest[blind_random:] if r.ref not in taken]
    training += others[:max(0, training_unlabelled - len(extra))]
    return Pools(blind=_shuffled(blind, seed, "blind"), training=_shuffled(training, seed, "training"),
                 candidates=candidates)


def _shuffled(rows: list[SourceRow], seed: int, salt: str) -> list[SourceRow]:
    rows = sorted(rows, key=lambda r: r.ref)
    _rng(seed, salt).shuffle(rows)
    return rows


# Wider candidate finders for a later pool: the first pools found too few appeals of these categories.
EXTRA_PATTERNS = {
    "科技与信息产业": r"宽带|网络|信号|通信|移动公司|联通|电信|基站|知识产权|专利|商标|科技|手机|光纤|网速|软件|互联网|网站|流量|资费|信息化",
    "党务政务": r"党员|党组织|党支部|党费|入党|组织关系|政务服务|行政审批|办事大厅|窗口|网上办|热线|市长信箱|信访|政府网站|政务公开|"
            r"信息公开|人大代表|政协|宗教|民族|寺庙|统战|侨|台胞|港澳|外事|工会|共青团|妇联|宣传|广播|电视台|报社|网信",
    "纪检监察": r"腐败|贪污|受贿|行贿|违纪|纪委|监委|吃空饷|公款|挪用|侵占|套取|虚报|私分|公车|滥用职权|以权谋私|打击报复|吃拿卡要|"
            r"乱作为|作风|形式主义|官僚主义|玩忽职守|包庇|渎职|处分",
    "民政": r"低保|养老院|敬老院|高龄|残疾|殡葬|墓|婚姻登记|救助|福利院|社会组织|居委会|退役|优抚|孤儿|留守|特困|五保|地名|门牌|慈善|老年",
    "农村农业": r"村委|村民|村组|农田|耕地|养殖|种植|农业|合作社|扶贫|惠农|林地|山塘|灌溉|宅基地|土地承包|流转|畜禽|农机|种子|化肥|农药|"
            r"水库|防汛|林业|森林|野生动物|渔",
    "经济管理": r"物价|收费标准|发票|国企|国有企业|招标|投标|采购|企业改制|统计|营商环境|非法集资|理财|银行|保险|金融|税|财政|发改|贷款|"
            r"证券|基金|股票",
    "国土资源": r"国土|征地|采砂|挖沙|砂石|矿|采石|不动产|土地证|山体|地质灾害|用地|测绘",
    "政法": r"派出所|公安|民警|警察|诈骗|传销|黑恶|涉黑|赌博|治安|户口|户籍|落户|法院|判决|律师|身份证|盗窃|被偷|交警|驾照|司法|公证|"
          r"法律援助|监狱|消防",
}
EXTRA_QUOTAS = {"科技与信息产业": 150, "党务政务": 150, "纪检监察": 150, "民政": 90, "农村农业": 90, "经济管理": 80,
                "国土资源": 80, "政法": 60}


# Candidate finders for the focus pool: the classes the router learns worst from the first pools —
# urgent appeals (levels 1–2 are 7% of what was read) and the rarer appeal types. As above, they only
# decide what is read; the reader decides every label, and most candidates turn out level 3.
FOCUS_PATTERNS = {
    "urgent:danger": r"燃气泄漏|煤气泄漏|漏气|闻到.{0,4}气味|着火|火灾|失火|起火|坍塌|塌陷|倒塌|垮塌|危房|裂缝|触电|漏电|电线裸露|"
                     r"高压线|被困|困人|困在|水淹|内涝|淹了|倒灌|中毒|失踪|走失|殴打|打人|砍人|威胁.{0,4}生命|爆炸|"
                     r"塌方|滑坡|泥石流|溺水|掉下|坠落|隐患|危险",
    "urgent:living": r"停水|断水|没水|没有水|停电|断电|没电|停气|暖气不热|没有暖气|拖欠工资|欠薪|讨薪|农民工工资|工资.{0,6}不发|"
                     r"强拆|强行拆除|强制拆除|污水外溢|粪水|化粪池|饮用水|水质|发臭|黑水|自来水.{0,6}(黄|浑|脏)|"
                     r"消防通道|疏散通道|校车|幼儿园.{0,8}安全|食堂.{0,6}(变质|卫生)",
    "type:求助": r"求助|求求|帮帮|救救|走投无路|无家可归|生活困难|看不起病|没钱|无力|孤寡|瘫痪|重病|癌",
    "type:建议": r"建议|提议|希望.{0,10}(增设|增加|开通|修建|设立|规划)|能否|可否|呼吁",
}
FOCUS_QUOTAS = {"urgent:danger": 300, "urgent:living": 300, "type:求助": 100, "type:建议": 60}
# The scarce first-level categories again, with the wide finders, for a focus pool of kind "scarce".
SCARCE_QUOTAS = {"科技与信息产业": 150, "党务政务": 150, "纪检监察": 150, "民政": 100, "农村农业": 50, "经济管理": 50,
                 "国土资源": 50, "政法": 0}
FOCUS_KINDS = {"urgent": (FOCUS_PATTERNS, FOCUS_QUOTAS), "scarce": (EXTRA_PATTERNS, SCARCE_QUOTAS)}


def draw_extra_pool(rows: dict[tuple[str, str], SourceRow], taken: set[str], *, seed: int = 13,
                    random_labelled: int = 600, random_unlabelled: int = 600, patterns: dict[str, str] | None = None,
                    quotas: dict[str, int] | None = None, salt: str = "extra") -> tuple[list[SourceRow], dict]:
    """A further training pool: candidates per pattern from every file (the public labels know only
    seven categories, so its rows are searched too), then random appeals; nothing already read, and
    nothing that repeats an appeal already read. ``patterns``/``quotas``/``salt`` default to the
    scarce-category pool (``EXTRA_*``); the focus pool passes ``FOCUS_*``."""
    patterns = EXTRA_PATTERNS if patterns is None else patterns
    quotas = EXTRA_QUOTAS if quotas is None else quotas
    reps = [r for r in representatives(rows) if r.ref not in taken and (normalize(r.title) or normalize(r.text))]
    read_groups = _read_keys(rows, taken)
    reps = [r for r in reps if not (_keys(r) & read_groups)]
    chosen: list[SourceRow] = []
    seen: set[str] = set()
    candidates: dict[str, list[str]] = {}
    for name, pattern in patterns.items():
        regex = re.compile(pattern)
        found = [r for r in reps if r.ref not in seen and regex.search(normalize(r.title) + " " + normalize(r.text))]
        _rng(seed, f"{salt}:{name}").shuffle(found)
        picked = found[:quotas[name]]
        candidates[name] = [r.ref for r in picked]
        seen.update(candidates[name])
        chosen += picked
    rest = [r for r in reps if r.ref not in seen]
    labelled = [r for r in rest if r.file == LABELLED and normalize(r.title) and normalize(r.text)]
    unlabelled = [r for r in rest if r.file != LABELLED]
    _rng(seed, f"{salt}:labelled").shuffle(labelled)
    _rng(seed, f"{salt}:unlabelled").shuffle(unlabelled)
    chosen += labelled[:random_labelled] + unlabelled[:random_unlabelled]
    return _shuffled(chosen, seed, salt), candidates


def _keys(row: SourceRow) -> set[str]:
    title, text = normalize(row.title), normalize(row.text)
    return {k for k in (f"t:{title}" if len(title) >= 6 else "", f"x:{text}" if len(text) >= 20 else "") if k}


def _read_keys(rows: dict[tuple[str, str], SourceRow], refs: set[str]) -> set[str]:
    out: set[str] = set()
    for row in rows.values():
        if row.ref in refs:
            out |= _keys(row)
    return out
