"""Create a tenant and print its webhook signing secret and API key (once)."""

import json

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from commerce.shopify import shopify_secret_set
from retention.errors import DomainError
from retention.services import tenant_create


class Command(BaseCommand):
    help = (
        "Create a tenant with its defaults. Prints the webhook signing secret and a new "
        "API key once; store them now, they are not shown again."
    )

    def add_arguments(self, parser):
        parser.add_argument("slug", help="URL name, e.g. acme-shop (lower case, digits, hyphens)")
        parser.add_argument("--name", default="", help="Display name (default from the slug)")
        parser.add_argument("--timezone", default="UTC", help="IANA timezone, e.g. Europe/Berlin")
        parser.add_argument("--currency", default="USD", help="ISO 4217 code, e.g. EUR")
        parser.add_argument("--owner", metavar="EMAIL", help="Add this person as owner")
        parser.add_argument(
            "--shopify-secret",
            metavar="S",
            default="",
            help="The Shopify app's webhook secret, to accept /hooks/<slug>/shopify/",
        )
        parser.add_argument("--json", action="store_true", help="Print JSON")

    def handle(self, *args, **opts):
        try:
            with transaction.atomic():
                created = tenant_create(
                    slug=opts["slug"],
                    name=opts["name"],
                    timezone=opts["timezone"],
                    currency=opts["currency"],
                    owner_email=opts["owner"],
                )
                if opts["shopify_secret"]:
                    shopify_secret_set(tenant=created.tenant, secret=opts["shopify_secret"])
        except DomainError as exc:
            detail = "; ".join(f"{k}: {' '.join(v)}" for k, v in exc.fields.items())
            raise CommandError(f"{exc.message}{' ' + detail if detail else ''}") from exc
        out = {
            "slug": created.tenant.slug,
            "webhook_secret": created.webhook_secret,
            "api_key": created.api_key,
        }
        if opts["json"]:
            self.stdout.write(json.dumps(out))
            return
        self.stdout.write(
            self.style.SUCCESS(f"Created tenant {created.tenant.name} ({out['slug']})")
        )
        self.stdout.write(f"Webhook URL:            /hooks/{out['slug']}/")
        self.stdout.write(f"Webhook signing secret: {out['webhook_secret']}")
        if opts["shopify_secret"]:
            self.stdout.write(f"Shopify webhook URL:    /hooks/{out['slug']}/shopify/")
        self.stdout.write(f"API key:                {out['api_key']}")
        self.stdout.write("Store the secret and the key now; they are not shown again.")
