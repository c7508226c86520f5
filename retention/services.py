"""Writes for the platform: tenants, members, API keys, webhook secrets, audit."""

from __future__ import annotations

import base64
import logging
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import models, transaction

from retention import clock
from retention.errors import Conflict, InvalidInput
from retention.models import (
    ApiKey,
    ApiScope,
    AuditAction,
    AuditEntry,
    Membership,
    Role,
    Tenant,
    User,
    WebhookSecret,
    hash_api_key,
)

logger = logging.getLogger(__name__)

SECRET_FIELD_NAMES = frozenset({"password", "secret", "key_hash", "token"})


# --- tenants -----------------------------------------------------------------


@dataclass(frozen=True)
class TenantCreated:
    tenant: Tenant
    webhook_secret: str
    api_key: str


def tenant_create(
    *,
    slug: str,
    name: str = "",
    timezone: str = "UTC",
    currency: str = "USD",
    owner_email: str | None = None,
) -> TenantCreated:
    """Create a tenant with its defaults, a webhook signing secret and an API key.
    The raw secret and key are returned once and never stored in the clear
    (the webhook secret is kept because verifying HMACs needs it)."""
    tenant = Tenant(
        slug=slug,
        name=name or slug.replace("-", " ").title(),
        timezone=timezone,
        currency=currency,
        business_days=[1, 2, 3, 4, 5],
    )
    try:
        tenant.full_clean()
    except DjangoValidationError as exc:
        if "slug" in exc.message_dict and Tenant.objects.filter(slug=slug).exists():
            raise Conflict(f"A tenant with slug {slug!r} already exists.", code="exists") from exc
        raise InvalidInput("The tenant is not valid.", fields=exc.message_dict) from exc

    with transaction.atomic():
        tenant.save()
        secret = webhook_secret_create(tenant=tenant)
        raw_key = api_key_issue(tenant=tenant, name="Default key", scopes=list(ApiScope.values))[1]
        if owner_email:
            membership_add(tenant=tenant, email=owner_email, role=Role.OWNER)
        for hook in TENANT_CREATED_HOOKS:
            hook(tenant)
    logger.info("tenancy.tenant_created tenant_id=%s slug=%s", tenant.pk, tenant.slug)
    return TenantCreated(tenant=tenant, webhook_secret=secret.secret, api_key=raw_key)


# Later apps register their per-tenant defaults here (shipped journeys, templates,
# survey settings…) so a new tenant is complete without retention/ knowing them.
TENANT_CREATED_HOOKS: list = []


def webhook_secret_create(*, tenant: Tenant) -> WebhookSecret:
    raw = base64.b64encode(secrets.token_bytes(32)).decode()
    return WebhookSecret.objects.create(tenant=tenant, secret=f"whsec_{raw}")


def webhook_secret_rotate(
    *, tenant: Tenant, overlap: timedelta = timedelta(days=7)
) -> WebhookSecret:
    """Issue a new secret; the ones active now keep verifying for ``overlap``."""
    expires = clock.now() + overlap
    with transaction.atomic():
        WebhookSecret.objects.for_tenant(tenant).filter(
            models.Q(expires_at__isnull=True) | models.Q(expires_at__gt=expires)
        ).update(expires_at=expires)
        return webhook_secret_create(tenant=tenant)


# --- members -----------------------------------------------------------------


def membership_add(
    *, tenant: Tenant, email: str, role: str, password: str | None = None
) -> tuple[Membership, bool]:
    """Add a person to a tenant with a role, creating the user if needed.
    Returns (membership, user_created). An existing member gets the new role."""
    if role not in Role.values:
        raise InvalidInput(
            f"Unknown role {role!r}.", fields={"role": [f"Choose one of {', '.join(Role.values)}."]}
        )
    email = email.strip().lower()
    try:
        models.EmailField().clean(email, None)
    except DjangoValidationError as exc:
        raise InvalidInput("Not a valid email address.", fields={"email": exc.messages}) from exc

    with transaction.atomic():
        user = User.objects.filter(email=email).first()
        created = user is None
        if created:
            user = User.objects.create_user(email=email, password=password, is_staff=True)
        else:
            update = ["is_staff"]
            user.is_staff = True
            if password:
                user.set_password(password)
                update.append("password")
            user.save(update_fields=update)
        membership, _ = Membership.objects.update_or_create(
            tenant=tenant, user=user, defaults={"role": role}
        )
    return membership, created


# --- API keys ----------------------------------------------------------------


def api_key_issue(
    *, tenant: Tenant, name: str, scopes: list[str], created_by: User | None = None
) -> tuple[ApiKey, str]:
    """Create an API key; returns the row and the raw key, which is shown once."""
    unknown = set(scopes) - set(ApiScope.values)
    if unknown or not scopes:
        raise InvalidInput(
            "Invalid scopes.", fields={"scopes": [f"Choose from {', '.join(ApiScope.values)}."]}
        )
    prefix = f"rk_{secrets.token_hex(5)}"
    raw = f"{prefix}.{secrets.token_urlsafe(32)}"
    key = ApiKey.objects.create(
        tenant=tenant,
        name=name,
        prefix=prefix,
        key_hash=hash_api_key(raw),
        scopes=sorted(set(scopes)),
        created_by=created_by,
    )
    return key, raw


def api_key_revoke(*, key: ApiKey) -> None:
    ApiKey.objects.for_tenant(key.tenant_id).filter(pk=key.pk, revoked_at__isnull=True).update(
        revoked_at=clock.now()
    )


LAST_USED_GRANULARITY = timedelta(minutes=1)


def api_key_touch(*, key: ApiKey) -> None:
    """Record use at most once a minute, so the hot path does not write every request."""
    now = clock.now()
    if key.last_used_at and now - key.last_used_at < LAST_USED_GRANULARITY:
        return
    ApiKey.objects.for_tenant(key.tenant_id).filter(pk=key.pk).filter(
        models.Q(last_used_at__isnull=True) | models.Q(last_used_at__lt=now - LAST_USED_GRANULARITY)
    ).update(last_used_at=now)


# --- audit -------------------------------------------------------------------


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, models.Model):
        return str(value)
    if isinstance(value, models.QuerySet):
        return [str(v) for v in value]
    return str(value)


def audit_changes(before: dict[str, Any], after: dict[str, Any]) -> dict[str, list[Any]]:
    """{field: [old, new]} for fields whose value differs; secrets are masked."""
    out = {}
    for field in sorted(set(before) | set(after)):
        old, new = before.get(field), after.get(field)
        if old == new:
            continue
        if field in SECRET_FIELD_NAMES:
            out[field] = ["***", "***"]
        else:
            out[field] = [_jsonable(old), _jsonable(new)]
    return out


def audit_record(
    *,
    tenant: Tenant | int,
    action: str,
    obj: models.Model,
    changes: dict[str, Any] | None = None,
    user: User | None = None,
    api_key: ApiKey | None = None,
) -> AuditEntry:
    if action not in AuditAction.values:
        raise ValueError(f"unknown audit action {action!r}")
    tenant_id = tenant if isinstance(tenant, int) else tenant.pk
    return AuditEntry.objects.create(
        tenant_id=tenant_id,
        action=action,
        object_type=obj._meta.label_lower,
        object_id=str(obj.pk),
        object_repr=str(obj)[:200],
        changes=changes or {},
        actor_user=user if user and user.is_authenticated else None,
        actor_api_key=api_key,
    )
