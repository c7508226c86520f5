"""The shopper's preferences page ``/u/<token>/``: what they get, and their
changes (per channel, everything at once, or RFC 8058 one-click from the mailbox).

The signed token is the shopper's only credential: it names the tenant and the
customer (and, in links sent in a message, that message), so every read and
write below is scoped to the token's tenant. Changes go through commerce's
``consent_set`` with their source; opting back in to email or SMS also lifts the
opt-out suppressions of the customer's address (never a bounce or an invalid
address: those say the address does not work, not what the shopper wants).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from django.urls import reverse

from commerce.models import Channel, ConsentStatus, Customer, TouchpointCategory
from commerce.selectors import consents_for, customer_get
from commerce.services.customers import consent_set
from commerce.services.touchpoints import TouchpointIn, touchpoints_record_many
from commerce.tokens import (
    PREFERENCES_MAX_AGE,
    PREFERENCES_PURPOSE,
    preferences_token,
    public_url,
    read_token,
)
from messaging.models import Suppression, SuppressionReason
from messaging.services.outbox import address_for, messaging_settings, suppression_remove
from retention import clock
from retention.errors import NotFound
from retention.models import Tenant

logger = logging.getLogger(__name__)

PAGE_SOURCE = "preferences_page"
ONE_CLICK_SOURCE = "one_click"
CHANNEL_LABELS = {
    Channel.EMAIL: "Email",
    Channel.SMS: "Text messages (SMS)",
    Channel.IN_APP: "In-app",
}
# Suppressions an opt-back-in lifts: the shopper's own earlier "no".
LIFTED_BY_OPT_IN: dict[str, tuple[str, ...]] = {
    Channel.EMAIL: (SuppressionReason.UNSUBSCRIBE, SuppressionReason.SPAM_REPORT),
    Channel.SMS: (SuppressionReason.SMS_STOP, SuppressionReason.UNSUBSCRIBE),
}
CHOICES = (ConsentStatus.OPTED_IN, ConsentStatus.OPTED_OUT)


@dataclass(frozen=True)
class PreferencesLink:
    """Who a valid preferences token belongs to."""

    tenant: Tenant
    customer: Customer
    message_id: int | None = None


@dataclass(frozen=True)
class ChannelPreference:
    channel: str
    label: str
    address: str  # masked: the link may be forwarded
    status: str  # the consent on record, "unknown" when none
    subscribed: bool  # whether marketing on this channel reaches them now
    blocked: bool  # the address is suppressed for a reason an opt-in does not lift


class PreferencesLinks:
    """Preferences-page links for many customers (the journey dispatcher renders
    hundreds of messages a batch): the same URLs as
    ``commerce.tokens.preferences_page_url``, with the page's path reversed once
    instead of per link, and each customer's link signed once per instance.

    Keep an instance for one batch: a link carries its signing time."""

    _MARK = "TOKEN"

    def __init__(self) -> None:
        # A token is URL-safe base64 with ":" and "." (never quoted by
        # ``reverse``), so putting it where the mark was gives reverse's answer.
        before, self._after = reverse("preferences-page", args=[self._MARK]).rsplit(self._MARK, 1)
        self._before = public_url(before)
        self._urls: dict[tuple[int, int], str] = {}

    def url(self, customer: Customer) -> str:
        key = (customer.tenant_id, customer.pk)
        found = self._urls.get(key)
        if found is None:
            found = f"{self._before}{preferences_token(customer)}{self._after}"
            self._urls[key] = found
        return found


def _positive_int(value: object) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool) and 0 < value < 2**63:
        return value
    return None


def preferences_link_read(token: str) -> PreferencesLink | None:
    """The tenant and customer a preferences token names (a merged customer's
    token leads to its survivor), or None when the token is tampered with,
    expired, malformed, for another purpose, or names nobody in its tenant."""
    fields = read_token(PREFERENCES_PURPOSE, token, max_age=PREFERENCES_MAX_AGE)
    if fields is None:
        return None
    tenant_id, customer_id = _positive_int(fields.get("t")), _positive_int(fields.get("c"))
    if tenant_id is None or customer_id is None:
        return None
    tenant = Tenant.objects.filter(pk=tenant_id, is_active=True).first()
    if tenant is None:
        return None
    try:
        customer = customer_get(tenant=tenant, customer_id=customer_id)
    except NotFound:
        return None
    return PreferencesLink(
        tenant=tenant, customer=customer, message_id=_positive_int(fields.get("m"))
    )


def preferences_for(*, customer: Customer) -> list[ChannelPreference]:
    """The customer's channels with their consent: email and SMS when the
    customer has an address for them, and in-app always."""
    consents = consents_for(tenant_id=customer.tenant_id, customer_ids=[customer.pk])
    email_needs_opt_in = messaging_settings(customer.tenant_id).email_requires_opt_in
    addresses = {ch: address_for(customer, ch) for ch in (Channel.EMAIL, Channel.SMS)}
    blocked = set(
        Suppression.objects.for_tenant(customer.tenant_id)
        .filter(
            channel__in=list(addresses),
            address__in=[a for a in addresses.values() if a],
        )
        .exclude(reason__in={r for reasons in LIFTED_BY_OPT_IN.values() for r in reasons})
        .values_list("channel", flat=True)
    )
    rows = []
    for channel in (Channel.EMAIL, Channel.SMS, Channel.IN_APP):
        address = addresses.get(channel, "")
        if channel != Channel.IN_APP and not address:
            continue
        status = consents.get((customer.pk, channel), ConsentStatus.UNKNOWN)
        rows.append(
            ChannelPreference(
                channel=channel,
                label=CHANNEL_LABELS[channel],
                address=_mask(channel, address),
                status=status,
                subscribed=_subscribed(channel, status, email_needs_opt_in),
                blocked=channel in blocked,
            )
        )
    return rows


def _subscribed(channel: str, status: str, email_needs_opt_in: bool) -> bool:
    """Mirrors the send-time rules in ``messaging.policy`` for marketing."""
    if status != ConsentStatus.UNKNOWN:
        return status == ConsentStatus.OPTED_IN
    if channel == Channel.EMAIL:
        return not email_needs_opt_in
    return channel == Channel.IN_APP


def _mask(channel: str, address: str) -> str:
    """``bu•••@shop.example`` / ``•••••••4567``: enough to recognise, not to harvest."""
    if not address:
        return ""
    if channel == Channel.EMAIL and "@" in address:
        local, domain = address.rsplit("@", 1)
        return f"{local[:2]}•••@{domain}"
    return "•" * max(len(address) - 4, 3) + address[-4:]


def preference_set(
    *,
    customer: Customer,
    channel: str,
    status: str,
    source: str = PAGE_SOURCE,
    message_id: int | None = None,
) -> bool:
    """Record the shopper's choice for one channel. Returns True if it changed."""
    return bool(
        preferences_apply(
            customer=customer,
            choices={channel: status},
            source=source,
            message_id=message_id,
        )
    )


