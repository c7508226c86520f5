"""The first-contact deadline: business time in the store's timezone, across
evenings, weekends, closed days, daylight-saving changes and timezones; and
the refusal of business hours that cannot define one."""

from __future__ import annotations

import zoneinfo
from datetime import UTC, datetime, time, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from feedback.sla import (
    BusinessHours,
    InvalidBusinessHours,
    business_hours_errors,
    business_time_between,
    first_contact_due,
    next_opening,
)

WEEKDAYS = [0, 1, 2, 3, 4]
BERLIN = zoneinfo.ZoneInfo("Europe/Berlin")
NEW_YORK = zoneinfo.ZoneInfo("America/New_York")


def hours(tz="Europe/Berlin", opening=time(9), closing=time(17), days=WEEKDAYS) -> BusinessHours:
    return BusinessHours.of(timezone=tz, opening=opening, closing=closing, days=days)


def local(tz, *args) -> datetime:
    return datetime(*args, tzinfo=tz)


def due(now: datetime, minutes: int = 15, **kw) -> datetime:
    return first_contact_due(now=now, minutes=minutes, hours=hours(**kw))


# --- inside and outside business hours (Berlin, 2026-06: CEST, UTC+2) ---------------------


def test_inside_business_hours_it_is_due_the_minutes_from_now():
    assert due(local(BERLIN, 2026, 6, 2, 11, 20)) == local(BERLIN, 2026, 6, 2, 11, 35)


def test_friday_1650_with_closing_at_17_carries_over_to_monday_0905():
    friday = local(BERLIN, 2026, 6, 5, 16, 50)
    assert friday.strftime("%A") == "Friday"

    assert due(friday) == local(BERLIN, 2026, 6, 8, 9, 5)


def test_exactly_at_opening_counts_as_open():
    assert due(local(BERLIN, 2026, 6, 2, 9, 0)) == local(BERLIN, 2026, 6, 2, 9, 15)


def test_exactly_at_closing_counts_as_closed():
    assert due(local(BERLIN, 2026, 6, 2, 17, 0)) == local(BERLIN, 2026, 6, 3, 9, 15)


def test_a_deadline_that_lands_on_closing_stays_on_that_day():
    assert due(local(BERLIN, 2026, 6, 2, 16, 45)) == local(BERLIN, 2026, 6, 2, 17, 0)


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        (local(BERLIN, 2026, 6, 2, 20, 0), local(BERLIN, 2026, 6, 3, 9, 15)),  # evening
        (local(BERLIN, 2026, 6, 3, 3, 0), local(BERLIN, 2026, 6, 3, 9, 15)),  # night
        (local(BERLIN, 2026, 6, 3, 8, 59), local(BERLIN, 2026, 6, 3, 9, 15)),  # just before
        (local(BERLIN, 2026, 6, 6, 12, 0), local(BERLIN, 2026, 6, 8, 9, 15)),  # Saturday
        (local(BERLIN, 2026, 6, 7, 12, 0), local(BERLIN, 2026, 6, 8, 9, 15)),  # Sunday
    ],
)
def test_outside_business_hours_it_is_due_the_minutes_after_the_next_opening(now, expected):
    assert due(now) == expected


def test_a_weekday_the_store_is_closed_is_skipped():
    wednesday = local(BERLIN, 2026, 6, 3, 10, 0)

    assert due(wednesday, days=[0, 1, 3, 4]) == local(BERLIN, 2026, 6, 4, 9, 15)


def test_a_deadline_longer_than_a_business_day_runs_over_several_days():
    monday = local(BERLIN, 2026, 6, 1, 9, 0)

    assert due(monday, minutes=8 * 60 + 120) == local(BERLIN, 2026, 6, 2, 11, 0)
    assert due(monday, minutes=5 * 8 * 60 + 1) == local(BERLIN, 2026, 6, 8, 9, 1)


def test_zero_minutes_is_due_at_once_inside_hours_and_at_the_opening_outside():
    assert due(local(BERLIN, 2026, 6, 2, 11, 0), minutes=0) == local(BERLIN, 2026, 6, 2, 11, 0)
    assert due(local(BERLIN, 2026, 6, 6, 11, 0), minutes=0) == local(BERLIN, 2026, 6, 8, 9, 0)


def test_the_deadline_is_returned_in_utc():
    result = due(local(BERLIN, 2026, 6, 2, 11, 20))

    assert result.tzinfo is UTC
    assert result == datetime(2026, 6, 2, 9, 35, tzinfo=UTC)


# --- timezones -----------------------------------------------------------------------------


