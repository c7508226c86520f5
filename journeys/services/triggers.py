"""Turning what happened into enrollments (and exits), from two feeds.

Everything that can start or end a journey is already written down elsewhere:
orders, deliveries, abandoned carts, unsubscribes, survey classes, churn bands
and tracked events are touchpoints (``commerce_touchpoint``), and segment and
tier moves are ``SegmentTransition`` rows. The scan reads each feed past a
per-tenant cursor, so a trigger is never lost to a dropped task or a process
that died in ``on_commit``: the rows are the source of truth and the scan
catches up after downtime.

Ids are handed out before their transactions commit, so the scan re-reads the
last ``LOOKBACK`` of a feed each time; the enrollment's unique key
(journey, customer, trigger) makes the re-read harmless. A trigger counts only
if it happened after the journey's version was activated, so a CSV import of
last year's orders does not start last year's welcome series.

Touchpoint kinds that start journeys: ``order.placed``, ``fulfillment.<status>``,
``cart.abandoned``, ``churn_risk.entered`` (written by the nightly scorer when a
customer's band changes into medium or high; a churn-band trigger matches its
``properties.band``), ``survey.<promoter|neutral|detractor>``, and any tracked
kind (the scorer's ``next_action.winback`` and ``next_action.nudge`` among them).
"""

from __future__ import annotations

import hashlib
import logging
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db import connection, transaction
from django.db.models import F, Max, Q

from commerce.models import ChannelConsent, ConsentStatus, Customer, Order, OrderLine, Touchpoint
from experiments.services.exposure import journey_split
from journeys.models import (
    LIVE_STATUSES,
    Enrollment,
    EnrollmentStatus,
    Journey,
    JourneyStatus,
    JourneyVersion,
    OrderNth,
    Reentry,
    TriggerCursor,
    TriggerKind,
)
from retention import clock
from segments.hooks import IMPORT_CAUSE
from segments.models import CustomerRFM, SegmentKind, SegmentMembership, SegmentTransition

logger = logging.getLogger(__name__)

LOOKBACK = timedelta(minutes=5)
# The touchpoint the scorer writes when a customer enters a risk band.
CHURN_BAND_KIND = "churn_risk.entered"
FEEDS = {"touchpoints": Touchpoint, "transitions": SegmentTransition}
SCAN_CHUNK = 5000
LIVE = LIVE_STATUSES
_LOCK_CLASS = 7301


@dataclass
class Occurrence:
    customer_id: int
    key: str
    at: datetime
    context: dict = field(default_factory=dict)
    order: int = 0  # sort key: the feed row id


def _feed_max(model) -> int:
    return model.objects.unscoped().aggregate(top=Max("id"))["top"] or 0


def cursors_ensure(*, tenant_id: int) -> None:
    """Start the tenant's feeds at their current end (called on activation), so
    the first scan does not read the whole history."""
    for feed, model in FEEDS.items():
        TriggerCursor.objects.get_or_create(
            tenant_id=tenant_id,
            feed=feed,
            defaults={"last_id": _feed_max(model), "marks": []},
        )


def _advance(tenant_id: int, feed: str, now: datetime) -> tuple[int, int]:
    """The id range to read this time: from where the cursor stood LOOKBACK ago
    to the feed's end now. Records where it stands now."""
    cursor, _ = TriggerCursor.objects.select_for_update().get_or_create(
        tenant_id=tenant_id, feed=feed, defaults={"last_id": _feed_max(FEEDS[feed])}
    )
    high = max(_feed_max(FEEDS[feed]), cursor.last_id)
    horizon = now - LOOKBACK
    marks = [(datetime.fromisoformat(at), last) for at, last in cursor.marks]
    settled = [last for at, last in marks if at <= horizon]
    if settled:
        low = settled[-1]
    elif marks:
        low = marks[0][1]
    else:
        low = cursor.last_id
    older = [m for m in marks if m[0] <= horizon][-1:]
    kept = older + [m for m in marks if m[0] > horizon] + [(now, high)]
    cursor.last_id = high
    cursor.marks = [[at.isoformat(), last] for at, last in kept[-50:]]
    cursor.updated_at = now
    cursor.save()
    return low, high


