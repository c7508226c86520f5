"""The send-time checks of a claimed batch: sender identity, address, consent
and suppressions, quiet hours in the customer's timezone and the marketing
frequency cap, answered set-based (a few queries per batch) with the rules of
:mod:`messaging.policy`; and writing the verdicts before any provider call.
"""

from __future__ import annotations

import logging
import uuid
from collections import defaultdict
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.conf import settings
from django.db.models import Count, F

from commerce.models import Channel
from commerce.selectors import consents_for
from messaging import policy
from messaging.models import (
    PENDING,
    SENT_LIKE,
    STAFF_CATEGORIES,
    Category,
    Message,
    MessagingSettings,
    Reason,
    Status,
    Suppression,
)
from retention.models import Tenant

logger = logging.getLogger(__name__)

# A tenant with no sender for a channel: look again in an hour, not every sweep.
NOT_READY_RECHECK = timedelta(hours=1)


def _tz(name: str, fallback: ZoneInfo) -> ZoneInfo:
    if not name:
        return fallback
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        # OSError: a name such as "America" is a directory of the tz database.
        return fallback


def _sender_missing(message: Message, ms: MessagingSettings) -> str:
    if message.category in STAFF_CATEGORIES and message.channel == Channel.EMAIL:
        return ""
    if message.channel == Channel.EMAIL and not (ms.from_email or settings.MESSAGING_FROM_EMAIL):
        return "Set the store's sender address in Messaging settings."
    if message.channel == Channel.SMS and not ms.sms_from:
        return "Set the store's SMS number in Messaging settings."
    return ""


def batch_check(
    messages: list[Message], *, tenant: Tenant, ms: MessagingSettings, now: datetime
) -> dict[int, tuple[str, str, str, datetime | None]]:
    """Verdicts for the messages that may not go now:
    id → (status, reason, detail, due_at)."""
    tenant_id = tenant.pk
    customer_ids = [m.customer_id for m in messages if m.customer_id]
    consents = consents_for(tenant_id=tenant_id, customer_ids=customer_ids)
    suppressed = dict(
        (((c, a), r))
        for c, a, r in Suppression.objects.for_tenant(tenant_id)
        .filter(address__in={m.to_address for m in messages if m.to_address})
        .values_list("channel", "address", "reason")
    )
    capped = [
        m for m in messages if policy.counts_toward_cap(channel=m.channel, category=m.category)
    ]
    since = now - timedelta(days=ms.frequency_cap_days)
    cap_customers = {m.customer_id for m in capped}
    sent_counts: dict[int, int] = {}
    others_sending: dict[int, list[int]] = defaultdict(list)
    if cap_customers:
        marketing = Message.objects.for_tenant(tenant_id).filter(
            customer_id__in=cap_customers,
            category=Category.MARKETING,
            channel__in=(Channel.EMAIL, Channel.SMS),
        )
        sent_counts = dict(
            marketing.filter(status__in=SENT_LIKE, sent_at__gte=since)
            .values("customer_id")
            .annotate(n=Count("pk"))
            .values_list("customer_id", "n")
        )
        mine = {m.pk for m in messages}
        for customer_id, pk in marketing.filter(status=Status.SENDING).values_list(
            "customer_id", "pk"
        ):
            if pk not in mine:
                others_sending[customer_id].append(pk)

    store_tz = tenant.tzinfo
    verdicts: dict[int, tuple[str, str, str, datetime | None]] = {}
    allowed_marketing: dict[int, int] = defaultdict(int)
    for m in messages:  # in id order: an earlier intended send wins the cap
        missing = _sender_missing(m, ms)
        if missing:
            verdicts[m.pk] = (Status.QUEUED, Reason.NO_PROVIDER, missing, now + NOT_READY_RECHECK)
            continue
        if m.channel != Channel.IN_APP and not m.to_address:
            verdicts[m.pk] = (Status.SUPPRESSED, Reason.NO_ADDRESS, f"no {m.channel} address", None)
            continue
        decision = policy.consent_decision(
            channel=m.channel,
            category=m.category,
            consent=consents.get((m.customer_id, m.channel)),
            suppression=suppressed.get((m.channel, m.to_address)),
            email_requires_opt_in=ms.email_requires_opt_in,
        )
        if decision:
            verdicts[m.pk] = (Status.SUPPRESSED, decision[0], decision[1], None)
            continue
        if ms.quiet_hours_enabled and policy.quiet_hours_apply(
            channel=m.channel, category=m.category
        ):
            tz = _tz(m.customer.timezone if m.customer else "", store_tz)
            until = policy.quiet_until(now=now, tz=tz, start=ms.quiet_start, end=ms.quiet_end)
            if until is not None:
                detail = f"quiet hours in {tz.key}; due {until:%Y-%m-%d %H:%M %Z}"
                verdicts[m.pk] = (Status.DEFERRED, Reason.QUIET_HOURS, detail, until)
                continue
        if policy.counts_toward_cap(channel=m.channel, category=m.category):
            c = m.customer_id
            earlier = sum(1 for pk in others_sending[c] if pk < m.pk)
            if sent_counts.get(c, 0) + earlier + allowed_marketing[c] >= ms.frequency_cap:
                detail = f"{ms.frequency_cap} marketing messages in {ms.frequency_cap_days} days"
                verdicts[m.pk] = (Status.SUPPRESSED, Reason.FREQUENCY_CAP, detail, None)
                continue
            allowed_marketing[c] += 1
    return verdicts


def verdicts_apply(tenant_id: int, claim: uuid.UUID, verdicts: dict, now: datetime) -> None:
    groups: dict[tuple, list[int]] = defaultdict(list)
    for pk, (status, reason, detail, due_at) in verdicts.items():
        groups[(status, reason, detail, due_at)].append(pk)
    for (status, reason, detail, due_at), ids in groups.items():
        fields = {"status": status, "reason": reason, "detail": detail[:500], "updated_at": now}
        if status in PENDING:
            fields |= {"due_at": due_at, "attempts": F("attempts") - 1}
        Message.objects.for_tenant(tenant_id).filter(
            pk__in=ids, claim=claim, status=Status.SENDING
        ).update(claim=None, lease_until=None, **fields)
        logger.info(
            "messaging.held tenant_id=%s status=%s reason=%s count=%s",
            tenant_id,
            status,
            reason,
            len(ids),
        )
