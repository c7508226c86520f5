"""Fixed-window rate limits on the doors people and machines knock on.

One counter per (rule, who, window) in Django's cache (Redis when REDIS_URL is
set, so every web process shares it; in-process memory otherwise). Time is read
from :mod:`retention.clock`, so tests move to the next window instead of sleeping.

| rule | who | applies to |
|---|---|---|
| ``login`` | client IP + username | ``POST /admin/login/`` |
| ``api`` | API key (its hash), or client IP without one | ``/api/v1/…`` |
| ``pages`` | client IP | shopper pages ``/o/``, ``/s/``, ``/u/`` |

Limits are ``RATELIMITS`` in settings (``"count/seconds"``, env overrides
``RATELIMIT_LOGIN``, ``RATELIMIT_API``, ``RATELIMIT_PAGES``). A request over
its limit answers 429 with ``Retry-After``: JSON for the API, HTML for pages.
If the cache is unreachable the limiter lets requests through (fail open):
losing a rate limit for a minute is better than refusing every storefront.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest, HttpResponse
from django.template.loader import render_to_string

from retention import clock
from retention.errors import json_error

logger = logging.getLogger(__name__)

SHOPPER_PREFIXES = ("/o/", "/s/", "/u/")
API_PREFIX = "/api/v1/"
# The schema and docs are static pages for people; they need no API key.
API_EXEMPT = ("/api/v1/schema/", "/api/v1/docs/")


@dataclass(frozen=True)
class Limit:
    count: int
    seconds: int

    @classmethod
    def parse(cls, text: str) -> Limit:
        """``"10/900"`` → 10 requests per 900 seconds."""
        count, _, seconds = str(text).partition("/")
        limit = cls(int(count), int(seconds or 60))
        if limit.count < 1 or limit.seconds < 1:
            raise ValueError(f"a rate limit needs a positive count and period: {text!r}")
        return limit


@dataclass(frozen=True)
class Decision:
    allowed: bool
    retry_after: int = 0


def limit_for(rule: str) -> Limit | None:
    if not getattr(settings, "RATELIMIT_ENABLED", True):
        return None
    text = settings.RATELIMITS.get(rule)
    return Limit.parse(text) if text else None


def hit(rule: str, who: str) -> Decision:
    """Count one request of ``who`` under ``rule``; say whether it may go on."""
    limit = limit_for(rule)
    if limit is None:
        return Decision(True)
    now = int(clock.now().timestamp())
    window = now // limit.seconds
    digest = hashlib.sha256(who.encode()).hexdigest()[:32]
    prefix = getattr(settings, "RATELIMIT_KEY_PREFIX", "rl")
    key = f"{prefix}:{rule}:{digest}:{window}"
    try:
        # add() is a no-op when the key exists; incr() is atomic in Redis.
        cache.add(key, 0, timeout=limit.seconds + 1)
        count = cache.incr(key)
    except Exception:  # the cache is down: fail open, and say so
        logger.warning("retention.ratelimit_unavailable rule=%s", rule)
        return Decision(True)
    if count <= limit.count:
        return Decision(True)
    return Decision(False, retry_after=max(1, (window + 1) * limit.seconds - now))


def client_ip(request: HttpRequest) -> str:
    """The client's address; behind a proxy that appends to X-Forwarded-For
    (RATELIMIT_TRUST_X_FORWARDED_FOR), the address that proxy saw."""
    if getattr(settings, "RATELIMIT_TRUST_X_FORWARDED_FOR", False):
        forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
        last = forwarded.split(",")[-1].strip()
        if last:
            return last
    return request.META.get("REMOTE_ADDR", "") or "unknown"


def _api_who(request: HttpRequest) -> str:
    header = request.META.get("HTTP_AUTHORIZATION", "")
    keyword, _, raw = header.partition(" ")
    if keyword == "Bearer" and raw.strip():
        return "key:" + raw.strip()
    return "ip:" + client_ip(request)


def rule_for(request: HttpRequest) -> tuple[str, str] | None:
    """The rule and the identity a request is counted under, or None."""
    path = request.path
    if path.startswith(API_PREFIX):
        return None if path.startswith(API_EXEMPT) else ("api", _api_who(request))
    if path.startswith(SHOPPER_PREFIXES):
        return "pages", client_ip(request)
    if request.method == "POST" and path == settings.LOGIN_URL:
        username = request.POST.get("username", "").strip().lower()[:150]
        return "login", f"{client_ip(request)}|{username}"
    return None


def too_many(request: HttpRequest, retry_after: int) -> HttpResponse:
    message = f"Too many requests. Try again in {retry_after} seconds."
    if request.path.startswith(API_PREFIX):
        response = json_error(429, "rate_limited", message)
    else:
        response = HttpResponse(
            render_to_string(
                "rate_limited.html", {"retry_after": retry_after, "message": message}, request
            ),
            status=429,
        )
    response["Retry-After"] = str(retry_after)
    return response


class RateLimitMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest):
        rule = rule_for(request)
        if rule is not None:
            decision = hit(*rule)
            if not decision.allowed:
                # No path: shopper page paths carry signed tokens.
                logger.info(
                    "retention.rate_limited rule=%s retry_after=%s", rule[0], decision.retry_after
                )
                return too_many(request, decision.retry_after)
        return self.get_response(request)
