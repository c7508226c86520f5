"""The dashboard's daily rollups, rebuilt set-based from the source tables.

``rollups_refresh`` rewrites a tenant's rows for a range of tenant-local days:
each table's rows in the range are deleted and inserted again by one
``INSERT … SELECT`` (two for the message tables) in one transaction, so a re-run
gives the same rows and a late event is picked up by the next run over its day.
``rollups_refresh_recent`` is the nightly run; ``rollups_backfill`` the first.

Definitions (what the dashboard shows)
--------------------------------------
- *Day*: the tenant-local date (``Tenant.timezone``) of the timestamp named.
- *Counted order*: status in ``commerce.selectors.COUNTED_ORDER_STATUSES``
  (open, paid, fulfilled), as it is now.
- *Within N days after t*: in ``(t, t + N days]`` (the instant ``t`` itself
  never counts, ``t + N days`` exactly does).
- *Customer message*: a ``messaging.Message`` of category marketing or
  transactional (staff and test sends are left out).
- *Sent*: status sent, delivered, opened, clicked or bounced, or ``sent_at``
  set. Its *send time* is ``sent_at`` (``created_at`` if the provider took it
  without one). Every outcome after the send is counted for sent messages only.

MessageDaily — per (day of ``created_at``, ``context.journey_id`` (0: none),
``context.step_id`` (0), channel, the recipient's current ``CustomerRFM.tier``
('' without one)), one count per customer message:

- ``messages``: all; ``sent``: as above; ``delivered``: ``delivered_at`` set or
  status delivered/opened/clicked; ``opened``: ``opened_at`` set or status
  opened/clicked; ``clicked``: ``clicked_at`` set or status clicked;
  ``bounced`` / ``suppressed``: that status.
- ``unsubscribed``: the recipient has a ``message.unsubscribed`` touchpoint
  within 7 days after the send (per message: three messages before one
  unsubscribe count three times, so the rate is unsubscribes per message sent).
- ``converted``: a counted order within ``conversion_days`` after the send.
- ``responded``: clicked, or a ``message.replied`` / ``survey.answered``
  touchpoint within 7 days after the send.
- ``next_action`` / ``next_action_seconds``: the first counted order or
  ``product`` touchpoint (a tracked action) within 30 days after the send:
  how many messages had one, and the sum of the seconds to it.

SegmentMessageDaily — the same counts per active rule or list segment (its
members when the rollup runs) and channel.

RetentionDaily — per day of each customer's first counted order (ever):
``first_buyers``, and ``returned``: those with another counted order within
``retention_window_days`` after the first (the window is stored with the row).

CohortMonthly — per month (tenant-local) of the first counted order: ``size``,
and for every month offset k from 0 to the current month the customers with
a counted order in month k (``active``; k = 0 is everyone). Zeros are written,
so a missing cell means "not yet".

FamilyDaily — per (day, product family) of counted orders with a line of the
family: ``orders``; ``reorders``: orders of customers who had an earlier
(strictly earlier ``placed_at``) counted order with the family; ``buyers``:
distinct customers; ``upsell_orders`` / ``upsell_revenue``: orders within
``conversion_days`` after a sent message of the journey keyed ``upsell`` to the
customer, and the family's line totals in them (not the order total, so the
families of one order add up to it).

Snapshot — the state today, one row per kind and day, ``data``:

- ``tiers``: ``sizes`` {tier: customers} from ``CustomerRFM``; ``flow``
  [{from, to, n}] of tier moves in the last 28 days. A move is the
  ``SegmentTransition`` rows of tier segments of one customer at one instant
  (the recompute writes "left" and "entered" together); '' is no tier (a new
  buyer has no "from", a customer who lost their tier no "to").
- ``churn``: ``bands`` {low, medium, high}; ``histogram``: 10 counts of
  ``p_churn`` in [0, .1), …, [.9, 1]; ``at_risk``: the 20 high-band customers
  with the highest ``CustomerRFM.monetary`` (spend in the RFM window): id,
  email, p_churn, value.
- ``feedback`` (last 28 days): ``invited`` (invitations sent), ``answered``
  (of those, answered), ``response_rate``, ``classes`` of those answers;
  ``callbacks_due`` (deadline ``due_by`` passed in the window; a callback
  cancelled before anyone called is not due), ``callbacks_met_sla`` (first
  contact by the deadline), ``sla_met_rate``.

Databases
---------
PostgreSQL runs everything set-based: per-message outcomes are index probes
(``order_tenant_cust_placed`` is covering, ``touch_tenant_cust_time``), the
cohort pass streams the orders in (customer, time) index order through window
functions. Tenant-local days are ``(ts AT TIME ZONE tz)::date``.

The embedded SQLite demo runs the same statements with three vendor
expressions: the local day through Django's own ``django_datetime_cast_date``
(exact, the function Django registers for ``TruncDate``), month arithmetic
through ``strftime``, and time windows through SQLite's date arithmetic on the
stored text (a window's end is exact to the millisecond).
"""

