"""What the churn model reads, loaded set-based as of a moment.

``history_load(tenant_id, as_of)`` returns a :class:`History`: a few pandas
frames, each read by one SQL statement that keeps only what happened strictly
before ``as_of``, so no feature can see the future. ``labels_load`` reads the
other side of the line: order days in ``[as_of, as_of + horizon)``.

Times arrive as ``age``: days before ``as_of`` (a float, > 0 for the past), so
the features never handle time zones or datetimes. Both loaders take an optional
customer id range ``[lo, hi]``, which is how the nightly run splits a tenant
into chunks.

On PostgreSQL each statement streams out through ``COPY … TO STDOUT`` into
``pandas.read_csv`` (about ten times faster than fetching tuples for millions
of rows); elsewhere (the embedded SQLite demo) the same statements are fetched
through Django's cursor. The SQL is portable except for two expressions, picked
per vendor in :func:`_sql`.

Counted orders follow segments: not cancelled or refunded. An order cancelled
*after* ``as_of`` still counted at ``as_of``, so it counts here.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
from django.db import connection

DAY = 86_400.0
# Touchpoint kinds the features read, by feature family (see features.py).
TOUCH_KINDS = (
    "message.sent",
    "message.opened",
    "message.clicked",
    "ticket.opened",
    "ticket.answered",
    "onboarding.completed",
    "feature.activated",
    "first_value.reached",
)


@dataclass
class History:
    """Everything before ``as_of`` for the customers in range.

    - ``customers``: customer_id, age (days since the customer record was created)
    - ``orders``: customer_id, age, total, discount, subtotal (counted orders,
      sorted by customer then time)
    - ``families``: customer_id, family_id, spend, expensive_spend
    - ``deliveries``: customer_id, age (delivered), late_days (delivered after
      the promised window's end; 0 when on time), delayed (a delay was reported)
    - ``returns``: customer_id, returns, refunded
    - ``touches``: one row per customer with touchpoints: counts of messages
      sent, opened and clicked (all time, last 30 and 90 days), the age of the
      last open and send, support tickets opened and answered (with the mean
      answer time in hours and how many took over 24 h), onboarding completed,
      features activated, first value reached
    - ``surveys``: customer_id, age, rating, classification (sorted by time)
    - ``contacts``: customer_id, last_age: the last message or callback (for the policy)
    """

    as_of: datetime
    customers: pd.DataFrame
    orders: pd.DataFrame
    families: pd.DataFrame
    deliveries: pd.DataFrame
    returns: pd.DataFrame
    touches: pd.DataFrame
    surveys: pd.DataFrame
    contacts: pd.DataFrame = field(default_factory=pd.DataFrame)


def _sql(name: str, column: str) -> str:
    """The two vendor-specific expressions: seconds since the epoch of a
    timestamp column, and a number read from a JSON column's key."""
    if connection.vendor == "postgresql":
        if name == "epoch":
            return f"EXTRACT(EPOCH FROM {column})::float8"
        return f"NULLIF({column}, '')::float8"
    if name == "epoch":
        return f"((julianday({column}) - 2440587.5) * 86400.0)"
    return f"CAST({column} AS REAL)"


def _json_number(column: str, key: str) -> str:
    if connection.vendor == "postgresql":
        return _sql("number", f"({column}->>'{key}')")
    return f"CAST(json_extract({column}, '$.{key}') AS REAL)"


def epoch_sql(column: str) -> str:
    """Seconds since the epoch of a timestamp column, on this database."""
    return _sql("epoch", column)


def _age(column: str) -> str:
    return f"((%(as_of_epoch)s - {epoch_sql(column)}) / {DAY})"


def read_frame(sql: str, params: dict, columns: dict[str, str]) -> pd.DataFrame:
    """Run one SELECT and return its rows as a frame with these column dtypes."""
    connection.ensure_connection()
    if connection.vendor == "postgresql":
        buffer = io.BytesIO()
        with (
            connection.wrap_database_errors,
            connection.connection.cursor() as cur,
            cur.copy(f"COPY ({sql}) TO STDOUT (FORMAT csv)", params) as copy,
        ):
            for block in copy:
                buffer.write(block)
        buffer.seek(0)
        if not buffer.getbuffer().nbytes:
            return _empty(columns)
        frame = pd.read_csv(buffer, header=None, names=list(columns), dtype=_read_dtypes(columns))
    else:
        with connection.cursor() as cur:
            cur.execute(sql, params)
            rows = cur.fetchall()
        if not rows:
            return _empty(columns)
        frame = pd.DataFrame.from_records(rows, columns=list(columns))
    return frame.astype(columns)


def _read_dtypes(columns: dict[str, str]) -> dict[str, str]:
    # Integers may come back NULL-free but floats may be empty: read floats as
    # floats, ints as int64, text as str.
    return {
        c: ("float64" if t.startswith("float") else "str" if t == "str" else t)
        for c, t in columns.items()
    }


def _empty(columns: dict[str, str]) -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=t) for c, t in columns.items()})