def test_two_stores_in_different_timezones_get_different_deadlines_for_one_instant():
    now = datetime(2026, 6, 2, 14, 0, tzinfo=UTC)  # 16:00 in Berlin, 10:00 in New York

    berlin = due(now, minutes=90, tz="Europe/Berlin")
    new_york = due(now, minutes=90, tz="America/New_York")

    assert berlin == local(BERLIN, 2026, 6, 3, 9, 30)  # one hour today, 30 min tomorrow
    assert new_york == local(NEW_YORK, 2026, 6, 2, 11, 30)


def test_a_store_in_asia_works_in_its_own_hours():
    kolkata = zoneinfo.ZoneInfo("Asia/Kolkata")  # UTC+5:30
    now = datetime(2026, 6, 2, 3, 0, tzinfo=UTC)  # 08:30 in Kolkata

    assert due(now, tz="Asia/Kolkata") == local(kolkata, 2026, 6, 2, 9, 15)


# --- daylight saving -----------------------------------------------------------------------


def test_berlin_spring_forward_weekend_keeps_monday_0905_local():
    # Clocks go forward on Sunday 2026-03-29: Friday is UTC+1, Monday UTC+2.
    friday = local(BERLIN, 2026, 3, 27, 16, 50)

    result = due(friday)

    assert result == local(BERLIN, 2026, 3, 30, 9, 5)
    assert result == datetime(2026, 3, 30, 7, 5, tzinfo=UTC)


def test_berlin_fall_back_weekend_keeps_monday_0905_local():
    # Clocks go back on Sunday 2026-10-25: Friday is UTC+2, Monday UTC+1.
    friday = local(BERLIN, 2026, 10, 23, 16, 50)

    result = due(friday)

    assert result == datetime(2026, 10, 26, 8, 5, tzinfo=UTC)


def test_new_york_spring_forward_weekend_keeps_monday_0905_local():
    # Clocks go forward on Sunday 2026-03-08: EST (UTC-5) to EDT (UTC-4).
    friday = local(NEW_YORK, 2026, 3, 6, 16, 50)

    result = due(friday, tz="America/New_York")

    assert result == datetime(2026, 3, 9, 13, 5, tzinfo=UTC)


def test_new_york_fall_back_weekend_keeps_monday_0905_local():
    # Clocks go back on Sunday 2026-11-01: EDT (UTC-4) to EST (UTC-5).
    friday = local(NEW_YORK, 2026, 10, 30, 16, 50)

    result = due(friday, tz="America/New_York")

    assert result == datetime(2026, 11, 2, 14, 5, tzinfo=UTC)


def test_weekend_hours_across_the_skipped_hour_count_real_minutes():
    # Open 01:00-05:00 every day; at 02:00 the clock jumps to 03:00.
    now = local(BERLIN, 2026, 3, 29, 1, 50)  # 00:50 UTC

    result = due(now, opening=time(1), closing=time(5), days=list(range(7)))

    assert result == datetime(2026, 3, 29, 1, 5, tzinfo=UTC)  # 03:05 on the clock
    assert result.astimezone(BERLIN).time() == time(3, 5)


def test_weekend_hours_across_the_repeated_hour_count_real_minutes():
    # Open 01:00-05:00 every day; at 03:00 the clock goes back to 02:00.
    now = datetime(2026, 10, 25, 0, 50, tzinfo=UTC)  # 02:50 CEST, the first time

    result = due(now, opening=time(1), closing=time(5), days=list(range(7)))

    assert result == datetime(2026, 10, 25, 1, 5, tzinfo=UTC)  # 02:05 CET, the second time


def test_an_opening_the_clock_skips_opens_when_the_clock_jumps():
    sunday_night = local(BERLIN, 2026, 3, 29, 0, 0)

    result = due(sunday_night, opening=time(2, 30), closing=time(6), days=list(range(7)))

    assert result == datetime(2026, 3, 29, 1, 15, tzinfo=UTC)  # opens 03:00 CEST, + 15 min


def test_an_opening_the_clock_shows_twice_opens_the_first_time():
    sunday_night = local(BERLIN, 2026, 10, 25, 0, 0)

    result = due(sunday_night, opening=time(2, 30), closing=time(6), days=list(range(7)))

    assert result == datetime(2026, 10, 25, 0, 45, tzinfo=UTC)  # 02:30 CEST = 00:30 UTC


# --- refusing what cannot work -------------------------------------------------------------


@pytest.mark.parametrize(
    ("kw", "field"),
    [
        ({"opening": time(17), "closing": time(9)}, "closing_time"),
        ({"opening": time(9), "closing": time(9)}, "closing_time"),
        ({"days": []}, "business_days"),
        ({"days": [7]}, "business_days"),
        ({"days": ["1"]}, "business_days"),
        ({"days": [True]}, "business_days"),
        ({"tz": "Mars/Olympus"}, "timezone"),
    ],
)
def test_business_hours_that_cannot_define_a_deadline_are_refused(kw, field):
    with pytest.raises(InvalidBusinessHours) as err:
        hours(**kw)

    assert list(err.value.fields) == [field]


