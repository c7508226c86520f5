"""Rule-segment memberships: saving a segment, previewing it, and keeping its
members current with every entry and exit recorded once as a SegmentTransition.

Two ways in, one set of rules (``segments.rules``):

- :func:`segment_refresh` brings a whole segment up to date in the database,
  set-based: the compiled member query fills a temporary table with
  ``INSERT … SELECT``, and ``INSERT … SELECT`` / ``DELETE … WHERE NOT EXISTS``
  statements record and apply the difference, so no customer passes through
  Python. After an edit, nightly and after a full recompute.
- :func:`segments_refresh_customer` re-tests every active rule segment for one
  customer right after that customer's order: in Python on the customer's own
  rows (a query per kind of data), or in one query for fields that have no
  Python test.

Both hold the tenant's advisory lock on PostgreSQL, the one the RFM engine takes
(shared for one customer, exclusive for a whole segment), so a per-customer
refresh never interleaves with a segment refresh and no transition is written
twice. SQLite (the embedded default) has one writer at a time and no locks.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from django.core.exceptions import EmptyResultSet
from django.db import IntegrityError, connection, transaction
from django.db.models import BooleanField, Exists, ExpressionWrapper, F, OuterRef, Q, QuerySet
from django.forms.models import model_to_dict
from django.utils.text import slugify

from commerce.models import Customer
from retention import clock
from retention.errors import Conflict, InvalidInput, NotFound
from retention.models import ApiKey, Tenant
from retention.services import audit_changes, audit_record
from segments import rules
from segments.models import (
    Match,
    Segment,
    SegmentKind,
    SegmentMembership,
    SegmentStatus,
    SegmentTransition,
    TransitionKind,
)
from segments.services.locks import lock_customer, lock_tenant

logger = logging.getLogger(__name__)

PREVIEW_SAMPLE_MAX = 50
TIER_READ_ONLY = (
    "Tier segments follow the RFM tiers and cannot be edited or deleted; "
    "change the tier thresholds in the segment settings instead."
)


# --- one segment, set-based ----------------------------------------------------------------

# Plain SQL that PostgreSQL and SQLite both run. Identifiers are ours and
# ``{target}`` is the ORM's compiled member query; every value is a parameter.
#
# The member query runs once, into a session-local temporary table keyed by
# customer id. So the four statements see one target even when orders commit
# between them, and every anti-join has an index on its inner side: a new
# segment has no planner statistics yet, and a member query re-run per
# membership row (measured: 23 s for 14,000 members) is what that risks.
_TABLES = {
    "target": "segments_refresh_target",
    "transitions": f'"{SegmentTransition._meta.db_table}"',
    "memberships": f'"{SegmentMembership._meta.db_table}"',
}

_CREATE_TARGET_SQL = "CREATE TEMPORARY TABLE {target} (id BIGINT PRIMARY KEY)"
_FILL_TARGET_SQL = "INSERT INTO {target} (id) {members}"
_DROP_TARGET_SQL = "DROP TABLE {target}"

_LEFT_SQL = """
INSERT INTO {transitions} (tenant_id, segment_id, customer_id, kind, "at", cause)
SELECT m.tenant_id, m.segment_id, m.customer_id, 'left', %s, %s FROM {memberships} m
WHERE m.tenant_id = %s AND m.segment_id = %s
AND NOT EXISTS (SELECT 1 FROM {target} t WHERE t.id = m.customer_id)"""

_QUIT_SQL = """
DELETE FROM {memberships} WHERE tenant_id = %s AND segment_id = %s
AND NOT EXISTS (SELECT 1 FROM {target} t WHERE t.id = {memberships}.customer_id)"""

# What is left in the target after this are the customers who enter.
_KEEP_NEWCOMERS_SQL = """
DELETE FROM {target} WHERE EXISTS (
    SELECT 1 FROM {memberships} m
    WHERE m.tenant_id = %s AND m.segment_id = %s AND m.customer_id = {target}.id
)"""

_ENTERED_SQL = """
INSERT INTO {transitions} (tenant_id, segment_id, customer_id, kind, "at", cause)
SELECT %s, %s, t.id, 'entered', %s, %s FROM {target} t"""

_JOINED_SQL = """
INSERT INTO {memberships} (tenant_id, segment_id, customer_id, since)
SELECT %s, %s, t.id, %s FROM {target} t"""


def _execute(template: str, params: list | tuple = (), **parts: str) -> int:
    with connection.cursor() as cur:
        cur.execute(template.format(**_TABLES, **parts), params)
        return cur.rowcount


def _fill_target(seg: Segment, now: datetime) -> None:
    """Create the temporary target table and put the segment's members in it
    (none for an archived segment or one without conditions)."""
    _execute(_CREATE_TARGET_SQL)
    if seg.status != SegmentStatus.ACTIVE:
        return
    members = rules.members_queryset(seg.tenant_id, seg.match, seg.conditions, now=now)
    if members.query.is_empty():
        return
    try:
        sql, params = members.order_by().values("id").distinct().query.sql_with_params()
    except EmptyResultSet:
        return
    _execute(_FILL_TARGET_SQL, params, members=sql)
    if connection.vendor == "postgresql":
        _execute("ANALYZE {target}")


def _move_members(seg: Segment, at: Any, cause: str) -> tuple[int, int]:
    """Record exits and entries and apply them; returns (entered, left). No
    statement reads the table it writes, so none scans its own new rows."""
    key = [seg.tenant_id, seg.pk]
    left = _execute(_LEFT_SQL, [at, cause, *key])
    _execute(_QUIT_SQL, key)
    _execute(_KEEP_NEWCOMERS_SQL, key)
    entered = _execute(_ENTERED_SQL, [*key, at, cause])
    _execute(_JOINED_SQL, [*key, at])
    return entered, left


def _store_count(seg: Segment, at: datetime) -> None:
    seg.member_count = (
        SegmentMembership.objects.for_tenant(seg.tenant_id).filter(segment_id=seg.pk).count()
    )
    seg.counted_at = at
    # update(), not save(): a recount is not an edit (updated_at stays).
    Segment.objects.for_tenant(seg.tenant_id).filter(pk=seg.pk).update(
        member_count=seg.member_count, counted_at=at
    )


def segment_refresh(segment: Segment, *, cause: str = "refresh") -> tuple[int, int]:
    """Make a rule segment's memberships equal its rule now; returns (entered,
    left). An archived segment loses all its members (each recorded as left).
    Tier segments are kept by the RFM engine: nothing to do here."""
    if segment.kind != SegmentKind.RULE:
        return 0, 0
    now = clock.now()
    at = connection.ops.adapt_datetimefield_value(now)
    with transaction.atomic():
        lock_tenant(segment.tenant_id, shared=False)
        # Re-read under the lock: an edit may have committed since the caller loaded it.
        current = Segment.objects.for_tenant(segment.tenant_id).filter(pk=segment.pk).first()
        if current is None:
            return 0, 0
        _fill_target(current, now)
        entered, left = _move_members(current, at, cause)
        _execute(_DROP_TARGET_SQL)
        _store_count(current, now)
    segment.member_count, segment.counted_at = current.member_count, current.counted_at
    logger.info(
        "segments.refreshed tenant_id=%s segment_id=%s entered=%s left=%s cause=%s",
        segment.tenant_id,
        segment.pk,
        entered,
        left,
        cause,
    )
    return entered, left


def _rule_segments_to_refresh(tenant_id: int) -> QuerySet[Segment]:
    """Active rule segments, and archived ones still holding members (their
    clean-up refresh may have been lost)."""
    holds_members = Exists(
        SegmentMembership.objects.for_tenant(tenant_id).filter(segment=OuterRef("pk"))
    )
    return (
        Segment.objects.for_tenant(tenant_id)
        .filter(kind=SegmentKind.RULE)
        .filter(Q(status=SegmentStatus.ACTIVE) | Q(holds_members))
        .order_by("pk")
    )


def segments_refresh_all(
    tenant: Tenant | int, *, cause: str = "nightly"
) -> dict[int, tuple[int, int]]:
    """Refresh every active rule segment of the tenant, each in its own short
    transaction so per-customer refreshes interleave. A segment whose stored
    rule no longer compiles is logged and skipped, not fatal to the others."""
    tenant_id = getattr(tenant, "pk", tenant)
    results: dict[int, tuple[int, int]] = {}
    for seg in _rule_segments_to_refresh(tenant_id):
        try:
            results[seg.pk] = segment_refresh(seg, cause=cause)
        except InvalidInput as exc:
            logger.error(
                "segments.refresh_failed tenant_id=%s segment_id=%s error=%s",
                tenant_id,
                seg.pk,
                exc.message,
            )
    return results


# --- one customer, every segment ---------------------------------------------------------


def _customer_targets(
    tenant_id: int, customer_id: int, segments: list[Segment], now: datetime
) -> set[int]:
    """The ids of the segments the customer belongs in. Built-in fields are
    tested in Python on the customer's facts (a query per kind of data);
    segments using a field without an evaluator go to the database together."""
    facts = rules.CustomerFacts(tenant_id, customer_id, now)
    hits, ask_database = set(), []
    for seg in segments:
        try:
            hit = rules.evaluate_rule(facts, seg.match, seg.conditions)
        except InvalidInput as exc:
            _log_invalid(seg, exc)
            continue
        if hit is None:
            ask_database.append(seg)
        elif hit:
            hits.add(seg.pk)
    return hits | _database_targets(tenant_id, customer_id, ask_database, now)


def _database_targets(
    tenant_id: int, customer_id: int, segments: list[Segment], now: datetime
) -> set[int]:
    """The same test as the set-based refresh, one row for all the segments."""
    tests = {}
    for seg in segments:
        q = rules.conditions_q(tenant_id, seg.match, seg.conditions, now=now)
        if q is not None:
            tests[f"s{seg.pk}"] = ExpressionWrapper(q, output_field=BooleanField())
    if not tests:
        return set()
    row = (
        Customer.objects.for_tenant(tenant_id)
        .filter(pk=customer_id, merged_into__isnull=True)
        .annotate(**tests)
        .values(*tests)
        .first()
    )
    return {int(key[1:]) for key, hit in (row or {}).items() if hit}


def _log_invalid(seg: Segment, exc: InvalidInput) -> None:
    logger.error(
        "segments.rule_invalid tenant_id=%s segment_id=%s error=%s",
        seg.tenant_id,
        seg.pk,
        exc.message,
    )


def _bump_counts(tenant_id: int, segment_ids: list[int], delta: int) -> None:
    if segment_ids:
        Segment.objects.for_tenant(tenant_id).filter(pk__in=segment_ids).update(
            member_count=F("member_count") + delta
        )


def segments_refresh_customer(
    tenant: Tenant | int, customer_id: int, *, cause: str = "order"
) -> list[SegmentTransition]:
    """Re-test every active rule segment for one customer and apply the
    changes; returns the transitions written. A handful of indexed queries
    whatever the number of segments (about 10 ms for 20), so it runs inside
    the order pipeline, within the RFM engine's locks (taken again here, which
    PostgreSQL grants at once to the session already holding them)."""
    tenant_id = getattr(tenant, "pk", tenant)
    now = clock.now()
    with transaction.atomic():
        lock_tenant(tenant_id, shared=True)
        lock_customer(customer_id)
        # Read under the lock: a segment edited or deleted meanwhile is not
        # acted on with its old rule.
        segments = list(
            Segment.objects.for_tenant(tenant_id)
            .filter(kind=SegmentKind.RULE, status=SegmentStatus.ACTIVE)
            .only("pk", "tenant_id", "match", "conditions")
        )
        if not segments:
            return []
        by_id = {seg.pk: seg for seg in segments}
        current = set(
            SegmentMembership.objects.for_tenant(tenant_id)
            .filter(customer_id=customer_id, segment_id__in=by_id)
            .values_list("segment_id", flat=True)
        )
        target = _customer_targets(tenant_id, customer_id, segments, now)
        entering, leaving = sorted(target - current), sorted(current - target)
        if not entering and not leaving:
            return []
        SegmentMembership.objects.bulk_create(
            SegmentMembership(
                tenant_id=tenant_id, segment_id=sid, customer_id=customer_id, since=now
            )
            for sid in entering
        )
        if leaving:
            SegmentMembership.objects.for_tenant(tenant_id).filter(
                customer_id=customer_id, segment_id__in=leaving
            ).delete()
        transitions = SegmentTransition.objects.bulk_create(
            [
                SegmentTransition(
                    tenant_id=tenant_id,
                    segment_id=sid,
                    customer_id=customer_id,
                    kind=kind,
                    at=now,
                    cause=cause,
                )
                for kind, ids in (
                    (TransitionKind.ENTERED, entering),
                    (TransitionKind.LEFT, leaving),
                )
                for sid in ids
            ]
        )
        _bump_counts(tenant_id, entering, +1)
        _bump_counts(tenant_id, leaving, -1)
    return transitions


# --- preview ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class PreviewMember:
    id: int
    email: str
    name: str


@dataclass(frozen=True)
class Preview:
    count: int
    sample: list[PreviewMember] = field(default_factory=list)

    def as_dict(self) -> dict:
        return asdict(self)


PREVIEW_TIMEOUT_MS = 10_000


def segment_preview(
    tenant: Tenant | int, *, match: str, conditions: Any, sample: int = 10
) -> Preview:
    """How many customers a rule would hold now and a few of them (newest
    first), before it is saved. Raises InvalidInput for a bad rule."""
    tenant_id = getattr(tenant, "pk", tenant)
    rules.validate_match(match)
    normalised = rules.validate_conditions(tenant_id, conditions)
    members = rules.members_queryset(tenant_id, match, normalised)
    size = max(0, min(sample, PREVIEW_SAMPLE_MAX))
    with transaction.atomic():
        if connection.vendor == "postgresql":
            # An ad-hoc rule runs on the web request: bound it.
            with connection.cursor() as cur:
                cur.execute(f"SET LOCAL statement_timeout = '{PREVIEW_TIMEOUT_MS}ms'")
        rows = list(members.order_by("-pk").values("pk", "email", "first_name", "last_name")[:size])
        count = members.count()
    return Preview(
        count=count,
        sample=[
            PreviewMember(
                id=row["pk"],
                email=row["email"],
                name=f"{row['first_name']} {row['last_name']}".strip(),
            )
            for row in rows
        ],
    )


# --- save and delete --------------------------------------------------------------------------


def _text(data: dict, key: str, default: str, *, limit: int, errors: dict) -> str:
    value = data.get(key, default)
    value = "" if value is None else value
    if not isinstance(value, str):
        errors[key] = "Enter text."
        return default
    value = value.strip()
    if len(value) > limit:
        errors[key] = f"Use at most {limit} characters."
    return value


def _check_slug(tenant_id: int, slug: str, segment: Segment | None, errors: dict) -> None:
    if not slug or slugify(slug) != slug:
        errors["slug"] = "Use lower-case letters, digits, hyphens and underscores."
        return
    taken = Segment.objects.for_tenant(tenant_id).filter(slug=slug)
    if segment is not None and segment.pk:
        taken = taken.exclude(pk=segment.pk)
    if taken.exists():
        errors["slug"] = f"A segment with the slug '{slug}' already exists in this store."


def segment_validate(*, tenant: Tenant | int, data: dict, segment: Segment | None = None) -> dict:
    """Check a rule segment's fields (name, slug, description, match,
    conditions, status) against the tenant; returns the clean values. Keys
    missing from ``data`` keep the segment's current values (partial update)."""
    tenant_id = getattr(tenant, "pk", tenant)
    if segment is not None and segment.kind == SegmentKind.TIER:
        raise Conflict(TIER_READ_ONLY)
    if data.get("kind") not in (None, "", SegmentKind.RULE):
        raise InvalidInput(
            "Only rule segments can be created; the tier segments come with the store.",
            fields={"kind": "Must be rule."},
        )
    base = segment or Segment(match=Match.ALL, status=SegmentStatus.ACTIVE, conditions=[])
    errors: dict[str, str] = {}
    clean = {
        "name": _text(data, "name", base.name, limit=200, errors=errors),
        "description": _text(data, "description", base.description, limit=10_000, errors=errors),
        "match": data.get("match") or base.match,
        "status": data.get("status") or base.status,
    }
    if not clean["name"]:
        errors["name"] = "Give the segment a name."
    clean["slug"] = (
        _text(data, "slug", base.slug, limit=100, errors=errors) or slugify(clean["name"])[:100]
    )
    _check_slug(tenant_id, clean["slug"], segment, errors)
    if clean["match"] not in Match.values:
        errors["match"] = "Choose all or any."
    if clean["status"] not in SegmentStatus.values:
        errors["status"] = f"Choose one of {', '.join(SegmentStatus.values)}."
    message = ""
    try:
        clean["conditions"] = rules.validate_conditions(
            tenant_id, data.get("conditions", base.conditions) or []
        )
    except InvalidInput as exc:
        errors.update(exc.fields)
        message = exc.message
    if errors:
        first_key, first_error = next(iter(errors.items()))
        raise InvalidInput(message or f"{first_key}: {first_error}", fields=errors)
    return clean


