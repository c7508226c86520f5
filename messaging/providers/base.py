"""What the outbox hands a provider adapter and what it gets back.

An adapter's ``send(outgoing) -> str`` returns the provider's message id, or
raises one of:

- :class:`TransientError`: the provider did not take the message and said so
  (429, 5xx, connection refused or a connect timeout); safe to retry later.
- :class:`PermanentError`: the provider refused the message for good (invalid
  address or number, a blocked recipient); the message fails with the reason.
- :class:`OutcomeUnknown`: the request may have reached the provider (a read
  timeout, a dropped connection after sending); never retried blindly: the
  message becomes ``unknown`` and callbacks reconcile it.

An adapter's ``lookup(outgoing, since=...) -> str | None`` asks the provider
whether it holds a message it may have taken without us hearing back (an
``unknown`` one, queued at ``since``): its id, or None when it has no such
message. It raises
:class:`TransientError` when the provider cannot answer now, and
:class:`LookupUnsupported` when the account cannot be asked at all (SendGrid
without the Email Activity add-on, say); see ``messaging.services.reconcile``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime


@dataclass(frozen=True)
class Outgoing:
    message_id: int
    tenant_id: int
    channel: str  # "email" | "sms"
    to: str
    from_address: str  # email address or E.164 number
    from_name: str = ""
    reply_to: str = ""
    subject: str = ""
    text: str = ""
    html: str = ""
    marketing: bool = False
    # Email: the List-Unsubscribe target (https URL; RFC 8058 one-click POST).
    unsubscribe_url: str = ""
    # SMS: where Twilio posts status callbacks.
    status_callback_url: str = ""
    headers: dict[str, str] = field(default_factory=dict)


class ProviderError(Exception):
    """``status`` is the HTTP status when there was a response; ``code`` the
    provider's own error code when it sent one (Twilio's 21610 for a STOPped
    recipient, say), so callers can tell refusals apart without parsing text."""

    def __init__(
        self, detail: str, *, status: int | None = None, code: str | int | None = None
    ) -> None:
        super().__init__(detail)
        self.detail = detail[:500]
        self.status = status
        self.code = code


class TransientError(ProviderError):
    def __init__(
        self,
        detail: str,
        *,
        status: int | None = None,
        code: str | int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(detail, status=status, code=code)
        self.retry_after = retry_after


class PermanentError(ProviderError):
    """``invalid_recipient`` marks errors that mean the address itself is bad
    (it goes on the suppression list), not just this message."""

    def __init__(
        self,
        detail: str,
        *,
        status: int | None = None,
        code: str | int | None = None,
        invalid_recipient: bool = False,
    ) -> None:
        super().__init__(detail, status=status, code=code)
        self.invalid_recipient = invalid_recipient


class OutcomeUnknown(ProviderError):
    pass


class LookupUnsupported(ProviderError):
    """The provider account cannot answer "did you get this message?"."""


def retry_after_seconds(value: str | None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date), or None
    when absent or unreadable: the caller's own backoff applies then."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())
