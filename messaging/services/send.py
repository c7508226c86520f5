"""Sending: claim a batch, check it against consent and pacing, call providers.

Exactly once, even with duplicate task deliveries, racing workers and crashes:

1. **Claim.** Pending rows move to ``sending`` under a fresh claim id with
   ``FOR UPDATE SKIP LOCKED``; a second task for the same ids finds nothing.
2. **Check** the batch set-based (``messaging.services.checks``: consents,
   suppressions, cap counts in three queries): a message that may not go is
   recorded ``suppressed`` (with the reason) or ``deferred`` to the end of quiet
   hours, before any provider call.
3. **Send** one by one in id order, recording each outcome right after its call.
   A worker that dies leaves its unrecorded rows ``sending``; because calls go in
   id order, only the lowest of them can have reached the provider. When the
   lease runs out the sweeper marks that one ``unknown`` (callbacks settle it)
   and puts the rest back in the queue: nothing is sent twice, nothing is lost.
   A worker starts no call that could outlive its lease.
"""

from __future__ import annotations

import logging
import uuid
from collections import defaultdict
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F, Value
from django.db.models.functions import Coalesce

from commerce.models import Channel, TouchpointCategory
from commerce.services.touchpoints import TouchpointIn, touchpoints_record_many
from commerce.tokens import preferences_page_url
from messaging import policy
from messaging.models import (
    PENDING,
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


def _outgoing(m: Message, ms: MessagingSettings) -> Outgoing:
    from messaging.services.callbacks import status_callback_url

    marketing = m.category == Category.MARKETING
    return Outgoing(
        message_id=m.pk,
        tenant_id=m.tenant_id,
        channel=m.channel,
        to=m.to_address,
        from_address=(
            (ms.from_email or settings.MESSAGING_FROM_EMAIL)
            if m.channel == Channel.EMAIL
            else ms.sms_from
        ),
        from_name=ms.from_name,
        reply_to=ms.reply_to,
        subject=m.subject,
        text=m.body_text,
        html=m.body_html,
        marketing=marketing,
        unsubscribe_url=(
            preferences_page_url(m.customer, m.pk) if marketing and m.customer else ""
        ),
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


# The hot statement of the send path, once per message: plain SQL, because the
# ORM's compilation of it cost as much as the database's work. `tenant_id + 0`
# keeps the tenant check but not as an index condition: for a tenant newer than
# the table's statistics the planner guesses "one row" for the tenant and may
# read all the tenant's messages through a (tenant, ...) index instead of one.
_RECORD_SENT = """
    UPDATE messaging_message
       SET status = CASE WHEN status = %s THEN %s ELSE status END,
           provider_id = %s, sent_at = COALESCE(sent_at, %s),
           claim = NULL, lease_until = NULL, reason = '', detail = '', updated_at = %s
     WHERE id = %s AND tenant_id + 0 = %s AND claim = %s
"""


def _record_sent(tenant_id: int, pk: int, claim: uuid.UUID, provider_id: str) -> bool:
    """A fast provider's callback may already have moved the row past `sent`:
    the status then stays, the provider id and send time are still stored."""
    now = clock.now()
    if connection.vendor == "postgresql":
        # Straight on the driver's connection: Django's cursor wrappers cost
        # more than the statement on this path.
        connection.ensure_connection()
        params = [Status.SENDING, Status.SENT, provider_id, now, now, pk, tenant_id, claim]
        done = connection.connection.execute(_RECORD_SENT, params).rowcount
    else:
        claim_db = Message._meta.get_field("claim").get_db_prep_value(claim, connection)
        with connection.cursor() as cursor:
            cursor.execute(
                _RECORD_SENT,
                [Status.SENDING, Status.SENT, provider_id, now, now, pk, tenant_id, claim_db],
            )
            done = cursor.rowcount
    if not done:
        logger.error("messaging.claim_lost tenant_id=%s message_id=%s", tenant_id, pk)
    return bool(done)


def _send_one(m: Message, claim: uuid.UUID, ms: MessagingSettings) -> str:
    """Call the provider for one claimed message and record the outcome."""
    adapter = adapter_for(m.channel)
    tenant_id = m.tenant_id
    if adapter is None:  # the key was removed since the claim: back to the outbox
        _record(tenant_id, m.pk, claim, status=Status.QUEUED, reason=Reason.NO_PROVIDER)
        return "not_ready"
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
        return "failed"
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
            return "failed"
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
        return "retry"
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
        return "failed"
    except OutcomeUnknown as exc:
        _record_unknown(tenant_id, m.pk, claim, Reason.TIMEOUT, exc.detail, now)
        return "unknown"
    except Exception as exc:
        # A bug of ours in the adapter: the request may have gone out, so do not
        # risk a second send; the row waits for a callback or a person.
        logger.exception("messaging.send_crashed tenant_id=%s message_id=%s", tenant_id, m.pk)
        _record_unknown(tenant_id, m.pk, claim, Reason.TIMEOUT, repr(exc), now)
        return "unknown"
    _record_sent(tenant_id, m.pk, claim, provider_id)
    return "sent"


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
    for m in provider_messages:
        if clock.now() > last_start:
            counts["released"] += _release(tenant_id, claim)
            break
        outcome = _send_one(m, claim, ms)
        counts[outcome] += 1
        if outcome == "sent":
            sent.append(m)
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
        if m.customer_id and m.category != Category.TEST
    ]
    touchpoints_record_many(tenant_id=tenant_id, source="messaging", items=items)
