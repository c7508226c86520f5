"""Sending: claim a batch, check it against consent and pacing, call providers.

Exactly once, even with duplicate task deliveries, racing workers and crashes:

1. **Claim.** Pending rows move to ``sending`` under a fresh claim id with
   ``FOR UPDATE SKIP LOCKED``; a second task for the same ids finds nothing.
2. **Check** the batch set-based (``messaging.services.checks``: consents,
   suppressions, cap counts in three queries): a message that may not go is
   recorded ``suppressed`` (with the reason) or ``deferred`` to the end of quiet
   hours, before any provider call.
3. **Send** one by one in id order. Each outcome is recorded right after its
   call (accepted calls go through a group writer whose size, ``RECORD_EVERY``,
   is 1: see there why).
   A worker that dies leaves its unrecorded rows ``sending``; because calls go
   in id order and a new call starts only once its predecessor is written,
   only the lowest of them can have reached the provider. When the lease runs
   out the sweeper marks that one ``unknown`` (callbacks settle it) and puts
   the rest back in the queue: nothing is sent twice, nothing is lost. A worker
   starts no call that could outlive its lease.
"""

from __future__ import annotations

import logging
import uuid
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.utils import parseaddr
from functools import lru_cache

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F, Value
from django.db.models.functions import Coalesce
from django.urls import reverse

from commerce.models import Channel, Customer, TouchpointCategory
from commerce.services.touchpoints import TouchpointIn, touchpoints_record_many
from commerce.tokens import preferences_token, public_url
from messaging import policy
from messaging.models import (
    PENDING,
    STAFF_CATEGORIES,
    Category,
    Message,
    MessagingSettings,
    Reason,
    Status,
    SuppressionReason,
)
from messaging.providers import adapter_for
from messaging.providers.base import OutcomeUnknown, Outgoing, PermanentError, TransientError
from messaging.services.checks import batch_check, verdicts_apply
from messaging.services.outbox import messaging_settings, suppression_add
from retention import clock
from retention.models import Tenant

logger = logging.getLogger(__name__)

BATCH_SIZE = 100
LEASE = timedelta(seconds=120)
# Accepted calls are written in groups of at most this many, one statement per
# group. A worker that dies leaves at most this many calls unwritten, all among
# the lowest unrecorded messages of its claim, and the sweeper marks that many
# `unknown`: with more than 1, messages that never went out could be among them
# and would wait for a callback that never comes. So it is 1: only the call in
# flight is ever in doubt. (10 doubled the bench's rate, 1,255 -> 2,120 msg/s,
# by sparing an UPDATE, a commit and a WAL flush per message; that is not worth
# losing sends.) A sweeper of an older release goes by its own value: lower it
# freely, raise it only once no older sweeper runs.
RECORD_EVERY = 1
# ... and none waits longer than this to be written (a slow provider).
RECORD_WITHIN = timedelta(seconds=1)
MAX_ATTEMPTS = 8
TWILIO_STOP_CODE = 21610


def channel_ready(channel: str) -> bool:
    """Whether the platform can deliver on this channel now (in-app always can)."""
    return channel == Channel.IN_APP or adapter_for(channel) is not None


def ready_channels() -> list[str]:
    return [c for c in Channel.values if channel_ready(c)]


# --- 1. claim -----------------------------------------------------------------------


def _claim(tenant_id: int, message_ids: list[int], claim: uuid.UUID, now: datetime) -> list[int]:
    """Lock the given rows by primary key and claim those still pending and due.

    The lock names nothing but ids on purpose: with a status or due-time
    condition the planner may pick the pending index and read every pending
    message of the platform per batch whenever its statistics lag a burst.
    """
    ready = set(ready_channels())
    with transaction.atomic():
        rows = (
            Message.objects.for_tenant(tenant_id)
            .filter(pk__in=message_ids)
            .select_for_update(skip_locked=True)
            .order_by("pk")
            .values_list("pk", "status", "due_at", "channel")
        )
        ids = [
            pk
            for pk, status, due_at, channel in rows
            if status in PENDING and due_at <= now and channel in ready
        ]
        if ids:
            Message.objects.for_tenant(tenant_id).filter(pk__in=ids).update(
                status=Status.SENDING,
                claim=claim,
                lease_until=now + LEASE,
                attempts=F("attempts") + 1,
                updated_at=now,
            )
    return ids