def _audit(tenant_id: int, action: str, seg: Segment, changes: dict, actor: Any) -> None:
    if actor is None:
        return
    audit_record(
        tenant=tenant_id,
        action=action,
        obj=seg,
        changes=changes,
        user=None if isinstance(actor, ApiKey) else actor,
        api_key=actor if isinstance(actor, ApiKey) else None,
    )


RULE_INPUTS = ("match", "conditions", "status")


def segment_save(
    *,
    tenant: Tenant | int,
    data: dict,
    segment: Segment | None = None,
    actor: Any = None,
) -> Segment:
    """Create (``segment=None``) or update a rule segment, then refresh its
    members after commit when its rule or status changed. ``actor`` (a user or
    an API key) is written to the audit log; pass None when the caller audits
    itself. Tier segments cannot be edited (Conflict)."""
    tenant_id = getattr(tenant, "pk", tenant)
    if segment is not None and segment.pk and segment.tenant_id != tenant_id:
        raise NotFound("No such segment in this store.")
    clean = segment_validate(tenant=tenant_id, data=data, segment=segment)
    creating = segment is None or not segment.pk
    seg = segment if segment is not None else Segment(tenant_id=tenant_id, kind=SegmentKind.RULE)
    seg.tenant_id, seg.kind = tenant_id, SegmentKind.RULE
    before = {} if creating else model_to_dict(Segment.objects.for_tenant(tenant_id).get(pk=seg.pk))
    for key, value in clean.items():
        setattr(seg, key, value)
    try:
        with transaction.atomic():
            seg.save()
    except IntegrityError:
        # Another save took the slug between our check and our insert.
        raise InvalidInput(
            f"A segment with the slug '{seg.slug}' already exists in this store.",
            fields={"slug": f"A segment with the slug '{seg.slug}' already exists."},
        ) from None
    after = model_to_dict(seg)
    if creating:  # like the admin's audit: a new row lists what was set
        after = {k: v for k, v in after.items() if v not in (None, "", [])}
    changes = audit_changes(before, after)
    _audit(tenant_id, "create" if creating else "update", seg, changes, actor)
    if creating or any(key in changes for key in RULE_INPUTS):
        _schedule_refresh(tenant_id, seg.pk)
    return seg


