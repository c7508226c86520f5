"""Arguments the scoring commands share: the tenant and an as-of date."""

from __future__ import annotations

from datetime import datetime, time
from zoneinfo import ZoneInfo

from django.core.management.base import CommandError

from retention.models import Tenant


def tenant_arg(slug: str) -> Tenant:
    tenant = Tenant.objects.filter(slug=slug).first()
    if tenant is None:
        raise CommandError(f"No tenant with slug {slug!r}.")
    return tenant


def as_of_arg(value: str | None, tenant: Tenant) -> datetime | None:
    """``YYYY-MM-DD`` is midnight at the start of that day in the store's
    timezone; a full ISO time with an offset is taken as given."""
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise CommandError(f"--as-of {value!r} is not a date (use YYYY-MM-DD).") from exc
    zone = ZoneInfo(tenant.timezone or "UTC")
    if len(value) == 10:
        return datetime.combine(parsed.date(), time(0), tzinfo=zone)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=zone)


def horizon_arg(value: int | None) -> int | None:
    if value is not None and not 1 <= value <= 730:
        raise CommandError("--horizon-days must be between 1 and 730.")
    return value
