"""Health probes and the tenant switcher."""

from __future__ import annotations

import logging

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.db import connections
from django.http import HttpRequest, HttpResponseRedirect, JsonResponse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST

from retention.errors import json_error
from retention.middleware import SESSION_KEY

logger = logging.getLogger(__name__)


@never_cache
def healthz(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


def _check_database() -> str | None:
    try:
        with connections["default"].cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:  # any driver error means "not ready"
        connections["default"].close_if_unusable_or_obsolete()
        return f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc) else ''}"
    return None


def _check_broker() -> str | None:
    if not settings.REDIS_URL:
        return None  # embedded default: tasks run in-process, no broker to reach
    import redis

    try:
        client = redis.Redis.from_url(
            settings.REDIS_URL, socket_connect_timeout=2, socket_timeout=2
        )
        client.ping()
        client.close()
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


@never_cache
def readyz(request: HttpRequest) -> JsonResponse:
    checks = {"database": _check_database(), "broker": _check_broker()}
    failed = {name: err for name, err in checks.items() if err}
    if failed:
        logger.warning("health.not_ready failed=%s", ",".join(sorted(failed)))
        return JsonResponse(
            {"status": "unavailable", "failed": sorted(failed), "errors": failed}, status=503
        )
    broker = "ok" if settings.REDIS_URL else "in-process (no broker configured)"
    return JsonResponse({"status": "ok", "checks": {"database": "ok", "broker": broker}})


@login_required
@require_POST
def tenant_switch(request: HttpRequest):
    """Make another of the person's tenants the current one for this session."""
    raw = request.POST.get("tenant", "")
    if raw == "" and request.user.is_superuser:
        request.session.pop(SESSION_KEY, None)  # operator: back to all stores
        return HttpResponseRedirect("/admin/")
    try:
        wanted = int(raw)
    except ValueError:
        return json_error(400, "invalid", "Choose a tenant.")
    allowed = {m.tenant_id for m in request.memberships}
    if wanted not in allowed and not request.user.is_superuser:
        return json_error(404, "not_found", "No such tenant.")
    request.session[SESSION_KEY] = wanted
    nxt = request.POST.get("next") or "/admin/"
    if not url_has_allowed_host_and_scheme(nxt, allowed_hosts={request.get_host()}):
        nxt = "/admin/"
    return HttpResponseRedirect(nxt)
