"""The injectable clock moves only when told to."""

from datetime import UTC, datetime, timedelta

import pytest

from retention import clock


def test_real_clock_is_aware_and_current():
    before = datetime.now(UTC)
    assert before - timedelta(seconds=1) <= clock.now() <= datetime.now(UTC)
    assert clock.now().tzinfo is not None


def test_travel_and_advance():
    start = datetime(2026, 3, 28, 12, 0, tzinfo=UTC)
    with clock.travel_to(start):
        assert clock.now() == start
        assert clock.advance(days=3) == start + timedelta(days=3)
        assert clock.now() == start + timedelta(days=3)
    assert clock.now() != start + timedelta(days=3)


def test_naive_datetime_refused():
    with pytest.raises(ValueError, match="aware"):
        clock.set_now(datetime(2026, 1, 1))


def test_advance_needs_frozen_clock():
    with pytest.raises(RuntimeError):
        clock.advance(days=1)
