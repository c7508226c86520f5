"""When a callback is due and how urgent it is: pure functions, no database.

**Due time.** First contact is due within ``minutes`` of *business time* in
the store's timezone. Business time runs from opening to closing on the
store's business days and stands still at night, at weekends and on closed
days:

- inside business hours the deadline is ``now + minutes``; what does not fit
  before closing carries over to the next opening (Friday 16:50, 15 minutes,
  closing 17:00 → Monday 09:05);
- outside business hours it is ``minutes`` after the next opening;
- exactly at closing counts as closed, exactly at opening as open.

Opening and closing are wall-clock times, so an opening at 09:00 stays 09:00
across a daylight-saving change, and minutes are real elapsed minutes. A wall
time the clock skips (02:30 on the night clocks go forward) happens at the
instant the clock jumps past it; a wall time that happens twice (clocks go
back) counts from its first occurrence.

**Priority.** :func:`callback_priority` scores how urgent a call is from the
survey rating, the customer's value (RFM tier and monetary score) and their
churn probability (the latest score, when they have one). Higher is called
first.
"""

from __future__ import annotations

import zoneinfo
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

WEEKDAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
# Enough for the longest SLA the settings allow (a week of minutes) on the
# sparsest week (one business day with one open minute) many times over.
_MAX_DAYS = 400 * 366


class InvalidBusinessHours(ValueError):
    """The business hours cannot define a deadline; ``fields`` says why."""

    def __init__(self, fields: dict[str, str]):
        super().__init__("; ".join(f"{k}: {v}" for k, v in fields.items()))
        self.fields = fields


def business_hours_errors(
    *, opening: time | None, closing: time | None, days: object, timezone: str | None = None
) -> dict[str, str]:
    """What is wrong with these business hours, by field (empty when fine)."""
    errors: dict[str, str] = {}
    if opening is not None and closing is not None and closing <= opening:
        errors["closing_time"] = "Closing must be after opening (on the same day)."
    if (
        not isinstance(days, list | tuple | set | frozenset)
        or not days
        or not all(isinstance(d, int) and not isinstance(d, bool) and 0 <= d <= 6 for d in days)
    ):
        errors["business_days"] = "Choose at least one business day."
    if timezone is not None:
        try:
            zoneinfo.ZoneInfo(timezone)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            errors["timezone"] = f"Unknown timezone {timezone!r}."
    return errors


@dataclass(frozen=True)
class BusinessHours:
    """A store's opening hours: ``days`` are Python weekdays (0 = Monday)."""

    timezone: str
    opening: time
    closing: time
    days: frozenset[int]

    @classmethod
    def of(
        cls, *, timezone: str, opening: time, closing: time, days: Iterable[int]
    ) -> BusinessHours:
        """Validated business hours; raises :class:`InvalidBusinessHours`."""
        day_list = list(days) if isinstance(days, list | tuple | set | frozenset) else days
        errors = business_hours_errors(
            opening=opening, closing=closing, days=day_list, timezone=timezone
        )
        if errors:
            raise InvalidBusinessHours(errors)
        return cls(
            timezone=timezone,
            opening=opening.replace(tzinfo=None),
            closing=closing.replace(tzinfo=None),
            days=frozenset(day_list),
        )

    @property
    def tzinfo(self) -> zoneinfo.ZoneInfo:
        return zoneinfo.ZoneInfo(self.timezone)

    def intervals(self, at: datetime) -> Iterator[tuple[datetime, datetime]]:
        """Business intervals ``[open, close)`` in UTC, from the local day of ``at``
        on (the first may already have ended)."""
        tz = self.tzinfo
        day = at.astimezone(tz).date()
        for _ in range(_MAX_DAYS):
            if day.weekday() in self.days:
                start = wall_time_instant(day, self.opening, tz)
                end = wall_time_instant(day, self.closing, tz)
                if end > start:  # only empty when both ends fall in a skipped hour
                    yield start, end
            day += timedelta(days=1)
        raise InvalidBusinessHours({"business_days": "No business time in the next 400 years."})

    def is_open(self, at: datetime) -> bool:
        for start, end in self.intervals(at):
            if start > at:
                return False
            if at < end:
                return True
        return False  # pragma: no cover  (intervals never ends without raising)