def _try_lock(tenant_id: int) -> bool:
    if connection.vendor != "postgresql":
        return True
    with connection.cursor() as cur:
        cur.execute("SELECT pg_try_advisory_xact_lock(%s, %s)", [_LOCK_CLASS, tenant_id])
        return bool(cur.fetchone()[0])


def _touch_kind(version: JourneyVersion) -> str | None:
    trigger = version.trigger
    if trigger in (TriggerKind.ORDER_PLACED, TriggerKind.FAMILY_WINDOW):
        return "order.placed"
    if trigger == TriggerKind.FULFILLMENT:
        return f"fulfillment.{version.fulfillment_status}"
    if trigger == TriggerKind.CART_ABANDONED:
        return "cart.abandoned"
    if trigger == TriggerKind.CHURN_BAND:
        return CHURN_BAND_KIND
    if trigger == TriggerKind.SURVEY_CLASS:
        return f"survey.{version.value}"
    if trigger == TriggerKind.TOUCHPOINT:
        return version.value
    return None


def triggers_scan(*, tenant_id: int) -> int:
    """Read both feeds past the cursor: apply exits, then enroll. Returns how
    many enrollments were created. A second scanner of the same tenant at the
    same moment steps aside."""
    now = clock.now()
    versions = list(
        JourneyVersion.objects.for_tenant(tenant_id)
        .filter(
            journey__status=JourneyStatus.ACTIVE,
            journey__current_version_id=F("id"),
        )
        .select_related("journey", "segment", "entry_segment")
    )
    exit_versions = list(
        JourneyVersion.objects.for_tenant(tenant_id).filter(
            journey__status__in=[JourneyStatus.ACTIVE, JourneyStatus.PAUSED]
        )
    )
    created = 0
    with transaction.atomic():
        if not _try_lock(tenant_id):
            return 0
        touch_range = _advance(tenant_id, "touchpoints", now)
        trans_range = _advance(tenant_id, "transitions", now)
        kinds = {_touch_kind(v) for v in versions} - {None}
        kinds |= {"order.placed", "message.unsubscribed"}
        touches = _read_touchpoints(tenant_id, touch_range, kinds)
        segments = {v.segment_id for v in versions if v.segment_id}
        segments |= {v.exit_segment_id for v in exit_versions if v.exit_segment_id}
        transitions = _read_transitions(tenant_id, trans_range, segments)
        _apply_exits(tenant_id, exit_versions, touches, transitions, now)
        for version in versions:
            occurrences = _occurrences(tenant_id, version, touches, transitions)
            if occurrences:
                created += _enroll(tenant_id, version, occurrences, now)
    if created:
        logger.info("journeys.enrolled tenant_id=%s created=%s", tenant_id, created)
    return created


def _read_touchpoints(tenant_id: int, id_range: tuple[int, int], kinds: set[str]) -> list[dict]:
    low, high = id_range
    if high <= low or not kinds:
        return []
    return list(
        Touchpoint.objects.for_tenant(tenant_id)
        .filter(id__gt=low, id__lte=high, kind__in=kinds)
        .order_by("id")
        .values("id", "customer_id", "kind", "occurred_at", "properties")
    )


def _read_transitions(tenant_id: int, id_range: tuple[int, int], segments: set[int]) -> list[dict]:
    low, high = id_range
    if high <= low or not segments:
        return []
    return list(
        SegmentTransition.objects.for_tenant(tenant_id)
        .filter(id__gt=low, id__lte=high, segment_id__in=segments)
        # Moves from a bulk load of history (a CSV import, the demo seed) are not
        # news: a year of imported buyers entering their tiers starts nothing.
        .exclude(cause=IMPORT_CAUSE)
        .order_by("id")
        .values("id", "customer_id", "segment_id", "kind", "at")
    )


# --- exits ----------------------------------------------------------------------


