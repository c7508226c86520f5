"""Messaging: the outbox every email, SMS and in-app message goes through, the
templates they are rendered from, the suppression list, per-tenant messaging
settings, and provider callback events (stored once each, by event id).

Consent itself is commerce's ``ChannelConsent`` (one customer picture); this app
enforces it, with suppressions, quiet hours and the frequency cap, at send time.
"""

from __future__ import annotations

from datetime import time

from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q

from commerce.models import Channel, Customer
from retention import clock
from retention.tenancy import TenantOwnedModel


class Category(models.TextChoices):
    MARKETING = "marketing", "Marketing"
    TRANSACTIONAL = "transactional", "Transactional"
    TEST = "test", "Test send to staff"
    STAFF = "staff", "Report to the store's team"


# Sends to the store's own people (no customer, no consent or quiet hours).
STAFF_CATEGORIES = (Category.TEST, Category.STAFF)


class Status(models.TextChoices):
    QUEUED = "queued", "Queued"
    DEFERRED = "deferred", "Deferred (quiet hours or retry)"
    SENDING = "sending", "Sending"
    UNKNOWN = "unknown", "Unknown (provider call timed out)"
    SENT = "sent", "Sent"
    DELIVERED = "delivered", "Delivered"
    OPENED = "opened", "Opened"
    CLICKED = "clicked", "Clicked"
    BOUNCED = "bounced", "Bounced"
    SUPPRESSED = "suppressed", "Suppressed"
    FAILED = "failed", "Failed"


# A status only moves to a higher rank (a late or replayed callback never undoes
# a newer state). Equal ranks do not replace each other: bounced and delivered
# are two outcomes of one send, whichever is reported first stands; suppressed
# and failed are final.
STATUS_RANK: dict[str, int] = {
    Status.QUEUED: 0,
    Status.DEFERRED: 0,
    Status.SENDING: 1,
    Status.UNKNOWN: 2,
    Status.SENT: 3,
    Status.DELIVERED: 4,
    Status.BOUNCED: 4,
    Status.OPENED: 5,
    Status.CLICKED: 6,
    Status.SUPPRESSED: 9,
    Status.FAILED: 9,
}
PENDING = (Status.QUEUED, Status.DEFERRED)
# Counted by the frequency cap: the provider has (or may have) the message.
SENT_LIKE = (
    Status.UNKNOWN,
    Status.SENT,
    Status.DELIVERED,
    Status.OPENED,
    Status.CLICKED,
    Status.BOUNCED,
)


def statuses_below(status: str) -> list[str]:
    """The statuses a message may move from to reach ``status``."""
    rank = STATUS_RANK[status]
    return [s for s, r in STATUS_RANK.items() if r < rank]


class Reason(models.TextChoices):
    """Why a message did not go out (or not yet)."""

    NONE = "", "—"
    NO_PROVIDER = "no_provider", "Outbox only: no provider key set"
    NO_ADDRESS = "no_address", "No address for the channel"
    NO_CONSENT = "no_consent", "No consent for the channel"
    OPTED_OUT = "opted_out", "Opted out of the channel"
    SUPPRESSED = "suppressed", "Address on the suppression list"
    FREQUENCY_CAP = "frequency_cap", "Frequency cap reached"
    QUIET_HOURS = "quiet_hours", "Quiet hours in the customer's timezone"
    TRANSIENT = "transient", "Provider error, retrying"
    PERMANENT = "permanent", "Provider refused the message"
    RETRIES_EXHAUSTED = "retries_exhausted", "Provider kept failing"
    TIMEOUT = "timeout", "Provider call timed out; waiting for its callback"
    WORKER_LOST = "worker_lost", "Worker stopped during the provider call"
    BOUNCE = "bounce", "Bounced"
    DROPPED = "dropped", "Dropped by the provider"
    CUSTOMER_GONE = "customer_gone", "Customer no longer exists"


