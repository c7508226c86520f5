"""Example messaging for the demo store (``make demo`` runs it after the seed)."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from messaging.models import Reason, Status
from messaging.services.demo import messaging_demo
from retention.errors import InvalidInput
from retention.selectors import tenant_by_slug


class Command(BaseCommand):
    help = (
        "Give a tenant example messaging: a sender identity (blank fields only), five "
        "templates, and messages to up to 20 customers with orders, run through the real "
        "send path. Running it again adds nothing."
    )

    def add_arguments(self, parser):
        parser.add_argument("--tenant", required=True, metavar="SLUG")

    def handle(self, *args, **opts):
        slug = opts["tenant"]
        tenant = tenant_by_slug(slug=slug)
        if tenant is None:
            raise CommandError(
                f"Unknown tenant {slug!r}: create it first with `manage.py create_tenant {slug}`."
            )
        try:
            result = messaging_demo(tenant=tenant)
        except InvalidInput as exc:
            raise CommandError(f"Demo messaging for {slug!r}: {exc}") from exc

        filled = ", ".join(result["settings_filled"]) or "already set, kept"
        self.stdout.write(f"Demo messaging for {tenant.name} ({tenant.slug})")
        self.stdout.write(f"  sender      {filled}")
        self.stdout.write(
            f"  templates   {result['templates_created']} created, "
            f"{result['templates'] - result['templates_created']} already there"
        )
        self.stdout.write(
            f"  messages    {result['messages_created']} new, "
            f"{sum(n for *_, n in result['outcomes'])} in all, "
            f"for {result['customers']} customers with orders"
        )
        if result["skipped_channels"]:
            self.stdout.write(
                f"  left out    {', '.join(result['skipped_channels'])}: a provider is configured "
                "and the demo addresses are made up"
            )
        if not result["customers"]:
            self.stdout.write(f"  no customers with orders yet: run seed_demo --tenant {slug}")
        self.stdout.write("  outbox after the send path:")
        for status, reason, n in result["outcomes"]:
            why = f"  {Reason(reason).label}" if reason else ""
            self.stdout.write(f"    {Status(status).label:<12} {n:>5}{why}")
        self.stdout.write(
            self.style.SUCCESS(
                "See them in the admin: /admin/messaging/message/ "
                "(templates: /admin/messaging/template/)"
            )
        )