def _apply_exits(
    tenant_id: int, versions: list, touches: list[dict], transitions: list[dict], now: datetime
) -> int:
    """End live enrollments whose exit event is in this read: a new order, an
    unsubscribe, or the chosen segment move after the customer entered."""
    by_version = {v.pk: v for v in versions}
    events: dict[int, list[tuple[str, datetime, object]]] = defaultdict(list)
    for t in touches:
        if t["kind"] == "order.placed":
            events[t["customer_id"]].append(("ordered", t["occurred_at"], _order_id(t)))
        elif t["kind"] == "message.unsubscribed":
            events[t["customer_id"]].append(("unsubscribed", t["occurred_at"], None))
    for t in transitions:
        events[t["customer_id"]].append((f"segment:{t['kind']}", t["at"], t["segment_id"]))
    if not events or not by_version:
        return 0
    live = (
        Enrollment.objects.for_tenant(tenant_id)
        .filter(customer_id__in=list(events), status__in=LIVE, version_id__in=list(by_version))
        .values("id", "customer_id", "version_id", "trigger_at", "context", "status")
    )
    exits: dict[str, list[int]] = defaultdict(list)
    for row in live:
        version = by_version[row["version_id"]]
        for what, at, ref in events[row["customer_id"]]:
            if at <= row["trigger_at"]:
                continue
            if what == "ordered" and version.exit_on_order:
                if ref is None or ref != row["context"].get("order_id"):
                    exits["ordered"].append(row["id"])
                    break
            elif what == "unsubscribed" and version.exit_on_unsubscribe:
                exits["unsubscribed"].append(row["id"])
                break
            elif (
                what == f"segment:{version.exit_segment_on}"
                and version.exit_segment_id
                and ref == version.exit_segment_id
            ):
                exits["segment_changed"].append(row["id"])
                break
    total = 0
    for reason, ids in exits.items():
        total += enrollments_end(tenant_id=tenant_id, ids=ids, reason=reason, now=now)
    return total


def enrollments_end(*, tenant_id: int, ids: list[int], reason: str, now: datetime) -> int:
    """Exit live enrollments. Held-out ones keep their status (they stand for
    what would have happened) but stop too, so the comparison stays fair."""
    rows = Enrollment.objects.for_tenant(tenant_id).filter(pk__in=ids)
    held = rows.filter(status=EnrollmentStatus.HELD_OUT, finished_at__isnull=True).update(
        finished_at=now, exit_reason=reason, next_run_at=None
    )
    ended = rows.filter(status=EnrollmentStatus.ACTIVE).update(
        status=EnrollmentStatus.EXITED, finished_at=now, exit_reason=reason, next_run_at=None
    )
    return held + ended


def _order_id(touch: dict) -> int | None:
    try:
        return int((touch["properties"] or {}).get("order_id"))
    except (TypeError, ValueError):
        return None


# --- enrollments ----------------------------------------------------------------


def _occurrences(
    tenant_id: int, version: JourneyVersion, touches: list[dict], transitions: list[dict]
) -> list[Occurrence]:
    trigger = version.trigger
    if trigger in (TriggerKind.SEGMENT_ENTERED, TriggerKind.SEGMENT_LEFT):
        kind = "entered" if trigger == TriggerKind.SEGMENT_ENTERED else "left"
        return [
            Occurrence(
                t["customer_id"], f"tr:{t['id']}", t["at"], {"segment_id": t["segment_id"]}, t["id"]
            )
            for t in transitions
            if t["segment_id"] == version.segment_id and t["kind"] == kind
        ]
    kind = _touch_kind(version)
    matched = [t for t in touches if t["kind"] == kind]
    if trigger == TriggerKind.CHURN_BAND:
        matched = [t for t in matched if (t["properties"] or {}).get("band") == version.value]
    if trigger == TriggerKind.ORDER_PLACED:
        return _order_occurrences(tenant_id, version, matched)
    if trigger == TriggerKind.FAMILY_WINDOW:
        return _family_occurrences(tenant_id, matched)
    return [
        Occurrence(t["customer_id"], f"tp:{t['id']}", t["occurred_at"], _context(t), t["id"])
        for t in matched
    ]