def _mark_not_ready(tenant_id: int, message_ids: list[int], now: datetime) -> None:
    """Pending messages on a channel with no provider key stay in the outbox."""
    ready = ready_channels()
    if len(ready) == len(Channel.values):
        return
    Message.objects.for_tenant(tenant_id).filter(pk__in=message_ids).filter(
        status__in=PENDING, due_at__lte=now
    ).exclude(channel__in=ready).exclude(reason=Reason.NO_PROVIDER).update(
        reason=Reason.NO_PROVIDER, updated_at=now
    )


# --- 3. send ------------------------------------------------------------------------

_TOKEN_MARK = "TOKEN"  # noqa: S105 (a placeholder in a path, not a secret)


@lru_cache(maxsize=1)
def _preferences_url_parts() -> tuple[str, str]:
    # Once per process: reverse() cost as much as signing the token. A token is
    # URL-safe base64 with ":" and "." (never quoted by reverse), so putting it
    # where the mark was gives reverse's answer.
    before, after = reverse("preferences-page", args=[_TOKEN_MARK]).rsplit(_TOKEN_MARK, 1)
    return before, after


def _unsubscribe_url(customer: Customer, message_id: int) -> str:
    """``commerce.tokens.preferences_page_url(customer, message_id)``, cheaper."""
    before, after = _preferences_url_parts()
    return public_url(f"{before}{preferences_token(customer, message_id)}{after}")


def _sender(m: Message, ms: MessagingSettings) -> tuple[str, str]:
    """(from address, from name). An email to the store's own team (a test
    send, a report) is not held for a missing store sender (see
    ``checks._sender_missing``): without one it goes from the platform's
    address for staff mail, ``DEFAULT_FROM_EMAIL``."""
    if m.channel != Channel.EMAIL:
        return ms.sms_from, ms.from_name
    address = ms.from_email or settings.MESSAGING_FROM_EMAIL
    if address or m.category not in STAFF_CATEGORIES:
        return address, ms.from_name
    name, address = parseaddr(settings.DEFAULT_FROM_EMAIL)
    return address, name or ms.from_name


def _outgoing(m: Message, ms: MessagingSettings) -> Outgoing:
    from messaging.services.callbacks import status_callback_url

    marketing = m.category == Category.MARKETING
    from_address, from_name = _sender(m, ms)
    return Outgoing(
        message_id=m.pk,
        tenant_id=m.tenant_id,
        channel=m.channel,
        to=m.to_address,
        from_address=from_address,
        from_name=from_name,
        reply_to=ms.reply_to,
        subject=m.subject,
        text=m.body_text,
        html=m.body_html,
        marketing=marketing,
        unsubscribe_url=_unsubscribe_url(m.customer, m.pk) if marketing and m.customer else "",
        status_callback_url=status_callback_url(m) if m.channel == Channel.SMS else "",
    )


def _record(tenant_id: int, pk: int, claim: uuid.UUID, **fields) -> bool:
    """Record the outcome of a claimed message. A provider callback may have
    overtaken us (moved it past ``sending``): its news is newer, so only the
    claim is dropped then."""
    rows = Message.objects.for_tenant(tenant_id).filter(pk=pk, claim=claim)
    now = clock.now()
    if rows.filter(status=Status.SENDING).update(
        claim=None, lease_until=None, updated_at=now, **fields
    ):
        return True
    if rows.update(claim=None, lease_until=None, updated_at=now):
        return True
    logger.error("messaging.claim_lost tenant_id=%s message_id=%s", tenant_id, pk)
    return False


