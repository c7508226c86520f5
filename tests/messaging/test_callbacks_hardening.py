"""Provider callbacks under hostile or odd input: every bad body gets a 4xx JSON
error or is stored safely, never a 5xx; the verifiers live in the provider
adapters; an inbound YES is consent only when it undoes a STOP."""

from __future__ import annotations

import ast
import base64
import itertools
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from django.test import Client

from commerce.models import Channel, ChannelConsent, ConsentStatus, Touchpoint
from commerce.services.customers import consent_set
from messaging.models import (
    Category,
    Message,
    MessagingSettings,
    Provider,
    ProviderEvent,
    Status,
    Suppression,
)
from messaging.providers.sendgrid import EventWebhookKeyError, verify_event_signature
from messaging.providers.twilio import verify_request
from messaging.services.callbacks import INBOUND_SMS_HOOKS, status_callback_url
from retention import clock
from tests.factories import CustomerFactory
from tests.messaging.signing import sendgrid_keys, sendgrid_post, twilio_post, twilio_signature

NOW = datetime(2026, 1, 2, 9, 0, tzinfo=UTC)
TOKEN = "twilio-auth-token-for-tests"
BASE = "https://retention.example"
STORE_NUMBER = "+4930123456"
SHOPPER = "+4915112345678"
INBOUND_PATH = "/hooks/twilio/inbound/"
_sids = itertools.count(1)


@pytest.fixture(autouse=True)
def _setup(settings):
    clock.set_now(NOW)
    settings.TWILIO_AUTH_TOKEN = TOKEN
    settings.PUBLIC_BASE_URL = BASE


@pytest.fixture
def keys(settings):
    pair = sendgrid_keys()
    settings.SENDGRID_WEBHOOK_PUBLIC_KEY = pair.public_key_b64
    return pair


@pytest.fixture
def store_number(tenant) -> str:
    MessagingSettings.objects.update_or_create(tenant=tenant, defaults={"sms_from": STORE_NUMBER})
    return STORE_NUMBER


@pytest.fixture
def hooks():
    saved = list(INBOUND_SMS_HOOKS)
    yield INBOUND_SMS_HOOKS
    INBOUND_SMS_HOOKS[:] = saved


def _client() -> Client:
    return Client(raise_request_exception=False)


def _sid() -> str:
    return f"SM{next(_sids):032x}"


def _email(tenant) -> Message:
    customer = CustomerFactory(tenant=tenant)
    return Message.objects.create(
        tenant=tenant,
        customer=customer,
        channel=Channel.EMAIL,
        category=Category.MARKETING,
        idempotency_key=f"test:{customer.pk}",
        status=Status.SENT,
        to_address=customer.email,
    )


def _inbound(body: str, *, sid: str | None = None):
    params = {"MessageSid": sid or _sid(), "From": SHOPPER, "To": STORE_NUMBER, "Body": body}
    return twilio_post(_client(), TOKEN, BASE, INBOUND_PATH, params)


def _sms_consent(customer) -> str | None:
    row = (
        ChannelConsent.objects.for_tenant(customer.tenant_id)
        .filter(customer=customer, channel=Channel.SMS)
        .first()
    )
    return row.status if row else None


# --- SendGrid: text PostgreSQL cannot store, numbers JSON cannot hold -------------------


def test_sendgrid_event_with_a_nul_character_is_stored_and_applied(tenant, keys):
    message = _email(tenant)
    event = {
        "sg_event_id": "evt-nul\u0000",
        "event": "click",
        "timestamp": int(NOW.timestamp()),
        "url": "https://shop.example/\u0000p",
        "useragent": "bot\u0000",
        "message_id": str(message.pk),
        "tenant_id": str(tenant.pk),
    }

    response = sendgrid_post(_client(), keys, [event])

    assert response.status_code == 200
    assert response.json() == {"received": 1, "duplicates": 0, "applied": 1}
    stored = ProviderEvent.objects.get()
    assert stored.event_id == "evt-nul\ufffd"
    assert (stored.payload["url"], stored.payload["useragent"]) == (
        "https://shop.example/\ufffdp",
        "bot\ufffd",
    )
    message.refresh_from_db()
    assert message.status == Status.CLICKED
    touchpoint = Touchpoint.objects.for_tenant(tenant).get(kind="message.clicked")
    assert touchpoint.properties["url"] == "https://shop.example/\ufffdp"

    replay = sendgrid_post(_client(), keys, [event])
    assert replay.json() == {"received": 1, "duplicates": 1, "applied": 0}


