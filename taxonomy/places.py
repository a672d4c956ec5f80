"""Place resolver: find the district (区) and street (街道/乡镇) an appeal names.

Rules:
- names come from the unit registry, not from code: each district by its full and short name
  (朝阳区 / 朝阳); each street by its official name, its office names (XX街道办事处, XX镇人民政府,
  XX乡人民政府, XX地区办事处), its bare name without the suffix (建外), and the profile's aliases
  (建国门外街道 for 建外街道); bare names the profile lists as ordinary words (河北 is a province,
  not 河北镇) are left out;
- candidate names are found by a dictionary scan, then each is confirmed by segmenting its
  surroundings with jieba, using a user dictionary of those names, so a name inside a longer word
  (朝阳门, 朝阳门外) is not read as a shorter one (朝阳); the scan keeps this fast on long texts;
- each mention scores its unit: a full or office name or alias 2, a bare name or district short name 1;
  a name shared by streets in several districts splits its score among them; the address, when given,
  counts double;
- the district is the one with the highest score, and only when no other district scores as much:
  when two are equally likely the resolver returns nothing rather than a guess; the street is the
  best-scoring street in that district, again only when it is the single best.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from taxonomy.text import normalize
from taxonomy.units import Unit, UnitRegistry

FULL_NAME_WEIGHT = 2.0
BARE_NAME_WEIGHT = 1.0
ADDRESS_FACTOR = 2.0
_STREET_SUFFIXES = {
    "街道": ("街道办事处", "街道办"),
    "地区": ("地区办事处",),
    "镇": ("镇人民政府", "镇政府"),
    "乡": ("乡人民政府", "乡政府"),
}
_MIN_BARE_LENGTH = 2
_WINDOW = 6  # characters of context jieba sees around a candidate name


@dataclass(frozen=True)
class PlaceMatch:
    district: Unit | None
    street: Unit | None
    evidence: tuple[str, ...] = ()
    ambiguous: tuple[str, ...] = field(default=())  # districts tied for first, when the answer is None

    @property
    def found(self) -> bool:
        return self.district is not None


@dataclass(frozen=True)
class _Target:
    unit_ids: tuple[str, ...]  # one street or district, or several streets sharing a name
    weight: float


class PlaceResolver:
    """Resolve places in appeal text against one unit registry."""

    def __init__(self, units: UnitRegistry, street_aliases: dict[str, tuple[str, ...]] | None = None,
                 not_place_names: frozenset[str] | set[str] = frozenset()):
        self.units = units
        self._index = _build_index(units, street_aliases or {}, set(not_place_names))
        self._by_first_char: dict[str, list[str]] = defaultdict(list)
        for name in sorted(self._index, key=len, reverse=True):
            self._by_first_char[name[0]].append(name)
        self._tokenizer = None

    def _segment(self, text: str) -> list[str]:
        if self._tokenizer is None:
            import logging

            import jieba

            jieba.setLogLevel(logging.WARNING)
            tokenizer = jieba.Tokenizer()
            for name in self._index:
                tokenizer.add_word(name, freq=10_000 + 1_000 * len(name), tag="ns")
            self._tokenizer = tokenizer
        return self._tokenizer.lcut(text, HMM=False)

    def mentions(self, text: str) -> list[str]:
        """Registry names in ``text`` that jieba keeps as whole tokens, in order of appearance."""
        spans = []
        for i, ch in enumerate(text):
            for name in self._by_first_char.get(ch, ()):
                if text.startswith(name, i):
                    spans.append((i, i + len(name)))
                    break  # longest first
        found = []
        covered_to = -1
        for start, end in spans:
            if start < covered_to:
                continue
            window_start, window_end = max(0, start - _WINDOW), min(len(text), end + _WINDOW)
            offset = window_start
            for token in self._segment(text[window_start:window_end]):
                token_end = offset + len(token)
                if offset <= start < token_end and token in self._index:
                    found.append(token)
                    covered_to = token_end
                    break
                offset = token_end
        return found

    def resolve(self, text: str, address: str | None = None) -> PlaceMatch:
        district_score: dict[str, float] = defaultdict(float)
        street_score: dict[str, float] = defaultdict(float)
        evidence: list[str] = []
        for source, factor in ((text, 1.0), (address or "", ADDRESS_FACTOR)):
            if not source:
                continue
            for token in self.mentions(normalize(source)):
                target = self._index[token]
                evidence.append(token)
                share = target.weight * factor / len(target.unit_ids)
                for unit_id in target.unit_ids:
                    unit = self.units.units[unit_id]
                    district_score[unit.district_code] += share
                    if unit.kind == "street":
                        street_score[unit_id] += share
        if not district_score:
            return PlaceMatch(None, None)
        ranked = sorted(district_score.items(), key=lambda kv: -kv[1])
        best_code, best = ranked[0]
        tied = [code for code, score in ranked if abs(score - best) < 1e-9]
        if len(tied) > 1:
            names = tuple(self.units.district(code).name for code in tied if self.units.district(code))
            return PlaceMatch(None, None, tuple(dict.fromkeys(evidence)), ambiguous=names)
        district = self.units.district(best_code)
        in_district = sorted(
            ((uid, s) for uid, s in street_score.items() if self.units.units[uid].district_code == best_code),
            key=lambda kv: -kv[1],
        )
        street = None
        if in_district and (len(in_district) == 1 or in_district[0][1] - in_district[1][1] > 1e-9):
            street = self.units.units[in_district[0][0]]
        return PlaceMatch(district, street, tuple(dict.fromkeys(evidence)))


def street_names(street: Unit, aliases: tuple[str, ...] = ()) -> tuple[list[str], list[str]]:
    """(full names, bare names) people use for a street."""
    full = [street.name, *aliases]
    bare: list[str] = []
    for suffix, office_names in _STREET_SUFFIXES.items():
        if street.name.endswith(suffix):
            stem = street.name[: -len(suffix)]
            full.extend(stem + office for office in office_names)
            if len(stem) >= _MIN_BARE_LENGTH:
                bare.append(stem)
    for alias in aliases:
        for suffix, office_names in _STREET_SUFFIXES.items():
            if alias.endswith(suffix):
                full.extend(alias[: -len(suffix)] + office for office in office_names)
    return full, bare


def _build_index(units: UnitRegistry, aliases: dict[str, tuple[str, ...]], not_place_names: set[str]) -> dict[str, _Target]:
    weighted: dict[str, dict[str, float]] = defaultdict(dict)
    for district in units.of_kind("district"):
        weighted[district.name][district.id] = FULL_NAME_WEIGHT
        if district.short_name:
            weighted[district.short_name][district.id] = BARE_NAME_WEIGHT
    district_names = set(weighted)
    for street in units.of_kind("street"):
        full, bare = street_names(street, aliases.get(street.id, ()))
        for name in full:
            weighted[name][street.id] = FULL_NAME_WEIGHT
        for name in bare:
            if name not in district_names and name not in not_place_names:  # 密云 stays the district's
                weighted[name].setdefault(street.id, BARE_NAME_WEIGHT)
    index: dict[str, _Target] = {}
    for name, targets in weighted.items():
        index[name] = _Target(unit_ids=tuple(sorted(targets)), weight=max(targets.values()))
    return index