# The hot statement of the send path: the accepted calls of a group in one
# statement. Plain SQL, because the ORM cannot update from a list of values and
# its compilation cost as much as the database's work. `tenant_id + 0` keeps
# the tenant check but not as an index condition: for a tenant newer than the
# table's statistics the planner guesses "one row" for the tenant and may read
# all the tenant's messages through a (tenant, ...) index instead of the ids.
# A fast provider's callback may already have moved a row past `sent`: its
# status then stays, the provider id and send time are still stored.
_RECORD_SENT = """
    UPDATE messaging_message AS m
       SET status = CASE WHEN m.status = %s THEN %s ELSE m.status END,
           provider_id = o.provider_id, sent_at = COALESCE(m.sent_at, o.sent_at),
           claim = NULL, lease_until = NULL, reason = '', detail = '', updated_at = %s
      FROM unnest(%s::bigint[], %s::text[], %s::timestamptz[]) AS o (id, provider_id, sent_at)
     WHERE m.id = o.id AND m.tenant_id + 0 = %s AND m.claim = %s
    RETURNING m.id
"""
# SQLite (the embedded default) has no unnest: one row at a time.
_RECORD_SENT_ONE = """
    UPDATE messaging_message
       SET status = CASE WHEN status = %s THEN %s ELSE status END,
           provider_id = %s, sent_at = COALESCE(sent_at, %s),
           claim = NULL, lease_until = NULL, reason = '', detail = '', updated_at = %s
     WHERE id = %s AND tenant_id + 0 = %s AND claim = %s
"""


@dataclass(frozen=True)
class Accepted:
    """A call the provider accepted, and when (its message's ``sent_at``)."""

    pk: int
    provider_id: str
    at: datetime


def _record_due(unrecorded: list[Accepted], now: datetime) -> bool:
    """Whether the accepted calls not yet written must be written before the
    next call: never more than RECORD_EVERY of them (the sweeper's bound), nor
    one for longer than RECORD_WITHIN."""
    return bool(unrecorded) and (
        len(unrecorded) >= RECORD_EVERY or now - unrecorded[0].at >= RECORD_WITHIN
    )


def _record_sent_many(tenant_id: int, claim: uuid.UUID, accepted: list[Accepted]) -> int:
    """Record accepted calls as ``sent`` in one statement; returns how many
    rows were still ours to record."""
    if not accepted:
        return 0
    now = clock.now()
    if connection.vendor == "postgresql":
        # Straight on the driver's connection: Django's cursor wrappers cost
        # more than the statement on this path.
        connection.ensure_connection()
        params = [
            Status.SENDING,
            Status.SENT,
            now,
            [a.pk for a in accepted],
            [a.provider_id for a in accepted],
            [a.at for a in accepted],
            tenant_id,
            claim,
        ]
        done = {pk for (pk,) in connection.connection.execute(_RECORD_SENT, params)}
    else:
        claim_db = Message._meta.get_field("claim").get_db_prep_value(claim, connection)
        done = set()
        with connection.cursor() as cursor:
            for a in accepted:
                params = [Status.SENDING, Status.SENT, a.provider_id, a.at, now]
                cursor.execute(_RECORD_SENT_ONE, [*params, a.pk, tenant_id, claim_db])
                if cursor.rowcount:
                    done.add(a.pk)
    for a in accepted:
        if a.pk not in done:
            logger.error("messaging.claim_lost tenant_id=%s message_id=%s", tenant_id, a.pk)
    return len(done)


def _record_sent(tenant_id: int, pk: int, claim: uuid.UUID, provider_id: str) -> bool:
    """Record one accepted call (see :func:`_record_sent_many`)."""
    return bool(_record_sent_many(tenant_id, claim, [Accepted(pk, provider_id, clock.now())]))


