"""Hostile input to the provider callbacks, correctly signed so it reaches the
parsing: SendGrid's event webhook (``/hooks/sendgrid/events/``, ECDSA) and
Twilio's status and inbound SMS callbacks (``/hooks/twilio/…``, HMAC over the
URL and form). The answer is a 4xx JSON error that stored nothing, or a 200
(events stored once, safely); never a 5xx."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime

import pytest
from django.test import Client
from hypothesis import given
from hypothesis import strategies as st

from commerce.models import Channel
from messaging.models import Category, Message, MessagingSettings, Status
from messaging.services.callbacks import status_callback_url
from retention import clock
from tests.factories import CustomerFactory
from tests.hostile import corpus
from tests.hostile.conftest import HYPOTHESIS, assert_json_error, assert_no_5xx, counts
from tests.messaging.signing import sendgrid_keys, sendgrid_post, twilio_post

NOW = datetime(2026, 1, 2, 9, 0, tzinfo=UTC)
TOKEN = "twilio-auth-token-for-hostile-tests"
BASE = "https://retention.example"
STORE_NUMBER = "+4930123456"
SHOPPER = "+4915112345678"
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
def message(tenant) -> Message:
    MessagingSettings.objects.update_or_create(tenant=tenant, defaults={"sms_from": STORE_NUMBER})
    customer = CustomerFactory(tenant=tenant, email="ann@example.com", phone=SHOPPER)
    return Message.objects.create(
        tenant=tenant,
        customer=customer,
        channel=Channel.EMAIL,
        category=Category.MARKETING,
        idempotency_key="hostile:1",
        status=Status.SENT,
        to_address=customer.email,
    )


def _client() -> Client:
    return Client(raise_request_exception=False)


def _event(message: Message) -> dict:
    return {
        "sg_event_id": f"evt-{next(_sids)}",
        "event": "click",
        "email": "ann@example.com",
        "timestamp": int(NOW.timestamp()),
        "url": "https://shop.example/p",
        "useragent": "Mozilla",
        "category": ["journey"],
        "reason": "",
        "message_id": str(message.pk),
        "tenant_id": str(message.tenant_id),
    }


def check(response, before: dict) -> None:
    assert_no_5xx(response)
    if response.status_code >= 400:
        assert_json_error(response)
        assert counts() == before, "a refused callback left rows behind"
    else:
        assert response.status_code == 200


# --- SendGrid --------------------------------------------------------------------------------


def test_sendgrid_malformed_bodies_get_a_json_4xx(keys, message):
    before = counts()
    for name, body in corpus.MALFORMED_BODIES.items():
        response = sendgrid_post(_client(), keys, body)
        assert response.status_code == 400, name
        assert_json_error(response, 400)
        assert counts() == before


def test_sendgrid_body_over_one_mib_is_413(keys, db):
    before = counts()
    response = sendgrid_post(_client(), keys, b"[" + corpus.huge_string_body(corpus.MIB) + b"]")
    assert_json_error(response, 413)
    assert counts() == before


def test_sendgrid_nasty_values_in_every_field(keys, message):
    base = _event(message)
    for case_id, event in corpus.hand_mutations(base, [*corpus.FIELD_VALUES, 10**400, None]):
        event = (
            {**event, "sg_event_id": f"evt-{next(_sids)}"} if "sg_event_id" in case_id else event
        )
        before = counts()
        response = sendgrid_post(_client(), keys, corpus.dumps_loose([event]))
        try:
            check(response, before)
        except AssertionError as exc:
            raise AssertionError(f"{case_id}: {exc}") from exc


@HYPOTHESIS
@given(data=st.data())
def test_hypothesis_sendgrid_events(keys, message, data):
    events = data.draw(st.lists(corpus.mutated(_event(message)), min_size=1, max_size=3))
    before = counts()
    check(sendgrid_post(_client(), keys, corpus.dumps_loose(events)), before)


@HYPOTHESIS
@given(body=corpus.loose_json_values)
def test_hypothesis_sendgrid_any_json(keys, message, body):
    before = counts()
    check(sendgrid_post(_client(), keys, corpus.dumps_loose(body)), before)


SENDGRID_SIGNATURE = "HTTP_X_TWILIO_EMAIL_EVENT_WEBHOOK_SIGNATURE"
SENDGRID_TIMESTAMP = "HTTP_X_TWILIO_EMAIL_EVENT_WEBHOOK_TIMESTAMP"


def test_sendgrid_hostile_signature_headers_are_403(keys, message):
    before = counts()
    for headers in [
        {SENDGRID_SIGNATURE: "%%%"},
        {SENDGRID_SIGNATURE: "A" * 10_000},
        {SENDGRID_TIMESTAMP: "\x00"},
        {SENDGRID_TIMESTAMP: "9" * 500},
        {SENDGRID_SIGNATURE: "", SENDGRID_TIMESTAMP: ""},
    ]:
        response = sendgrid_post(_client(), keys, [_event(message)], **headers)
        assert_json_error(response, 403)
        assert counts() == before


# --- Twilio ----------------------------------------------------------------------------------


def _status_path(message: Message) -> str:
    return status_callback_url(message).removeprefix(BASE)


STATUS_PARAMS = {"MessageSid": "SM" + "0" * 32, "MessageStatus": "delivered", "ErrorCode": ""}
INBOUND_PARAMS = {
    "MessageSid": "SM" + "1" * 32,
    "From": SHOPPER,
    "To": STORE_NUMBER,
    "Body": "STOP",
}


def test_twilio_nasty_values_in_every_field(message):
    paths = [("/hooks/twilio/status/", STATUS_PARAMS), (_status_path(message), STATUS_PARAMS)]
    paths.append(("/hooks/twilio/inbound/", INBOUND_PARAMS))
    for path, base in paths:
        for key in base:
            for index, value in enumerate(corpus.rotation(corpus.FORM_FIELD_VALUES, len(key))):
                params = {**base, key: value}
                if key != "MessageSid":
                    params["MessageSid"] = f"SM{next(_sids):032x}"
                before = counts()
                response = twilio_post(_client(), TOKEN, BASE, path, params)
                assert_no_5xx(response)
                if response.status_code >= 400:
                    assert_json_error(response)
                    assert counts() == before, (path, key, index)


@HYPOTHESIS
@given(data=st.data())
def test_hypothesis_twilio_callbacks(message, data):
    path = data.draw(
        st.sampled_from(["/hooks/twilio/status/", _status_path(message), "/hooks/twilio/inbound/"])
    )
    base = INBOUND_PARAMS if "inbound" in path else STATUS_PARAMS
    params = {**base, "MessageSid": f"SM{next(_sids):032x}"}
    params.update(data.draw(st.dictionaries(st.sampled_from([*base, "Extra"]), corpus.form_text)))
    before = counts()
    response = twilio_post(_client(), TOKEN, BASE, path, params)
    assert_no_5xx(response)
    if response.status_code >= 400:
        assert_json_error(response)
        assert counts() == before


def test_twilio_status_hostile_query_is_answered(message):
    for query in [
        "?m=abc&t=1",
        f"?m={2**70}&t={2**70}",
        "?m=-1&t=%00",
        "?m=1e400",
        "?" + "a=1&" * 2000,
    ]:
        before = counts()
        params = {**STATUS_PARAMS, "MessageSid": f"SM{next(_sids):032x}"}
        response = twilio_post(_client(), TOKEN, BASE, f"/hooks/twilio/status/{query}", params)
        assert_no_5xx(response)
        if response.status_code >= 400:
            assert_json_error(response)
            assert counts() == before


def test_twilio_malformed_forms_get_a_json_4xx(db):
    before = counts()
    bodies = [
        b"",
        b"%",
        b"a=%ZZ",
        b"\xff\xfe=\x00",
        b"Body=" + b"x" * (corpus.MIB + 10),
        b"&" * 5000,
    ]
    for path in ["/hooks/twilio/status/", "/hooks/twilio/inbound/"]:
        for body in bodies:
            response = _client().post(
                path,
                body,
                content_type="application/x-www-form-urlencoded",
                HTTP_X_TWILIO_SIGNATURE="bm9wZQ==",
            )
            assert_json_error(response, 400, 403, 413)
            assert counts() == before
