"""Example rule segments for the demo store (``make demo`` runs it after the seed)."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from retention.models import Tenant
from segments.models import Segment
from segments.services.memberships import segment_refresh, segment_save

EXAMPLES = [
    {
        "name": "Lapsing repeat buyers",
        "slug": "lapsing-repeat-buyers",
        "description": "Bought at least twice, nothing in the last 60 days: win them back.",
        "match": "all",
        "conditions": [
            {"field": "orders_total", "op": "gte", "value": 2},
            {"field": "days_since_last_order", "op": "gte", "value": 60},
        ],
    },
    {
        "name": "Coffee buyers due a refill",
        "slug": "coffee-refill",
        "description": "Bought coffee, but not in the last 21 days (one bag lasts about that).",
        "match": "all",
        "conditions": [
            {"field": "family_bought", "op": "eq", "value": "coffee"},
            {"field": "family_not_bought", "op": "eq", "value": "coffee", "within_days": 21},
        ],
    },
    {
        "name": "Recent one-time buyers we may email",
        "slug": "recent-one-timers-emailable",
        "description": "One order in the last 30 days and email consent: the welcome series.",
        "match": "all",
        "conditions": [
            {"field": "tier", "op": "in", "value": ["one_time"]},
            {"field": "days_since_last_order", "op": "lte", "value": 30},
            {"field": "consent", "op": "eq", "value": {"channel": "email", "status": "opted_in"}},
        ],
    },
    {
        "name": "Clicked an email this month",
        "slug": "clicked-this-month",
        "description": "Engaged with a message in the last 30 days.",
        "match": "all",
        "conditions": [
            {
                "field": "touchpoint",
                "op": "has",
                "value": {"kind": "message.clicked", "within_days": 30},
            }
        ],
    },
]


class Command(BaseCommand):
    help = "Create the example rule segments in a tenant (skips those that exist) and fill them."

    def add_arguments(self, parser):
        parser.add_argument("--tenant", default="demo", help="Tenant slug (default demo)")

    def handle(self, *args, **opts):
        tenant = Tenant.objects.filter(slug=opts["tenant"]).first()
        if tenant is None:
            raise CommandError(f"No tenant with slug {opts['tenant']!r}.")
        for example in EXAMPLES:
            segment = Segment.objects.for_tenant(tenant).filter(slug=example["slug"]).first()
            if segment is None:
                segment = segment_save(tenant=tenant, data=example)  # fills it after commit
            else:
                segment_refresh(segment, cause="refresh")
            segment.refresh_from_db()
            self.stdout.write(f"  {segment.name:<40} {segment.member_count:>7,} members")
