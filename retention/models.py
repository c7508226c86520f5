"""Platform models: users, tenants, memberships with roles, API keys, audit log."""

from __future__ import annotations

import hashlib
import zoneinfo

from django.contrib.auth.models import AbstractUser, BaseUserManager
from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator
from django.db import models

from retention import clock
from retention.tenancy import TenantOwnedModel

TIMEZONE_CHOICES = sorted((tz, tz) for tz in zoneinfo.available_timezones())


def validate_timezone(value: str) -> None:
    if value not in zoneinfo.available_timezones():
        raise ValidationError(f"Unknown timezone {value!r}; use an IANA name like Europe/Berlin.")


class UserManager(BaseUserManager):
    use_in_migrations = True

    def create_user(self, email: str, password: str | None = None, **extra):
        if not email:
            raise ValueError("A user needs an email address.")
        user = self.model(email=self.normalize_email(email).lower(), **extra)
        user.set_password(password)
        user.save(using=self._db)
        return user

    def create_superuser(self, email: str, password: str | None = None, **extra):
        extra.update(is_staff=True, is_superuser=True)
        return self.create_user(email, password, **extra)


class User(AbstractUser):
    """A person who signs in: marketer, agent, owner or platform operator.
    Identified by email; which tenants they work in is in Membership."""

    username = None
    email = models.EmailField("email address", unique=True)

    USERNAME_FIELD = "email"
    REQUIRED_FIELDS: list[str] = []

    objects = UserManager()

    def __str__(self) -> str:
        return self.email


class Role(models.TextChoices):
    OWNER = "owner", "Owner"
    MARKETER = "marketer", "Marketer"
    AGENT = "agent", "Support agent"
    VIEWER = "viewer", "Viewer"


class Capability(models.TextChoices):
    """What a role may do. Admin screens and views name the capability they need."""

    VIEW = "view"  # read everything of the tenant
    CONFIGURE = "configure"  # journeys, templates, segments, experiments, customers
    WORK_CALLBACKS = "work_callbacks"  # the support callback queue
    MANAGE_TEAM = "manage_team"  # members, API keys, tenant settings, webhook secrets


ROLE_CAPABILITIES: dict[str, frozenset[str]] = {
    Role.OWNER: frozenset(Capability.values),
    Role.MARKETER: frozenset({Capability.VIEW, Capability.CONFIGURE, Capability.WORK_CALLBACKS}),
    Role.AGENT: frozenset({Capability.VIEW, Capability.WORK_CALLBACKS}),
    Role.VIEWER: frozenset({Capability.VIEW}),
}


slug_validator = RegexValidator(
    r"^[a-z0-9](?:[a-z0-9-]{0,48}[a-z0-9])?$",
    "Use 1-50 lower-case letters, digits and hyphens, not starting or ending with a hyphen.",
)


class Tenant(models.Model):
    """A store (or group of stores) using the platform."""

    slug = models.CharField(max_length=50, unique=True, validators=[slug_validator])
    name = models.CharField(max_length=200)
    timezone = models.CharField(
        max_length=64, default="UTC", choices=TIMEZONE_CHOICES, validators=[validate_timezone]
    )
    currency = models.CharField(
        max_length=3,
        default="USD",
        validators=[RegexValidator(r"^[A-Z]{3}$", "Use an ISO 4217 code such as EUR.")],
    )
    business_hours_start = models.TimeField(default="09:00")
    business_hours_end = models.TimeField(default="17:00")
    business_days = models.JSONField(
        default=list,
        blank=True,
        help_text="ISO weekdays the support team works, 1 = Monday … 7 = Sunday.",
    )
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=clock.now, editable=False)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        if self.business_days and not (
            isinstance(self.business_days, list)
            and all(isinstance(d, int) and 1 <= d <= 7 for d in self.business_days)
        ):
            raise ValidationError({"business_days": "List ISO weekdays 1-7, e.g. [1, 2, 3, 4, 5]."})
        if self.business_hours_end <= self.business_hours_start:
            raise ValidationError({"business_hours_end": "Must be after the start of business."})

    @property
    def tzinfo(self) -> zoneinfo.ZoneInfo:
        return zoneinfo.ZoneInfo(self.timezone)


class WebhookSecret(TenantOwnedModel):
    """A Standard Webhooks signing secret (``whsec_…``). Two or more may be active
    while a storefront rotates from the old one to the new one."""

    secret = models.CharField(max_length=100)
    created_at = models.DateTimeField(default=clock.now, editable=False)
    expires_at = models.DateTimeField(
        null=True, blank=True, help_text="After this time the secret no longer verifies."
    )

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["tenant", "-created_at"], name="whsecret_tenant_created")]

    def __str__(self) -> str:
        return f"{self.secret[:10]}… ({'active' if self.is_active() else 'expired'})"

    def is_active(self, at=None) -> bool:
        return self.expires_at is None or self.expires_at > (at or clock.now())


class Membership(TenantOwnedModel):
    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=20, choices=Role.choices)
    created_at = models.DateTimeField(default=clock.now, editable=False)

    class Meta:
        ordering = ["user__email"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "user"], name="membership_tenant_user_uniq")
        ]

    def __str__(self) -> str:
        return f"{self.user} ({self.get_role_display()})"

    def can(self, capability: str) -> bool:
        return capability in ROLE_CAPABILITIES.get(self.role, frozenset())


class ApiScope(models.TextChoices):
    READ = "read", "Read"
    WRITE = "write", "Write"


def hash_api_key(raw: str) -> str:
    # Keys carry 190+ bits of randomness, so a fast hash is safe and keeps
    # authentication cheap on every request.
    return hashlib.sha256(raw.encode()).hexdigest()


class ApiKey(TenantOwnedModel):
    """A storefront's credential for the REST API. Only a hash is stored; the key
    is shown once when issued. ``prefix`` identifies it in lists and logs."""

    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=16, unique=True, editable=False)
    key_hash = models.CharField(max_length=64, editable=False)
    scopes = models.JSONField(default=list)
    created_by = models.ForeignKey(
        User, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=clock.now, editable=False)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    revoked_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "API key"
        indexes = [models.Index(fields=["tenant", "-created_at"], name="apikey_tenant_created")]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None

    def has_scope(self, scope: str) -> bool:
        return scope in self.scopes


class AuditAction(models.TextChoices):
    CREATE = "create", "Created"
    UPDATE = "update", "Changed"
    DELETE = "delete", "Deleted"
    ACTION = "action", "Action"


class AuditEntry(TenantOwnedModel):
    """Who (a user or an API key) created, changed or deleted what, per tenant."""

    at = models.DateTimeField(default=clock.now, editable=False)
    actor_user = models.ForeignKey(
        User, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    actor_api_key = models.ForeignKey(
        ApiKey, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    action = models.CharField(max_length=10, choices=AuditAction.choices)
    object_type = models.CharField(max_length=100, help_text="app_label.model")
    object_id = models.CharField(max_length=64)
    object_repr = models.CharField(max_length=200)
    changes = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-at", "-id"]
        verbose_name = "audit log entry"
        verbose_name_plural = "audit log"
        indexes = [
            models.Index(fields=["tenant", "-at"], name="audit_tenant_at"),
            models.Index(fields=["tenant", "object_type", "object_id"], name="audit_tenant_object"),
        ]

    def __str__(self) -> str:
        return f"{self.get_action_display()} {self.object_type} {self.object_repr}"

    @property
    def actor(self) -> str:
        if self.actor_user_id:
            return str(self.actor_user)
        if self.actor_api_key_id:
            return f"API key {self.actor_api_key}"
        return "system"
