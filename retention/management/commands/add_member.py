"""Add a person to a tenant's team with a role, creating the user if needed."""

from django.core.management.base import BaseCommand, CommandError

from retention.errors import DomainError
from retention.models import Role
from retention.selectors import tenant_by_slug
from retention.services import membership_add


class Command(BaseCommand):
    help = "Add a person to a tenant with a role (owner, marketer, agent, viewer)."

    def add_arguments(self, parser):
        parser.add_argument("email")
        parser.add_argument("--tenant", required=True, help="Tenant slug")
        parser.add_argument("--role", required=True, choices=Role.values)
        parser.add_argument("--password", help="Set this password (else the user sets one later)")

    def handle(self, *args, **opts):
        tenant = tenant_by_slug(slug=opts["tenant"])
        if tenant is None:
            raise CommandError(f"No active tenant with slug {opts['tenant']!r}.")
        try:
            membership, created = membership_add(
                tenant=tenant, email=opts["email"], role=opts["role"], password=opts["password"]
            )
        except DomainError as exc:
            raise CommandError(exc.message) from exc
        verb = "Created user and added" if created else "Added"
        self.stdout.write(
            self.style.SUCCESS(
                f"{verb} {membership.user.email} to {tenant.slug} as {membership.role}."
            )
        )
        if created and not opts["password"]:
            self.stdout.write(
                "No password set: run `manage.py changepassword "
                f"{membership.user.email}` to set one."
            )