def _send_one(m: Message, claim: uuid.UUID, ms: MessagingSettings) -> tuple[str, str]:
    """Call the provider for one claimed message: ``("sent", provider id)``,
    which the caller records, or another outcome, recorded here."""
    adapter = adapter_for(m.channel)
    tenant_id = m.tenant_id
    if adapter is None:  # the key was removed since the claim: back to the outbox
        _record(tenant_id, m.pk, claim, status=Status.QUEUED, reason=Reason.NO_PROVIDER)
        return "not_ready", ""
    now = clock.now()
    try:
        outgoing = _outgoing(m, ms)
    except Exception as exc:
        # Nothing went out; a bug of ours must not loop the message forever.
        logger.exception("messaging.build_failed tenant_id=%s message_id=%s", tenant_id, m.pk)
        _record(
            tenant_id,
            m.pk,
            claim,
            status=Status.FAILED,
            reason=Reason.PERMANENT,
            detail=f"Could not build the message: {exc!r}",
            failed_at=now,
        )
        return "failed", ""
    try:
        provider_id = adapter.send(outgoing)
    except TransientError as exc:
        if m.attempts >= MAX_ATTEMPTS:
            _record(
                tenant_id,
                m.pk,
                claim,
                status=Status.FAILED,
                reason=Reason.RETRIES_EXHAUSTED,
                detail=exc.detail,
                failed_at=now,
            )
            return "failed", ""
        delay = policy.retry_delay(attempts=m.attempts, retry_after=exc.retry_after)
        _record(
            tenant_id,
            m.pk,
            claim,
            status=Status.DEFERRED,
            reason=Reason.TRANSIENT,
            detail=exc.detail,
            due_at=now + delay,
        )
        logger.warning(
            "messaging.retry tenant_id=%s message_id=%s attempt=%s in=%ss detail=%s",
            tenant_id,
            m.pk,
            m.attempts,
            int(delay.total_seconds()),
            exc.detail,
        )
        return "retry", ""
    except PermanentError as exc:
        _record(
            tenant_id,
            m.pk,
            claim,
            status=Status.FAILED,
            reason=Reason.PERMANENT,
            detail=exc.detail,
            failed_at=now,
        )
        if exc.invalid_recipient:
            stop = str(getattr(exc, "code", "")) == str(TWILIO_STOP_CODE)
            suppression_add(
                tenant_id=tenant_id,
                channel=m.channel,
                address=m.to_address,
                reason=SuppressionReason.SMS_STOP if stop else SuppressionReason.INVALID,
                source=f"{m.channel}_send",
                detail=exc.detail,
            )
        logger.warning(
            "messaging.failed tenant_id=%s message_id=%s detail=%s", tenant_id, m.pk, exc.detail
        )
        return "failed", ""
    except OutcomeUnknown as exc:
        _record_unknown(tenant_id, m.pk, claim, Reason.TIMEOUT, exc.detail, now)
        return "unknown", ""
    except Exception as exc:
        # A bug of ours in the adapter: the request may have gone out, so do not
        # risk a second send; the row waits for a callback or a person.
        logger.exception("messaging.send_crashed tenant_id=%s message_id=%s", tenant_id, m.pk)
        _record_unknown(tenant_id, m.pk, claim, Reason.TIMEOUT, repr(exc), now)
        return "unknown", ""
    return "sent", provider_id


def _record_unknown(
    tenant_id: int, pk: int, claim: uuid.UUID, reason: str, detail: str, at: datetime
) -> None:
    _record(
        tenant_id,
        pk,
        claim,
        status=Status.UNKNOWN,
        reason=reason,
        detail=detail[:500],
        sent_at=Coalesce(F("sent_at"), Value(at)),
    )
    logger.warning("messaging.unknown tenant_id=%s message_id=%s detail=%s", tenant_id, pk, detail)


def _release(tenant_id: int, claim: uuid.UUID) -> int:
    """Back to the queue: the claimed messages not yet sent or recorded."""
    return (
        Message.objects.for_tenant(tenant_id)
        .filter(claim=claim, status=Status.SENDING)
        .update(
            status=Status.QUEUED,
            claim=None,
            lease_until=None,
            attempts=F("attempts") - 1,
            updated_at=clock.now(),
        )
    )


