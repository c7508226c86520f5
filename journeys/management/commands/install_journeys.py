"""Install the shipped journeys (and their templates) in existing tenants.

New tenants get them when they are created; this is for tenants made before a
journey was shipped. A journey is installed once per tenant by its key, so
running it again, or after a marketer edited or archived a shipped journey,
changes nothing.
"""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from journeys.defaults import JOURNEYS
from journeys.services.setup import journeys_install_defaults
from retention.models import Tenant
from retention.selectors import tenant_by_slug


class Command(BaseCommand):
    help = (
        "Install the shipped journeys a tenant does not have yet (active, with their "
        "templates): --tenant SLUG for one, --all for every tenant."
    )

    def add_arguments(self, parser):
        which = parser.add_mutually_exclusive_group(required=True)
        which.add_argument("--tenant", metavar="SLUG", help="Tenant slug")
        which.add_argument("--all", action="store_true", help="Every tenant")

    def handle(self, *args, **opts):
        if opts["all"]:
            tenants = list(Tenant.objects.order_by("slug"))
        else:
            tenant = tenant_by_slug(slug=opts["tenant"])
            if tenant is None:
                raise CommandError(f"No tenant with slug {opts['tenant']!r}.")
            tenants = [tenant]
        total = 0
        for tenant in tenants:
            installed = journeys_install_defaults(tenant=tenant)
            total += installed
            self.stdout.write(
                f"{tenant.slug}: {installed} of {len(JOURNEYS)} shipped journeys installed"
                + ("" if installed else " (all present)")
            )
        self.stdout.write(
            self.style.SUCCESS(f"Installed {total} journeys in {len(tenants)} tenants")
        )
