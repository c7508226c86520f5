"""The SendGrid and Twilio adapters against the fake provider on 127.0.0.1 (the real
SDKs make real HTTP calls; nothing of ours is mocked), and the fake itself."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from dataclasses import replace

import pytest

from messaging.providers import adapter_for, sendgrid, twilio
from messaging.providers.base import (
    OutcomeUnknown,
    Outgoing,
    PermanentError,
    TransientError,
    retry_after_seconds,
)
from tests.fake_provider import FakeProvider, RemoteFakeProvider
from tests.workers import ROOT

EMAIL = Outgoing(
    message_id=41,
    tenant_id=7,
    channel="email",
    to="ada@example.com",
    from_address="shop@alpha.example",
    from_name="Alpha Store",
    reply_to="help@alpha.example",
    subject="Your order shipped",
    text="It is on its way.",
    html="<p>It is on its way.</p>",
)
MARKETING = replace(
    EMAIL, marketing=True, unsubscribe_url="https://app.example/u/tok123/?one-click=1"
)
SMS = Outgoing(
    message_id=42,
    tenant_id=7,
    channel="sms",
    to="+15550001111",
    from_address="+15559998888",
    text="Your order shipped: https://app.example/o/abc/",
    status_callback_url="https://app.example/hooks/twilio/status/?m=42&t=7",
)


def _closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


# --- email ---------------------------------------------------------------------


def test_email_send_returns_the_x_message_id_and_carries_our_ids(fake_provider: FakeProvider):
    provider_id = sendgrid.send(EMAIL)

    [call] = fake_provider.calls
    assert call.provider == "sendgrid"
    assert call.status == 202
    assert provider_id == call.provider_id
    assert len(provider_id) == 22
    assert call.message_id == "41"
    assert call.body["custom_args"] == {"message_id": "41", "tenant_id": "7"}
    assert call.headers["authorization"] == "Bearer SG.fake-key"


def test_email_carries_sender_recipient_reply_to_subject_and_both_bodies(
    fake_provider: FakeProvider,
):
    sendgrid.send(EMAIL)

    body = fake_provider.calls_for(41)[0].body
    assert body["from"] == {"email": "shop@alpha.example", "name": "Alpha Store"}
    assert body["personalizations"] == [{"to": [{"email": "ada@example.com"}]}]
    assert body["reply_to"] == {"email": "help@alpha.example"}
    assert body["subject"] == "Your order shipped"
    assert body["content"] == [
        {"type": "text/plain", "value": "It is on its way."},
        {"type": "text/html", "value": "<p>It is on its way.</p>"},
    ]


def test_email_without_html_sends_only_the_text_part(fake_provider: FakeProvider):
    sendgrid.send(replace(EMAIL, html="", reply_to="", from_name=""))

    body = fake_provider.calls[0].body
    assert body["content"] == [{"type": "text/plain", "value": "It is on its way."}]
    assert body["from"] == {"email": "shop@alpha.example"}
    assert "reply_to" not in body


def test_marketing_email_has_one_click_list_unsubscribe_headers(fake_provider: FakeProvider):
    sendgrid.send(MARKETING)

    assert fake_provider.calls[0].body["headers"] == {
        "List-Unsubscribe": "<https://app.example/u/tok123/?one-click=1>",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
    }


def test_transactional_email_has_no_list_unsubscribe_headers(fake_provider: FakeProvider):
    sendgrid.send(replace(EMAIL, unsubscribe_url="https://app.example/u/tok123/"))

    assert "headers" not in fake_provider.calls[0].body


def test_email_rate_limit_is_transient_with_retry_after(fake_provider: FakeProvider):
    fake_provider.fail(to="ada@example.com", status=429, retry_after=7)

    with pytest.raises(TransientError) as caught:
        sendgrid.send(EMAIL)

    assert caught.value.status == 429
    assert caught.value.retry_after == 7.0
    assert caught.value.detail == "sendgrid 429: too many requests"


@pytest.mark.parametrize("status", [500, 503])
def test_email_server_error_is_transient(fake_provider: FakeProvider, status: int):
    fake_provider.fail(to="ada@example.com", status=status)

    with pytest.raises(TransientError) as caught:
        sendgrid.send(EMAIL)

    assert caught.value.status == status
    assert caught.value.retry_after is None


def test_malformed_email_address_is_permanent_and_condemns_the_recipient(
    fake_provider: FakeProvider,
):
    with pytest.raises(PermanentError) as caught:
        sendgrid.send(replace(EMAIL, to="ada-at-example.com"))

    assert caught.value.status == 400
    assert caught.value.invalid_recipient is True
    assert caught.value.detail == (
        "sendgrid 400: personalizations.0.to.0.email: Does not contain a valid address."
    )


def test_unverified_sender_is_permanent_but_not_the_recipients_fault(
    fake_provider: FakeProvider,
):
    fake_provider.fail(to="ada@example.com", status=403)

    with pytest.raises(PermanentError) as caught:
        sendgrid.send(EMAIL)

    assert caught.value.status == 403
    assert caught.value.invalid_recipient is False
    assert caught.value.detail.startswith("sendgrid 403: from: The from address does not match")


def test_email_answer_slower_than_the_timeout_is_outcome_unknown(
    fake_provider: FakeProvider, settings
):
    settings.PROVIDER_TIMEOUT = 0.3
    fake_provider.delay(to="ada@example.com", seconds=2)

    with pytest.raises(OutcomeUnknown):
        sendgrid.send(EMAIL)

    assert [call.message_id for call in fake_provider.calls] == ["41"]


def test_email_connection_dropped_before_the_answer_is_outcome_unknown(
    fake_provider: FakeProvider,
):
    fake_provider.drop(to="ada@example.com")

    with pytest.raises(OutcomeUnknown):
        sendgrid.send(EMAIL)


def test_email_refused_connection_is_transient(fake_provider: FakeProvider, settings):
    settings.SENDGRID_API_HOST = _closed_port_url()

    with pytest.raises(TransientError) as caught:
        sendgrid.send(EMAIL)

    assert caught.value.status is None
    assert "Connection refused" in caught.value.detail
    assert fake_provider.calls == []


# --- sms -----------------------------------------------------------------------


def test_sms_send_returns_the_sid_and_carries_the_status_callback(fake_provider: FakeProvider):
    sid = twilio.send(SMS)

    [call] = fake_provider.calls
    assert call.provider == "twilio"
    assert call.status == 201
    assert sid == call.provider_id
    assert sid.startswith("SM") and len(sid) == 34
    assert call.message_id == "42"
    assert call.body == {
        "To": "+15550001111",
        "From": "+15559998888",
        "Body": "Your order shipped: https://app.example/o/abc/",
        "StatusCallback": "https://app.example/hooks/twilio/status/?m=42&t=7",
    }
    assert call.headers["authorization"].startswith("Basic ")


def test_sms_without_status_callback_sends_none(fake_provider: FakeProvider):
    twilio.send(replace(SMS, status_callback_url=""))

    call = fake_provider.calls[0]
    assert "StatusCallback" not in call.body
    assert call.message_id is None


def test_sms_rate_limit_is_transient_with_retry_after(fake_provider: FakeProvider):
    fake_provider.fail(to="+15550001111", status=429, retry_after=3)

    with pytest.raises(TransientError) as caught:
        twilio.send(SMS)

    assert caught.value.status == 429
    assert caught.value.code == 20429
    assert caught.value.retry_after == 3.0


@pytest.mark.parametrize("status", [500, 503])
def test_sms_server_error_is_transient(fake_provider: FakeProvider, status: int):
    fake_provider.fail(to="+15550001111", status=status)

    with pytest.raises(TransientError) as caught:
        twilio.send(SMS)

    assert caught.value.status == status
    assert caught.value.retry_after is None


def test_invalid_phone_number_is_permanent_and_condemns_the_recipient(
    fake_provider: FakeProvider,
):
    with pytest.raises(PermanentError) as caught:
        twilio.send(replace(SMS, to="555-0100"))

    assert caught.value.status == 400
    assert caught.value.code == 21211
    assert caught.value.invalid_recipient is True
    assert caught.value.detail == (
        "twilio 400 21211: Unable to create record: Invalid 'To' Phone Number: 555-0100"
    )


@pytest.mark.parametrize("code", [21211, 21408, 21610, 21612, 21614])
def test_refusals_that_condemn_the_number_are_invalid_recipient(
    fake_provider: FakeProvider, code: int
):
    fake_provider.fail(to="+15550001111", status=400, code=code)

    with pytest.raises(PermanentError) as caught:
        twilio.send(SMS)

    assert caught.value.code == code
    assert caught.value.invalid_recipient is True


def test_stopped_recipient_is_permanent_with_code_21610(fake_provider: FakeProvider):
    fake_provider.fail(to="+15550001111", status=400, code=21610)

    with pytest.raises(PermanentError) as caught:
        twilio.send(SMS)

    assert caught.value.code == 21610
    assert caught.value.detail == (
        "twilio 400 21610: Unable to create record: Attempt to send to unsubscribed recipient"
    )


def test_other_sms_refusal_is_permanent_but_not_the_recipients_fault(
    fake_provider: FakeProvider,
):
    fake_provider.fail(to="+15550001111", status=400, code=21606, message="Bad From number")

    with pytest.raises(PermanentError) as caught:
        twilio.send(SMS)

    assert caught.value.code == 21606
    assert caught.value.invalid_recipient is False


def test_sms_answer_slower_than_the_timeout_is_outcome_unknown(
    fake_provider: FakeProvider, settings
):
    settings.PROVIDER_TIMEOUT = 0.3
    fake_provider.delay(to="+15550001111", seconds=2)

    with pytest.raises(OutcomeUnknown):
        twilio.send(SMS)

    assert [call.message_id for call in fake_provider.calls] == ["42"]


def test_sms_connection_dropped_before_the_answer_is_outcome_unknown(
    fake_provider: FakeProvider,
):
    fake_provider.drop(to="+15550001111")

    with pytest.raises(OutcomeUnknown):
        twilio.send(SMS)


def test_sms_refused_connection_is_transient(fake_provider: FakeProvider, settings):
    settings.TWILIO_API_BASE_URL = _closed_port_url()

    with pytest.raises(TransientError) as caught:
        twilio.send(SMS)

    assert caught.value.status is None
    assert fake_provider.calls == []


def test_sms_keeps_its_connection_alive_between_sends(fake_provider: FakeProvider):
    twilio.send(SMS)
    twilio.send(SMS)

    assert fake_provider.open_connections == 1


def test_email_keeps_its_connection_alive_between_sends(fake_provider: FakeProvider):
    sendgrid.send(EMAIL)
    sendgrid.send(EMAIL)

    assert fake_provider.open_connections == 1


def test_sms_goes_through_the_proxy_the_environment_names(fake_provider: FakeProvider, monkeypatch):
    # The kept-alive transport speaks no proxy protocol: with a proxy set, the
    # SDK's own transport takes the request to it (here: nobody listens).
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", _closed_port_url())

    with pytest.raises(TransientError):
        twilio.send(SMS)

    assert fake_provider.calls == []


# --- configuration ---------------------------------------------------------------


def test_channels_without_a_provider_account_have_no_adapter(settings):
    settings.SENDGRID_API_KEY = ""
    settings.TWILIO_ACCOUNT_SID = ""
    settings.TWILIO_AUTH_TOKEN = ""

    assert sendgrid.configured() is False
    assert twilio.configured() is False
    assert adapter_for("email") is None
    assert adapter_for("sms") is None


def test_configured_channels_get_their_adapter_and_in_app_none(fake_provider: FakeProvider):
    assert adapter_for("email") is sendgrid
    assert adapter_for("sms") is twilio
    assert adapter_for("in_app") is None


def test_retry_after_reads_seconds_and_http_dates():
    assert retry_after_seconds("12") == 12.0
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0
    assert retry_after_seconds("soon") is None
    assert retry_after_seconds(None) is None


# --- the fake itself ----------------------------------------------------------------


def _post(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, dict]:
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_sendgrid_without_a_bearer_token_gets_401_in_sendgrids_shape(
    fake_provider: FakeProvider,
):
    status, body = _post(f"{fake_provider.url}/v3/mail/send", b"{}", {})

    assert status == 401
    assert body["errors"][0]["message"] == (
        "The provided authorization grant is invalid, expired, or revoked"
    )


def test_twilio_without_basic_auth_gets_401_with_code_20003(fake_provider: FakeProvider):
    url = f"{fake_provider.url}/2010-04-01/Accounts/AC1/Messages.json"
    status, body = _post(url, b"To=%2B15550001111&From=%2B15559998888&Body=hi", {})

    assert status == 401
    assert body["code"] == 20003


def test_sms_without_a_body_is_refused_with_code_21602(fake_provider: FakeProvider):
    with pytest.raises(PermanentError) as caught:
        twilio.send(replace(SMS, text=""))

    assert caught.value.code == 21602
    assert caught.value.invalid_recipient is False


def test_fake_counts_every_call_per_message_id_but_keeps_only_the_last_ones(settings):
    with FakeProvider(keep=2) as fake:
        settings.SENDGRID_API_KEY = "SG.k"
        settings.SENDGRID_API_HOST = fake.url
        fake.fail(to="ada@example.com", status=503, times=2)
        for _ in range(2):
            with pytest.raises(TransientError):
                sendgrid.send(EMAIL)
        sendgrid.send(EMAIL)

        assert [call.status for call in fake.calls] == [503, 202]
        assert fake.summary() == {
            "total": 3,
            "by_status": {"503": 2, "202": 1},
            "counts": {"41": 3},
            "accepted": {"41": 1},
        }


def test_fake_runs_as_a_process_driven_over_http(settings):
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.fake_provider", "--port", "0"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        fake = RemoteFakeProvider(url)
        settings.TWILIO_ACCOUNT_SID = "AC" + "0" * 32
        settings.TWILIO_AUTH_TOKEN = "token"
        settings.TWILIO_API_BASE_URL = url
        fake.fail(to="+15550001111", status=429, retry_after=2)

        with pytest.raises(TransientError) as caught:
            twilio.send(SMS)
        sid = twilio.send(SMS)

        assert caught.value.retry_after == 2.0
        assert fake.summary()["counts"] == {"42": 2}
        assert fake.summary()["accepted"] == {"42": 1}
        assert [c["provider_id"] for c in fake.calls_for(42)] == ["", sid]
        fake.reset()
        assert fake.summary() == {"total": 0, "by_status": {}, "counts": {}, "accepted": {}}
    finally:
        proc.terminate()
        proc.wait(10)