def _context(touch: dict) -> dict:
    props = touch["properties"] or {}
    keep = ("order_id", "fulfillment_id", "cart_id", "status", "band", "response_id")
    return {k: props[k] for k in keep if k in props}


def _order_occurrences(tenant_id: int, version: JourneyVersion, touches: list[dict]) -> list:
    occurrences = [
        Occurrence(t["customer_id"], f"tp:{t['id']}", t["occurred_at"], _context(t), t["id"])
        for t in touches
        if _order_id(t) is not None
    ]
    if version.order_nth in ("", OrderNth.ANY) or not occurrences:
        return occurrences
    wanted = 1 if version.order_nth == OrderNth.FIRST else version.order_n
    rank = _order_ranks(tenant_id, {o.customer_id for o in occurrences})
    return [o for o in occurrences if rank.get(o.context["order_id"]) == wanted]


def _order_ranks(tenant_id: int, customer_ids: set[int]) -> dict[int, int]:
    """Each live order's place in its customer's order history (1 = first)."""
    ranks: dict[int, int] = {}
    seen: dict[int, int] = defaultdict(int)
    rows = (
        Order.objects.for_tenant(tenant_id)
        .filter(customer_id__in=list(customer_ids))
        .exclude(status="cancelled")
        .order_by("customer_id", "placed_at", "id")
        .values_list("id", "customer_id")
    )
    for order_id, customer_id in rows.iterator(chunk_size=SCAN_CHUNK):
        seen[customer_id] += 1
        ranks[order_id] = seen[customer_id]
    return ranks


def _family_occurrences(tenant_id: int, touches: list[dict]) -> list[Occurrence]:
    """One occurrence per product family in the order: each family has its own window."""
    by_order = {_order_id(t): t for t in touches if _order_id(t) is not None}
    if not by_order:
        return []
    # (order, family) -> (price tier, product): the expensive tier's window wins,
    # and the copy names the product of the line that set it.
    families: dict[tuple[int, int], tuple[str, int | None]] = {}
    lines = (
        OrderLine.objects.for_tenant(tenant_id)
        .filter(order_id__in=list(by_order), family_id__isnull=False)
        .order_by("id")
        .values_list("order_id", "family_id", "price_tier", "product_id")
    )
    for order_id, family_id, tier, product_id in lines:
        seen = families.get((order_id, family_id))
        if seen is None or (tier == "expensive" and seen[0] != "expensive"):
            families[(order_id, family_id)] = (tier, product_id)
    out = []
    for (order_id, family_id), (tier, product_id) in sorted(families.items()):
        t = by_order[order_id]
        context = {"order_id": order_id, "family_id": family_id, "price_tier": tier}
        if product_id is not None:
            context["product_id"] = product_id
        out.append(
            Occurrence(
                t["customer_id"],
                f"ord:{order_id}:fam:{family_id}",
                t["occurred_at"],
                context,
                t["id"],
            )
        )
    return out


def holdout_bucket(tenant_id: int, journey_id: int, customer_id: int) -> int:
    """0-99, stable for a customer and journey (so lift is measured per customer)."""
    digest = hashlib.sha256(f"{tenant_id}:{journey_id}:{customer_id}".encode()).digest()
    return int.from_bytes(digest[:4], "big") % 100


