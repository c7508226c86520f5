"""Store first, then apply: the machinery every provider callback goes through.

A callback event becomes one :class:`~messaging.models.ProviderEvent` row keyed
by ``(provider, event_id)``, inserted with ``ON CONFLICT DO NOTHING``: neither
SendGrid's nor Twilio's signature proves freshness, so a replayed event must be
recognised here and change nothing. Rows are then applied: claimed with
``SELECT … FOR UPDATE SKIP LOCKED`` where ``processed_at IS NULL`` (so the
request and the sweeper never apply one row twice), handed to the provider's
applier, and marked with ``processed_at`` and an ``outcome``, all in one
transaction. An applier that raises rolls back only its own savepoint; its row
stays unprocessed (with the error as its outcome) for the sweeper to retry.
"""

from __future__ import annotations

import logging
import math
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from django.db import transaction

from commerce.models import TouchpointCategory
from commerce.services.touchpoints import TouchpointIn, touchpoints_record_many
from messaging.models import Message, ProviderEvent
from retention import clock

logger = logging.getLogger(__name__)

# The sweeper leaves rows younger than this to the request that stored them.
PENDING_AFTER = timedelta(minutes=1)
APPLY_BATCH = 500
MAX_EVENT_ID = 200
MAX_KIND = 30
MAX_OUTCOME = 200
# Deeper than this a payload is cut (the views refuse such bodies already).
MAX_PAYLOAD_DEPTH = 32
# Touchpoints recorded by callbacks carry this source, one per provider family.
TOUCHPOINT_SOURCE = {"sendgrid": "sendgrid", "twilio_status": "twilio", "twilio_inbound": "twilio"}


@dataclass(frozen=True)
class EventIn:
    """One callback event as received: its provider-given id, kind and payload."""

    event_id: str
    kind: str
    payload: dict


@dataclass
class Applied:
    """What applying one event did. ``reply`` is an inbound SMS's answer text."""

    outcome: str
    tenant_id: int | None = None
    message_id: int | None = None
    touchpoints: list[TouchpointIn] = field(default_factory=list)
    reply: str | None = None


# provider -> function(row) -> Applied; each provider module registers its own.
Applier = Callable[[ProviderEvent], Applied]
APPLIERS: dict[str, Applier] = {}
# provider -> function(row) -> sort key: rows touching one message are applied
# in event-time order, and messages are locked in ascending id order so two
# concurrent batches never wait on each other in a cycle.
SORT_KEYS: dict[str, Callable[[ProviderEvent], tuple]] = {}


def events_store(*, provider: str, events: Sequence[EventIn]) -> tuple[list[int], int]:
    """Insert the events not stored yet (a replay is ignored, also under a race).
    Returns the ids of the rows newly stored and still unapplied, and how many
    of ``events`` were already known."""
    unique: dict[str, EventIn] = {}
    for event in events:
        event = storable_event(event)
        unique.setdefault(event.event_id[:MAX_EVENT_ID], event)
    if not unique:
        return [], len(events)
    known = set(
        ProviderEvent.objects.filter(provider=provider, event_id__in=list(unique)).values_list(
            "event_id", flat=True
        )
    )
    fresh = [event_id for event_id in unique if event_id not in known]
    now = clock.now()
    ProviderEvent.objects.bulk_create(
        [
            ProviderEvent(
                provider=provider,
                event_id=event_id,
                kind=unique[event_id].kind[:MAX_KIND],
                payload=unique[event_id].payload,
                received_at=now,
            )
            for event_id in fresh
        ],
        ignore_conflicts=True,
    )
    ids = list(
        ProviderEvent.objects.filter(
            provider=provider, event_id__in=fresh, processed_at__isnull=True
        ).values_list("pk", flat=True)
    )
    return ids, len(events) - len(fresh)


def storable_event(event: EventIn) -> EventIn:
    """The event as PostgreSQL can store it. Callback fields carry text that
    senders control (an SMS body, a user agent): a NUL character or a lone UTF-16
    surrogate (``"\\ud800"`` in JSON) makes the insert fail, which would answer the
    provider 5xx on every retry and lose the event. They become U+FFFD; numbers
    JSON cannot hold (NaN, infinities) become null."""
    payload = _storable(event.payload)
    return EventIn(
        event_id=_text(event.event_id),
        kind=_text(event.kind),
        payload=payload if isinstance(payload, dict) else {},
    )


def _text(value: str) -> str:
    if "\x00" in value:
        value = value.replace("\x00", "\ufffd")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        value = "".join("\ufffd" if "\ud800" <= c <= "\udfff" else c for c in value)
    return value


def _storable(value: object, depth: int = 0) -> object:
    if isinstance(value, str):
        return _text(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict | list | tuple):
        if depth >= MAX_PAYLOAD_DEPTH:
            return None
        if isinstance(value, dict):
            return {_text(str(k)): _storable(v, depth + 1) for k, v in value.items()}
        return [_storable(v, depth + 1) for v in value]
    return value


