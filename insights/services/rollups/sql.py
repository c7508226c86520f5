"""What every rollup statement shares: the tenant's run (timezone, settings,
the clock), the few expressions that differ between PostgreSQL and the
embedded SQLite, and the SQL lists of our own constants."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from django.db import connection

from commerce.selectors import COUNTED_ORDER_STATUSES
from insights.services.setup import insights_settings
from messaging.models import Category, Status
from retention import clock
from retention.models import Tenant


def sql_list(values) -> str:
    """An SQL list of our own constants (never user input)."""
    return "(" + ", ".join(f"'{v}'" for v in values) + ")"


COUNTED = sql_list(COUNTED_ORDER_STATUSES)
CUSTOMER_CATEGORIES = sql_list((Category.MARKETING, Category.TRANSACTIONAL))
SENT_STATUSES = (Status.SENT, Status.DELIVERED, Status.OPENED, Status.CLICKED, Status.BOUNCED)
SENT = f"(m.status IN {sql_list(SENT_STATUSES)} OR m.sent_at IS NOT NULL)"
SEND_TIME = "COALESCE(m.sent_at, m.created_at)"
# Every status, spelled out: with it PostgreSQL reads a tenant's messages of a
# time range from ``message_tenant_status`` (tenant, status, -created_at), one
# index range per status, instead of every message of the tenant. Built from
# the choices, so a new status is never left out.
ANY_STATUS = f"m.status IN {sql_list(Status.values)}"


# --- vendor expressions ----------------------------------------------------------------


def pg() -> bool:
    return connection.vendor == "postgresql"


def local_day(column: str) -> str:
    """The tenant-local date of a timestamp column (``%(tz)s``)."""
    if pg():
        return f"(({column}) AT TIME ZONE %(tz)s)::date"
    return f"django_datetime_cast_date({column}, %(tz)s, %(conn_tz)s)"


def within(later: str, earlier: str, window: str) -> str:
    """``later`` in ``(earlier, earlier + the window]``; ``%(<window>)s`` is a
    parameter made by :func:`days`."""
    if pg():
        return f"({later} > {earlier} AND {later} <= {earlier} + %({window})s)"
    # Django stores UTC text of one format, so text order is time order; the
    # window's end is shifted by SQLite's date arithmetic, to the millisecond.
    stamp = "'%%Y-%%m-%%d %%H:%%M:%%f'"
    return (
        f"({later} > {earlier} AND strftime({stamp}, {later})"
        f" <= strftime({stamp}, {earlier}, '+' || %({window})s || ' days'))"
    )


def days(n: int) -> timedelta | int:
    """A window of ``n`` days as :func:`within` expects it."""
    return timedelta(days=n) if pg() else n


def seconds(later: str, earlier: str) -> str:
    if pg():
        return f"EXTRACT(EPOCH FROM ({later} - {earlier}))::float8"
    # julianday is a float of days: its difference is rounded to the millisecond.
    return f"ROUND((julianday({later}) - julianday({earlier})) * 86400.0, 3)"


def json_id(column: str, key: str) -> str:
    """An integer id from a JSON column's key; 0 when absent or not a number."""
    if pg():
        text = f"({column}->>'{key}')"
        return f"CASE WHEN {text} ~ '^[0-9]{{1,18}}$' THEN {text}::bigint ELSE 0 END"
    return f"COALESCE(CAST(json_extract({column}, '$.{key}') AS INTEGER), 0)"


def local_month(column: str) -> str:
    """The first day of the tenant-local month of a timestamp column (on
    PostgreSQL a timestamp: cheaper to compare than a date cast per row)."""
    if pg():
        return f"date_trunc('month', ({column}) AT TIME ZONE %(tz)s)"
    return f"date({local_day(column)}, 'start of month')"


def as_date(expression: str) -> str:
    return f"({expression})::date" if pg() else expression


def month_index(day: str) -> str:
    """year * 12 + month of a date: month offsets are differences of these."""
    if pg():
        return f"(EXTRACT(YEAR FROM {day})::int * 12 + EXTRACT(MONTH FROM {day})::int)"
    year, month = (f"CAST(strftime('%%{f}', {day}) AS INTEGER)" for f in "Ym")
    return f"({year} * 12 + {month})"


def adapt(params: dict) -> dict:
    """SQLite compares timestamps as text: pass them as Django stores them."""
    if pg():
        return params
    return {
        k: connection.ops.adapt_datetimefield_value(v) if isinstance(v, datetime) else v
        for k, v in params.items()
    }


def lock(tenant_id: int) -> None:
    """One refresh of a tenant at a time (two would both delete, then both
    insert), and no JIT for this transaction: compiling these statements cost
    more than it saved (2.7 s of 13.5 s for a fortnight of messages)."""
    if pg():
        with connection.cursor() as cur:
            cur.execute(
                "SELECT pg_advisory_xact_lock(hashtextextended('insights.rollups:' || %s, 0))",
                [tenant_id],
            )
            cur.execute("SET LOCAL jit = off")


# --- the run ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Run:
    tenant_id: int
    tz: ZoneInfo
    now: datetime
    conversion_days: int
    window_days: int

    @property
    def today(self) -> date:
        return self.now.astimezone(self.tz).date()

    def bounds(self, start: date, end: date) -> tuple[datetime, datetime]:
        """The UTC instants of the first moment of ``start`` and of the day after ``end``."""
        lo = datetime.combine(start, time(0), tzinfo=self.tz).astimezone(UTC)
        hi = datetime.combine(end + timedelta(days=1), time(0), tzinfo=self.tz).astimezone(UTC)
        return lo, hi

    def params(self, start: date | None = None, end: date | None = None, **extra) -> dict:
        p = {
            "tenant": self.tenant_id,
            "tz": self.tz.key,
            "conn_tz": getattr(connection, "timezone_name", "UTC"),
            "now": self.now,
            **extra,
        }
        if start is not None and end is not None:
            p["start"], p["end"] = start, end
            p["lo"], p["hi"] = self.bounds(start, end)
        return adapt(p)


def run_for(tenant_id: int, now: datetime | None) -> Run:
    tenant = Tenant.objects.get(pk=tenant_id)
    settings = insights_settings(tenant_id)
    return Run(
        tenant_id=tenant_id,
        tz=ZoneInfo(tenant.timezone or "UTC"),
        now=now or clock.now(),
        conversion_days=settings.conversion_days,
        window_days=settings.retention_window_days,
    )


def execute(sql: str, params: dict) -> int:
    """Run one statement; the rows it wrote. Python's sqlite3 reports no row
    count for an INSERT that starts with WITH: SQLite's ``changes()`` has it."""
    with connection.cursor() as cur:
        cur.execute(sql, params)
        if cur.rowcount >= 0:
            return cur.rowcount
        if connection.vendor == "sqlite":
            cur.execute("SELECT changes()")
            return cur.fetchone()[0]
        return 0


def fetch(sql: str, params: dict) -> list[tuple]:
    with connection.cursor() as cur:
        cur.execute(sql, params)
        return cur.fetchall()