# What checking, sending and the touchpoints read of a claimed message (and of
# its customer): not its timestamps, context or statuses, which cost a quarter
# of loading a batch. Reading a field left out costs a query per message:
# tests/messaging/test_send_records.py counts the queries of a batch.
_SEND_FIELDS = (
    "tenant_id",
    "customer",
    "template_id",
    "channel",
    "category",
    "source",
    "to_address",
    "subject",
    "body_text",
    "body_html",
    "attempts",
    "customer__tenant_id",
    "customer__timezone",
)


def send_batch(*, tenant_id: int, message_ids: list[int]) -> dict[str, int]:
    """Claim, check and send these messages (those still pending and due).
    Returns counts per outcome."""
    now = clock.now()
    claim = uuid.uuid4()
    _mark_not_ready(tenant_id, message_ids, now)
    if not _claim(tenant_id, message_ids, claim, now):
        return {}
    try:
        tenant = Tenant.objects.get(pk=tenant_id)
        ms = messaging_settings(tenant_id)
        messages = list(
            Message.objects.for_tenant(tenant_id)
            .filter(claim=claim, status=Status.SENDING)
            .select_related("customer")
            .only(*_SEND_FIELDS)
            .order_by("pk")
        )
        verdicts = batch_check(messages, tenant=tenant, ms=ms, now=now)
        verdicts_apply(tenant_id, claim, verdicts, now)
    except BaseException:
        # Nothing was sent yet: give the batch back rather than let the sweeper
        # take its first message for one that may have gone out.
        _release(tenant_id, claim)
        raise
    counts: dict[str, int] = defaultdict(int)
    for status, *_ in verdicts.values():
        counts[status] += 1

    go = [m for m in messages if m.pk not in verdicts]
    in_app = [m.pk for m in go if m.channel == Channel.IN_APP]
    if in_app:
        counts["sent"] += (
            Message.objects.for_tenant(tenant_id)
            .filter(pk__in=in_app, claim=claim)
            .update(status=Status.SENT, sent_at=now, claim=None, lease_until=None, updated_at=now)
        )
    # Stop starting calls while one could still be running when the lease ends.
    last_start = now + LEASE - timedelta(seconds=settings.PROVIDER_TIMEOUT + 5)
    sent: list[Message] = [m for m in go if m.channel == Channel.IN_APP]
    provider_messages = [m for m in go if m.channel != Channel.IN_APP]
    unrecorded: list[Accepted] = []
    try:
        for m in provider_messages:
            started = clock.now()
            if _record_due(unrecorded, started):
                _record_sent_many(tenant_id, claim, unrecorded)
                unrecorded.clear()
            if started > last_start:
                _record_sent_many(tenant_id, claim, unrecorded)
                unrecorded.clear()
                counts["released"] += _release(tenant_id, claim)
                break
            outcome, provider_id = _send_one(m, claim, ms)
            counts[outcome] += 1
            if outcome == "sent":
                unrecorded.append(Accepted(m.pk, provider_id, clock.now()))
                sent.append(m)
    finally:
        # Also when something of ours failed mid-batch: what went out is written
        # (if the database is reachable; else the lease and the sweeper cover it).
        _record_sent_many(tenant_id, claim, unrecorded)
    _touchpoints_sent(tenant_id, sent)
    return dict(counts)


def _touchpoints_sent(tenant_id: int, sent: list[Message]) -> None:
    items = [
        TouchpointIn(
            customer_id=m.customer_id,
            category=TouchpointCategory.MARKETING,
            kind="message.sent",
            occurred_at=clock.now(),
            properties={
                "message_id": m.pk,
                "channel": m.channel,
                "category": m.category,
                "template_id": m.template_id,
                "source": m.source,
            },
            external_id=f"message:{m.pk}:sent",
        )
        for m in sent
        if m.customer_id and m.category not in STAFF_CATEGORIES
    ]
    touchpoints_record_many(tenant_id=tenant_id, source="messaging", items=items)