def events_apply(event_ids: Iterable[int]) -> dict[int, Applied]:
    """Apply these stored events (those not applied yet and not being applied by
    someone else right now). Returns what each applied row did, by row id."""
    ids = sorted(set(event_ids))
    results: dict[int, Applied] = {}
    for start in range(0, len(ids), APPLY_BATCH):
        results.update(_apply_batch(ids[start : start + APPLY_BATCH]))
    return results


def provider_events_apply_pending(limit: int = APPLY_BATCH) -> int:
    """For the sweeper: apply up to ``limit`` events stored more than a minute ago
    and still unapplied (the request that stored them died, or applying raised).
    Rows that never failed go first, so a few poisonous ones cannot starve the
    rest. Returns how many were applied."""
    cutoff = clock.now() - PENDING_AFTER
    ids = list(
        ProviderEvent.objects.filter(processed_at__isnull=True, received_at__lt=cutoff)
        .order_by("outcome", "received_at", "pk")  # "" (never tried) sorts first
        .values_list("pk", flat=True)[:limit]
    )
    return len(events_apply(ids))


def _apply_batch(ids: list[int]) -> dict[int, Applied]:
    results: dict[int, Applied] = {}
    failed: dict[int, str] = {}
    with transaction.atomic():
        rows = list(
            ProviderEvent.objects.select_for_update(skip_locked=True).filter(
                pk__in=ids, processed_at__isnull=True
            )
        )
        rows.sort(key=_sort_key)
        touchpoints: dict[tuple[int, str], list[TouchpointIn]] = defaultdict(list)
        now = clock.now()
        for row in rows:
            try:
                with transaction.atomic():
                    applied = APPLIERS[row.provider](row)
            except Exception as exc:  # a bug or a lost lock race: the sweeper retries
                logger.exception(
                    "messaging.callback_failed provider=%s event_id=%s", row.provider, row.event_id
                )
                failed[row.pk] = f"error: {type(exc).__name__}"[:MAX_OUTCOME]
                continue
            row.processed_at = now
            row.outcome = applied.outcome[:MAX_OUTCOME]
            row.tenant_id = applied.tenant_id
            row.message_id = applied.message_id
            results[row.pk] = applied
            if applied.tenant_id is not None and applied.touchpoints:
                source = TOUCHPOINT_SOURCE[row.provider]
                touchpoints[(applied.tenant_id, source)].extend(applied.touchpoints)
            logger.info(
                "messaging.callback_applied provider=%s event_id=%s kind=%s tenant_id=%s "
                "message_id=%s outcome=%s",
                row.provider,
                row.event_id,
                row.kind,
                applied.tenant_id,
                applied.message_id,
                row.outcome,
            )
        applied_rows = [row for row in rows if row.pk in results]
        ProviderEvent.objects.bulk_update(
            applied_rows, ["processed_at", "outcome", "tenant", "message"]
        )
        for pk, outcome in failed.items():
            ProviderEvent.objects.filter(pk=pk).update(outcome=outcome)
        for (tenant_id, source), items in touchpoints.items():
            touchpoints_record_many(tenant_id=tenant_id, source=source, items=items)
    return results


def _sort_key(row: ProviderEvent) -> tuple:
    key = SORT_KEYS.get(row.provider)
    return (*(key(row) if key else ()), row.pk)


# --- helpers shared by the provider modules ------------------------------------------


def int_or_none(value: object) -> int | None:
    """A positive database id from a callback field (str or int), else None."""
    if isinstance(value, bool):
        return None
    try:
        number = int(str(value).strip())
    except (TypeError, ValueError):
        return None
    return number if 0 < number < 2**63 else None


def unix_time(value: object, default: datetime) -> datetime:
    """A provider's Unix timestamp as an aware datetime, or ``default``."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return default
    try:
        return datetime.fromtimestamp(float(value), tz=UTC)
    except (ValueError, OverflowError, OSError):
        return default


def message_touchpoint(
    message: Message,
    *,
    kind: str,
    at: datetime,
    external_id: str,
    customer_id: int | None = None,
    **extra: object,
) -> list[TouchpointIn]:
    """The marketing touchpoint for one message event (none for a message with
    no customer, such as a staff test send)."""
    customer_id = customer_id or message.customer_id
    if customer_id is None:
        return []
    properties: dict[str, object] = {"message_id": message.pk, "channel": message.channel}
    if message.template_id:
        properties["template_id"] = message.template_id
    properties.update({k: v for k, v in extra.items() if v not in (None, "")})
    return [
        TouchpointIn(
            customer_id=customer_id,
            category=TouchpointCategory.MARKETING,
            kind=kind,
            occurred_at=at,
            properties=properties,
            external_id=external_id[:100],
        )
    ]
