"""Provider adapters: the only modules that import the SendGrid and Twilio SDKs.

``base`` defines what the outbox hands an adapter (:class:`Outgoing`) and what
comes back (a provider message id, or one of three errors). ``adapter_for``
picks the adapter for a channel, or None when the channel has no provider
configured (outbox-only mode) or needs none (in-app).
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from .base import Outgoing


class Adapter(Protocol):
    """What ``sendgrid`` and ``twilio`` (modules) provide."""

    def configured(self) -> bool: ...

    def send(self, outgoing: Outgoing) -> str: ...

    def lookup(self, outgoing: Outgoing, *, since: datetime) -> str | None: ...


def adapter_for(channel: str) -> Adapter | None:
    """The adapter for "email" or "sms" when its provider account is set, else None."""
    # Imported here so that importing the package does not load both SDKs.
    adapter: Adapter
    if channel == "email":
        from . import sendgrid as adapter
    elif channel == "sms":
        from . import twilio as adapter
    else:
        return None
    return adapter if adapter.configured() else None
