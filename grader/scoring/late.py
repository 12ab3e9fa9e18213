"""Late policy: how much of the raw points lateness costs. Pure functions only.

Lateness is measured from the (extended) deadline to the graded commit. The rules:

* within ``grace_minutes`` of the deadline: nothing;
* ``percent_per_day``: that percentage for every *started* day after the deadline
  (1 minute past the grace period is one day), charging at most ``max_days`` days;
* ``tiers``: the percentage of the first tier whose ``days`` covers the lateness (a
  table of cumulative steps; never less than an earlier tier's); past the last tier,
  the last tier's percentage;
* the percentage never exceeds 100; a lateness past the policy's whole window (the
  commit should not have been accepted at all) costs 100%.
"""

from __future__ import annotations

import math
from datetime import timedelta

from grader.config import LatePolicy
from grader.records import NO_PENALTY, LatePenalty

DAY = timedelta(days=1)


def late_penalty(lateness: timedelta, policy: LatePolicy) -> LatePenalty:
    """The percentage of the raw points that ``lateness`` costs under ``policy``."""
    if lateness <= timedelta():
        return NO_PENALTY
    late = describe_lateness(lateness)
    grace = timedelta(minutes=policy.grace_minutes)
    if lateness <= grace:
        reason = f"{late} late, within the {_minutes(policy.grace_minutes)} grace period"
        return LatePenalty(lateness, 0, 0.0, reason)
    days = started_days(lateness)
    if lateness > policy.window:
        reason = f"{late} late, after the late window of {describe_lateness(policy.window)}"
        return LatePenalty(lateness, days, 100.0, reason)
    if policy.tiers:
        percent = _tier_percent(lateness, policy)
        reason = f"{late} late: {_percent(percent)} off by the late table"
        return LatePenalty(lateness, days, percent, reason)
    charged = min(days, math.ceil(policy.max_days)) if policy.max_days > 0 else days
    percent = min(100.0, charged * policy.percent_per_day)
    if percent == 0:
        return LatePenalty(lateness, charged, 0.0, f"{late} late; no late penalty is set")
    day_word = "day" if charged == 1 else "days"
    reason = (
        f"{late} late: {charged} started {day_word} x {_percent(policy.percent_per_day)}"
        f" = {_percent(percent)} off"
    )
    return LatePenalty(lateness, charged, percent, reason)


def started_days(lateness: timedelta) -> int:
    """Days begun since the deadline: 1 minute late and 24 hours late are both 1."""
    return max(0, math.ceil(lateness / DAY))


def describe_lateness(lateness: timedelta) -> str:
    """'1 d 6 h 1 min', '10 min', '45 s': whole units, largest first."""
    seconds = int(lateness.total_seconds())
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{n} {unit}" for n, unit in ((days, "d"), (hours, "h"), (minutes, "min")) if n]
    if not parts:
        return f"{secs} s"
    return " ".join(parts)


def _tier_percent(lateness: timedelta, policy: LatePolicy) -> float:
    percent = 0.0
    for tier in sorted(policy.tiers, key=lambda t: t.days):
        percent = max(percent, tier.percent)  # steps never go down
        if lateness <= timedelta(days=tier.days):
            break
    return min(100.0, percent)


def _percent(value: float) -> str:
    return f"{value:g}%"


def _minutes(value: float) -> str:
    return f"{value:g}-minute"