class MessagingSettings(TenantOwnedModel):
    """Per-tenant sender identity and pacing (one row per tenant)."""

    from_email = models.EmailField(blank=True, default="", help_text="Sender address for email.")
    from_name = models.CharField(max_length=100, blank=True, default="")
    reply_to = models.EmailField(blank=True, default="")
    sms_from = models.CharField(
        max_length=20,
        blank=True,
        default="",
        help_text="The store's SMS number (E.164). Inbound SMS find their store by it.",
    )
    sms_help_text = models.CharField(
        max_length=320,
        blank=True,
        default="Reply STOP to unsubscribe, START to resubscribe. Msg&data rates may apply.",
        help_text="The answer to a HELP reply.",
    )
    postal_address = models.CharField(
        max_length=300, blank=True, default="", help_text="Printed in marketing email footers."
    )
    quiet_hours_enabled = models.BooleanField(default=True)
    quiet_start = models.TimeField(
        default=time(21, 0), help_text="Local time in the customer's timezone."
    )
    quiet_end = models.TimeField(default=time(8, 0))
    frequency_cap = models.PositiveSmallIntegerField(
        default=3,
        validators=[MinValueValidator(1), MaxValueValidator(100)],
        help_text="At most this many marketing email/SMS per customer …",
    )
    frequency_cap_days = models.PositiveSmallIntegerField(
        default=7, validators=[MinValueValidator(1), MaxValueValidator(90)], help_text="… per days."
    )
    email_requires_opt_in = models.BooleanField(
        default=True,
        help_text=(
            "Marketing email only to customers who opted in (GDPR). Off: also to customers "
            "whose consent is unknown (never to those who opted out)."
        ),
    )

    class Meta:
        verbose_name = "messaging settings"
        verbose_name_plural = "messaging settings"
        constraints = [
            models.UniqueConstraint(fields=["tenant"], name="messagingsettings_tenant_uniq"),
            # Inbound SMS carry only the number they were sent to: it names one store.
            # Deliberately not tenant-leading (see ARCHITECTURE rule 1): this is the
            # lookup from a platform-wide phone number to its tenant.
            models.UniqueConstraint(
                fields=["sms_from"],
                condition=~Q(sms_from=""),
                name="messagingsettings_sms_from_uniq",
            ),
        ]

    def __str__(self) -> str:
        return "Messaging settings"


class Template(TenantOwnedModel):
    """A message a marketer writes once: Django template language with customer,
    order, product, store and link variables. Email uses subject, HTML and text;
    SMS and in-app use ``text`` (in-app may add a subject as its title)."""

    name = models.CharField(max_length=100)
    channel = models.CharField(max_length=10, choices=Channel.choices)
    category = models.CharField(
        max_length=15, choices=Category.choices[:2], default=Category.MARKETING
    )
    subject = models.CharField(max_length=300, blank=True, default="")
    html = models.TextField(blank=True, default="", help_text="Email only.")
    text = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(default=clock.now, editable=False)
    updated_at = models.DateTimeField(default=clock.now)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "name"], name="template_tenant_name_uniq")
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.get_channel_display()})"