def query_params(tenant_id: int, as_of: datetime, lo: int | None, hi: int | None) -> dict:
    params = {
        "tenant": tenant_id,
        "as_of": as_of,
        "as_of_epoch": as_of.timestamp(),
        "d30": as_of - timedelta(days=30),
        "d90": as_of - timedelta(days=90),
        "lo": lo if lo is not None else -(2**62),
        "hi": hi if hi is not None else 2**62,
    }
    return _adapt(params)


def _adapt(params: dict) -> dict:
    """SQLite compares timestamps as text: pass them as Django stores them."""
    if connection.vendor == "postgresql":
        return params
    return {
        k: connection.ops.adapt_datetimefield_value(v) if isinstance(v, datetime) else v
        for k, v in params.items()
    }


def counted(at: str) -> str:
    """Orders that counted at the moment ``%(<at>)s``: not cancelled or refunded
    then. A cancellation after it is undone by ``cancelled_at``. An order has
    no refund time: a refunded order with recorded returns counts while those
    recorded before the moment stay below its total; one refunded without any
    return on record never counts (its refund time is unknown)."""
    refunds_before = (
        "(SELECT SUM(r.refund_amount) FROM commerce_return r"
        " WHERE r.tenant_id = o.tenant_id AND r.order_id = o.id"
        f" AND r.created_at < %({at})s)"
    )
    returns = (
        "EXISTS (SELECT 1 FROM commerce_return r"
        " WHERE r.tenant_id = o.tenant_id AND r.order_id = o.id)"
    )
    return (
        "(o.status NOT IN ('cancelled', 'refunded')"
        f" OR (o.status = 'cancelled' AND o.cancelled_at >= %({at})s)"
        f" OR (o.status = 'refunded' AND {returns}"
        f"     AND o.total > COALESCE({refunds_before}, 0)))"
    )


COUNTED = counted("as_of")


def history_load(
    tenant_id: int, as_of: datetime, *, lo: int | None = None, hi: int | None = None
) -> History:
    with _analytic_session(chunk=lo is not None or hi is not None):
        return _history_load(tenant_id, as_of, lo, hi)


@contextmanager
def _analytic_session(*, chunk: bool = False) -> Iterator[None]:
    """The loaders join millions of order lines and group millions of rows: with
    the default 4 MB ``work_mem`` their hashes spill to disk (10.1 s against
    7.9 s for the order-line statement at a million customers), and JIT
    compiling them costs more than it saves. Both only for these statements.

    For a ``chunk`` (a customer id range, as the nightly run loads), the
    planner hashes the chunk's orders and scans every order line and
    fulfilment of the tenant to probe them: each of the eight chunks of a
    million-customer tenant read all 10 million lines again (1.5 s per chunk,
    3.3 s of CPU across its parallel workers). Following the chunk's orders
    through the order-line and fulfilment indexes reads only the chunk's
    rows (1.1 s, 1.3 s of CPU), so hash and merge joins are off for a chunk."""
    if connection.vendor != "postgresql":
        yield
        return
    joins = "; SET enable_hashjoin = off; SET enable_mergejoin = off" if chunk else ""
    with connection.cursor() as cur:
        cur.execute(f"SET work_mem = '128MB'; SET jit = off{joins}")
    try:
        yield
    finally:
        with connection.cursor() as cur:
            cur.execute("RESET work_mem; RESET jit; RESET enable_hashjoin; RESET enable_mergejoin")


