"""Outbound webhooks: a journey step's POST to a marketer's URL, signed per
Standard Webhooks (https://www.standardwebhooks.com/) with the tenant's
``whsec_…`` secret.

The row is written inside the step's transaction (unique per tenant and
``event_id``, so a retried step posts once) and a delivery task is queued when
it commits. Delivery claims the row by a conditional update that moves
``due_at`` a lease ahead and counts the attempt; no transaction is open during
the HTTP call. 2xx delivers; 408, 429, 5xx, timeouts and connection errors
retry with exponential backoff (``due_at``, picked up by the sweeper); any
other answer fails at once. After ``MAX_ATTEMPTS`` the row fails with its last
error. A worker that dies mid-call leaves the row due when its lease runs out,
and the sweeper queues it again: the receiver may see a ``webhook-id`` twice,
which Standard Webhooks receivers de-duplicate.

Payloads are what the caller passes; journeys send
``{"type": "journey.step", "timestamp": …, "data": {…}}``.
"""

from __future__ import annotations

import base64
import ipaddress
import json
import logging
import secrets
import socket
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import requests
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import URLValidator
from django.db import transaction
from django.db.models import F, Q
from django.utils.text import Truncator

from commerce.signing import SECRET_PREFIX, SignatureError, check_id, sign
from journeys.models import JourneySettings, OutboundWebhook, WebhookStatus
from retention import clock
from retention.errors import InvalidInput

logger = logging.getLogger(__name__)

TIMEOUT_SECONDS = 10.0
MAX_ATTEMPTS = 8
BACKOFF_FIRST = timedelta(minutes=1)  # then 2, 4, … minutes
BACKOFF_MAX = timedelta(hours=1)
# Longer than a delivery can take (the timeout, twice for connect and read):
# a row still claimed after this belonged to a worker that died.
LEASE = timedelta(minutes=2)
# A new row has its own task queued on commit; the sweeper leaves it that long.
SWEEP_GRACE = timedelta(seconds=30)
SWEEP_LIMIT = 500
RESPONSE_SNIPPET = 200
USER_AGENT = "retention-webhooks/1"

URL_MAX = OutboundWebhook._meta.get_field("url").max_length
EVENT_ID_MAX = OutboundWebhook._meta.get_field("event_id").max_length
ERROR_MAX = OutboundWebhook._meta.get_field("last_error").max_length
_url_ok = URLValidator(schemes=["http", "https"])


# --- the tenant's secret -----------------------------------------------------------------


def journey_settings(tenant_id: int) -> JourneySettings:
    """The tenant's journey settings, created on first use with a new signing
    secret (``whsec_`` + base64 of 32 random bytes, the Standard Webhooks form)."""
    found, _ = JourneySettings.objects.for_tenant(tenant_id).get_or_create(
        tenant_id=tenant_id, defaults={"webhook_secret": _new_secret()}
    )
    return found


def _new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


# --- queueing ----------------------------------------------------------------------------


def outbound_webhook_queue(
    *, tenant_id: int, url: str, event_id: str, payload: dict[str, Any]
) -> OutboundWebhook:
    """Store a webhook to post, in the caller's transaction, and queue its
    delivery for when that commits. The same ``event_id`` again returns the
    row already stored (whatever its URL and payload) and queues nothing."""
    _check(url, event_id, payload)
    now = clock.now()
    # get_or_create inserts in a savepoint and, losing a race for the event id,
    # reads the winner's row: the caller's transaction stays usable.
    webhook, created = OutboundWebhook.objects.for_tenant(tenant_id).get_or_create(
        tenant_id=tenant_id,
        event_id=event_id,
        defaults={"url": url, "payload": payload, "due_at": now, "created_at": now},
    )
    if created:
        transaction.on_commit(lambda: _kick(tenant_id, webhook.pk))
    return webhook


