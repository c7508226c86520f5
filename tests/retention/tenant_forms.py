"""What the tenant settings page posts, for tests that save it as an owner would."""

from __future__ import annotations

from django.urls import reverse

from retention.models import Tenant


def tenant_settings_url(tenant: Tenant) -> str:
    return reverse("admin:retention_tenant_change", args=[tenant.pk])


def tenant_settings_post(tenant: Tenant, **changes) -> dict:
    """The owner's form for ``tenant`` as it stands, with ``changes``."""
    tenant.refresh_from_db()
    data = {
        "name": tenant.name,
        "timezone": tenant.timezone,
        "currency": tenant.currency,
        "business_hours_start": tenant.business_hours_start.strftime("%H:%M"),
        "business_hours_end": tenant.business_hours_end.strftime("%H:%M"),
        "business_days": [str(d) for d in tenant.business_days],
        "_save": "Save",
    }
    data.update(changes)
    return data