from __future__ import annotations

import logging
from datetime import date, datetime, timedelta

from insights.services.rollups.messages import NEXT_ACTION_DAYS, refresh_messages
from insights.services.rollups.orders import refresh_cohorts, refresh_families, refresh_retention
from insights.services.rollups.snapshots import refresh_snapshots
from insights.services.rollups.sql import Run, run_for

logger = logging.getLogger(__name__)

BACKFILL_CHUNK_DAYS = 31
TABLES = (
    "message_daily",
    "segment_message_daily",
    "retention_daily",
    "cohort_monthly",
    "family_daily",
    "snapshot",
)

__all__ = ["rollups_backfill", "rollups_refresh", "rollups_refresh_recent"]


def rollups_refresh(*, tenant_id: int, start: date, end: date) -> dict[str, int]:
    """Recompute every rollup for the tenant-local days ``[start, end]``; returns
    the rows written per table. Cohorts are recomputed whole (a new order moves
    its customer's cohort at any age); the snapshot only when today is in range
    (it is the state now, not of a past day)."""
    if end < start:
        raise ValueError("rollups_refresh: end is before start")
    run = run_for(tenant_id, None)
    return _refresh(
        run, messages=(start, end), retention=(start, end), snapshot=start <= run.today <= end
    )


def rollups_refresh_recent(*, tenant_id: int, now: datetime | None = None) -> dict[str, int]:
    """The nightly run: the days whose figures can still change. Families of
    the last ``conversion_days + 7`` days (an upsell order comes within the
    conversion window of its email); messages of the same days, or of the last
    31 if longer (a next action counts up to 30 days after the send); first
    buyers of the last ``retention_window_days + 1`` days (still inside their
    window); all cohorts; today's snapshots."""
    run = run_for(tenant_id, now)
    today = run.today
    recent = today - timedelta(days=run.conversion_days + 7)
    counts = _refresh(
        run,
        messages=(recent, today),
        retention=(today - timedelta(days=run.window_days + 1), today),
        snapshot=True,
    )
    longest = today - timedelta(days=NEXT_ACTION_DAYS + 1)
    if longest < recent:
        daily, segments = refresh_messages(run, longest, recent - timedelta(days=1))
        counts["message_daily"] += daily
        counts["segment_message_daily"] += segments
    return counts


def rollups_backfill(*, tenant_id: int, days: int = 400) -> dict[str, int]:
    """The first run: the last ``days`` days, messages and families a month per
    transaction (each statement stays the size of a nightly run's few)."""
    run = run_for(tenant_id, None)
    today = run.today
    first = today - timedelta(days=days - 1)
    totals = _refresh(run, messages=None, retention=(first, today), snapshot=True)
    chunk_start = first
    while chunk_start <= today:
        chunk_end = min(chunk_start + timedelta(days=BACKFILL_CHUNK_DAYS - 1), today)
        daily, segments = refresh_messages(run, chunk_start, chunk_end)
        totals["message_daily"] += daily
        totals["segment_message_daily"] += segments
        totals["family_daily"] += refresh_families(run, chunk_start, chunk_end)
        chunk_start = chunk_end + timedelta(days=1)
    return totals


def _refresh(
    run: Run,
    *,
    messages: tuple[date, date] | None,
    retention: tuple[date, date],
    snapshot: bool,
) -> dict[str, int]:
    counts = dict.fromkeys(TABLES, 0)
    if messages is not None:
        start, end = messages
        counts["message_daily"], counts["segment_message_daily"] = refresh_messages(run, start, end)
        counts["family_daily"] = refresh_families(run, start, end)
    counts["retention_daily"] = refresh_retention(run, *retention)
    counts["cohort_monthly"] = refresh_cohorts(run)
    if snapshot:
        counts["snapshot"] = refresh_snapshots(run)
    logger.info(
        "insights.rollups_refreshed tenant_id=%s %s",
        run.tenant_id,
        " ".join(f"{k}={v}" for k, v in counts.items()),
    )
    return counts
