"""The predictor: one appeal in, its classification out — category (model), urgency and appeal type
(rule layer, and the model's heads where the rules found no signal), district and street (place resolver).

Urgency and appeal type: a rule that fired on a signal in the text (a phrase, a pattern, the category)
decides, because its reason can be read and checked. Where the rules only fell back to a default and
the bundle has an ``urgency`` or ``appeal_type`` head (transformer bundles, trained on the rule
layer's labels plus every reviewer correction), the head decides when it is at least
``HEAD_CONFIDENCE`` sure; the reason then says ``模型判断``.

Input is accepted by the rules in ``serving.appeals``. Text with no Chinese characters is still
classified, with the warning ``no_chinese_text``: its category confidence is low, and dispatch sends
low-confidence appeals to review.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from serving.appeals import AppealInput, AppealInputError, validate_appeal
from serving.bundle import BundleError, Manifest, read_manifest
from serving.linear import LinearCategoryModel
from serving.rules import AppealTypeDecision, AppealTypeRules, UrgencyDecision, UrgencyRules, classify_rules
from taxonomy import Taxonomy
from taxonomy.places import PlaceResolver
from taxonomy.text import cjk_ratio, normalize

__all__ = ["AppealInput", "AppealInputError", "Prediction", "Predictor", "load_category_model", "validate_appeal"]

TOP_K = 3
HEAD_CONFIDENCE = 0.6
RULE_DEFAULTS = ("urgency.default", "urgency.type_default")


@dataclass
class Prediction:
    id: str | None
    category: str
    category_confidence: float
    category_top3: list[tuple[str, float]]
    urgency: int
    urgency_reason: str
    urgency_rule: str
    appeal_type: str
    appeal_type_reason: str
    district: str | None
    street: str | None
    district_id: str | None = None
    street_id: str | None = None
    place_evidence: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    category_detail: str | None = None  # deeper level, from a category_l2/l3 head, under ``category``

    def to_dict(self) -> dict:
        data = dict(self.__dict__)
        data["category_top3"] = [[label, round(p, 6)] for label, p in self.category_top3]
        data["category_confidence"] = round(self.category_confidence, 6)
        return data


def load_category_model(manifest: Manifest):
    """The model object for a bundle of any kind: ``labels``, ``heads``, ``parallel_safe``,
    ``predict_proba(titles, texts)`` over ``labels`` and ``predict_all(titles, texts)`` per head."""
    if manifest.kind == "linear":
        return LinearCategoryModel(manifest)
    if manifest.kind == "transformer":
        from serving.transformer import TransformerModel

        return TransformerModel(manifest)
    if manifest.kind == "ensemble":
        from serving.transformer import EnsembleModel

        return EnsembleModel(manifest, load_category_model)
    raise BundleError(manifest.path, f"model kind {manifest.kind!r} cannot be served by this version")


class Predictor:
    """Load a bundle once, classify many appeals."""

    def __init__(self, bundle: str | Path, taxonomy: Taxonomy):
        self.manifest = read_manifest(bundle)
        self.taxonomy = taxonomy
        self.model = load_category_model(self.manifest)
        unknown = [label for label in self.model.labels if label not in taxonomy.categories]
        if unknown:
            raise BundleError(bundle, f"labels not in the taxonomy {taxonomy.name!r}: {', '.join(unknown[:5])}")
        self.urgency_rules = UrgencyRules(taxonomy.urgency)
        self.type_rules = AppealTypeRules(taxonomy.appeal_types)
        self.places = PlaceResolver(taxonomy.units, taxonomy.street_aliases, taxonomy.not_place_names)

    @property
    def labels(self) -> list[str]:
        return self.model.labels

    def predict(self, appeals: Sequence[AppealInput]) -> list[Prediction]:
        appeals = [validate_appeal(a) for a in appeals]
        if not appeals:
            return []
        heads = self.model.predict_all([a.title or "" for a in appeals], [a.text for a in appeals])
        return [self._one(appeal, heads["category"][i], {h: v[i] for h, v in heads.items() if h != "category"})
                for i, appeal in enumerate(appeals)]

    def predict_one(self, appeal: AppealInput) -> Prediction:
        return self.predict([appeal])[0]

    def _head(self, name: str, row: np.ndarray | None) -> tuple[str, float] | None:
        if row is None:
            return None
        best = int(np.argmax(row))
        return self.model.heads[name][best], float(row[best])

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

    def _one(self, appeal: AppealInput, probabilities: np.ndarray, heads: dict[str, np.ndarray] | None = None) -> Prediction:
        order = np.argsort(-probabilities)[:TOP_K]
        top = [(self.model.labels[i], float(probabilities[i])) for i in order]
        category = top[0][0]
        title, text = normalize(appeal.title or ""), normalize(appeal.text)
        urgency, kind = classify_rules(self.urgency_rules, self.type_rules, title, text, category, normalized=True)
        detail = None
        if heads:
            urgency, kind = self._with_heads(urgency, kind, heads, title, text, category)
            detail = self._detail(category, heads)
        place = self.places.resolve(f"{title}。{text}" if title else text, appeal.address)
        warnings = []
        if cjk_ratio(title + text) == 0:
            warnings.append("no_chinese_text")
        if place.ambiguous:
            warnings.append("place_ambiguous:" + "/".join(place.ambiguous))
        return Prediction(
            id=appeal.id,
            category=category,
            category_confidence=top[0][1],
            category_top3=top,
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
            category_detail=detail,
        )

    def _detail(self, category: str, heads: dict[str, np.ndarray]) -> str | None:
        """The most probable deeper category under the predicted one, from the deepest head there is."""
        for name in ("category_l3", "category_l2"):
            if name not in heads:
                continue
            labels = self.model.heads[name]
            inside = [i for i, label in enumerate(labels) if label.startswith(category + "/")]
            if inside:
                return labels[max(inside, key=lambda i: heads[name][i])]
        return None