def _enroll(tenant_id: int, version: JourneyVersion, occurrences: list, now: datetime) -> int:
    activated = version.activated_at
    occurrences = [o for o in occurrences if activated is None or o.at >= activated]
    customers = {o.customer_id for o in occurrences}
    if not customers:
        return 0
    live_customers = set(
        Customer.objects.for_tenant(tenant_id)
        .filter(pk__in=list(customers), merged_into__isnull=True)
        .values_list("pk", flat=True)
    )
    allowed = live_customers & _entry_allowed(tenant_id, version, live_customers)
    allowed -= _reentry_blocked(tenant_id, version, allowed, now)
    occurrences = [o for o in occurrences if o.customer_id in allowed]
    if version.reentry != Reentry.EVERY:
        first: dict[int, Occurrence] = {}
        for o in sorted(occurrences, key=lambda o: o.order):
            first.setdefault(o.customer_id, o)
        occurrences = list(first.values())
    # The scan holds the tenant's lock, so what is not there now is what we add.
    present = set(
        Enrollment.objects.for_tenant(tenant_id)
        .filter(journey_id=version.journey_id, trigger_key__in=[o.key for o in occurrences])
        .values_list("customer_id", "trigger_key")
    )
    occurrences = [o for o in occurrences if (o.customer_id, o.key) not in present]
    # A running holdout or check-in experiment decides who is held out (and
    # records their exposure); otherwise the version's holdout percentage.
    split = journey_split(
        tenant_id=tenant_id,
        journey_id=version.journey_id,
        entries=[(o.customer_id, o.at, o.key) for o in occurrences],
    )
    rows = []
    for o in occurrences:
        if split is not None and o.customer_id in split:
            held = split[o.customer_id]
        else:
            bucket = holdout_bucket(tenant_id, version.journey_id, o.customer_id)
            held = bucket < version.holdout_percent
        rows.append(
            Enrollment(
                tenant_id=tenant_id,
                journey_id=version.journey_id,
                version=version,
                customer_id=o.customer_id,
                trigger_key=o.key,
                trigger_at=o.at,
                context=o.context,
                status=EnrollmentStatus.HELD_OUT if held else EnrollmentStatus.ACTIVE,
                position=1,
                next_run_at=min(o.at, now),
                entered_at=now,
            )
        )
    Enrollment.objects.bulk_create(rows, ignore_conflicts=True, batch_size=1000)
    return len(rows)


def _entry_allowed(tenant_id: int, version: JourneyVersion, customers: set[int]) -> set[int]:
    allowed = set(customers)
    segment = version.entry_segment
    if segment is not None:
        if segment.kind == SegmentKind.TIER:
            members = CustomerRFM.objects.for_tenant(tenant_id).filter(tier=segment.tier)
        else:
            members = SegmentMembership.objects.for_tenant(tenant_id).filter(segment=segment)
        allowed &= set(
            members.filter(customer_id__in=list(allowed)).values_list("customer_id", flat=True)
        )
    if version.entry_requires_consent:
        allowed &= set(
            ChannelConsent.objects.for_tenant(tenant_id)
            .filter(
                customer_id__in=list(allowed),
                channel=version.entry_requires_consent,
                status=ConsentStatus.OPTED_IN,
            )
            .values_list("customer_id", flat=True)
        )
    return allowed


def _reentry_blocked(
    tenant_id: int, version: JourneyVersion, customers: set[int], now: datetime
) -> set[int]:
    if version.reentry == Reentry.EVERY or not customers:
        return set()
    earlier = Enrollment.objects.for_tenant(tenant_id).filter(
        journey_id=version.journey_id, customer_id__in=list(customers), is_test=False
    )
    if version.reentry == Reentry.AFTER_EXIT:
        earlier = earlier.filter(status__in=LIVE, finished_at__isnull=True)
    elif version.reentry == Reentry.COOLDOWN:
        since = now - timedelta(days=version.reentry_cooldown_days)
        earlier = earlier.filter(
            Q(status__in=LIVE, finished_at__isnull=True) | Q(entered_at__gt=since)
        )
    return set(earlier.values_list("customer_id", flat=True))


def journeys_with_scan_work() -> list[int]:
    """Tenants with an active journey: the beat fans out over these.
    Platform-wide on purpose (the scheduler serves every tenant)."""
    # order_by(): Journey's default ordering (name) would join DISTINCT and make
    # this one row per active journey, so one tick per journey, not per tenant.
    return list(
        Journey.objects.unscoped()
        .filter(status=JourneyStatus.ACTIVE)
        .order_by()
        .values_list("tenant_id", flat=True)
        .distinct()
    )
