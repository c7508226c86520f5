"""No secret or token in the logs: every line written through the project's
configured handlers while API keys, webhook secrets, provider credentials,
passwords and shoppers' signed links are used, right and wrong, is searched
for each of them. Django logs the path of every 4xx (a tampered preferences
link, a lost order link), the send path logs provider errors, and gunicorn
writes every request line: none may carry a credential."""

from __future__ import annotations

import io
import json
import logging
from datetime import timedelta
from types import SimpleNamespace

import pytest
from django.test import Client

from commerce.tokens import order_page_path, preferences_token
from messaging.models import Message
from messaging.services.outbox import Content, message_enqueue
from messaging.services.send import send_batch
from retention import clock
from retention.celery import app as celery_app
from retention.logs import GunicornLogger, RedactSecrets, redact
from retention.services import api_key_issue
from tests.commerce.test_webhooks import post as post_webhook
from tests.factories import CustomerFactory, make_order
from tests.messaging.signing import twilio_post

pytestmark = pytest.mark.usefixtures("eager_tasks")


@pytest.fixture
def log_lines():
    """Everything the configured root handlers write during the test, at
    DEBUG and up, as the text they write."""
    root = logging.getLogger()
    handlers = [
        h
        for h in root.handlers
        if isinstance(h, logging.StreamHandler)
        and any(isinstance(f, RedactSecrets) for f in h.filters)
    ]
    assert handlers, "settings.LOGGING's root handler must carry retention.logs.RedactSecrets"
    buffer = io.StringIO()
    streams = [h.setStream(buffer) for h in handlers]
    level = root.level
    root.setLevel(logging.DEBUG)
    try:
        yield buffer.getvalue
    finally:
        root.setLevel(level)
        for handler, stream in zip(handlers, streams, strict=True):
            handler.setStream(stream)


def _assert_absent(text: str, secrets: dict[str, str]) -> None:
    leaked = {name for name, value in secrets.items() if value and value in text}
    assert not leaked, f"{sorted(leaked)} written to the log:\n{text[-3000:]}"


def test_credentials_and_signed_links_never_reach_the_log(
    tenant, fake_provider, django_user_model, log_lines, settings
):
    settings.PUBLIC_BASE_URL = "https://retention.example"
    _, api_key = api_key_issue(tenant=tenant, name="storefront", scopes=["read", "write"])
    customer = CustomerFactory(tenant=tenant, phone="+4915112345678")
    order = make_order(customer, clock.now())
    preferences = preferences_token(customer)
    order_path = order_page_path(order)
    password = "correct horse battery staple 42"
    django_user_model.objects.create_user("owner@alpha.example", password)
    secrets = {
        "api key": api_key,
        "api key secret part": api_key.split(".", 1)[1],
        "webhook secret": tenant.webhook_secret,
        "sendgrid key": settings.SENDGRID_API_KEY,
        "twilio token": settings.TWILIO_AUTH_TOKEN,
        "password": password,
        "preferences token": preferences,
        "order token": order_path.strip("/").split("/")[-1],
    }
    client = Client()

    # the API, with the key right, wrong, and where it does not belong
    assert (
        client.get("/api/v1/customers/", HTTP_AUTHORIZATION=f"Bearer {api_key}").status_code == 200
    )
    assert (
        client.get("/api/v1/customers/", HTTP_AUTHORIZATION=f"Bearer {api_key}x").status_code == 401
    )
    assert client.get(f"/api/v1/customers/?key={api_key}").status_code == 401
    assert client.get(f"/api/v1/nowhere/{api_key}/").status_code == 404
    # store webhooks, signed right and wrong, and a secret pasted into a body
    assert post_webhook(tenant, {"type": "event.tracked", "data": {}}).status_code in (202, 422)
    bad = post_webhook(
        tenant,
        {"type": "customer.updated", "data": {"note": tenant.webhook_secret}},
        secret="whsec_Zm9v",
    )
    assert bad.status_code == 401
    # shoppers' links, tampered and for a page that is not there
    assert client.get(f"/u/{preferences}x/").status_code == 404
    assert client.get(f"{order_path}x/").status_code == 404
    # a failed admin login
    client.post("/admin/login/", {"username": "owner@alpha.example", "password": password + "!"})
    # provider calls: accepted, refused with the credentials named, timed out
    fake_provider.fail(to=customer.email, status=401)
    fake_provider.delay(to=customer.phone, seconds=3)
    with clock.travel_to(clock.now()):
        messages = [
            message_enqueue(
                tenant=tenant,
                customer=customer,
                channel=channel,
                category="transactional",
                idempotency_key=f"k{i}",
                content=Content(subject="Hi", text="Hello"),
            )
            for i, channel in enumerate(("email", "sms", "email"))
        ]
        send_batch(tenant_id=tenant.pk, message_ids=[m.pk for m in messages])
    # a provider callback with a forged signature
    twilio_post(
        client,
        "not-the-token",
        settings.PUBLIC_BASE_URL,
        f"/hooks/twilio/status/?m={messages[1].pk}",
        {"MessageSid": "SM1", "MessageStatus": "delivered"},
    )

    text = log_lines()
    assert Message.objects.for_tenant(tenant).count() == 3
    _assert_absent(text, secrets)
    assert "Not Found: /u/[redacted]" in text  # Django did log the tampered link's path