def _history_load(tenant_id: int, as_of: datetime, lo: int | None, hi: int | None) -> History:
    p = query_params(tenant_id, as_of, lo, hi)
    in_range = "BETWEEN %(lo)s AND %(hi)s"
    customers = read_frame(
        f"""SELECT c.id, {_age("c.created_at")} FROM commerce_customer c
        WHERE c.tenant_id = %(tenant)s AND c.merged_into_id IS NULL AND c.id {in_range}
          AND (c.created_at < %(as_of)s OR EXISTS (
                SELECT 1 FROM commerce_order o WHERE o.tenant_id = c.tenant_id
                AND o.customer_id = c.id AND o.placed_at < %(as_of)s))""",
        p,
        {"customer_id": "int64", "age": "float64"},
    )
    orders = read_frame(
        f"""SELECT o.customer_id, {_age("o.placed_at")}, o.total, o.discount_total, o.subtotal
        FROM commerce_order o
        WHERE o.tenant_id = %(tenant)s AND o.customer_id {in_range}
          AND o.placed_at < %(as_of)s AND {COUNTED}
        ORDER BY o.customer_id, o.placed_at""",
        p,
        {
            "customer_id": "int64",
            "age": "float64",
            "total": "float64",
            "discount": "float64",
            "subtotal": "float64",
        },
    )
    families = read_frame(
        f"""SELECT o.customer_id, COALESCE(l.family_id, 0), SUM(l.total),
               SUM(CASE WHEN l.price_tier = 'expensive' THEN l.total ELSE 0 END)
        FROM commerce_orderline l
        JOIN commerce_order o ON o.id = l.order_id AND o.tenant_id = l.tenant_id
        WHERE l.tenant_id = %(tenant)s AND o.customer_id {in_range}
          AND o.placed_at < %(as_of)s AND {COUNTED}
        GROUP BY o.customer_id, COALESCE(l.family_id, 0)""",
        p,
        {"customer_id": "int64", "family_id": "int64", "spend": "float64", "expensive": "float64"},
    )
    deliveries = read_frame(
        f"""SELECT o.customer_id, {_age("f.delivered_at")},
               CASE WHEN f.estimated_delivery_end IS NOT NULL
                         AND f.delivered_at > f.estimated_delivery_end
                    THEN ({_sql("epoch", "f.delivered_at")}
                          - {_sql("epoch", "f.estimated_delivery_end")}) / {DAY}
                    ELSE 0 END,
               CASE WHEN EXISTS (SELECT 1 FROM commerce_deliveryevent e
                                 WHERE e.tenant_id = f.tenant_id AND e.fulfillment_id = f.id
                                   AND e.status = 'delayed' AND e.at < %(as_of)s)
                    THEN 1 ELSE 0 END
        FROM commerce_fulfillment f
        JOIN commerce_order o ON o.id = f.order_id AND o.tenant_id = f.tenant_id
        WHERE f.tenant_id = %(tenant)s AND o.customer_id {in_range}
          AND f.delivered_at < %(as_of)s AND o.placed_at < %(as_of)s""",
        p,
        {"customer_id": "int64", "age": "float64", "late_days": "float64", "delayed": "int64"},
    )
    returns = read_frame(
        f"""SELECT o.customer_id, COUNT(*), SUM(r.refund_amount)
        FROM commerce_return r
        JOIN commerce_order o ON o.id = r.order_id AND o.tenant_id = r.tenant_id
        WHERE r.tenant_id = %(tenant)s AND o.customer_id {in_range}
          AND r.created_at < %(as_of)s
        GROUP BY o.customer_id""",
        p,
        {"customer_id": "int64", "returns": "int64", "refunded": "float64"},
    )
    kinds = ", ".join(f"'{k}'" for k in TOUCH_KINDS)
    seconds = _json_number("t.properties", "response_seconds")
    answered = f"CASE WHEN t.kind = 'ticket.answered' THEN {seconds} END"

    def count(kind: str, since: str = "") -> str:
        when = f" AND t.occurred_at >= %({since})s" if since else ""
        return f"SUM(CASE WHEN t.kind = '{kind}'{when} THEN 1 ELSE 0 END)"

    def last(kind: str) -> str:
        return f"MIN(CASE WHEN t.kind = '{kind}' THEN {_age('t.occurred_at')} END)"

    # One pass over the customers' touchpoints, one row per customer.
    touches = read_frame(
        f"""SELECT t.customer_id,
            {count("message.sent")}, {count("message.sent", "d90")},
            {count("message.opened")}, {count("message.opened", "d30")},
            {count("message.opened", "d90")},
            {count("message.clicked")}, {count("message.clicked", "d30")},
            {count("message.clicked", "d90")},
            {last("message.opened")}, {last("message.sent")},
            {count("ticket.opened")}, {count("ticket.answered")},
            COUNT({answered}), AVG({answered}) / 3600.0,
            SUM(CASE WHEN {answered} > 86400 THEN 1 ELSE 0 END),
            {count("onboarding.completed")}, {count("feature.activated")},
            {count("first_value.reached")}
        FROM commerce_touchpoint t
        WHERE t.tenant_id = %(tenant)s AND t.customer_id {in_range}
          AND t.occurred_at < %(as_of)s AND t.kind IN ({kinds})
        GROUP BY t.customer_id""",
        p,
        {
            "customer_id": "int64",
            **{c: "int64" for c in ("sent", "sent_90", "opened", "opened_30", "opened_90",
                                     "clicked", "clicked_30", "clicked_90")},
            "last_open_age": "float64",
            "last_sent_age": "float64",
            "tickets": "int64",
            "answers": "int64",
            "timed_answers": "int64",
            "response_hours_mean": "float64",
            "slow": "int64",
            "onboarded": "int64",
            "features": "int64",
            "first_value": "int64",
        },
    )  # fmt: skip
    surveys = read_frame(
        f"""SELECT s.customer_id, {_age("s.answered_at")}, s.rating, s.classification
        FROM feedback_surveyresponse s
        WHERE s.tenant_id = %(tenant)s AND s.customer_id {in_range}
          AND s.answered_at < %(as_of)s
        ORDER BY s.customer_id, s.answered_at""",
        p,
        {"customer_id": "int64", "age": "float64", "rating": "float64", "classification": "str"},
    )
    calls = read_frame(
        f"""SELECT b.customer_id, MIN({_age("b.created_at")}) FROM feedback_callback b
        WHERE b.tenant_id = %(tenant)s AND b.customer_id {in_range}
          AND b.created_at < %(as_of)s AND b.created_at >= %(d90)s
        GROUP BY b.customer_id""",
        p,
        {"customer_id": "int64", "last_age": "float64"},
    )
    sends = touches.loc[touches["last_sent_age"] <= 90, ["customer_id", "last_sent_age"]]
    contacts = (
        pd.concat([sends.rename(columns={"last_sent_age": "last_age"}), calls])
        .groupby("customer_id", as_index=False)["last_age"]
        .min()
    )
    return History(
        as_of=as_of,
        customers=customers,
        orders=orders,
        families=families,
        deliveries=deliveries,
        returns=returns,
        touches=touches,
        surveys=surveys,
        contacts=contacts,
    )