def _check(url: Any, event_id: Any, payload: Any) -> None:
    errors: dict[str, str] = {}
    try:
        if not isinstance(url, str) or len(url) > URL_MAX:
            raise ValidationError("too long")
        _url_ok(url)
    except ValidationError:
        errors["url"] = f"Give an http or https URL of at most {URL_MAX} characters."
    try:
        if not isinstance(event_id, str) or len(event_id) > EVENT_ID_MAX:
            raise SignatureError("too long")
        check_id(event_id)
    except SignatureError:
        errors["event_id"] = f"Give 1-{EVENT_ID_MAX} printable ASCII characters."
    if not isinstance(payload, dict):
        errors["payload"] = "Give an object."
    else:
        try:
            json.dumps(payload)
        except (TypeError, ValueError):
            errors["payload"] = "The payload must be JSON."
    if errors:
        first_key, first_error = next(iter(errors.items()))
        raise InvalidInput(f"{first_key}: {first_error}", fields=errors)


def _kick(tenant_id: int, webhook_id: int) -> None:
    """Queue the delivery now; if the broker is down the sweeper queues it later."""
    from journeys.webhook_tasks import deliver_webhook

    try:
        deliver_webhook.delay(tenant_id, webhook_id)
    except Exception:
        logger.exception(
            "journeys.webhook_kick_failed tenant_id=%s webhook_id=%s", tenant_id, webhook_id
        )


