"""三率 scoring rules: weights of the response, resolution and satisfaction rates, how each callback
answer counts toward satisfaction, and the bonus for solving group appeals and long-standing problems.

Rules: rates are fractions 0–1; composite score = 100 × Σ(rate × weight) + bonus, where the bonus is
the per-ticket points summed and capped at ``bonus.max_per_month``; the weights must sum to 1.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Satisfaction = Literal["satisfied", "basically_satisfied", "dissatisfied"]


class Weights(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    response_rate: float = Field(ge=0, le=1)
    resolution_rate: float = Field(ge=0, le=1)
    satisfaction_rate: float = Field(ge=0, le=1)

    @model_validator(mode="after")
    def _sum_to_one(self) -> "Weights":
        total = self.response_rate + self.resolution_rate + self.satisfaction_rate
        if abs(total - 1.0) > 1e-6:
            raise ValueError(f"weights must sum to 1, they sum to {total:g}")
        return self


class Bonus(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    group_appeal_resolved: float = Field(default=0.0, ge=0)
    long_standing_resolved: float = Field(default=0.0, ge=0)
    max_per_month: float = Field(default=0.0, ge=0)


class Industry(BaseModel):
    """部门+行业 联合考评: an industry the public often complains about, scored as one — its categories
    (paths at any level: a ticket under one of them is the industry's), the departments that regulate it
    and the companies that serve it (their units are the industry's members)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    id: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    name: str = Field(min_length=1)
    categories: list[str] = Field(min_length=1)
    departments: list[str] = Field(default_factory=list)
    companies: list[str] = Field(default_factory=list)


class ScoringRules(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    weights: Weights
    satisfaction_credit: dict[Satisfaction, float]
    bonus: Bonus = Field(default_factory=Bonus)
    rank_levels: list[Literal["street", "district", "department", "company"]]
    industries: list[Industry] = Field(default_factory=list)

    @model_validator(mode="after")
    def _industries_unique(self) -> "ScoringRules":
        ids = [i.id for i in self.industries]
        if len(ids) != len(set(ids)):
            raise ValueError(f"industries: ids must be unique ({', '.join(sorted({i for i in ids if ids.count(i) > 1}))})")
        return self

    @model_validator(mode="after")
    def _credit_complete(self) -> "ScoringRules":
        for answer in ("satisfied", "basically_satisfied", "dissatisfied"):
            if answer not in self.satisfaction_credit:
                raise ValueError(f"satisfaction_credit needs a value for {answer}")
            if not 0 <= self.satisfaction_credit[answer] <= 1:
                raise ValueError(f"satisfaction_credit.{answer} must be between 0 and 1")
        return self