class Message(TenantOwnedModel):
    """One intended send, written before any provider is called.

    ``idempotency_key`` is deterministic for the intent (a journey step:
    ``journey:<enrollment>:<step>``) and unique per tenant, so asking twice
    stores once. The content is rendered when the message is queued, so what
    the outbox shows is what goes out.
    """

    customer = models.ForeignKey(
        Customer, null=True, blank=True, on_delete=models.CASCADE, related_name="messages"
    )
    template = models.ForeignKey(
        Template, null=True, blank=True, on_delete=models.SET_NULL, related_name="messages"
    )
    channel = models.CharField(max_length=10, choices=Channel.choices)
    category = models.CharField(max_length=15, choices=Category.choices)
    idempotency_key = models.CharField(max_length=200)
    source = models.CharField(
        max_length=50, blank=True, default="", help_text="journey, survey, agent, test, api"
    )
    context = models.JSONField(default=dict, blank=True, help_text="e.g. journey/step/order ids")
    to_address = models.CharField(max_length=254, blank=True, default="")
    subject = models.CharField(max_length=300, blank=True, default="")
    body_text = models.TextField(blank=True, default="")
    body_html = models.TextField(blank=True, default="")

    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    reason = models.CharField(max_length=20, choices=Reason.choices, blank=True, default="")
    detail = models.CharField(max_length=500, blank=True, default="")
    provider_id = models.CharField(max_length=100, blank=True, default="")
    attempts = models.PositiveSmallIntegerField(default=0)
    # When a pending message may go (now, the end of quiet hours, a retry's backoff).
    due_at = models.DateTimeField(default=clock.now)
    # A claim: the send batch that holds the message and until when.
    claim = models.UUIDField(null=True, blank=True)
    lease_until = models.DateTimeField(null=True, blank=True)

    created_at = models.DateTimeField(default=clock.now, editable=False)
    updated_at = models.DateTimeField(default=clock.now)
    sent_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    opened_at = models.DateTimeField(null=True, blank=True)
    clicked_at = models.DateTimeField(null=True, blank=True)
    failed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "idempotency_key"], name="message_tenant_key_uniq"
            )
        ]
        indexes = [
            models.Index(fields=["tenant", "customer", "-created_at"], name="message_tenant_cust"),
            models.Index(fields=["tenant", "status", "-created_at"], name="message_tenant_status"),
            # The dispatcher's and sweeper's hot paths: small partial indexes.
            models.Index(
                fields=["due_at"],
                condition=Q(status__in=["queued", "deferred"]),
                name="message_pending_due",
            ),
            # In-flight messages: the sweeper's lease check scans this small
            # index whole; the cap reads another batch's claims per customer.
            models.Index(
                fields=["tenant", "customer"],
                condition=Q(status="sending"),
                name="message_sending_cust",
            ),
            # The frequency cap: a customer's recent marketing email/SMS by send
            # time, without reading the rest of their (or the tenant's) outbox.
            models.Index(
                fields=["tenant", "customer", "sent_at"],
                condition=Q(category="marketing", channel__in=["email", "sms"]),
                name="message_cap_sent",
            ),
            models.Index(
                fields=["provider_id"], condition=~Q(provider_id=""), name="message_provider_id"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_channel_display()} to {self.to_address or '—'} ({self.status})"


class SuppressionReason(models.TextChoices):
    BOUNCE = "bounce", "Hard bounce"
    DROPPED = "dropped", "Dropped as invalid"
    SPAM_REPORT = "spamreport", "Spam report"
    UNSUBSCRIBE = "unsubscribe", "Unsubscribed"
    SMS_STOP = "sms_stop", "SMS STOP"
    INVALID = "invalid", "Invalid address or number"
    MANUAL = "manual", "Added by staff"


# Reasons that block every message, transactional too: the address does not
# work, or the recipient told the carrier to stop (SMS STOP is carrier-enforced).
BLOCKS_ALL = (
    SuppressionReason.BOUNCE,
    SuppressionReason.DROPPED,
    SuppressionReason.INVALID,
    SuppressionReason.SMS_STOP,
    SuppressionReason.MANUAL,
)


class Suppression(TenantOwnedModel):
    """An address the tenant must not message (on a channel)."""

    channel = models.CharField(max_length=10, choices=Channel.choices[:2])
    address = models.CharField(max_length=254, help_text="Email (lower case) or E.164 number")
    reason = models.CharField(max_length=15, choices=SuppressionReason.choices)
    source = models.CharField(max_length=50, blank=True, default="")
    detail = models.CharField(max_length=500, blank=True, default="")
    created_at = models.DateTimeField(default=clock.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "channel", "address"], name="suppression_tenant_addr_uniq"
            )
        ]

    def __str__(self) -> str:
        return f"{self.address} ({self.get_reason_display()})"


class Provider(models.TextChoices):
    SENDGRID = "sendgrid", "SendGrid"
    TWILIO_STATUS = "twilio_status", "Twilio status"
    TWILIO_INBOUND = "twilio_inbound", "Twilio inbound SMS"


class ProviderEvent(models.Model):
    """One provider callback event, stored once by its event id before it is
    applied (neither provider's signature proves freshness, so a replay must be
    recognised here).

    A platform table, not tenant-owned: the tenant is only known after the event
    is matched to a message or an SMS number; ``tenant`` is filled in then.
    """

    provider = models.CharField(max_length=20, choices=Provider.choices)
    event_id = models.CharField(max_length=200)
    tenant = models.ForeignKey(
        "retention.Tenant", null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    message = models.ForeignKey(
        Message, null=True, blank=True, on_delete=models.SET_NULL, related_name="events"
    )
    kind = models.CharField(max_length=30)
    payload = models.JSONField()
    received_at = models.DateTimeField(default=clock.now)
    processed_at = models.DateTimeField(null=True, blank=True)
    outcome = models.CharField(max_length=200, blank=True, default="")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["provider", "event_id"], name="providerevent_uniq")
        ]
        indexes = [
            models.Index(
                fields=["received_at"],
                condition=Q(processed_at__isnull=True),
                name="providerevent_unprocessed",
            ),
            models.Index(fields=["tenant", "-received_at"], name="providerevent_tenant"),
        ]

    def __str__(self) -> str:
        return f"{self.provider} {self.kind} {self.event_id}"
