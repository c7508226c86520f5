"""The one place scheduling code reads the time from.

Production reads the system clock. Tests and the simulator move time with
``travel_to`` / ``advance`` (process-wide, so code under test and Celery tasks
run eagerly in the same process see the same time).

    with clock.travel_to(datetime(2026, 3, 1, tzinfo=UTC)):
        clock.advance(days=3)
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

_lock = threading.Lock()
_frozen: datetime | None = None


def now() -> datetime:
    """Timezone-aware current time (UTC)."""
    frozen = _frozen
    return frozen if frozen is not None else datetime.now(UTC)


def today_utc():
    return now().date()


def set_now(at: datetime | None) -> None:
    """Freeze the clock at ``at`` (aware datetime), or unfreeze with ``None``."""
    global _frozen
    if at is not None and at.tzinfo is None:
        raise ValueError("clock.set_now needs a timezone-aware datetime")
    with _lock:
        _frozen = at


def advance(**delta: float) -> datetime:
    """Move a frozen clock forward, e.g. ``advance(days=3)``; returns the new time."""
    global _frozen
    with _lock:
        if _frozen is None:
            raise RuntimeError("clock.advance needs a frozen clock: use travel_to first")
        _frozen = _frozen + timedelta(**delta)
        return _frozen


@contextlib.contextmanager
def travel_to(at: datetime) -> Iterator[datetime]:
    previous = _frozen
    set_now(at)
    try:
        yield at
    finally:
        set_now(previous)


def hour_start(timezone: str, hour: int, at: datetime) -> datetime:
    """The most recent start of ``hour`` (local to ``timezone``) at or before
    ``at``: when a tenant's nightly run is due."""
    local = at.astimezone(ZoneInfo(timezone or "UTC"))
    start = local.replace(hour=hour, minute=0, second=0, microsecond=0)
    return start - timedelta(days=1) if start > local else start
