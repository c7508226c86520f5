"""Resolve the tenant of a signed-in person once per request.

A person may work in several tenants; the session remembers which one they
chose (``/tenant/switch/``) and falls back to their first membership. The API
(API keys) and webhooks (URL slug) resolve their tenant in their own entry
points, not here.
"""

from __future__ import annotations

from django.http import HttpRequest

from retention.models import Membership, Tenant
from retention.selectors import memberships_of

SESSION_KEY = "tenant_id"


class TenantSessionMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest):
        request.tenant = None
        request.membership = None
        request.memberships = []
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            resolve_session_tenant(request)
        return self.get_response(request)


def resolve_session_tenant(request: HttpRequest) -> None:
    memberships = memberships_of(user=request.user)
    request.memberships = memberships
    wanted = request.session.get(SESSION_KEY)
    chosen: Membership | None = next((m for m in memberships if m.tenant_id == wanted), None)
    if chosen is None and request.user.is_superuser and wanted:
        # Operators may look at any tenant without being a member of it.
        request.tenant = Tenant.objects.filter(pk=wanted).first()
        return
    if chosen is None and memberships:
        chosen = memberships[0]
    if chosen is not None:
        request.membership = chosen
        request.tenant = chosen.tenant


def tenant_context(request: HttpRequest) -> dict:
    """Template context: the current tenant and the ones the person may switch to."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    if user.is_superuser:
        choices = list(Tenant.objects.order_by("name").values_list("pk", "name"))
    else:
        choices = [(m.tenant_id, m.tenant.name) for m in getattr(request, "memberships", [])]
    return {
        "current_tenant": getattr(request, "tenant", None),
        "current_membership": getattr(request, "membership", None),
        "tenant_choices": choices,
    }