def preferences_unsubscribe_all(
    *, customer: Customer, source: str = PAGE_SOURCE, message_id: int | None = None
) -> list[str]:
    """Opt out of marketing on every channel. Returns the channels that changed."""
    return preferences_apply(
        customer=customer,
        choices=dict.fromkeys(Channel.values, ConsentStatus.OPTED_OUT),
        source=source,
        message_id=message_id,
    )


def preferences_apply(
    *, customer: Customer, choices: dict[str, str], source: str, message_id: int | None = None
) -> list[str]:
    """Record consent per channel (``opted_in`` / ``opted_out``) with ``source``.
    A change is recorded on the timeline (``message.unsubscribed`` for an opt-out,
    ``preferences.changed`` for an opt-in); an unchanged choice records nothing,
    so a repeated one-click POST is harmless. Returns the channels that changed."""
    for channel, status in choices.items():
        if channel not in Channel.values or status not in CHOICES:
            raise ValueError(f"unknown choice {channel}={status}")
    at = clock.now()
    before = consents_for(tenant_id=customer.tenant_id, customer_ids=[customer.pk])
    changed: list[str] = []
    touchpoints: list[TouchpointIn] = []
    for channel, status in choices.items():
        consent = consent_set(
            customer=customer, channel=channel, status=status, source=source, at=at
        )
        if status == ConsentStatus.OPTED_OUT and consent.status != status and consent.at > at:
            # The decision on record is stamped later than now (a storefront's
            # clock running ahead sends "updated_at" in the future). An opt-out
            # made here now must still be honoured, not confirmed on the page
            # and ignored. (An opt-in is not forced over it: stamping it in the
            # future would outvote the shopper's next opt-out elsewhere.)
            consent = consent_set(
                customer=customer, channel=channel, status=status, source=source, at=consent.at
            )
        if (
            status == ConsentStatus.OPTED_IN
            and consent.status == status
            and channel in LIFTED_BY_OPT_IN
        ):
            suppression_remove(
                tenant_id=customer.tenant_id,
                channel=channel,
                address=address_for(customer, channel),
                reasons=LIFTED_BY_OPT_IN[channel],
            )
        if before.get((customer.pk, channel)) == status or consent.status != status:
            continue
        changed.append(channel)
        touchpoints.append(_touchpoint(customer, channel, status, source, message_id, at))
    touchpoints_record_many(tenant_id=customer.tenant_id, source=source, items=touchpoints)
    if changed:
        logger.info(
            "messaging.preferences_changed tenant_id=%s customer_id=%s channels=%s source=%s",
            customer.tenant_id,
            customer.pk,
            ",".join(changed),
            source,
        )
    return changed


def _touchpoint(
    customer: Customer,
    channel: str,
    status: str,
    source: str,
    message_id: int | None,
    at: datetime,
) -> TouchpointIn:
    properties: dict[str, object] = {"channel": channel, "status": status, "source": source}
    if message_id is not None:
        properties["message_id"] = message_id
    return TouchpointIn(
        customer_id=customer.pk,
        category=TouchpointCategory.MARKETING,
        kind="message.unsubscribed" if status == ConsentStatus.OPTED_OUT else "preferences.changed",
        occurred_at=at,
        properties=properties,
    )