def _schedule_refresh(tenant_id: int, segment_id: int) -> None:
    from segments.tasks import refresh_segment

    transaction.on_commit(lambda: refresh_segment.delay(tenant_id, segment_id))


def segment_refresh_enqueue(*, segment: Segment) -> bool:
    """Queue a refresh of a rule segment after commit ("refresh now" in the
    admin); False for a tier segment, which the RFM engine keeps current."""
    if segment.kind != SegmentKind.RULE:
        return False
    _schedule_refresh(segment.tenant_id, segment.pk)
    return True


def segment_delete(*, segment: Segment, actor: Any = None) -> None:
    """Delete a rule segment with its memberships and history. Tier segments
    cannot be deleted (Conflict); archiving keeps the history instead."""
    if segment.kind == SegmentKind.TIER:
        raise Conflict(TIER_READ_ONLY)
    tenant_id = segment.tenant_id
    with transaction.atomic():
        lock_tenant(tenant_id, shared=False)  # no refresh writes into it meanwhile
        _audit(tenant_id, "delete", segment, {}, actor)
        # Scoped deletes use the (tenant, segment, …) indexes; the cascade
        # below then finds nothing left to scan for.
        SegmentMembership.objects.for_tenant(tenant_id).filter(segment=segment).delete()
        SegmentTransition.objects.for_tenant(tenant_id).filter(segment=segment).delete()
        segment.delete()


__all__ = [
    "Preview",
    "PreviewMember",
    "segment_delete",
    "segment_preview",
    "segment_refresh",
    "segment_refresh_enqueue",
    "segment_save",
    "segment_validate",
    "segments_refresh_all",
    "segments_refresh_customer",
]
