"""Twilio callbacks: SMS status callbacks POST /hooks/twilio/status/ and inbound
SMS POST /hooks/twilio/inbound/ (STOP, START, HELP and replies), verified with
the SDK's RequestValidator over the public URL."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime

import pytest
from django.test import Client

from commerce.models import Channel, ChannelConsent, ConsentStatus, Customer, Touchpoint
from messaging.models import (
    Category,
    Message,
    MessagingSettings,
    Provider,
    ProviderEvent,
    Reason,
    Status,
    Suppression,
    SuppressionReason,
)
from messaging.services.callbacks import INBOUND_SMS_HOOKS, InboundSms, status_callback_url
from retention import clock
from retention.models import Tenant
from tests.factories import CustomerFactory
from tests.messaging.signing import twilio_post, twilio_signature

NOW = datetime(2026, 1, 2, 9, 0, tzinfo=UTC)
TOKEN = "twilio-auth-token-for-tests"
BASE = "https://retention.example"
STORE_NUMBER = "+4930123456"
SHOPPER = "+4915112345678"
STATUS_PATH = "/hooks/twilio/status/"
INBOUND_PATH = "/hooks/twilio/inbound/"
EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response></Response>'
_keys = itertools.count(1)
_sids = itertools.count(1)


@pytest.fixture(autouse=True)
def _setup(settings):
    clock.set_now(NOW)  # the suite's autouse fixture unfreezes it afterwards
    settings.TWILIO_AUTH_TOKEN = TOKEN
    settings.PUBLIC_BASE_URL = BASE


@pytest.fixture
def hooks():
    """INBOUND_SMS_HOOKS restored after the test."""
    saved = list(INBOUND_SMS_HOOKS)
    yield INBOUND_SMS_HOOKS
    INBOUND_SMS_HOOKS[:] = saved


@pytest.fixture
def store_number(tenant) -> str:
    MessagingSettings.objects.update_or_create(
        tenant=tenant, defaults={"sms_from": STORE_NUMBER, "sms_help_text": "Alpha <help> & co"}
    )
    return STORE_NUMBER


def _sid() -> str:
    return f"SM{next(_sids):032x}"


def _sms(tenant: Tenant, *, status: str = Status.SENT, provider_id: str = "", **kw) -> Message:
    customer = kw.pop("customer", None) or CustomerFactory(tenant=tenant, phone=SHOPPER)
    return Message.objects.create(
        tenant=tenant,
        customer=customer,
        channel=Channel.SMS,
        category=Category.MARKETING,
        idempotency_key=f"test:{next(_keys)}",
        status=status,
        to_address=customer.phone,
        provider_id=provider_id,
    )


def _status_path(message: Message) -> str:
    return status_callback_url(message).removeprefix(BASE)


def _post_status(message: Message, sid: str, status: str, path: str | None = None, **extra):
    params = {"MessageSid": sid, "MessageStatus": status, "To": message.to_address, **extra}
    return twilio_post(Client(), TOKEN, BASE, path or _status_path(message), params)


def _post_inbound(body: str, *, sid: str | None = None, to: str = STORE_NUMBER):
    params = {"MessageSid": sid or _sid(), "From": SHOPPER, "To": to, "Body": body}
    return twilio_post(Client(), TOKEN, BASE, INBOUND_PATH, params)


def _sms_consent(customer: Customer) -> tuple[str, str] | None:
    row = (
        ChannelConsent.objects.for_tenant(customer.tenant_id)
        .filter(customer=customer, channel=Channel.SMS)
        .first()
    )
    return (row.status, row.source) if row else None


def _suppressions(tenant: Tenant) -> list[tuple[str, str, str]]:
    return list(Suppression.objects.for_tenant(tenant).values_list("channel", "address", "reason"))


def _touchpoints(customer: Customer) -> list[tuple[str, dict]]:
    return list(
        Touchpoint.objects.for_tenant(customer.tenant_id)
        .filter(customer=customer)
        .order_by("id")
        .values_list("kind", "properties")
    )


# --- status callbacks ---------------------------------------------------------------


def test_status_callback_url_names_the_message_and_tenant(tenant):
    message = _sms(tenant)

    assert status_callback_url(message) == (
        f"{BASE}/hooks/twilio/status/?m={message.pk}&t={tenant.pk}"
    )


def test_delivered_status_moves_the_message_and_records_a_touchpoint(tenant):
    sid = _sid()
    message = _sms(tenant, provider_id=sid)

    response = _post_status(message, sid, "delivered")

    assert response.status_code == 200
    assert response.json() == {"status": "stored"}
    message.refresh_from_db()
    assert (message.status, message.delivered_at) == (Status.DELIVERED, NOW)
    assert _touchpoints(message.customer) == [
        ("message.delivered", {"message_id": message.pk, "channel": "sms"})
    ]
    event = ProviderEvent.objects.get()
    assert (event.provider, event.event_id, event.tenant_id, event.message_id) == (
        Provider.TWILIO_STATUS,
        f"{sid}:delivered",
        tenant.pk,
        message.pk,
    )


def test_read_status_marks_the_message_opened(tenant):
    sid = _sid()
    message = _sms(tenant, status=Status.DELIVERED, provider_id=sid)

    _post_status(message, sid, "read")

    message.refresh_from_db()
    assert message.status == Status.OPENED


@pytest.mark.parametrize("twilio_status", ["queued", "accepted", "sending", "sent"])
def test_status_callback_reconciles_an_unknown_message_and_stores_its_sid(tenant, twilio_status):
    message = _sms(tenant, status=Status.UNKNOWN)
    sid = _sid()

    _post_status(message, sid, twilio_status)

    message.refresh_from_db()
    assert (message.status, message.provider_id, message.sent_at) == (Status.SENT, sid, NOW)


def test_status_callback_without_our_query_finds_the_message_by_its_sid(tenant):
    sid = _sid()
    message = _sms(tenant, provider_id=sid)

    _post_status(message, sid, "delivered", path=STATUS_PATH)

    message.refresh_from_db()
    assert message.status == Status.DELIVERED


def test_failed_with_21610_fails_the_message_and_suppresses_the_number(tenant):
    sid = _sid()
    message = _sms(tenant, provider_id=sid)

    _post_status(message, sid, "failed", ErrorCode="21610")

    message.refresh_from_db()
    assert (message.status, message.reason, message.detail) == (
        Status.FAILED,
        Reason.PERMANENT,
        "Twilio failed, ErrorCode 21610",
    )
    assert _suppressions(tenant) == [("sms", SHOPPER, SuppressionReason.SMS_STOP)]


@pytest.mark.parametrize("code", ["30003", "30005", "30006"])
def test_undelivered_to_an_unusable_number_suppresses_it_as_invalid(tenant, code):
    sid = _sid()
    message = _sms(tenant, provider_id=sid)

    _post_status(message, sid, "undelivered", ErrorCode=code)

    message.refresh_from_db()
    assert message.status == Status.FAILED
    assert _suppressions(tenant) == [("sms", SHOPPER, SuppressionReason.INVALID)]


def test_undelivered_for_another_reason_does_not_suppress(tenant):
    sid = _sid()
    message = _sms(tenant, provider_id=sid)

    _post_status(message, sid, "undelivered", ErrorCode="30008")

    message.refresh_from_db()
    assert (message.status, message.detail) == (
        Status.FAILED,
        "Twilio undelivered, ErrorCode 30008",
    )
    assert _suppressions(tenant) == []


def test_replayed_status_callback_is_stored_once(tenant):
    sid = _sid()
    message = _sms(tenant, provider_id=sid)
    _post_status(message, sid, "delivered")

    response = _post_status(message, sid, "delivered")

    assert response.json() == {"status": "duplicate"}
    assert ProviderEvent.objects.count() == 1
    assert len(_touchpoints(message.customer)) == 1


def test_status_callback_naming_another_tenant_in_the_query_does_not_touch_it(tenant, other_tenant):
    sid = _sid()
    theirs = _sms(other_tenant, provider_id=sid)
    path = f"{STATUS_PATH}?m={theirs.pk}&t={tenant.pk}"

    response = _post_status(theirs, sid, "failed", path=path, ErrorCode="21610")

    assert response.status_code == 200
    theirs.refresh_from_db()
    assert theirs.status == Status.SENT
    assert Suppression.objects.for_tenant(other_tenant).count() == 0
    assert ProviderEvent.objects.get().outcome == "no such message"


def test_tampered_status_params_are_rejected_and_nothing_stored(tenant):
    sid = _sid()
    message = _sms(tenant, provider_id=sid)
    path = _status_path(message)
    signed = {"MessageSid": sid, "MessageStatus": "delivered"}
    signature = twilio_signature(TOKEN, f"{BASE}{path}", signed)

    response = Client().post(
        path,
        data=f"MessageSid={sid}&MessageStatus=failed&ErrorCode=21610",
        content_type="application/x-www-form-urlencoded",
        HTTP_X_TWILIO_SIGNATURE=signature,
    )

    assert response.status_code == 403
    assert response.json()["error"]["code"] == "bad_signature"
    assert ProviderEvent.objects.count() == 0
    message.refresh_from_db()
    assert message.status == Status.SENT


def test_tampered_query_is_rejected(tenant, other_tenant):
    sid = _sid()
    message = _sms(tenant, provider_id=sid)
    params = {"MessageSid": sid, "MessageStatus": "failed"}
    signature = twilio_signature(TOKEN, f"{BASE}{_status_path(message)}", params)

    response = Client().post(
        f"{STATUS_PATH}?m={message.pk}&t={other_tenant.pk}",
        data=f"MessageSid={sid}&MessageStatus=failed",
        content_type="application/x-www-form-urlencoded",
        HTTP_X_TWILIO_SIGNATURE=signature,
    )

    assert response.status_code == 403
    assert ProviderEvent.objects.count() == 0


@pytest.mark.parametrize("path", [STATUS_PATH, INBOUND_PATH])
def test_missing_signature_header_is_rejected(tenant, path):
    response = Client().post(
        path,
        data=f"MessageSid={_sid()}&MessageStatus=failed&From={SHOPPER}&To={STORE_NUMBER}&Body=STOP",
        content_type="application/x-www-form-urlencoded",
    )

    assert response.status_code == 403
    assert response.json()["error"]["code"] == "missing_signature"
    assert ProviderEvent.objects.count() == 0


def test_signature_made_with_another_token_is_rejected(tenant, store_number):
    params = {"MessageSid": _sid(), "From": SHOPPER, "To": store_number, "Body": "STOP"}

    response = twilio_post(Client(), "another-token", BASE, INBOUND_PATH, params)

    assert response.status_code == 403
    assert _suppressions(tenant) == []


def test_unconfigured_auth_token_rejects_every_callback(tenant, settings):
    settings.TWILIO_AUTH_TOKEN = ""

    response = _post_inbound("STOP")

    assert response.status_code == 403
    assert response.json()["error"]["code"] == "not_configured"
    assert ProviderEvent.objects.count() == 0


def test_status_callback_without_a_status_gets_400(tenant):
    params = {"MessageSid": _sid()}

    response = twilio_post(Client(), TOKEN, BASE, STATUS_PATH, params)

    assert response.status_code == 400
    assert ProviderEvent.objects.count() == 0


@pytest.mark.parametrize("path", [STATUS_PATH, INBOUND_PATH])
def test_get_is_not_allowed(db, path):
    response = Client().get(path)

    assert response.status_code == 405
    assert response.json()["error"]["code"] == "method_not_allowed"


# --- inbound SMS --------------------------------------------------------------------------


@pytest.mark.parametrize("body", ["STOP", " stop ", "Unsubscribe", "quit"])
def test_stop_opts_every_matching_customer_out_and_suppresses_the_number(
    tenant, store_number, body
):
    first = CustomerFactory(tenant=tenant, phone=SHOPPER)
    second = CustomerFactory(tenant=tenant, phone=SHOPPER)

    response = _post_inbound(body)

    assert response.status_code == 200
    assert response["Content-Type"] == "text/xml; charset=utf-8"
    assert response.content.decode() == EMPTY_TWIML
    assert _suppressions(tenant) == [("sms", SHOPPER, SuppressionReason.SMS_STOP)]
    assert _sms_consent(first) == (ConsentStatus.OPTED_OUT, "sms_stop")
    assert _sms_consent(second) == (ConsentStatus.OPTED_OUT, "sms_stop")
    assert [kind for kind, _ in _touchpoints(first)] == ["message.unsubscribed"]
    assert [kind for kind, _ in _touchpoints(second)] == ["message.unsubscribed"]


def test_start_after_stop_opts_back_in_and_lifts_the_suppression(tenant, store_number):
    customer = CustomerFactory(tenant=tenant, phone=SHOPPER)
    _post_inbound("STOP")
    clock.advance(minutes=5)

    response = _post_inbound("Start")

    assert response.content.decode() == EMPTY_TWIML
    assert _suppressions(tenant) == []
    assert _sms_consent(customer) == (ConsentStatus.OPTED_IN, "sms_start")


def test_start_does_not_lift_an_invalid_number_suppression(tenant, store_number):
    Suppression.objects.create(
        tenant=tenant, channel="sms", address=SHOPPER, reason=SuppressionReason.INVALID
    )

    _post_inbound("START")

    assert _suppressions(tenant) == [("sms", SHOPPER, SuppressionReason.INVALID)]


def test_help_answers_with_the_stores_help_text_as_escaped_twiml(tenant, store_number):
    response = _post_inbound(" help")

    assert response.status_code == 200
    assert response.content.decode() == (
        '<?xml version="1.0" encoding="UTF-8"?>'
        "<Response><Message>Alpha &lt;help&gt; &amp; co</Message></Response>"
    )
    assert _suppressions(tenant) == []


def test_other_reply_becomes_a_touchpoint_and_is_offered_to_the_hooks(tenant, store_number, hooks):
    customer = CustomerFactory(tenant=tenant, phone=SHOPPER)
    seen: list[InboundSms] = []

    def not_mine(sms: InboundSms) -> bool:
        seen.append(sms)
        return False

    def survey_parser(sms: InboundSms) -> str:
        seen.append(sms)
        return "Thanks for your 9!"

    def never_called(sms: InboundSms) -> bool:
        raise AssertionError("the first hook that handles a reply wins")

    hooks.extend([not_mine, survey_parser, never_called])
    sid = _sid()

    response = _post_inbound("9 great shop", sid=sid)

    assert response.content.decode() == (
        '<?xml version="1.0" encoding="UTF-8"?>'
        "<Response><Message>Thanks for your 9!</Message></Response>"
    )
    assert [s.body for s in seen] == ["9 great shop", "9 great shop"]
    assert seen[0] == InboundSms(
        tenant_id=tenant.pk,
        from_number=SHOPPER,
        to_number=STORE_NUMBER,
        body="9 great shop",
        message_sid=sid,
        customer_ids=(customer.pk,),
        received_at=NOW,
    )
    assert _touchpoints(customer) == [("sms.reply", {"body": "9 great shop", "from": SHOPPER})]
    assert ProviderEvent.objects.get().outcome.startswith("reply handled by ")


def test_reply_that_no_hook_handles_is_recorded_with_an_empty_answer(tenant, store_number, hooks):
    customer = CustomerFactory(tenant=tenant, phone=SHOPPER)
    hooks.append(lambda sms: True)

    response = _post_inbound("when does it ship?")

    assert response.content.decode() == EMPTY_TWIML
    assert _touchpoints(customer) == [
        ("sms.reply", {"body": "when does it ship?", "from": SHOPPER})
    ]


def test_inbound_sms_to_an_unknown_number_is_stored_and_changes_nothing(tenant, store_number):
    customer = CustomerFactory(tenant=tenant, phone=SHOPPER)

    response = _post_inbound("STOP", to="+4930999999")

    assert response.status_code == 200
    assert response.content.decode() == EMPTY_TWIML
    assert _suppressions(tenant) == []
    assert _sms_consent(customer) is None
    event = ProviderEvent.objects.get()
    assert (event.outcome, event.tenant_id) == ("unknown number", None)


def test_inbound_sms_reaches_only_the_tenant_that_owns_the_number(
    tenant, other_tenant, store_number
):
    ours = CustomerFactory(tenant=tenant, phone=SHOPPER)
    theirs = CustomerFactory(tenant=other_tenant, phone=SHOPPER)

    _post_inbound("STOP")

    assert _sms_consent(ours) == (ConsentStatus.OPTED_OUT, "sms_stop")
    assert _sms_consent(theirs) is None
    assert Suppression.objects.for_tenant(other_tenant).count() == 0


def test_replayed_inbound_sms_is_stored_and_applied_once(tenant, store_number, hooks):
    customer = CustomerFactory(tenant=tenant, phone=SHOPPER)
    calls: list[str] = []
    hooks.append(lambda sms: calls.append(sms.body) or False)
    sid = _sid()
    _post_inbound("hello", sid=sid)

    response = _post_inbound("hello", sid=sid)

    assert response.status_code == 200
    assert ProviderEvent.objects.filter(provider=Provider.TWILIO_INBOUND).count() == 1
    assert calls == ["hello"]
    assert len(_touchpoints(customer)) == 1


def test_a_failing_hook_does_not_cost_the_reply_its_record(tenant, store_number, hooks):
    customer = CustomerFactory(tenant=tenant, phone=SHOPPER)
    calls: list[str] = []

    def broken(sms: InboundSms) -> bool:
        CustomerFactory(tenant=tenant, email="written-by-broken-hook@shop.example")
        raise RuntimeError("parser bug")

    def next_in_line(sms: InboundSms) -> bool:
        calls.append(sms.body)
        return False

    hooks.extend([broken, next_in_line])

    response = _post_inbound("maybe")

    assert response.status_code == 200
    assert response.content.decode() == EMPTY_TWIML
    assert calls == ["maybe"]
    assert _touchpoints(customer) == [("sms.reply", {"body": "maybe", "from": SHOPPER})]
    assert (
        not Customer.objects.for_tenant(tenant)
        .filter(email="written-by-broken-hook@shop.example")
        .exists()
    )  # the broken hook's writes are rolled back
    event = ProviderEvent.objects.get()
    assert (event.outcome, event.processed_at) == ("reply recorded", NOW)