def test_workers_log_through_the_redacting_handlers():
    assert celery_app.conf.worker_hijack_root_logger is False


def test_tracebacks_are_redacted_too(log_lines):
    secret = "whsec_c2VjcmV0LXNpZ25pbmcta2V5"
    try:
        raise ValueError(f"could not verify with {secret}")
    except ValueError:
        logging.getLogger("tests").exception("verification failed")
    text = log_lines()
    assert "verification failed" in text and "whsec_[redacted]" in text
    assert secret not in text


def test_gunicorns_access_log_masks_paths_and_credential_headers(tmp_path):
    from gunicorn.config import Config

    log_file = tmp_path / "access.log"
    config = Config()
    config.set("accesslog", str(log_file))
    config.set("access_log_format", '%(h)s "%(r)s" %(s)s %(U)s %(q)s "%(f)s" %({authorization}i)s')
    logger = GunicornLogger(config)
    token = "eyJjIjoxMiwibSI6NDV9:1tZ0aB:Q2xldmVyLXNpZ25hdHVyZQ"
    environ = {
        "REQUEST_METHOD": "GET",
        "RAW_URI": f"/u/{token}/?key=rk_0123456789.c2VjcmV0LWtleS1zZWNyZXQ",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "PATH_INFO": f"/u/{token}/",
        "QUERY_STRING": "key=rk_0123456789.c2VjcmV0LWtleS1zZWNyZXQ",
        "HTTP_REFERER": f"https://shop.example/s/{token}/thanks/",
        "REMOTE_ADDR": "127.0.0.1",
    }
    request = SimpleNamespace(headers=[("AUTHORIZATION", "Bearer rk_0123456789.c2VjcmV0")])
    response = SimpleNamespace(status="200 OK", sent=10, headers=[])
    logger.access(response, request, environ, timedelta(milliseconds=5))
    for handler in logger.access_log.handlers:
        handler.flush()

    line = log_file.read_text()
    assert '"GET /u/[redacted]/?key=rk_0123456789.[redacted] HTTP/1.1" 200' in line
    assert "/s/[redacted]/thanks/" in line and "[redacted]" in line.split()[-1]
    assert token not in line and "c2VjcmV0" not in line


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("Bearer rk_0123456789.abcDEF_-123", "Bearer [redacted]"),
        ("key rk_0123456789.abcDEF_-123 used", "key rk_0123456789.[redacted] used"),
        ("secret whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "secret whsec_[redacted]"),
        ("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", "SG.[redacted]"),
        ("Authorization: Basic QUMxMjM6dG9rZW4=", "Authorization: Basic [redacted]"),
        ("Gone: /o/abc.def:ghi/", "Gone: /o/[redacted]/"),
        ("GET https://x.example/u/tok/ 200", "GET https://x.example/u/[redacted]/ 200"),
        # not a token path: a webhook, a store's own page, a JSON body
        ("POST /hooks/alpha/shopify/", "POST /hooks/alpha/shopify/"),
        ('{"status": "ok"}', '{"status": "ok"}'),
    ],
)
def test_redact(text, masked):
    assert redact(text) == masked
    assert json.dumps(redact(text))  # still text
