"""When a step is due: pure time arithmetic, no database.

Day delays count calendar days on the customer's wall clock, so "day 3 at the
time of the order" stays at the same local time across a daylight-saving
change; minute and hour delays are exact durations. A send window moves the
time forward to the next moment inside ``window_start``-``window_end`` local.
"""

from __future__ import annotations

from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

UTC = ZoneInfo("UTC")

# The expensive tier waits longer: reorder at the window's start, upsell in the
# middle, replenishment at its end (ProductFamily.expensive_min/max_days).
WINDOW_FIELDS = {
    "reorder": "reorder_days",
    "upsell": "upsell_days",
    "replenishment": "replenishment_days",
}


def family_days(
    *, window: str, price_tier: str, days: dict[str, int], expensive: tuple[int, int]
) -> int:
    """Days after the purchase at which a family's ``window`` opens.

    ``days`` maps reorder/upsell/replenishment to the family's days and
    ``expensive`` is its (min, max) for the expensive price tier."""
    if price_tier == "expensive":
        low, high = expensive
        return {"reorder": low, "upsell": (low + high) // 2, "replenishment": high}[window]
    return days[window]


def add_delay(start: datetime, amount: int, unit: str, zone: ZoneInfo) -> datetime:
    if unit == "days":
        local = start.astimezone(zone).replace(tzinfo=None) + timedelta(days=amount)
        return _aware(local, zone)
    return start + timedelta(**{unit: amount})


def snap_to_window(at: datetime, start: time | None, end: time | None, zone: ZoneInfo) -> datetime:
    """The first moment at or after ``at`` whose local time is inside the window."""
    if start is None or end is None:
        return at
    local = at.astimezone(zone)
    wall = local.time().replace(tzinfo=None)
    if start <= wall <= end:
        return at
    day = local.date() if wall < start else local.date() + timedelta(days=1)
    return _aware(datetime.combine(day, start), zone)


def _aware(wall: datetime, zone: ZoneInfo) -> datetime:
    """A local wall time as an aware UTC instant; a time that a spring-forward
    skips is moved past the gap rather than back before it."""
    first = wall.replace(tzinfo=zone, fold=0)
    second = wall.replace(tzinfo=zone, fold=1)
    if (
        first.utcoffset() != second.utcoffset()
        and first.astimezone(UTC).astimezone(zone).replace(tzinfo=None) != wall
    ):
        # Non-existent local time (in the gap): use the later reading.
        return max(first.astimezone(UTC), second.astimezone(UTC))
    return first.astimezone(UTC)


def step_due_at(
    *,
    delay: int,
    unit: str,
    anchor: str,
    trigger_at: datetime,
    previous_at: datetime | None,
    zone: ZoneInfo,
    window_start: time | None = None,
    window_end: time | None = None,
    family_offset_days: int | None = None,
) -> datetime:
    """When a step with this delay falls due.

    ``anchor`` is ``trigger``, ``previous`` (the previous step's run, else the
    trigger) or ``family`` (the trigger plus ``family_offset_days`` calendar
    days, then ``delay`` more)."""
    if anchor == "previous":
        base = previous_at or trigger_at
    elif anchor == "family":
        base = add_delay(trigger_at, family_offset_days or 0, "days", zone)
    else:
        base = trigger_at
    return snap_to_window(add_delay(base, delay, unit, zone), window_start, window_end, zone)
