"""Twilio callbacks: SMS status callbacks and inbound SMS (STOP, START, HELP and
replies).

Status callbacks find their message by the ``m`` (message id) and ``t`` (tenant
id) query parameters of the URL we gave Twilio (signed along with the body), or
else by the Twilio SID stored in ``Message.provider_id``. Inbound SMS find their
store by the number they were sent to (``MessagingSettings.sms_from``) and their
customers by the number they came from.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from urllib.parse import urlencode

from django.conf import settings
from django.db import transaction
from django.urls import reverse

from commerce.identity import BadIdentifier, normalize_phone
from commerce.models import Channel, ConsentStatus, Customer, TouchpointCategory
from commerce.selectors import consents_for, customers_by_phone
from commerce.services.customers import consent_set
from commerce.services.touchpoints import TouchpointIn
from messaging.models import (
    Message,
    MessagingSettings,
    Provider,
    ProviderEvent,
    Reason,
    Status,
    Suppression,
    SuppressionReason,
)
from messaging.services.callbacks.store import (
    APPLIERS,
    SORT_KEYS,
    Applied,
    EventIn,
    events_apply,
    events_store,
    int_or_none,
    message_touchpoint,
)
from messaging.services.outbox import (
    message_advance,
    messaging_settings,
    suppression_add,
    suppression_remove,
)

logger = logging.getLogger(__name__)

# MessageStatus -> our status. Twilio queued/accepted/sending means Twilio has
# the message: for us it is sent (and a message left `unknown` is reconciled).
STATUS_MAP: dict[str, str] = {
    "accepted": Status.SENT,
    "queued": Status.SENT,
    "sending": Status.SENT,
    "sent": Status.SENT,
    "delivered": Status.DELIVERED,
    "read": Status.OPENED,
    "undelivered": Status.FAILED,
    "failed": Status.FAILED,
}
STATUS_TOUCHPOINTS = {"delivered": "message.delivered", "read": "message.opened"}
# ErrorCode -> suppression: 21610 the recipient texted STOP; 30003 unreachable
# handset, 30005 unknown number, 30006 landline or unreachable carrier.
ERROR_SUPPRESSIONS: dict[str, str] = {
    "21610": SuppressionReason.SMS_STOP,
    "30003": SuppressionReason.INVALID,
    "30005": SuppressionReason.INVALID,
    "30006": SuppressionReason.INVALID,
}
STOP_WORDS = frozenset({"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT"})
START_WORDS = frozenset({"START", "YES", "UNSTOP"})
# YES is also an everyday answer ("Happy with your order? Reply YES or NO"): it
# opts *back* in a number that opted out, and is otherwise a reply like any
# other, never a fresh consent to marketing texts.
RESUME_ONLY_WORDS = frozenset({"YES"})
HELP_WORDS = frozenset({"HELP", "INFO"})


@dataclass(frozen=True)
class InboundSms:
    """An inbound SMS that is not a keyword, as offered to ``INBOUND_SMS_HOOKS``."""

    tenant_id: int
    from_number: str
    to_number: str
    body: str
    message_sid: str
    customer_ids: tuple[int, ...]
    received_at: datetime


# Other apps register parsers of replies (feedback: survey answers by SMS). Each
# is called with the InboundSms in turn inside the apply transaction: False or
# None means "not mine"; True means handled; a non-empty string means handled
# and is answered to the sender. The first hook that handles the reply wins.
INBOUND_SMS_HOOKS: list[Callable[[InboundSms], bool | str | None]] = []


def status_callback_url(message: Message) -> str:
    """Where Twilio posts the status callbacks of this SMS. The query names the
    message and its tenant; Twilio signs the whole URL, so they cannot be forged."""
    query = urlencode({"m": message.pk, "t": message.tenant_id})
    return f"{settings.PUBLIC_BASE_URL}{_status_path()}?{query}"


@lru_cache(maxsize=1)
def _status_path() -> str:
    # Once per process: reverse() costs as much as the rest of building an SMS.
    return reverse("hooks-twilio-status")


def tenant_for_sms_number(number: str) -> int | None:
    """The id of the active tenant whose SMS number this is, or None.

    Reads ``MessagingSettings`` across tenants on purpose: an inbound SMS carries
    only the number it was sent to, and resolving the tenant from it is the
    point (``sms_from`` is unique platform-wide for exactly this lookup).
    """
    candidates = {number.strip(), _phone(number)} - {""}
    if not candidates:
        return None
    return (
        MessagingSettings.objects.unscoped()
        .filter(sms_from__in=candidates, tenant__is_active=True)
        .order_by("tenant_id")
        .values_list("tenant_id", flat=True)
        .first()
    )


def dangerously_message_by_twilio_sid(sid: str) -> Message | None:
    """The SMS whose Twilio SID this is, in whichever tenant sent it.

    Reads ``Message`` across tenants on purpose: a status callback that lacks our
    ``m``/``t`` query parameters (sent before they existed, or configured on the
    Twilio account) carries only Twilio's SID, which is unique across Twilio, so
    the row it finds names its own tenant.
    """
    if not sid:
        return None
    return (
        Message.objects.unscoped()
        .select_related("customer")
        .filter(provider_id=sid, channel=Channel.SMS)
        .first()
    )


# --- receiving (called by the views with verified parameters) -----------------------


def twilio_status_receive(*, params: dict[str, str], query: dict[str, str]) -> bool:
    """Store one verified status callback, then apply it. Returns False for a
    replay (stored before). Raises ValueError without MessageSid/MessageStatus."""
    sid, status = params.get("MessageSid", ""), params.get("MessageStatus", "")
    if not sid or not status:
        raise ValueError("MessageSid and MessageStatus are required.")
    event = EventIn(
        event_id=f"{sid}:{status}",
        kind=status,
        payload={"form": params, "query": {k: query[k] for k in ("m", "t") if k in query}},
    )
    ids, duplicates = events_store(provider=Provider.TWILIO_STATUS, events=[event])
    events_apply(ids)
    return not duplicates


def twilio_inbound_receive(*, params: dict[str, str]) -> str | None:
    """Store one verified inbound SMS, then apply it. Returns the text to answer
    with (HELP, or a hook's reply), or None. Raises ValueError without MessageSid."""
    sid = params.get("MessageSid") or params.get("SmsSid") or ""
    if not sid:
        raise ValueError("MessageSid is required.")
    event = EventIn(event_id=sid, kind="inbound", payload={"form": params})
    ids, _ = events_store(provider=Provider.TWILIO_INBOUND, events=[event])
    for applied in events_apply(ids).values():
        return applied.reply
    return None


# --- applying ---------------------------------------------------------------------------


def _form(row: ProviderEvent) -> dict[str, str]:
    payload = row.payload if isinstance(row.payload, dict) else {}
    form = payload.get("form")
    return {str(k): str(v) for k, v in form.items()} if isinstance(form, dict) else {}


def _status_message(row: ProviderEvent, sid: str) -> Message | None:
    payload = row.payload if isinstance(row.payload, dict) else {}
    query = payload.get("query") if isinstance(payload.get("query"), dict) else {}
    message_id, tenant_id = int_or_none(query.get("m")), int_or_none(query.get("t"))
    if message_id is not None and tenant_id is not None:
        return (
            Message.objects.for_tenant(tenant_id)
            .select_related("customer")
            .filter(pk=message_id, channel=Channel.SMS)
            .first()
        )
    return dangerously_message_by_twilio_sid(sid)


def _status_sort_key(row: ProviderEvent) -> tuple:
    payload = row.payload if isinstance(row.payload, dict) else {}
    query = payload.get("query") if isinstance(payload.get("query"), dict) else {}
    return (int_or_none(query.get("m")) or 0,)


def apply_status(row: ProviderEvent) -> Applied:
    """Apply one stored status callback (registered in ``store.APPLIERS``)."""
    form = _form(row)
    sid, twilio_status = form.get("MessageSid", ""), row.kind
    message = _status_message(row, sid)
    if message is None:
        return Applied("no such message")
    done = Applied("", tenant_id=message.tenant_id, message_id=message.pk)
    if message.provider_id and message.provider_id != sid:
        done.outcome = "the message has another MessageSid; ignored"
        return done
    status = STATUS_MAP.get(twilio_status)
    if status is None:  # scheduled, canceled, receiving …: nothing to move
        done.outcome = f"{twilio_status} recorded"
        return done
    code = form.get("ErrorCode", "").strip()
    detail = ""
    if status == Status.FAILED:
        detail = f"Twilio {twilio_status}" + (f", ErrorCode {code}" if code else "")
        if form.get("ErrorMessage"):
            detail += f": {form['ErrorMessage']}"
    moved = message_advance(
        tenant_id=message.tenant_id,
        message_id=message.pk,
        status=status,
        at=row.received_at,
        provider_id=sid,
        reason=Reason.PERMANENT if status == Status.FAILED else "",
        detail=detail,
    )
    done.outcome = str(status) if moved else f"{twilio_status} recorded; status stays"
    suppression = ERROR_SUPPRESSIONS.get(code) if status == Status.FAILED else None
    if suppression is not None:
        suppression_add(
            tenant_id=message.tenant_id,
            channel=Channel.SMS,
            address=message.to_address or form.get("To", ""),
            reason=suppression,
            source="twilio",
            detail=f"ErrorCode {code}",
        )
        done.outcome += f"; number suppressed ({suppression})"
    if twilio_status in STATUS_TOUCHPOINTS:
        done.touchpoints = message_touchpoint(
            message,
            kind=STATUS_TOUCHPOINTS[twilio_status],
            at=row.received_at,
            external_id=f"{row.provider}:{row.event_id}",
        )
    return done


def _phone(raw: str) -> str:
    try:
        return normalize_phone(raw) or raw.strip()
    except BadIdentifier:
        return raw.strip()  # a short code or sender id: kept as given


def apply_inbound(row: ProviderEvent) -> Applied:
    """Apply one stored inbound SMS (registered in ``store.APPLIERS``)."""
    form = _form(row)
    to_number, from_number = form.get("To", "").strip(), _phone(form.get("From", ""))
    tenant_id = tenant_for_sms_number(to_number)
    if tenant_id is None:
        return Applied("unknown number")
    body = form.get("Body", "")
    keyword = body.strip().upper()
    customers = customers_by_phone(tenant_id=tenant_id, phone=from_number)
    at = row.received_at
    done = Applied("", tenant_id=tenant_id)

    def touch(kind: str, properties: dict) -> None:
        for i, customer in enumerate(customers):
            # One event, several customers sharing the number: each gets one.
            suffix = "" if i == 0 else f":{customer.pk}"
            done.touchpoints.append(
                TouchpointIn(
                    customer_id=customer.pk,
                    category=TouchpointCategory.MARKETING,
                    kind=kind,
                    occurred_at=at,
                    properties=properties,
                    external_id=f"{row.provider}:{row.event_id}{suffix}"[:100],
                )
            )

    if keyword in STOP_WORDS:
        suppression_add(
            tenant_id=tenant_id,
            channel=Channel.SMS,
            address=from_number,
            reason=SuppressionReason.SMS_STOP,
            source="sms_stop",
            detail=keyword,
        )
        for customer in customers:
            consent_set(
                customer=customer,
                channel=Channel.SMS,
                status=ConsentStatus.OPTED_OUT,
                source="sms_stop",
                at=at,
            )
        touch("message.unsubscribed", {"channel": Channel.SMS, "keyword": keyword})
        # No reply of ours: Twilio's opt-out handling confirms STOP itself, and
        # once it has, a message from us to this number would fail with 21610.
        done.outcome = f"{keyword}: suppressed, {len(customers)} customer(s) opted out"
    elif keyword in START_WORDS and (
        keyword not in RESUME_ONLY_WORDS or _opted_out(tenant_id, from_number, customers)
    ):
        lifted = suppression_remove(
            tenant_id=tenant_id,
            channel=Channel.SMS,
            address=from_number,
            reasons=(SuppressionReason.SMS_STOP,),
        )
        for customer in customers:
            consent_set(
                customer=customer,
                channel=Channel.SMS,
                status=ConsentStatus.OPTED_IN,
                source="sms_start",
                at=at,
            )
        touch(
            "preferences.changed",
            {"channel": Channel.SMS, "status": ConsentStatus.OPTED_IN, "source": "sms_start"},
        )
        done.outcome = f"{keyword}: {lifted} suppression(s) lifted, opted in"
    elif keyword in HELP_WORDS:
        done.reply = messaging_settings(tenant_id).sms_help_text or None
        done.outcome = f"{keyword}: help sent"
    else:
        touch("sms.reply", {"body": body[:1600], "from": from_number})
        sms = InboundSms(
            tenant_id=tenant_id,
            from_number=from_number,
            to_number=to_number,
            body=body,
            message_sid=row.event_id,
            customer_ids=tuple(c.pk for c in customers),
            received_at=at,
        )
        handler, done.reply = _offer_to_hooks(sms)
        done.outcome = f"reply handled by {handler}" if handler else "reply recorded"
    return done


def _opted_out(tenant_id: int, number: str, customers: list[Customer]) -> bool:
    """Whether this number texted STOP, or one of its customers opted out of SMS."""
    stopped = (
        Suppression.objects.for_tenant(tenant_id)
        .filter(channel=Channel.SMS, address=number, reason=SuppressionReason.SMS_STOP)
        .exists()
    )
    if stopped:
        return True
    consents = consents_for(tenant_id=tenant_id, customer_ids=[c.pk for c in customers])
    return any(consents.get((c.pk, Channel.SMS)) == ConsentStatus.OPTED_OUT for c in customers)


def _offer_to_hooks(sms: InboundSms) -> tuple[str, str | None]:
    """(name of the hook that handled it or "", its reply text or None)."""
    for hook in INBOUND_SMS_HOOKS:
        name = getattr(hook, "__qualname__", repr(hook))
        try:
            with transaction.atomic():
                result = hook(sms)
        except Exception:
            # One broken parser must not cost the reply its record (nor the
            # other parsers their turn); its own writes are rolled back.
            logger.exception(
                "messaging.inbound_hook_failed tenant_id=%s hook=%s", sms.tenant_id, name
            )
            continue
        if isinstance(result, str) and result.strip():
            return name, result
        if result is True:
            return name, None
    return "", None


APPLIERS[Provider.TWILIO_STATUS] = apply_status
APPLIERS[Provider.TWILIO_INBOUND] = apply_inbound
SORT_KEYS[Provider.TWILIO_STATUS] = _status_sort_key
