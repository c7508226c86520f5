"""MessageDaily and SegmentMessageDaily: one temporary table of every customer
message queued in the range with its outcomes (one index probe per outcome
kind), then two GROUP BYs over it."""

# Statements are built from our own constants and vendor expressions;
# every value is a bound parameter.
# ruff: noqa: S608

from __future__ import annotations

from datetime import date

from django.db import transaction

from insights.models import MessageDaily, SegmentMessageDaily
from insights.services.rollups.sql import (
    ANY_STATUS,
    COUNTED,
    CUSTOMER_CATEGORIES,
    SEND_TIME,
    SENT,
    Run,
    days,
    execute,
    json_id,
    local_day,
    lock,
    pg,
    seconds,
    sql_list,
    within,
)
from segments.models import SegmentKind, SegmentStatus

REPLY_DAYS = 7  # unsubscribes and answers after a send
NEXT_ACTION_DAYS = 30

_COUNTS = (
    "sent",
    "delivered",
    "opened",
    "clicked",
    "bounced",
    "suppressed",
    "unsubscribed",
    "converted",
    "responded",
    "next_action",
    "next_action_seconds",
)
_TEMP = "insights_rollup_msg"


def _messages_sql() -> str:
    """One row per customer message queued in the range, with its outcomes."""
    order = (
        "SELECT MIN(o.placed_at) FROM commerce_order o WHERE o.tenant_id = %(tenant)s"
        f" AND o.customer_id = m.customer_id AND o.status IN {COUNTED}"
        f" AND {within('o.placed_at', SEND_TIME, 'order_days')}"
    )
    action = (
        "SELECT MIN(t.occurred_at) FROM commerce_touchpoint t WHERE t.tenant_id = %(tenant)s"
        " AND t.customer_id = m.customer_id AND t.category = 'product'"
        f" AND {within('t.occurred_at', SEND_TIME, 'next_days')}"
    )
    # 1: unsubscribed, 2: answered, 3: both (one probe for the two).
    answers = (
        "SELECT SUM(DISTINCT CASE WHEN t.kind = 'message.unsubscribed' THEN 1 ELSE 2 END)"
        " FROM commerce_touchpoint t WHERE t.tenant_id = %(tenant)s"
        " AND t.customer_id = m.customer_id"
        " AND t.kind IN ('message.unsubscribed', 'message.replied', 'survey.answered')"
        f" AND {within('t.occurred_at', SEND_TIME, 'reply_days')}"
    )
    first_order_counts = within("y.first_order", "y.t0", "next_days")
    # MATERIALIZED: PostgreSQL would otherwise inline y and copy each probe
    # into every expression that reads its result (five probes of the orders
    # per message instead of one).
    materialized = "MATERIALIZED" if pg() else ""
    return f"""
    CREATE TEMP TABLE {_TEMP} AS
    WITH y AS {materialized} (
        SELECT m.customer_id, {local_day("m.created_at")} AS day,
               {json_id("m.context", "journey_id")} AS journey_id,
               {json_id("m.context", "step_id")} AS step_id,
               m.channel, COALESCE(r.tier, '') AS tier, {SEND_TIME} AS t0,
               CASE WHEN {SENT} THEN 1 ELSE 0 END AS sent,
               CASE WHEN m.delivered_at IS NOT NULL
                      OR m.status IN ('delivered', 'opened', 'clicked')
                    THEN 1 ELSE 0 END AS delivered,
               CASE WHEN m.opened_at IS NOT NULL OR m.status IN ('opened', 'clicked')
                    THEN 1 ELSE 0 END AS opened,
               CASE WHEN m.clicked_at IS NOT NULL OR m.status = 'clicked'
                    THEN 1 ELSE 0 END AS clicked,
               CASE WHEN m.status = 'bounced' THEN 1 ELSE 0 END AS bounced,
               CASE WHEN m.status = 'suppressed' THEN 1 ELSE 0 END AS suppressed,
               CASE WHEN {SENT} THEN ({order}) END AS first_order,
               CASE WHEN {SENT} THEN ({action}) END AS first_action,
               CASE WHEN {SENT} THEN ({answers}) END AS answers
        FROM messaging_message m
        LEFT JOIN segments_customerrfm r
          ON r.tenant_id = %(tenant)s AND r.customer_id = m.customer_id
        WHERE m.tenant_id = %(tenant)s AND {ANY_STATUS}
          AND m.created_at >= %(lo)s AND m.created_at < %(hi)s
          AND m.category IN {CUSTOMER_CATEGORIES}
          AND {local_day("m.created_at")} BETWEEN %(start)s AND %(end)s
    )
    SELECT z.customer_id, z.day, z.journey_id, z.step_id, z.channel, z.tier,
           z.sent, z.delivered, z.opened, z.clicked, z.bounced, z.suppressed,
           z.unsubscribed, z.converted, z.responded,
           CASE WHEN z.next_at IS NULL THEN 0 ELSE 1 END AS next_action,
           CASE WHEN z.next_at IS NULL THEN 0.0
                ELSE {seconds("z.next_at", "z.t0")} END AS next_action_seconds
    FROM (
        SELECT y.*,
               CASE WHEN y.answers IN (1, 3) THEN 1 ELSE 0 END AS unsubscribed,
               CASE WHEN y.first_order IS NOT NULL
                         AND {within("y.first_order", "y.t0", "conv_days")}
                    THEN 1 ELSE 0 END AS converted,
               CASE WHEN y.sent = 1 AND (y.clicked = 1 OR y.answers >= 2)
                    THEN 1 ELSE 0 END AS responded,
               CASE WHEN y.first_order IS NOT NULL AND {first_order_counts}
                         AND (y.first_action IS NULL OR y.first_order <= y.first_action)
                    THEN y.first_order ELSE y.first_action END AS next_at
        FROM y
    ) z
    """


