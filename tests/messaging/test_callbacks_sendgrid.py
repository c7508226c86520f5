"""SendGrid's signed event webhook POST /hooks/sendgrid/events/: verified with
the SDK, stored once per sg_event_id, mapped onto message status, suppressions,
consent and the customer's timeline."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime

import pytest
from django.test import Client

from commerce.models import Channel, ChannelConsent, ConsentStatus, Customer, Touchpoint
from messaging.models import (
    Category,
    Message,
    Provider,
    ProviderEvent,
    Reason,
    Status,
    Suppression,
    SuppressionReason,
)
from messaging.services.callbacks import (
    events_apply,
    events_store,
    provider_events_apply_pending,
)
from messaging.services.callbacks.store import EventIn
from retention import clock
from retention.models import Tenant
from tests.factories import CustomerFactory
from tests.messaging.signing import SENDGRID_URL, SendGridKeys, sendgrid_keys, sendgrid_post

NOW = datetime(2026, 1, 2, 9, 0, tzinfo=UTC)
T_DELIVERED = datetime(2026, 1, 2, 8, 0, tzinfo=UTC)
T_OPENED = datetime(2026, 1, 2, 8, 30, tzinfo=UTC)
_keys = itertools.count(1)


@pytest.fixture(autouse=True)
def _frozen_now():
    clock.set_now(NOW)  # the suite's autouse fixture unfreezes it afterwards


@pytest.fixture
def keys(settings) -> SendGridKeys:
    pair = sendgrid_keys()
    settings.SENDGRID_WEBHOOK_PUBLIC_KEY = pair.public_key_b64
    return pair


def _message(tenant: Tenant, *, status: str = Status.SENT, **fields) -> Message:
    customer = fields.pop("customer", None) or CustomerFactory(tenant=tenant)
    return Message.objects.create(
        tenant=tenant,
        customer=customer,
        channel=Channel.EMAIL,
        category=Category.MARKETING,
        idempotency_key=f"test:{next(_keys)}",
        status=status,
        to_address=customer.email,
        **fields,
    )


def _event(message: Message, kind: str, *, at: datetime = T_DELIVERED, **extra) -> dict:
    return {
        "email": message.to_address,
        "timestamp": int(at.timestamp()),
        "event": kind,
        "sg_event_id": f"evt-{message.pk}-{kind}-{extra.pop('n', 1)}",
        "sg_message_id": "XMSG123.filterdrecv-1.2",
        "message_id": str(message.pk),
        "tenant_id": str(message.tenant_id),
        **extra,
    }


def _touchpoints(customer: Customer) -> list[tuple[str, dict, str, str]]:
    return list(
        Touchpoint.objects.for_tenant(customer.tenant_id)
        .filter(customer=customer)
        .order_by("id")
        .values_list("kind", "properties", "external_id", "source")
    )


def _consent(customer: Customer) -> tuple[str, str] | None:
    row = (
        ChannelConsent.objects.for_tenant(customer.tenant_id)
        .filter(customer=customer, channel=Channel.EMAIL)
        .first()
    )
    return (row.status, row.source) if row else None


def _suppressions(tenant: Tenant) -> list[tuple[str, str, str, str]]:
    return list(
        Suppression.objects.for_tenant(tenant)
        .order_by("id")
        .values_list("channel", "address", "reason", "detail")
    )


# --- mapping ------------------------------------------------------------------------


def test_delivered_event_moves_the_message_and_records_a_touchpoint(tenant, keys):
    message = _message(tenant)

    response = sendgrid_post(Client(), keys, [_event(message, "delivered")])

    assert response.status_code == 200
    assert response.json() == {"received": 1, "duplicates": 0, "applied": 1}
    message.refresh_from_db()
    assert (message.status, message.delivered_at) == (Status.DELIVERED, T_DELIVERED)
    assert _touchpoints(message.customer) == [
        (
            "message.delivered",
            {"message_id": message.pk, "channel": "email"},
            f"sendgrid:evt-{message.pk}-delivered-1",
            "sendgrid",
        )
    ]
    event = ProviderEvent.objects.get()
    assert (event.provider, event.kind, event.tenant_id, event.message_id, event.outcome) == (
        Provider.SENDGRID,
        "delivered",
        tenant.pk,
        message.pk,
        "delivered",
    )
    assert event.processed_at == NOW


def test_open_event_marks_opened_and_implies_delivery(tenant, keys):
    message = _message(tenant)

    sendgrid_post(Client(), keys, [_event(message, "open", at=T_OPENED)])

    message.refresh_from_db()
    assert (message.status, message.opened_at, message.delivered_at) == (
        Status.OPENED,
        T_OPENED,
        T_OPENED,
    )
    assert [t[0] for t in _touchpoints(message.customer)] == ["message.opened"]


def test_click_event_records_the_url_and_the_template(tenant, keys):
    from messaging.models import Template

    template = Template.objects.create(tenant=tenant, name="Welcome", channel=Channel.EMAIL)
    message = _message(tenant, template=template)

    sendgrid_post(
        Client(), keys, [_event(message, "click", at=T_OPENED, url="https://shop.example/p/1")]
    )

    message.refresh_from_db()
    assert (message.status, message.clicked_at) == (Status.CLICKED, T_OPENED)
    assert _touchpoints(message.customer) == [
        (
            "message.clicked",
            {
                "message_id": message.pk,
                "channel": "email",
                "template_id": template.pk,
                "url": "https://shop.example/p/1",
            },
            f"sendgrid:evt-{message.pk}-click-1",
            "sendgrid",
        )
    ]


def test_processed_event_reconciles_an_unknown_message_with_its_sendgrid_id(tenant, keys):
    message = _message(tenant, status=Status.UNKNOWN)

    sendgrid_post(Client(), keys, [_event(message, "processed")])

    message.refresh_from_db()
    assert (message.status, message.provider_id, message.sent_at) == (
        Status.SENT,
        "XMSG123",
        T_DELIVERED,
    )
    assert _touchpoints(message.customer) == []


def test_hard_bounce_marks_bounced_and_suppresses_the_address(tenant, keys):
    message = _message(tenant)

    sendgrid_post(
        Client(), keys, [_event(message, "bounce", type="bounce", reason="550 5.1.1 No such user")]
    )

    message.refresh_from_db()
    assert (message.status, message.reason, message.detail) == (
        Status.BOUNCED,
        Reason.BOUNCE,
        "550 5.1.1 No such user",
    )
    assert _suppressions(tenant) == [
        ("email", message.to_address, SuppressionReason.BOUNCE, "550 5.1.1 No such user")
    ]
    assert [t[0] for t in _touchpoints(message.customer)] == ["message.bounced"]


def test_blocked_bounce_is_temporary_and_only_recorded(tenant, keys):
    message = _message(tenant)

    sendgrid_post(Client(), keys, [_event(message, "bounce", type="blocked", reason="421 busy")])

    message.refresh_from_db()
    assert message.status == Status.SENT
    assert _suppressions(tenant) == []
    assert _touchpoints(message.customer) == []
    assert ProviderEvent.objects.get().outcome == "blocked (temporary); recorded"


@pytest.mark.parametrize("reason", ["Bounced Address", "Invalid"])
def test_dropped_for_a_bad_address_fails_and_suppresses_it(tenant, keys, reason):
    message = _message(tenant)

    sendgrid_post(Client(), keys, [_event(message, "dropped", reason=reason)])

    message.refresh_from_db()
    assert (message.status, message.reason, message.detail) == (
        Status.FAILED,
        Reason.DROPPED,
        reason,
    )
    assert _suppressions(tenant) == [
        ("email", message.to_address, SuppressionReason.DROPPED, reason)
    ]


def test_dropped_for_another_reason_fails_without_suppressing(tenant, keys):
    message = _message(tenant)

    sendgrid_post(Client(), keys, [_event(message, "dropped", reason="Spam Content")])

    message.refresh_from_db()
    assert (message.status, message.reason, message.detail) == (
        Status.FAILED,
        Reason.DROPPED,
        "Spam Content",
    )
    assert _suppressions(tenant) == []


def test_spam_report_suppresses_and_opts_the_customer_out(tenant, keys):
    message = _message(tenant, status=Status.OPENED)

    sendgrid_post(Client(), keys, [_event(message, "spamreport")])

    message.refresh_from_db()
    assert message.status == Status.OPENED
    assert _suppressions(tenant) == [
        ("email", message.to_address, SuppressionReason.SPAM_REPORT, "spamreport")
    ]
    assert _consent(message.customer) == (ConsentStatus.OPTED_OUT, "sendgrid_spamreport")
    assert [t[0] for t in _touchpoints(message.customer)] == ["message.spam_report"]


@pytest.mark.parametrize("kind", ["unsubscribe", "group_unsubscribe"])
def test_unsubscribe_suppresses_and_opts_the_customer_out(tenant, keys, kind):
    message = _message(tenant)

    sendgrid_post(Client(), keys, [_event(message, kind)])

    assert _suppressions(tenant) == [
        ("email", message.to_address, SuppressionReason.UNSUBSCRIBE, kind)
    ]
    assert _consent(message.customer) == (ConsentStatus.OPTED_OUT, "sendgrid_unsubscribe")
    assert [t[0] for t in _touchpoints(message.customer)] == ["message.unsubscribed"]


def test_a_batch_applies_every_event_in_event_time_order(tenant, keys):
    message = _message(tenant)
    events = [
        _event(message, "open", at=T_OPENED),
        _event(message, "delivered", at=T_DELIVERED),
    ]

    sendgrid_post(Client(), keys, events)

    message.refresh_from_db()
    assert (message.status, message.delivered_at, message.opened_at) == (
        Status.OPENED,
        T_DELIVERED,
        T_OPENED,
    )
    assert ProviderEvent.objects.count() == 2


# --- replays and order ------------------------------------------------------------------


def test_replayed_event_changes_nothing_and_is_stored_once(tenant, keys):
    message = _message(tenant)
    events = [_event(message, "delivered")]
    client = Client()
    sendgrid_post(client, keys, events)
    Message.objects.for_tenant(tenant).filter(pk=message.pk).update(delivered_at=None)

    response = sendgrid_post(client, keys, events)

    assert response.status_code == 200
    assert response.json() == {"received": 1, "duplicates": 1, "applied": 0}
    message.refresh_from_db()
    assert message.delivered_at is None  # not applied again
    assert ProviderEvent.objects.count() == 1
    assert len(_touchpoints(message.customer)) == 1


def test_late_delivered_after_opened_does_not_move_the_status_back(tenant, keys):
    message = _message(tenant)
    client = Client()
    sendgrid_post(client, keys, [_event(message, "open", at=T_OPENED)])

    sendgrid_post(client, keys, [_event(message, "delivered", at=T_DELIVERED)])

    message.refresh_from_db()
    assert (message.status, message.opened_at) == (Status.OPENED, T_OPENED)
    assert ProviderEvent.objects.get(kind="delivered").outcome == (
        "delivered recorded; status stays"
    )


def test_reapplying_an_applied_event_does_nothing(tenant, keys):
    message = _message(tenant)
    sendgrid_post(Client(), keys, [_event(message, "delivered")])
    event = ProviderEvent.objects.get()

    assert events_apply([event.pk]) == {}

    event.refresh_from_db()
    assert (event.outcome, event.processed_at) == ("delivered", NOW)


def test_sweeper_applies_events_left_unapplied_for_over_a_minute(tenant):
    message = _message(tenant)
    ids, _ = events_store(
        provider=Provider.SENDGRID,
        events=[EventIn("evt-left", "delivered", _event(message, "delivered"))],
    )

    assert provider_events_apply_pending() == 0  # younger than a minute: the request's
    clock.advance(minutes=2)
    assert provider_events_apply_pending() == 1
    assert provider_events_apply_pending() == 0

    message.refresh_from_db()
    assert message.status == Status.DELIVERED
    assert ProviderEvent.objects.get(pk=ids[0]).outcome == "delivered"


# --- tenancy ------------------------------------------------------------------------------


def test_event_naming_another_tenants_message_does_not_touch_it(tenant, other_tenant, keys):
    theirs = _message(other_tenant)
    forged = [
        {**_event(theirs, "bounce", type="bounce"), "tenant_id": str(tenant.pk)},
        {**_event(theirs, "spamreport"), "tenant_id": str(tenant.pk)},
    ]

    response = sendgrid_post(Client(), keys, forged)

    assert response.status_code == 200
    theirs.refresh_from_db()
    assert (theirs.status, theirs.reason) == (Status.SENT, "")
    assert Suppression.objects.for_tenant(other_tenant).count() == 0
    assert Suppression.objects.for_tenant(tenant).count() == 0
    assert _consent(theirs.customer) is None
    assert _touchpoints(theirs.customer) == []
    assert sorted(
        ProviderEvent.objects.values_list("kind", "outcome", "tenant_id", "message_id")
    ) == [
        ("bounce", "no such message", None, None),
        ("spamreport", "no such message", None, None),
    ]


def test_event_for_an_unknown_message_is_stored_with_its_outcome(tenant, keys):
    event = {"event": "delivered", "sg_event_id": "evt-x", "timestamp": 1767225600}

    response = sendgrid_post(Client(), keys, [event])

    assert response.json() == {"received": 1, "duplicates": 0, "applied": 1}
    stored = ProviderEvent.objects.get()
    assert (stored.event_id, stored.outcome, stored.payload) == (
        "evt-x",
        "no such message",
        event,
    )


# --- rejected requests ----------------------------------------------------------------------


def _assert_nothing_stored(message: Message) -> None:
    assert ProviderEvent.objects.count() == 0
    message.refresh_from_db()
    assert message.status == Status.SENT


def test_tampered_body_is_rejected_and_nothing_stored(tenant, keys):
    message = _message(tenant)
    signed = keys.sign(b'[{"event": "processed"}]')
    body = f'[{{"event": "bounce", "message_id": "{message.pk}", "tenant_id": "{tenant.pk}"}}]'

    response = Client().post(SENDGRID_URL, data=body, content_type="application/json", **signed)

    assert response.status_code == 403
    assert response.json()["error"]["code"] == "bad_signature"
    _assert_nothing_stored(message)


def test_event_signed_with_another_key_is_rejected(tenant, keys):
    message = _message(tenant)

    response = sendgrid_post(Client(), sendgrid_keys(), [_event(message, "bounce")])

    assert response.status_code == 403
    assert response.json()["error"]["code"] == "bad_signature"
    _assert_nothing_stored(message)


@pytest.mark.parametrize(
    "drop",
    ["HTTP_X_TWILIO_EMAIL_EVENT_WEBHOOK_SIGNATURE", "HTTP_X_TWILIO_EMAIL_EVENT_WEBHOOK_TIMESTAMP"],
)
def test_missing_signature_header_is_rejected(tenant, keys, drop):
    message = _message(tenant)
    body = f'[{{"event": "bounce", "message_id": "{message.pk}"}}]'.encode()
    headers = {k: v for k, v in keys.sign(body).items() if k != drop}

    response = Client().post(SENDGRID_URL, data=body, content_type="application/json", **headers)

    assert response.status_code == 403
    assert response.json()["error"]["code"] == "missing_signature"
    _assert_nothing_stored(message)


@pytest.mark.parametrize(
    "signature",
    [
        "not base64!",
        "QUJD",  # valid base64, not a DER signature
        "=",
        "\u00e9\u00e9",
        "MEUCIQ" + "A" * 60,  # looks like DER, is not
    ],
)
def test_garbage_signature_header_is_rejected(tenant, keys, signature):
    message = _message(tenant)

    response = sendgrid_post(
        Client(),
        keys,
        [_event(message, "bounce")],
        HTTP_X_TWILIO_EMAIL_EVENT_WEBHOOK_SIGNATURE=signature,
    )

    assert response.status_code == 403
    assert response.json()["error"]["code"] == "bad_signature"
    _assert_nothing_stored(message)


def test_unconfigured_public_key_rejects_every_event(tenant, keys, settings):
    message = _message(tenant)
    settings.SENDGRID_WEBHOOK_PUBLIC_KEY = ""

    response = sendgrid_post(Client(), keys, [_event(message, "bounce")])

    assert response.status_code == 403
    assert response.json()["error"]["code"] == "not_configured"
    assert "SENDGRID_WEBHOOK_PUBLIC_KEY" in response.json()["error"]["message"]
    _assert_nothing_stored(message)


@pytest.mark.parametrize("bad_key", ["not-a-key", "QUJD", "\u00e9"])
def test_unloadable_public_key_rejects_every_event(tenant, keys, settings, bad_key):
    message = _message(tenant)
    settings.SENDGRID_WEBHOOK_PUBLIC_KEY = bad_key

    response = sendgrid_post(Client(), keys, [_event(message, "bounce")])

    assert response.status_code == 403
    assert response.json()["error"]["code"] == "not_configured"
    _assert_nothing_stored(message)


@pytest.mark.parametrize(
    "body", [b"not json", b'{"event": "open"}', b"[1, 2]", b'[{"event": "open"}, "x"]', b"\xff"]
)
def test_malformed_json_gets_400_and_stores_nothing(tenant, keys, body):
    response = sendgrid_post(Client(), keys, body)

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "not_json"
    assert ProviderEvent.objects.count() == 0


def test_oversized_body_gets_413(tenant, keys):
    body = b"[" + b" " * (1024 * 1024) + b"]"

    response = sendgrid_post(Client(), keys, body)

    assert response.status_code == 413
    assert ProviderEvent.objects.count() == 0


def test_get_is_not_allowed(db):
    response = Client().get(SENDGRID_URL)

    assert response.status_code == 405
    assert response["Allow"] == "POST"
    assert response.json()["error"]["code"] == "method_not_allowed"
