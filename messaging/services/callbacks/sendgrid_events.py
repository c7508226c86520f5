"""SendGrid event webhook: map each event onto its message, suppressions,
consent and the customer's timeline.

Outgoing mail carries ``custom_args`` ``{"message_id", "tenant_id"}``, which
SendGrid copies onto every event; a message is found only when both match, so
an event can never touch another tenant's message. An event naming no message
we know is stored anyway with the outcome "no such message".
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime

from commerce.models import Channel, ConsentStatus, Customer
from commerce.selectors import customer_survivor
from commerce.services.customers import consent_set
from messaging.models import Message, Provider, ProviderEvent, Reason, Status, SuppressionReason
from messaging.services.callbacks.store import (
    APPLIERS,
    SORT_KEYS,
    Applied,
    EventIn,
    events_apply,
    events_store,
    int_or_none,
    message_touchpoint,
    unix_time,
)
from messaging.services.outbox import message_advance, suppression_add

PROVIDER = Provider.SENDGRID
SOURCE = "sendgrid"
# Simple status moves: event -> (status, touchpoint kind or "").
ADVANCES: dict[str, tuple[str, str]] = {
    "processed": (Status.SENT, ""),
    "delivered": (Status.DELIVERED, "message.delivered"),
    "open": (Status.OPENED, "message.opened"),
    "click": (Status.CLICKED, "message.clicked"),
}
# Dropped for these reasons means the address itself does not work.
DROPPED_SUPPRESS = frozenset({"Bounced Address", "Invalid"})
# Opt-outs: event -> (suppression reason, consent source, touchpoint kind).
OPT_OUTS: dict[str, tuple[str, str, str]] = {
    "spamreport": (SuppressionReason.SPAM_REPORT, "sendgrid_spamreport", "message.spam_report"),
    "unsubscribe": (SuppressionReason.UNSUBSCRIBE, "sendgrid_unsubscribe", "message.unsubscribed"),
    "group_unsubscribe": (
        SuppressionReason.UNSUBSCRIBE,
        "sendgrid_unsubscribe",
        "message.unsubscribed",
    ),
}


def sendgrid_events_receive(*, events: list[dict]) -> dict[str, int]:
    """Store a verified batch of SendGrid events, then apply the new ones.
    Returns ``{"received", "duplicates", "applied"}``."""
    ids, duplicates = events_store(provider=PROVIDER, events=[_event_in(event) for event in events])
    applied = events_apply(ids)
    return {"received": len(events), "duplicates": duplicates, "applied": len(applied)}


def _event_in(event: dict) -> EventIn:
    event_id = event.get("sg_event_id")
    if not isinstance(event_id, str) or not event_id.strip() or len(event_id) > 200:
        # Every real event has one; without it, the content itself identifies
        # the event, so a replay of the same bytes is still stored once.
        canonical = json.dumps(event, sort_keys=True, separators=(",", ":"))
        event_id = "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()
    kind = event.get("event")
    return EventIn(event_id=event_id.strip(), kind=str(kind or "")[:30], payload=event)


def _message(payload: dict) -> Message | None:
    tenant_id = int_or_none(payload.get("tenant_id"))
    message_id = int_or_none(payload.get("message_id"))
    if tenant_id is None or message_id is None:
        return None
    return (
        Message.objects.for_tenant(tenant_id)
        .select_related("customer")
        .filter(pk=message_id, channel=Channel.EMAIL)
        .first()
    )


def _sort_key(row: ProviderEvent) -> tuple:
    payload = row.payload if isinstance(row.payload, dict) else {}
    at = unix_time(payload.get("timestamp"), row.received_at)
    return (int_or_none(payload.get("message_id")) or 0, at.timestamp())


def apply_event(row: ProviderEvent) -> Applied:
    """Apply one stored SendGrid event (registered in ``store.APPLIERS``)."""
    payload = row.payload if isinstance(row.payload, dict) else {}
    message = _message(payload)
    if message is None:
        return Applied("no such message")
    kind = row.kind
    at = unix_time(payload.get("timestamp"), row.received_at)
    external_id = f"{PROVIDER}:{row.event_id}"
    customer = customer_survivor(message.customer) if message.customer else None
    done = Applied("", tenant_id=message.tenant_id, message_id=message.pk)

    def advance(status: str, reason: str = "", detail: str = "") -> bool:
        return message_advance(
            tenant_id=message.tenant_id,
            message_id=message.pk,
            status=status,
            at=at,
            provider_id=_sg_message_id(payload),
            reason=reason,
            detail=detail,
        )

    def touch(touch_kind: str, **extra: object) -> None:
        done.touchpoints += message_touchpoint(
            message,
            kind=touch_kind,
            at=at,
            external_id=external_id,
            customer_id=customer.pk if customer else None,
            **extra,
        )

    address = message.to_address or str(payload.get("email") or "")
    reason_text = str(payload.get("reason") or payload.get("response") or "")[:500]

    if kind in ADVANCES:
        status, touch_kind = ADVANCES[kind]
        done.outcome = str(status) if advance(status) else f"{kind} recorded; status stays"
        if touch_kind:
            url = str(payload.get("url") or "")[:2000] if kind == "click" else ""
            touch(touch_kind, url=url)
    elif kind == "bounce":
        if str(payload.get("type") or "").lower() == "blocked":
            # A block is the receiving server refusing for now (reputation, rate):
            # SendGrid does not retry it, but the address itself is fine.
            done.outcome = "blocked (temporary); recorded"
        else:
            advance(Status.BOUNCED, Reason.BOUNCE, reason_text)
            suppression_add(
                tenant_id=message.tenant_id,
                channel=Channel.EMAIL,
                address=address,
                reason=SuppressionReason.BOUNCE,
                source=SOURCE,
                detail=reason_text,
            )
            done.outcome = "bounced; address suppressed"
            touch("message.bounced", reason=reason_text)
    elif kind == "dropped":
        advance(Status.FAILED, Reason.DROPPED, reason_text)
        done.outcome = f"dropped ({reason_text[:100]})"
        if reason_text in DROPPED_SUPPRESS:
            suppression_add(
                tenant_id=message.tenant_id,
                channel=Channel.EMAIL,
                address=address,
                reason=SuppressionReason.DROPPED,
                source=SOURCE,
                detail=reason_text,
            )
            done.outcome += "; address suppressed"
    elif kind in OPT_OUTS:
        suppression_reason, consent_source, touch_kind = OPT_OUTS[kind]
        suppression_add(
            tenant_id=message.tenant_id,
            channel=Channel.EMAIL,
            address=address,
            reason=suppression_reason,
            source=SOURCE,
            detail=kind,
        )
        if customer is not None:
            _opt_out(customer, consent_source, at)
        done.outcome = f"{kind}: suppressed, opted out"
        touch(touch_kind)
    else:  # deferred, group_resubscribe and anything new: kept, nothing to do
        done.outcome = f"{kind or 'unnamed event'} recorded"
    return done


def _opt_out(customer: Customer, source: str, at: datetime) -> None:
    consent_set(
        customer=customer,
        channel=Channel.EMAIL,
        status=ConsentStatus.OPTED_OUT,
        source=source,
        at=at,
    )


def _sg_message_id(payload: dict) -> str:
    """SendGrid's ``sg_message_id`` is the ``X-Message-Id`` it answered the send
    with, plus a ``.filter…`` suffix: the prefix reconciles a send that timed out."""
    value = payload.get("sg_message_id")
    if not isinstance(value, str):
        return ""
    return value.split(".", 1)[0].strip()[:100]


APPLIERS[PROVIDER] = apply_event
SORT_KEYS[PROVIDER] = _sort_key