# --- delivery ----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Answer:
    status_code: int | None
    error: str
    retry_after: timedelta | None = None
    permanent: bool = False

    @property
    def delivered(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300

    @property
    def retryable(self) -> bool:
        if self.permanent:
            return False
        if self.status_code is None:
            return True  # timeout, connection refused, reset
        return self.status_code in (408, 429) or self.status_code >= 500


def outbound_webhook_deliver(
    *, webhook_id: int, tenant_id: int, timeout: float = TIMEOUT_SECONDS
) -> str | None:
    """Post one due pending webhook; returns its status afterwards, or None
    when there was nothing to do (not this tenant's, not pending, not due, or
    claimed by another worker). Call it outside any transaction."""
    now = clock.now()
    claimed = (
        OutboundWebhook.objects.for_tenant(tenant_id)
        .filter(pk=webhook_id, status=WebhookStatus.PENDING, due_at__lte=now)
        .update(due_at=now + LEASE, attempts=F("attempts") + 1)
    )
    if not claimed:
        return None
    webhook = OutboundWebhook.objects.for_tenant(tenant_id).get(pk=webhook_id)
    secret = journey_settings(tenant_id).webhook_secret
    try:
        answer = _post(webhook, secret, timeout)
    except Exception as exc:
        # Whatever went wrong is recorded as a retryable attempt, so the
        # attempts stay bounded instead of the claim lapsing again and again.
        logger.exception("journeys.webhook_error tenant_id=%s webhook_id=%s", tenant_id, webhook_id)
        answer = _Answer(status_code=None, error=f"{type(exc).__name__}: {exc}")
    return _record(webhook, answer)


def _post(webhook: OutboundWebhook, secret: str, timeout: float) -> _Answer:
    blocked = _blocked_address(webhook.url)
    if blocked:
        return _Answer(status_code=None, error=blocked, permanent=True)
    body = json.dumps(webhook.payload, separators=(",", ":"), ensure_ascii=False).encode()
    # The receiver checks the timestamp against its own clock, so this is the
    # real time even while the project's clock is moved (tests, simulation).
    timestamp = int(time.time())
    headers = {
        "content-type": "application/json",
        "user-agent": USER_AGENT,
        "webhook-id": webhook.event_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(
            secret=secret, msg_id=webhook.event_id, timestamp=timestamp, body=body
        ),
    }
    try:
        # No redirects: a 3xx is a wrong URL to fix, not a hop to follow
        # (and following one could lead to an address we would refuse).
        with requests.post(
            webhook.url,
            data=body,
            headers=headers,
            timeout=timeout,
            allow_redirects=False,
            stream=True,
        ) as response:
            code = response.status_code
            retry_after = _retry_after(response.headers.get("retry-after", ""))
            location = response.headers.get("location", "?")
            # Only the start of an error answer is kept; a 2xx body is not read.
            snippet = b"" if 200 <= code < 300 else _first_bytes(response)
    except requests.Timeout:
        return _Answer(status_code=None, error=f"No answer within {timeout:g} s.")
    except requests.RequestException as exc:
        return _Answer(status_code=None, error=f"{type(exc).__name__}: {exc}")
    if 200 <= code < 300:
        return _Answer(status_code=code, error="")
    text = snippet.decode("utf-8", "replace").strip()
    if 300 <= code < 400:
        text = f"redirected to {location}; post to the final URL"
    return _Answer(status_code=code, error=f"HTTP {code}: {text}", retry_after=retry_after)


def _first_bytes(response: requests.Response) -> bytes:
    # iter_content turns a read timeout or reset into a requests exception.
    return next(response.iter_content(RESPONSE_SNIPPET), b"")


def _retry_after(value: str) -> timedelta | None:
    value = value.strip()
    if value.isascii() and value.isdigit():
        return min(timedelta(seconds=int(value)), BACKOFF_MAX)
    return None


def _blocked_address(url: str) -> str:
    """Why the URL may not be posted to: a host that resolves to a loopback,
    private, link-local or reserved address (the platform's own network), unless
    ``OUTBOUND_WEBHOOKS_ALLOW_PRIVATE`` is set (local development, tests). A
    name that does not resolve is left to the HTTP call, which retries."""
    if getattr(settings, "OUTBOUND_WEBHOOKS_ALLOW_PRIVATE", False):
        return ""
    parts = urlsplit(url)
    try:
        infos = socket.getaddrinfo(parts.hostname or "", parts.port or 443, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError, ValueError):
        return ""
    for info in infos:
        address = ipaddress.ip_address(info[4][0].split("%", 1)[0])
        if not address.is_global:
            return f"{parts.hostname} resolves to {address}, which is not a public address."
    return ""


def _record(webhook: OutboundWebhook, answer: _Answer) -> str:
    now = clock.now()
    attempts = webhook.attempts
    if answer.delivered:
        changes = {"status": WebhookStatus.DELIVERED, "delivered_at": now, "last_error": ""}
    elif answer.retryable and attempts < MAX_ATTEMPTS:
        delay = answer.retry_after or min(BACKOFF_FIRST * 2 ** (attempts - 1), BACKOFF_MAX)
        changes = {"status": WebhookStatus.PENDING, "due_at": now + delay}
    else:
        changes = {"status": WebhookStatus.FAILED}
    changes["last_status_code"] = answer.status_code
    if answer.error:
        changes["last_error"] = Truncator(answer.error).chars(ERROR_MAX)
    # Only while our claim stands: a worker that outlived its lease must not
    # overwrite the outcome of the attempt that replaced it.
    updated = (
        OutboundWebhook.objects.for_tenant(webhook.tenant_id)
        .filter(pk=webhook.pk, status=WebhookStatus.PENDING, attempts=attempts)
        .update(**changes)
    )
    status = changes["status"] if updated else None
    log = logger.info if answer.delivered or status == WebhookStatus.PENDING else logger.warning
    log(
        "journeys.webhook_attempt tenant_id=%s webhook_id=%s attempt=%s status=%s code=%s error=%s",
        webhook.tenant_id,
        webhook.pk,
        attempts,
        status or "superseded",
        answer.status_code,
        answer.error[:100],
    )
    return status or WebhookStatus.PENDING


# --- the sweeper -------------------------------------------------------------------------


def outbound_webhooks_sweep(
    *, tenant_id: int | None = None, limit: int = SWEEP_LIMIT, now: datetime | None = None
) -> int:
    """Queue delivery of due pending webhooks: new ones whose task was lost,
    retries whose backoff is over, claims whose worker died. Returns how many.
    Without ``tenant_id`` it reads every tenant's rows (``unscoped``): the
    sweeper is platform work that then fans out per tenant."""
    now = now or clock.now()
    rows = (
        OutboundWebhook.objects.for_tenant(tenant_id)
        if tenant_id is not None
        else OutboundWebhook.objects.unscoped()
    )
    due = list(
        rows.filter(status=WebhookStatus.PENDING, due_at__lte=now)
        .filter(Q(attempts__gt=0) | Q(created_at__lte=now - SWEEP_GRACE))
        .order_by("due_at")
        .values_list("tenant_id", "pk")[:limit]
    )
    for row_tenant_id, webhook_id in due:
        _kick(row_tenant_id, webhook_id)
    if due:
        logger.info("journeys.webhooks_swept count=%s", len(due))
    return len(due)


__all__ = [
    "journey_settings",
    "outbound_webhook_deliver",
    "outbound_webhook_queue",
    "outbound_webhooks_sweep",
]