def wall_time_instant(day: date, wall: time, tz: zoneinfo.ZoneInfo) -> datetime:
    """The UTC instant at which the local clock first shows ``wall`` on ``day``."""
    naive = datetime.combine(day, wall)
    first = naive.replace(tzinfo=tz, fold=0).astimezone(UTC)
    if first.astimezone(tz).replace(tzinfo=None) == naive:
        return first  # exists (once, or twice and this is the first time)
    # Skipped by a forward change: the clock passes ``wall`` when it jumps.
    # fold=1 reads it with the offset after the change, which lands before the
    # jump; the jump (a whole second) lies between the two readings.
    low = int(naive.replace(tzinfo=tz, fold=1).astimezone(UTC).timestamp())
    high = int(first.timestamp())
    low, high = min(low, high), max(low, high)
    while high - low > 1:
        mid = (low + high) // 2
        if datetime.fromtimestamp(mid, tz).replace(tzinfo=None) >= naive:
            high = mid
        else:
            low = mid
    return datetime.fromtimestamp(high, UTC)


def next_opening(*, now: datetime, hours: BusinessHours) -> datetime:
    """``now`` when the store is open, else when it next opens (UTC)."""
    for start, end in hours.intervals(now):
        if end <= now:
            continue
        return max(start, now).astimezone(UTC)
    raise AssertionError("unreachable")  # pragma: no cover


def first_contact_due(*, now: datetime, minutes: int, hours: BusinessHours) -> datetime:
    """The deadline for the first contact: ``minutes`` of business time after
    ``now`` (an aware datetime). Returned in UTC."""
    if now.tzinfo is None:
        raise ValueError("first_contact_due needs a timezone-aware now")
    if minutes < 0:
        raise ValueError("minutes must not be negative")
    remaining = timedelta(minutes=minutes)
    now = now.astimezone(UTC)
    for start, end in hours.intervals(now):
        if end <= now:
            continue  # already closed (exactly at closing counts as closed)
        start = max(start, now)
        if end - start >= remaining:
            return start + remaining
        remaining -= end - start
    raise AssertionError("unreachable")  # pragma: no cover


def business_time_between(*, start: datetime, end: datetime, hours: BusinessHours) -> timedelta:
    """How much business time lies between two instants."""
    total = timedelta(0)
    if end <= start:
        return total
    for open_at, close_at in hours.intervals(start):
        if open_at >= end:
            break
        overlap = min(close_at, end) - max(open_at, start)
        if overlap > timedelta(0):
            total += overlap
    return total


# --- priority -----------------------------------------------------------------------------

# Points per reason to call first. One star lower outweighs one tier higher,
# two tiers and top spend outweigh one star; a certain churner counts as two
# stars lower.
RATING_POINTS = {1: 60, 2: 45, 3: 30, 4: 15, 5: 0}
NO_RATING_POINTS = 30  # a call from a journey step or an agent: as urgent as a 3
TIER_POINTS = {"high_value_repeat": 20, "mid_value_repeat": 10, "one_time": 0}
MONETARY_POINTS_PER_SCORE = 2  # monetary score 1-5 adds 0-8
CHURN_POINTS = 30  # times the churn probability (0-1)
ASKED_FOR_CALL_POINTS = 5


def callback_priority(
    *,
    rating: int | None = None,
    tier: str | None = None,
    monetary_score: int | None = None,
    churn_probability: float | None = None,
    asked_for_call: bool = False,
) -> int:
    """How urgent a callback is; higher is called first (0-123).

    The sum of:

    - the survey rating: 1 star 60, 2 → 45, 3 → 30, 4 → 15, 5 → 0; no rating
      (a journey step, an agent) 30;
    - the customer's value: RFM tier high-value repeat 20, mid-value repeat 10,
      one-time or not scored 0; plus 2 per monetary score above 1 (0-8);
    - churn risk: 30 times the customer's latest churn probability, rounded
      (``scoring.selectors.churn_probability``); None (never scored) adds nothing;
    - 5 when the customer asked to be called.

    Deterministic: the same inputs give the same number. Out-of-range inputs
    are clamped (a rating outside 1-5 counts as no rating).
    """
    points = RATING_POINTS.get(rating or 0, NO_RATING_POINTS)
    points += TIER_POINTS.get(tier or "", 0)
    if monetary_score is not None:
        points += MONETARY_POINTS_PER_SCORE * (min(max(int(monetary_score), 1), 5) - 1)
    if churn_probability is not None:
        points += round(CHURN_POINTS * min(max(float(churn_probability), 0.0), 1.0))
    if asked_for_call:
        points += ASKED_FOR_CALL_POINTS
    return points
