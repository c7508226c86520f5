"""Reads for the platform: resolving the tenant of a request, a key or a user."""

from __future__ import annotations

import hmac

from retention.models import ApiKey, Membership, Tenant, User, hash_api_key


def tenant_by_slug(*, slug: str) -> Tenant | None:
    return Tenant.objects.filter(slug=slug, is_active=True).first()


def memberships_of(*, user: User) -> list[Membership]:
    """Every tenant a person works in. Cross-tenant by nature: this is how a
    session finds which tenants it may act for."""
    if not user.is_authenticated:
        return []
    return list(
        Membership.objects.unscoped()
        .filter(user=user, tenant__is_active=True)
        .select_related("tenant")
        .order_by("tenant__name")
    )


def api_key_authenticate(*, raw: str) -> ApiKey | None:
    """The active key matching ``raw``, or None. Looks up by the visible prefix
    (unique across tenants: the key is what tells us the tenant) and compares
    hashes in constant time."""
    prefix, _, rest = raw.partition(".")
    if not prefix or not rest or len(raw) > 200:
        return None
    key = (
        ApiKey.objects.unscoped()
        .select_related("tenant")
        .filter(prefix=prefix, revoked_at__isnull=True, tenant__is_active=True)
        .first()
    )
    if key is None or not hmac.compare_digest(key.key_hash, hash_api_key(raw)):
        return None
    return key
