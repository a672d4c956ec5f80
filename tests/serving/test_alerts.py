"""Trend alerts on hand-made series: weekday-aware baselines, and bursts that stand out."""

from __future__ import annotations

from datetime import date, timedelta

from serving.analytics.alerts import detect, expected_count, weekday_factors

MONDAY = date(2026, 11, 2)


def steady(days=56, weekday=(4, 4, 4, 4, 4, 1, 1)):
    return {MONDAY + timedelta(days=d): weekday[(MONDAY + timedelta(days=d)).weekday()] for d in range(days)}


def test_a_burst_after_quiet_weeks_alerts_with_its_evidence():
    counts = {MONDAY + timedelta(days=d): 0 for d in range(28)}
    burst_day = MONDAY + timedelta(days=28)
    counts[burst_day] = 25
    [alert] = detect({("城乡建设", "street:110105021"): counts}, burst_day, burst_day + timedelta(days=1))
    assert alert.observed == 25 and alert.expected < 1 and alert.p_value < 1e-20
    assert len(alert.baseline) == 28 and sum(alert.baseline) == 0


def test_weekday_rhythm_is_not_an_alert():
    series = {("环境保护", f"district:{i}"): steady() for i in range(5)}
    assert detect(series, MONDAY + timedelta(days=28), MONDAY + timedelta(days=56)) == []
    factors = weekday_factors(series)
    assert factors[0] > 1 > factors[6]  # Mondays are busy, Sundays quiet


def test_a_busy_monday_is_expected_a_busy_sunday_is_not():
    series = {("环境保护", "district:1"): steady()}
    factors = weekday_factors(series)
    monday, sunday = MONDAY + timedelta(days=28), MONDAY + timedelta(days=34)
    assert expected_count(series[("环境保护", "district:1")], monday, factors)[0] > \
        expected_count(series[("环境保护", "district:1")], sunday, factors)[0]
    series[("环境保护", "district:1")][sunday] = 9
    [alert] = detect(series, sunday, sunday + timedelta(days=1), min_count=5)
    assert alert.date == sunday


def test_small_counts_never_alert():
    counts = {MONDAY + timedelta(days=d): 0 for d in range(28)}
    counts[MONDAY + timedelta(days=28)] = 4  # below min_count
    assert detect({("政法", "street:1"): counts}, MONDAY, MONDAY + timedelta(days=60)) == []