def labels_load(
    tenant_id: int,
    as_of: datetime,
    horizon_days: int,
    *,
    lo: int | None = None,
    hi: int | None = None,
) -> pd.Series:
    """Order days per customer in ``[as_of, as_of + horizon)``: how many distinct
    days (counted from ``as_of``) carry an order that still counted at the
    window's end (a later cancellation is not read). Customers with none are
    absent (read as 0)."""
    p = query_params(tenant_id, as_of, lo, hi)
    p["end"] = _adapt({"end": as_of + timedelta(days=horizon_days)})["end"]
    frame = read_frame(
        f"""SELECT o.customer_id, {_sql("epoch", "o.placed_at")} FROM commerce_order o
        WHERE o.tenant_id = %(tenant)s AND o.customer_id BETWEEN %(lo)s AND %(hi)s
          AND o.placed_at >= %(as_of)s AND o.placed_at < %(end)s AND {counted("end")}""",
        p,
        {"customer_id": "int64", "epoch": "float64"},
    )
    day = np.floor((frame["epoch"].to_numpy() - p["as_of_epoch"]) / DAY).astype(np.int64)
    days = pd.DataFrame({"customer_id": frame["customer_id"].to_numpy(), "day": day})
    return days.drop_duplicates().groupby("customer_id").size().rename("order_days")


def history_span(tenant_id: int, as_of: datetime) -> tuple[datetime | None, int]:
    """The first counted order before ``as_of`` and how many customers bought before it."""
    p = query_params(tenant_id, as_of, None, None)
    with connection.cursor() as cur:
        cur.execute(
            f"""SELECT MIN(o.placed_at), COUNT(DISTINCT o.customer_id) FROM commerce_order o
            WHERE o.tenant_id = %(tenant)s AND o.placed_at < %(as_of)s AND {COUNTED}""",
            p,
        )
        first, buyers = cur.fetchone()
    if isinstance(first, str):  # SQLite hands timestamps back as naive UTC text
        first = datetime.fromisoformat(first).replace(tzinfo=UTC)
    return first, int(buyers or 0)
