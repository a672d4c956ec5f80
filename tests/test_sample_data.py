"""The team's sample set is fit for the quick start and the tests: sized, complete, valid."""

from __future__ import annotations

from collections import Counter

from taxonomy import APPEAL_TYPES


def test_sample_size_and_coverage(sample_rows, taxonomy):
    assert 150 <= len(sample_rows) <= 300
    assert len({r["id"] for r in sample_rows}) == len(sample_rows)
    categories = Counter(r["category"] for r in sample_rows)
    assert set(categories) == set(taxonomy.categories.top_level_names)
    assert set(Counter(r["urgency"] for r in sample_rows)) == {1, 2, 3, 4}
    assert set(Counter(r["appeal_type"] for r in sample_rows)) == set(APPEAL_TYPES)


def test_sample_places_are_real_beijing_units(sample_rows, taxonomy):
    districts = {u.name: u for u in taxonomy.units.of_kind("district")}
    streets = {(u.district_code, u.name) for u in taxonomy.units.of_kind("street")}
    named = [r for r in sample_rows if r["district"]]
    assert len(named) >= len(sample_rows) // 2
    assert len({r["district"] for r in named}) == 16
    for row in named:
        assert row["district"] in districts
        if row["street"]:
            assert (districts[row["district"]].code, row["street"]) in streets, row["id"]
