"""The predictor: one appeal in, its classification out — the category path (the model's heads read
down the tree, ``serving.model.hierarchy``), the department and company that own it, urgency and appeal
type, and the district and street (place resolver).

Urgency and appeal type, for bundles that learnt them from people's labels (their manifest's
``decision`` names an urgency threshold):
- a rule the bundle trusts (chosen on validation, e.g. a danger phrase such as 燃气泄漏 that is right
  nearly every time it fires) decides, and the reason names it;
- otherwise the learned head decides: urgency is 1 or 2 when the head's probability of an urgent level
  reaches the bundle's threshold (chosen on validation for recall), else 3 or 4; the reason says
  ``模型判断`` with the probability.
For older bundles the rule layer decides and a head overrides only a rule's default, when it is at least
``HEAD_CONFIDENCE`` sure.

Input is accepted by the rules in ``serving.model.appeals``. Text with no Chinese characters is still
classified, with the warning ``no_chinese_text``: its confidences are low, and dispatch sends
low-confidence appeals to review.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from serving.domain.records import Classification
from serving.model.appeals import AppealInput, AppealInputError, validate_appeal
from serving.model.bundle import BundleError, Manifest, read_manifest
from serving.model.hierarchy import Decisions, Hierarchy, PathPrediction
from serving.model.linear import LinearCategoryModel
from serving.model.prior import TreePrior
from serving.model.rules import AppealTypeDecision, AppealTypeRules, UrgencyDecision, UrgencyRules, classify_rules
from taxonomy import Taxonomy
from taxonomy.places import PlaceResolver
from taxonomy.text import cjk_ratio

__all__ = ["AppealInput", "AppealInputError", "Classification", "Predictor", "load_category_model", "validate_appeal"]

HEAD_CONFIDENCE = 0.6
RULE_DEFAULTS = ("urgency.default", "urgency.type_default")


def load_category_model(manifest: Manifest):
    """The model object for a bundle of any kind: ``labels``, ``heads``, ``parallel_safe``,
    ``predict_proba(titles, texts)`` over ``labels`` and ``predict_all(titles, texts)`` per head."""
    if manifest.kind == "linear":
        return LinearCategoryModel(manifest)
    if manifest.kind == "transformer":
        from serving.model.transformer import TransformerModel

        return TransformerModel(manifest)
    if manifest.kind == "ensemble":
        from serving.model.transformer import EnsembleModel

        return EnsembleModel(manifest, load_category_model)
    raise BundleError(manifest.path, f"model kind {manifest.kind!r} cannot be served by this version")


class Predictor:
    """Load a bundle once, classify many appeals."""

    def __init__(self, bundle: str | Path, taxonomy: Taxonomy, manifest: Manifest | None = None):
        """``manifest``: one already read (training evaluates a bundle before its manifest is written)."""
        self.manifest = manifest if manifest is not None else read_manifest(bundle)
        self.taxonomy = taxonomy
        self.model = load_category_model(self.manifest)
        unknown = [label for label in self.model.labels if label not in taxonomy.categories]
        if unknown:
            raise BundleError(bundle, f"labels not in the taxonomy {taxonomy.name!r}: {', '.join(unknown[:5])}")
        self.decisions = Decisions.from_dict(self.manifest.data.get("decision"))
        self.learned = self.manifest.data.get("decision") is not None and self.decisions.urgent is not None
        counts = self.manifest.data.get("head_counts") or {}
        # a bundle that chose no decisions (older ones) learnt nothing of the tree's other nodes: no prior
        prior = TreePrior.from_dict(taxonomy.categories, self.decisions.prior) if "decision" in self.manifest.data \
            else None
        self.hierarchy = Hierarchy(taxonomy.categories, self.model.heads, self.decisions, prior, counts)
        self.urgency_rules = UrgencyRules(taxonomy.urgency)
        self.type_rules = AppealTypeRules(taxonomy.appeal_types)
        self.places = PlaceResolver(taxonomy.units, taxonomy.street_aliases, taxonomy.not_place_names)

    @property
    def labels(self) -> list[str]:
        return self.model.labels

    def with_taxonomy(self, taxonomy: Taxonomy) -> "Predictor":
        """The same model over another unit registry (the store's, after an import or a merge)."""
        other = copy.copy(self)
        other.taxonomy = taxonomy
        other.places = PlaceResolver(taxonomy.units, taxonomy.street_aliases, taxonomy.not_place_names)
        return other

    def predict(self, appeals: Sequence[AppealInput]) -> list[Classification]:
        appeals = [validate_appeal(a) for a in appeals]
        if not appeals:
            return []
        titles = [a.clean_title for a in appeals]
        texts = [a.clean_text for a in appeals]
        heads = self.model.predict_all(titles, texts)  # the features' normalisation is idempotent
        routes = self.hierarchy.decide(heads, [f"{t}。{x}" for t, x in zip(titles, texts)])
        return [self._one(appeal, titles[i], texts[i], routes[i], {h: v[i] for h, v in heads.items()})
                for i, appeal in enumerate(appeals)]

    def predict_one(self, appeal: AppealInput) -> Classification:
        return self.predict([appeal])[0]

    def _head(self, name: str, row: np.ndarray | None) -> tuple[str, float] | None:
        if row is None:
            return None
        best = int(np.argmax(row))
        return self.model.heads[name][best], float(row[best])

    def _learned(self, title: str, text: str, guess: str, heads: dict[str, np.ndarray]):
        """Urgency and type: a trusted rule where one fired, else the learned heads."""
        kind = self.type_rules.decide(title, text, normalized=True)
        trusted_type = kind.from_signals and kind.appeal_type in self.decisions.type_rules
        guess_type = self._head("appeal_type", heads.get("appeal_type"))
        if guess_type and not trusted_type:
            kind = AppealTypeDecision(guess_type[0], kind.scores, (),
                                      f"{guess_type[0]}：模型判断（置信度{guess_type[1]:.2f}，model.appeal_type）")
        # signals first, whatever the type: a danger phrase is not lowered by the type the head read
        rule = self.urgency_rules.decide(title, text, None, guess, normalized=True)
        row = heads.get("urgency")
        if row is None or rule.rule in self.decisions.urgency_rules:
            return rule, kind
        fixed = self.taxonomy.urgency.fixed_for_types.get(kind.appeal_type)
        if fixed is not None and "urgency.type_fixed" in self.decisions.urgency_rules:
            return self.urgency_rules.decide(title, text, kind.appeal_type, guess, normalized=True), kind
        p = {label: float(v) for label, v in zip(self.model.heads["urgency"], row)}
        urgent = self._urgent(p, heads.get("urgent"))
        if urgent >= float(self.decisions.urgent):
            level = 1 if p.get("1", 0.0) > p.get("2", 0.0) else 2
        else:
            level = 3 if p.get("3", 0.0) >= p.get("4", 0.0) else 4
        name = self.taxonomy.urgency.get(level).name
        reason = f"{name}：模型判断（紧急的概率{urgent:.2f}，阈值{float(self.decisions.urgent):.2f}，model.urgency）"
        return UrgencyDecision(level, "model.urgency", None, reason), kind

    def _urgent(self, levels: dict[str, float], row: np.ndarray | None) -> float:
        """P(urgent): the ``urgent`` head where the bundle has one, else the urgency head's levels 1 and 2."""
        if row is not None:
            return float(row[self.model.heads["urgent"].index("urgent")])
        return levels.get("1", 0.0) + levels.get("2", 0.0)

    def _with_heads(self, urgency: UrgencyDecision, kind: AppealTypeDecision, heads: dict[str, np.ndarray],
                    title: str, text: str, category: str):
        guess = self._head("appeal_type", heads.get("appeal_type"))
        if guess and not kind.from_signals and guess[0] != kind.appeal_type and guess[1] >= HEAD_CONFIDENCE:
            kind = AppealTypeDecision(guess[0], kind.scores, (),
                                      f"{guess[0]}：未命中类型信号，模型判断（置信度{guess[1]:.2f}，model.appeal_type）")
            if urgency.rule in RULE_DEFAULTS + ("urgency.type_fixed",):
                # the level followed the old type's default: follow the new type's (a signal's level stays)
                urgency = self.urgency_rules.decide(title, text, kind.appeal_type, category, normalized=True)
        guess = self._head("urgency", heads.get("urgency"))
        if guess and urgency.rule in RULE_DEFAULTS and guess[1] >= HEAD_CONFIDENCE and int(guess[0]) != urgency.level:
            level = int(guess[0])
            name = self.taxonomy.urgency.get(level).name
            urgency = UrgencyDecision(level, "model.urgency", None,
                                      f"{name}：未命中紧急信号，模型判断（置信度{guess[1]:.2f}，model.urgency）")
        return urgency, kind

    def _one(self, appeal: AppealInput, title: str, text: str, route: PathPrediction,
             heads: dict[str, np.ndarray]) -> Classification:
        guess = "/".join(route.full_path)
        if self.learned:
            urgency, kind = self._learned(title, text, guess, heads)
        else:
            urgency, kind = classify_rules(self.urgency_rules, self.type_rules, title, text, guess, normalized=True)
            urgency, kind = self._with_heads(urgency, kind, heads, title, text, guess)
        place = self.places.resolve(f"{title}。{text}" if title else text, appeal.address)
        warnings = []
        if cjk_ratio(title + text) == 0:
            warnings.append("no_chinese_text")
        if place.ambiguous:
            warnings.append("place_ambiguous:" + "/".join(place.ambiguous))
        level = route.level
        return Classification(
            id=appeal.id,
            category=route.label,
            category_confidence=route.confidences[level - 1],
            category_top3=route.top,
            urgency=urgency.level,
            urgency_reason=urgency.reason,
            urgency_rule=urgency.rule,
            appeal_type=kind.appeal_type,
            appeal_type_reason=kind.reason,
            district=place.district.name if place.district else None,
            street=place.street.name if place.street else None,
            district_id=place.district.id if place.district else None,
            street_id=place.street.id if place.street else None,
            place_evidence=list(place.evidence),
            warnings=warnings,
            category_path=list(route.path),
            category_confidences=list(route.confidences[:level]),
            category_guess=list(route.full_path),
            category_guess_confidences=list(route.confidences),
            category_failed_level=route.failed_level,
            department=route.department,
            department_confidence=route.department_confidence,
            company=route.company,
            company_confidence=route.company_confidence,
        )


class RulesOnly:
    """What jiesu can say about an appeal without a model: urgency and type from the profile's rules and
    the place from the resolver; no category and no owner, so dispatch sends it to a reviewer with the
    reason ``no_model`` (the hotline keeps taking appeals while the model is missing or broken)."""

    def __init__(self, taxonomy: Taxonomy):
        self.taxonomy = taxonomy
        self.urgency_rules = UrgencyRules(taxonomy.urgency)
        self.type_rules = AppealTypeRules(taxonomy.appeal_types)
        self.places = PlaceResolver(taxonomy.units, taxonomy.street_aliases, taxonomy.not_place_names)

    def predict_one(self, appeal: AppealInput) -> Classification:
        appeal = validate_appeal(appeal)
        title, text = appeal.clean_title, appeal.clean_text
        urgency, kind = classify_rules(self.urgency_rules, self.type_rules, title, text, None, normalized=True)
        place = self.places.resolve(f"{title}。{text}" if title else text, appeal.address)
        return Classification(
            id=appeal.id, category="", category_confidence=0.0, category_top3=[], urgency=urgency.level,
            urgency_reason=urgency.reason, urgency_rule=urgency.rule, appeal_type=kind.appeal_type,
            appeal_type_reason=kind.reason, district=place.district.name if place.district else None,
            street=place.street.name if place.street else None,
            district_id=place.district.id if place.district else None,
            street_id=place.street.id if place.street else None, place_evidence=list(place.evidence),
            warnings=["no_model"])