def _sums(alias: str) -> str:
    return ", ".join(f"SUM({alias}.{c})" for c in _COUNTS)


_MESSAGE_DAILY_SQL = f"""
INSERT INTO insights_messagedaily (
    tenant_id, day, journey_id, step_id, channel, tier, messages, {", ".join(_COUNTS)})
SELECT %(tenant)s, x.day, x.journey_id, x.step_id, x.channel, x.tier, COUNT(*), {_sums("x")}
FROM {_TEMP} x
GROUP BY x.day, x.journey_id, x.step_id, x.channel, x.tier
"""

_SEGMENT_DAILY_SQL = f"""
INSERT INTO insights_segmentmessagedaily (
    tenant_id, day, segment_id, channel, messages, {", ".join(_COUNTS)})
SELECT %(tenant)s, x.day, sm.segment_id, x.channel, COUNT(*), {_sums("x")}
FROM {_TEMP} x
JOIN segments_segmentmembership sm
  ON sm.tenant_id = %(tenant)s AND sm.customer_id = x.customer_id
JOIN segments_segment s
  ON s.tenant_id = %(tenant)s AND s.id = sm.segment_id
 AND s.kind IN {sql_list((SegmentKind.RULE, SegmentKind.LIST))}
 AND s.status = '{SegmentStatus.ACTIVE}'
GROUP BY x.day, sm.segment_id, x.channel
"""


def refresh_messages(run: Run, start: date, end: date) -> tuple[int, int]:
    params = run.params(
        start,
        end,
        order_days=days(max(run.conversion_days, NEXT_ACTION_DAYS)),
        conv_days=days(run.conversion_days),
        next_days=days(NEXT_ACTION_DAYS),
        reply_days=days(REPLY_DAYS),
    )
    with transaction.atomic():
        lock(run.tenant_id)
        MessageDaily.objects.for_tenant(run.tenant_id).filter(day__range=(start, end)).delete()
        SegmentMessageDaily.objects.for_tenant(run.tenant_id).filter(
            day__range=(start, end)
        ).delete()
        # This session's temporary table (a failed run's goes with the rollback).
        execute(f"DROP TABLE IF EXISTS {_TEMP}", {})
        execute(_messages_sql(), params)
        daily = execute(_MESSAGE_DAILY_SQL, params)
        segments = execute(_SEGMENT_DAILY_SQL, params)
        execute(f"DROP TABLE {_TEMP}", {})
    return daily, segments
