"""Create (once) the demo tenant and its owner login; safe to run again."""

from django.core.management.base import BaseCommand

from retention.models import Role
from retention.selectors import tenant_by_slug
from retention.services import membership_add, tenant_create

DEMO_SLUG = "demo"
DEMO_EMAIL = "owner@demo.example"
DEMO_PASSWORD = "demo-retention-2026"  # noqa: S105 - a local demo login, printed on purpose


class Command(BaseCommand):
    help = "Create the demo tenant and an owner login for it (idempotent)."

    def add_arguments(self, parser):
        parser.add_argument("--host", default="http://127.0.0.1:8000")

    def handle(self, *args, **opts):
        tenant = tenant_by_slug(slug=DEMO_SLUG)
        if tenant is None:
            created = tenant_create(
                slug=DEMO_SLUG, name="Demo Store", timezone="Europe/Berlin", currency="EUR"
            )
            tenant = created.tenant
            self.stdout.write(f"Demo webhook secret: {created.webhook_secret}")
            self.stdout.write(f"Demo API key:        {created.api_key}")
        membership_add(tenant=tenant, email=DEMO_EMAIL, role=Role.OWNER, password=DEMO_PASSWORD)
        self.stdout.write(
            self.style.SUCCESS(
                f"\nAdmin:    {opts['host']}/admin/\nUser:     {DEMO_EMAIL}\n"
                f"Password: {DEMO_PASSWORD}\nAPI docs: {opts['host']}/api/v1/docs/\n"
            )
        )