def test_the_error_check_is_empty_for_good_hours():
    assert business_hours_errors(opening=time(9), closing=time(17), days=[0]) == {}


def test_a_naive_now_is_refused():
    with pytest.raises(ValueError, match="timezone-aware"):
        first_contact_due(now=datetime(2026, 6, 2, 9), minutes=15, hours=hours())


def test_next_opening_is_now_when_open_and_the_next_opening_when_closed():
    open_now = local(BERLIN, 2026, 6, 2, 10, 0)
    saturday = local(BERLIN, 2026, 6, 6, 10, 0)

    assert next_opening(now=open_now, hours=hours()) == open_now
    assert next_opening(now=saturday, hours=hours()) == local(BERLIN, 2026, 6, 8, 9, 0)


# --- properties ----------------------------------------------------------------------------

# Zones whose clock changes all happen between midnight and 04:00 local time,
# so business hours from 04:00 on are plain wall-clock intervals and can be
# checked against the wall clock. (The changes inside business hours have the
# explicit tests above.)
ZONES = [
    "UTC",
    "Europe/Berlin",
    "America/New_York",
    "Asia/Kolkata",
    "Asia/Kathmandu",
    "Australia/Sydney",
    "Australia/Lord_Howe",
    "Pacific/Chatham",
]


@st.composite
def stores(draw, min_length: int = 1, min_days: int = 1) -> BusinessHours:
    opening = draw(st.integers(min_value=4 * 60, max_value=23 * 60 + 59 - min_length))
    closing = draw(st.integers(min_value=opening + min_length, max_value=23 * 60 + 59))
    days = draw(st.sets(st.integers(0, 6), min_size=min_days))
    return hours(
        tz=draw(st.sampled_from(ZONES)),
        opening=time(opening // 60, opening % 60),
        closing=time(closing // 60, closing % 60),
        days=sorted(days),
    )


instants = st.datetimes(
    min_value=datetime(2024, 1, 1), max_value=datetime(2030, 12, 31), timezones=st.just(UTC)
)


def _period_start(at_local: datetime, store: BusinessHours) -> datetime:
    return datetime.combine(at_local.date(), store.opening, tzinfo=store.tzinfo)


@settings(max_examples=300, deadline=None)
@given(store=stores(), now=instants, minutes=st.integers(0, 7 * 24 * 60))
def test_property_the_deadline_is_in_business_hours_and_never_early(store, now, minutes):
    result = first_contact_due(now=now, minutes=minutes, hours=store)

    # never before now, and never sooner than the minutes
    assert result >= now
    assert result - now >= timedelta(minutes=minutes)
    # it lies within business hours on the wall clock (closing itself included)
    at = result.astimezone(store.tzinfo)
    assert at.weekday() in store.days
    assert store.opening <= at.time().replace(tzinfo=None) <= store.closing
    # it is at most the minutes after the start of its business period (the
    # opening, or now when now is in that period)
    assert result - max(now, _period_start(at, store)) <= timedelta(minutes=minutes)


@settings(max_examples=300, deadline=None)
@given(store=stores(), now=instants, minutes=st.integers(0, 24 * 60))
def test_property_without_carry_over_it_is_the_minutes_after_the_next_opening(store, now, minutes):
    start = next_opening(now=now, hours=store)
    closing_that_day = datetime.combine(
        start.astimezone(store.tzinfo).date(), store.closing, tzinfo=store.tzinfo
    )

    result = first_contact_due(now=now, minutes=minutes, hours=store)

    if start + timedelta(minutes=minutes) <= closing_that_day:
        assert result == start + timedelta(minutes=minutes)
    else:
        assert result > closing_that_day


def _brute_force_business_minutes(start: datetime, end: datetime, store: BusinessHours) -> int:
    """Minute by minute on the wall clock: an independent count."""
    count, at = 0, start
    while at < end:
        wall = at.astimezone(store.tzinfo)
        if wall.weekday() in store.days and store.opening <= wall.time() < store.closing:
            count += 1
        at += timedelta(minutes=1)
    return count


@settings(max_examples=60, deadline=None)
@given(
    store=stores(min_length=120, min_days=3),
    now=instants.map(lambda d: d.replace(second=0, microsecond=0)),
    minutes=st.integers(1, 180),
)
def test_property_exactly_the_minutes_of_business_time_pass(store, now, minutes):
    result = first_contact_due(now=now, minutes=minutes, hours=store)

    assert _brute_force_business_minutes(now, result, store) == minutes
    assert _brute_force_business_minutes(now, result - timedelta(minutes=1), store) == minutes - 1
    assert business_time_between(start=now, end=result, hours=store) == timedelta(minutes=minutes)
