"""Keeping secrets out of logs.

Log lines are read by more people and systems than the database is, so no
credential may reach them: an API key, a webhook signing secret, a provider
key, an ``Authorization`` header, or the signed token in a shopper page's path
(``/u/<token>/`` opens that shopper's preferences; ``/s/`` a survey, ``/o/`` an
order page). Django logs the path of every 4xx and 5xx, and gunicorn's access
log every request line, so those paths are masked where the line is written:

- :class:`RedactSecrets`, a filter on the handlers of ``settings.LOGGING``
  (Celery workers keep those handlers: ``CELERY_WORKER_HIJACK_ROOT_LOGGER`` is off);
- :class:`GunicornLogger`, gunicorn's ``--logger-class`` for the access log.

What stays: an API key's public prefix (``rk_…``), which names the key in lists.
"""

from __future__ import annotations

import logging
import re

_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # Authorization headers, however they got into a message.
    (re.compile(r"(?i)\b(bearer|basic)(\s+|=)[A-Za-z0-9._~+/=\-]{8,}"), r"\1 [redacted]"),
    # API keys: "rk_<10 hex>.<secret>"; the prefix is public.
    (re.compile(r"\b(rk_[0-9a-f]{10})\.[A-Za-z0-9_\-]+"), r"\1.[redacted]"),
    # Standard Webhooks signing secrets.
    (re.compile(r"\bwhsec_[A-Za-z0-9+/=_\-]+"), "whsec_[redacted]"),
    # SendGrid API keys.
    (re.compile(r"\bSG\.[A-Za-z0-9_\-]+(\.[A-Za-z0-9_\-]+)?"), "SG.[redacted]"),
    # Signed tokens in shopper page paths, at the start of a path or URL.
    (
        re.compile(r"((?:^|[\s\"'(=]|https?://[^/\s\"']+)/(?:u|s|o)/)[^/\s?\"'#]+"),
        r"\1[redacted]",
    ),
)


def redact(text: str) -> str:
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


class RedactSecrets(logging.Filter):
    """Rewrites a record's message (and its traceback text) with secrets masked."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = redact(message)
        if masked != message:
            record.msg, record.args = masked, ()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True


try:
    from gunicorn.glogging import Logger as _GunicornLogger
except ImportError:  # gunicorn is a production dependency; be importable without it
    _GunicornLogger = object  # type: ignore[assignment,misc]


class GunicornLogger(_GunicornLogger):  # type: ignore[misc,valid-type]
    """gunicorn's logger, with the request line, path, query and referrer of
    each access-log line masked (``--logger-class retention.logs.GunicornLogger``)."""

    def atoms(self, resp, req, environ, request_time):  # gunicorn's signature
        atoms = super().atoms(resp, req, environ, request_time)
        for key in ("r", "U", "q", "f"):
            if isinstance(atoms.get(key), str):
                atoms[key] = redact(atoms[key])
        for key in _SECRET_HEADER_ATOMS & atoms.keys():
            atoms[key] = "[redacted]"
        return atoms


# Header atoms an access-log format could name ("%({authorization}i)s").
_SECRET_HEADER_ATOMS = frozenset(
    f"{{{name}}}{side}"
    for name in (
        "authorization",
        "cookie",
        "set-cookie",
        "webhook-signature",
        "x-shopify-hmac-sha256",
        "x-twilio-signature",
        "x-twilio-email-event-webhook-signature",
        "x-csrftoken",
    )
    for side in ("i", "o")
)