def test_sendgrid_event_with_lone_surrogates_is_stored(tenant, keys):
    body = b'[{"sg_event_id":"evt-\\ud800","event":"deferred","x":{"\\udfff":"\\ud83d"}}]'

    response = sendgrid_post(_client(), keys, body)

    assert response.status_code == 200
    stored = ProviderEvent.objects.get()
    assert (stored.event_id, stored.payload["x"]) == ("evt-\ufffd", {"\ufffd": "\ufffd"})
    assert stored.outcome == "no such message"


@pytest.mark.parametrize(
    "body",
    [
        b'[{"sg_event_id":"a","event":"open","timestamp":NaN}]',
        b'[{"sg_event_id":"a","event":"open","timestamp":-Infinity}]',
        b'[{"sg_event_id":"a","event":"open","timestamp":1e400}]',
        b'[{"sg_event_id":"a","event":"open","x":' + b"[" * 200 + b"]" * 200 + b"}]",
    ],
    ids=["nan", "infinity", "overflow", "nested"],
)
def test_sendgrid_body_that_is_no_storable_json_is_a_400(tenant, keys, body):
    response = sendgrid_post(_client(), keys, body)

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "not_json"
    assert not ProviderEvent.objects.exists()


def test_sendgrid_key_that_is_not_an_ecdsa_key_answers_not_configured(settings, keys):
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
    der = rsa_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    settings.SENDGRID_WEBHOOK_PUBLIC_KEY = base64.b64encode(der).decode()

    response = sendgrid_post(_client(), keys, [])

    assert response.status_code == 403
    assert response.json()["error"]["code"] == "not_configured"


# --- the verifiers in the provider adapters ---------------------------------------------


def test_verify_event_signature_is_true_only_for_the_signed_payload():
    pair = sendgrid_keys()
    headers = pair.sign(b"[]", timestamp="1767225600")
    signature = headers["HTTP_X_TWILIO_EMAIL_EVENT_WEBHOOK_SIGNATURE"]

    def verify(payload: str, signature: str, timestamp: str = "1767225600") -> bool:
        key = pair.public_key_b64
        return verify_event_signature(
            public_key=key, payload=payload, signature=signature, timestamp=timestamp
        )

    assert verify("[]", signature) is True
    assert verify("[ ]", signature) is False
    assert verify("[]", signature, timestamp="1767225601") is False
    for malformed in ("", "!!!", "YWJj", "é" * 10, "a" * 10_001, "\ud800"):
        assert verify("[]", malformed) is False
    assert verify("\ud800", signature) is False


@pytest.mark.parametrize("key", ["", "   ", "not base64 !", "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE"])
def test_verify_event_signature_raises_a_key_error_for_an_unloadable_key(key):
    with pytest.raises(EventWebhookKeyError):
        verify_event_signature(public_key=key, payload="[]", signature="YWJj", timestamp="1")
    assert issubclass(EventWebhookKeyError, ValueError)


def test_verify_request_checks_twilio_signatures_and_never_raises(settings):
    url = f"{BASE}/hooks/twilio/status/?m=1&t=1"
    params = {"MessageSid": "SM1", "MessageStatus": "sent"}
    signature = twilio_signature(TOKEN, url, params)

    assert verify_request(url=url, params=params, signature=signature) is True
    assert verify_request(url=url, params={**params, "X": "1"}, signature=signature) is False
    for malformed in (None, "", "é", "\ud800", "a" * 10_000):
        assert verify_request(url=url, params=params, signature=malformed) is False
    assert verify_request(url="https://h:99999999/x", params=params, signature="abc") is False
    settings.TWILIO_AUTH_TOKEN = ""
    assert verify_request(url=url, params=params, signature=signature) is False


