"""The predictor: one appeal in, its classification out — category (model), urgency and appeal type
(rule layer), district and street (place resolver).

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
from serving.rules import AppealTypeRules, UrgencyRules, classify_rules
from taxonomy import Taxonomy
from taxonomy.places import PlaceResolver
from taxonomy.text import cjk_ratio, normalize

__all__ = ["AppealInput", "AppealInputError", "Prediction", "Predictor", "load_category_model", "validate_appeal"]

TOP_K = 3


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

    def to_dict(self) -> dict:
        data = dict(self.__dict__)
        data["category_top3"] = [[label, round(p, 6)] for label, p in self.category_top3]
        data["category_confidence"] = round(self.category_confidence, 6)
        return data


def load_category_model(manifest: Manifest):
    if manifest.kind == "linear":
        return LinearCategoryModel(manifest)
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
        probabilities = self.model.predict_proba([a.title or "" for a in appeals], [a.text for a in appeals])
        return [self._one(appeal, row) for appeal, row in zip(appeals, probabilities)]

    def predict_one(self, appeal: AppealInput) -> Prediction:
        return self.predict([appeal])[0]

    def _one(self, appeal: AppealInput, probabilities: np.ndarray) -> Prediction:
        order = np.argsort(-probabilities)[:TOP_K]
        top = [(self.model.labels[i], float(probabilities[i])) for i in order]
        category = top[0][0]
        title, text = normalize(appeal.title or ""), normalize(appeal.text)
        urgency, kind = classify_rules(self.urgency_rules, self.type_rules, title, text, category, normalized=True)
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
        )
