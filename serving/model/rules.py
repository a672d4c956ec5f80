"""The transparent rule layer for urgency (四级响应) and appeal type, driven by taxonomy signals.

Every decision names the rule that fired: ``urgency_reason`` reads like
``特急：命中“燃气泄漏”（urgency.1.phrase）``. The rules themselves are stated in ``taxonomy.urgency``
and ``taxonomy.appeal_types``; this module only evaluates them over normalised text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from taxonomy import AppealTypeScheme, UrgencyScheme
from taxonomy.text import normalize


@dataclass(frozen=True)
class UrgencyDecision:
    level: int
    rule: str  # urgency.<level>.phrase|pattern|category, urgency.type_fixed, urgency.type_default, urgency.default
    evidence: str | None
    reason: str


@dataclass(frozen=True)
class AppealTypeDecision:
    appeal_type: str
    scores: dict[str, float]
    evidence: tuple[str, ...]
    reason: str

    @property
    def from_signals(self) -> bool:
        return bool(self.evidence)


class UrgencyRules:
    def __init__(self, scheme: UrgencyScheme):
        self.scheme = scheme
        self._patterns = {lvl.level: [re.compile(p) for p in lvl.signals.patterns] for lvl in scheme.levels}
        # longer phrases first, so 燃气泄漏 is reported rather than a shorter phrase it contains
        self._phrases = {lvl.level: sorted(lvl.signals.phrases, key=len, reverse=True) for lvl in scheme.levels}

    def _negated(self, text: str, start: int) -> bool:
        window = text[max(0, start - self.scheme.negation_window):start]
        return any(word in window for word in (*self.scheme.negations, *self.scheme.hedges))

    def _phrase_hit(self, text: str, level: int) -> str | None:
        for phrase in self._phrases[level]:
            start = text.find(phrase)
            while start != -1:
                if not self._negated(text, start):
                    return phrase
                start = text.find(phrase, start + 1)
        return None

    def _pattern_hit(self, text: str, level: int) -> str | None:
        for pattern in self._patterns[level]:
            for match in pattern.finditer(text):
                if not self._negated(text, match.start()):
                    return match.group(0)
        return None

    def decide(self, title: str, text: str, appeal_type: str | None = None, category: str | None = None,
               normalized: bool = False) -> UrgencyDecision:
        if appeal_type in self.scheme.fixed_for_types:
            return self._decision(self.scheme.fixed_for_types[appeal_type], "type_fixed", appeal_type)
        content = f"{title}。{text}" if title else text
        if not normalized:
            content = normalize(content)
        for level in self.scheme.levels:
            if level.level == 4:
                continue  # 普通 is never raised to by a phrase: it is the default for information and advice
            phrase = self._phrase_hit(content, level.level)
            if phrase:
                return self._decision(level.level, "phrase", phrase)
            match = self._pattern_hit(content, level.level)
            if match:
                return self._decision(level.level, "pattern", match)
        if category:
            for level in self.scheme.levels:
                if any(category == c or category.startswith(c + "/") for c in level.signals.categories):
                    return self._decision(level.level, "category", category)
        if appeal_type and appeal_type in self.scheme.default_for_types:
            level = self.scheme.default_for_types[appeal_type]
            return self._decision(level, "type_default", appeal_type)
        return self._decision(self.scheme.default_level, "default", None)

    def _decision(self, level: int, kind: str, evidence: str | None) -> UrgencyDecision:
        name = self.scheme.get(level).name
        rule = f"urgency.{level}.{kind}" if kind in ("phrase", "pattern", "category") else f"urgency.{kind}"
        if kind in ("phrase", "pattern"):
            reason = f"{name}：命中“{evidence}”（{rule}）"
        elif kind == "category":
            reason = f"{name}：分类“{evidence}”属于{name}级（{rule}）"
        elif kind == "type_fixed":
            reason = f"{name}：{evidence}类诉求固定为{name}（{rule}）"
        elif kind == "type_default":
            reason = f"{name}：未命中紧急信号，{evidence}类诉求默认{name}（{rule}）"
        else:
            reason = f"{name}：未命中紧急信号，默认{name}（{rule}）"
        return UrgencyDecision(level, rule, evidence, reason)


class AppealTypeRules:
    def __init__(self, scheme: AppealTypeScheme):
        self.scheme = scheme

    def decide(self, title: str, text: str, normalized: bool = False) -> AppealTypeDecision:
        """The type from signals alone; ``from_signals`` is False when the default was taken."""
        if not normalized:
            title, text = normalize(title or ""), normalize(text or "")
        scores: dict[str, float] = {}
        evidence: list[str] = []
        for kind in self.scheme.types:
            total = 0.0
            for phrase, weight in kind.signals.items():
                in_title, in_text = title.count(phrase), text.count(phrase)
                if in_title or in_text:
                    total += weight * (min(in_title, 1) * self.scheme.title_weight + min(in_text, 1))
                    evidence.append(phrase)
            scores[kind.name] = total
        best = max(self.scheme.types, key=lambda k: scores[k.name])  # max keeps the first of equals
        if scores[best.name] == 0:
            return AppealTypeDecision(self.scheme.default, scores, (),
                                      f"{self.scheme.default}：未命中类型信号，默认（appeal_type.default）")
        hits = [p for p in evidence if p in best.signals]
        return AppealTypeDecision(best.name, scores, tuple(hits),
                                  f"{best.name}：命中“{'、'.join(hits[:3])}”，得分{scores[best.name]:g}（appeal_type.signals）")


def classify_rules(urgency: UrgencyRules, types: AppealTypeRules, title: str, text: str,
                   category: str | None = None, normalized: bool = False) -> tuple[UrgencyDecision, AppealTypeDecision]:
    """Type first (urgency defaults depend on it), then urgency; a signal-less appeal judged urgent is
    a request for help (``default_when_urgent``)."""
    if not normalized:
        title, text = normalize(title or ""), normalize(text or "")
    kind = types.decide(title, text, normalized=True)
    level = urgency.decide(title, text, kind.appeal_type, category, normalized=True)
    urgent_default = types.scheme.default_when_urgent
    if not kind.from_signals and urgent_default and level.level <= 2:
        kind = AppealTypeDecision(urgent_default, kind.scores, (),
                                  f"{urgent_default}：未命中类型信号，{level.level}级紧急诉求默认{urgent_default}"
                                  "（appeal_type.default_when_urgent）")
    return level, kind