def test_the_callback_views_do_not_import_the_provider_sdks():
    source = Path("messaging/callbacks_views.py").read_text()
    imported = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.split(".")[0])
    assert not imported & {"sendgrid", "twilio", "cryptography", "python_http_client"}


# --- Twilio: NUL characters, repeated fields, too many query parameters -----------------


def test_inbound_sms_with_a_nul_character_is_recorded_not_a_500(tenant, store_number, hooks):
    customer = CustomerFactory(tenant=tenant, phone=SHOPPER)
    seen = []
    hooks.append(lambda sms: seen.append(sms.body) or False)

    response = _inbound("great\u0000 thanks")

    assert response.status_code == 200
    assert seen == ["great\ufffd thanks"]
    touchpoint = Touchpoint.objects.for_tenant(tenant).get(customer=customer)
    assert (touchpoint.kind, touchpoint.properties["body"]) == ("sms.reply", "great\ufffd thanks")


def test_status_callback_with_a_nul_character_in_its_sid_is_not_a_500(tenant):
    customer = CustomerFactory(tenant=tenant, phone=SHOPPER)
    message = Message.objects.create(
        tenant=tenant,
        customer=customer,
        channel=Channel.SMS,
        category=Category.MARKETING,
        idempotency_key="sms:1",
        status=Status.UNKNOWN,
        to_address=SHOPPER,
    )
    path = status_callback_url(message).removeprefix(BASE)
    params = {"MessageSid": "SM\u0000x", "MessageStatus": "delivered"}

    response = twilio_post(_client(), TOKEN, BASE, path, params)

    assert response.status_code == 200
    message.refresh_from_db()
    assert (message.status, message.provider_id) == (Status.DELIVERED, "SM\ufffdx")


def test_status_callback_with_too_many_query_parameters_is_a_json_400(tenant):
    path = "/hooks/twilio/status/?" + "&".join(f"p{i}=1" for i in range(1100))
    params = {"MessageSid": _sid(), "MessageStatus": "sent"}

    response = twilio_post(_client(), TOKEN, BASE, path, params)

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid"
    assert not ProviderEvent.objects.exists()


# --- YES: opting back in, or a reply --------------------------------------------------


def test_yes_from_a_number_that_never_opted_out_is_a_reply_not_consent(tenant, store_number, hooks):
    customer = CustomerFactory(tenant=tenant, phone=SHOPPER)
    answers = []
    hooks.append(lambda sms: answers.append(sms.body) or "Thanks for your answer!")

    response = _inbound("Yes")

    assert response.status_code == 200
    assert "<Message>Thanks for your answer!</Message>" in response.content.decode()
    assert answers == ["Yes"]
    assert _sms_consent(customer) is None
    assert list(Touchpoint.objects.for_tenant(tenant).values_list("kind", flat=True)) == [
        "sms.reply"
    ]


def test_yes_after_stop_opts_back_in_and_lifts_the_stop(tenant, store_number, hooks):
    customer = CustomerFactory(tenant=tenant, phone=SHOPPER)
    hooks.append(lambda sms: pytest.fail("a keyword is not offered to the hooks"))
    _inbound("STOP")
    assert _sms_consent(customer) == ConsentStatus.OPTED_OUT

    _inbound("YES")

    assert _sms_consent(customer) == ConsentStatus.OPTED_IN
    assert not Suppression.objects.for_tenant(tenant).exists()


def test_yes_from_a_customer_who_opted_out_elsewhere_opts_back_in(tenant, store_number):
    customer = CustomerFactory(tenant=tenant, phone=SHOPPER)
    consent_set(customer=customer, channel=Channel.SMS, status="opted_out", source="storefront")

    _inbound("yes")

    assert _sms_consent(customer) == ConsentStatus.OPTED_IN


def test_start_still_opts_in_a_number_that_never_opted_out(tenant, store_number):
    customer = CustomerFactory(tenant=tenant, phone=SHOPPER)

    _inbound("START")

    assert _sms_consent(customer) == ConsentStatus.OPTED_IN
    event = ProviderEvent.objects.get(provider=Provider.TWILIO_INBOUND)
    assert event.outcome == "START: 0 suppression(s) lifted, opted in"
