"""Journeys: what marketers build (a journey, its versions and steps) and what
the engine runs (enrollments, the log of every step taken, outbound webhooks).

A journey's definition lives in a ``JourneyVersion``. Editing an active journey
makes a new version; enrollments keep the version they started on, so a
customer half-way through a series never sees steps from two different plans.

An ``Enrollment`` is one customer going through one version for one trigger
occurrence (``trigger_key``, e.g. ``tp:<touchpoint id>``), unique per journey,
so a trigger seen twice enrolls once. ``next_run_at`` (partial index over active
rows) is what the dispatcher claims.
"""

from __future__ import annotations

from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q

from retention import clock
from retention.tenancy import TenantOwnedModel


class JourneyStatus(models.TextChoices):
    DRAFT = "draft", "Draft"
    ACTIVE = "active", "Active"
    PAUSED = "paused", "Paused"
    ARCHIVED = "archived", "Archived"


class TriggerKind(models.TextChoices):
    ORDER_PLACED = "order_placed", "Order placed"
    FULFILLMENT = "fulfillment", "Fulfilment status reached"
    CART_ABANDONED = "cart_abandoned", "Cart abandoned"
    SEGMENT_ENTERED = "segment_entered", "Segment entered"
    SEGMENT_LEFT = "segment_left", "Segment left"
    FAMILY_WINDOW = "family_window", "Product family window after purchase"
    CHURN_BAND = "churn_band", "Churn risk band entered"
    SURVEY_CLASS = "survey_class", "Survey classified"
    TOUCHPOINT = "touchpoint", "Tracked touchpoint"


class OrderNth(models.TextChoices):
    ANY = "any", "Any order"
    FIRST = "first", "First order"
    NTH = "nth", "The nth order"


class FamilyWindow(models.TextChoices):
    REORDER = "reorder", "Reorder"
    UPSELL = "upsell", "Upsell"
    REPLENISHMENT = "replenishment", "Replenishment"


class Reentry(models.TextChoices):
    ONCE = "once", "Once per customer, ever"
    AFTER_EXIT = "after_exit", "Again once the previous run has finished"
    COOLDOWN = "cooldown", "Again after a cool-down since the last entry"
    EVERY = "every", "Every trigger, even while another run is in progress"


class Journey(TenantOwnedModel):
    """What the marketer sees in the list: a name, a status and the version
    now in force. The definition itself is in ``JourneyVersion``."""

    name = models.CharField(max_length=200)
    key = models.SlugField(
        max_length=100,
        blank=True,
        default="",
        help_text="Set on journeys the platform ships, so they are installed once.",
    )
    description = models.TextField(blank=True)
    status = models.CharField(
        max_length=10, choices=JourneyStatus.choices, default=JourneyStatus.DRAFT
    )
    current_version = models.ForeignKey(
        "JourneyVersion", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=clock.now, editable=False)
    updated_at = models.DateTimeField(default=clock.now, editable=False)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "name"], name="journey_tenant_name_uniq"),
            models.UniqueConstraint(
                fields=["tenant", "key"], name="journey_tenant_key_uniq", condition=~Q(key="")
            ),
        ]
        indexes = [models.Index(fields=["tenant", "status"], name="journey_tenant_status")]

    def __str__(self) -> str:
        return self.name

    def save(self, *args, **kwargs):
        self.updated_at = clock.now()
        if kwargs.get("update_fields") is not None:
            kwargs["update_fields"] = {*kwargs["update_fields"], "updated_at"}
        super().save(*args, **kwargs)


class JourneyVersion(TenantOwnedModel):
    """One frozen definition of a journey: trigger, entry filters, re-entry,
    exits, holdout and (through ``steps``) what happens when.

    A version that has enrollments is never edited in place: saving changes to
    it creates the next version (see ``journeys.services.definitions``).
    """

    journey = models.ForeignKey(Journey, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField(default=1)

    trigger = models.CharField(max_length=20, choices=TriggerKind.choices)
    # Trigger details, one field per trigger kind that needs one.
    order_nth = models.CharField(
        max_length=5, choices=OrderNth.choices, default=OrderNth.ANY, blank=True
    )
    order_n = models.PositiveSmallIntegerField(
        default=1, validators=[MinValueValidator(1), MaxValueValidator(100)], help_text="For nth."
    )
    fulfillment_status = models.CharField(max_length=20, blank=True, default="")
    family_window = models.CharField(
        max_length=15, choices=FamilyWindow.choices, blank=True, default=""
    )
    segment = models.ForeignKey(
        "segments.Segment",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        help_text="For segment triggers.",
    )
    value = models.CharField(
        max_length=100,
        blank=True,
        default="",
        help_text="Touchpoint kind, churn band or survey class, by trigger.",
    )

    # Entry filters: all must hold when the trigger fires.
    entry_segment = models.ForeignKey(
        "segments.Segment",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        help_text="Only customers in this segment (or tier) enter.",
    )
    entry_requires_consent = models.CharField(
        max_length=10, blank=True, default="", help_text="Only customers with consent on a channel."
    )

    reentry = models.CharField(max_length=10, choices=Reentry.choices, default=Reentry.AFTER_EXIT)
    reentry_cooldown_days = models.PositiveIntegerField(default=30)

    exit_on_order = models.BooleanField(default=False, help_text="Exit when the customer orders.")
    exit_on_unsubscribe = models.BooleanField(default=True)
    exit_segment = models.ForeignKey(
        "segments.Segment",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        help_text="Exit when the customer enters or leaves this segment.",
    )
    exit_segment_on = models.CharField(
        max_length=10,
        choices=[("left", "Leaves"), ("entered", "Enters")],
        blank=True,
        default="left",
    )

    holdout_percent = models.PositiveSmallIntegerField(
        default=0,
        validators=[MaxValueValidator(50)],
        help_text="Customers kept out at random (recorded) to measure lift.",
    )
    category = models.CharField(
        max_length=15,
        default="marketing",
        help_text="marketing or transactional: how the outbox treats the sends.",
    )

    created_at = models.DateTimeField(default=clock.now, editable=False)
    activated_at = models.DateTimeField(null=True, blank=True, editable=False)
    note = models.CharField(max_length=300, blank=True, default="")

    class Meta:
        ordering = ["journey", "-number"]
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "journey", "number"], name="journeyversion_number_uniq"
            )
        ]

    def __str__(self) -> str:
        return f"{self.journey} v{self.number}"


class DelayUnit(models.TextChoices):
    MINUTES = "minutes", "minutes"
    HOURS = "hours", "hours"
    DAYS = "days", "days"


class DelayFrom(models.TextChoices):
    TRIGGER = "trigger", "after the trigger"
    PREVIOUS = "previous", "after the previous step"
    FAMILY_WINDOW = "family", "at the product family's window"


class Condition(models.TextChoices):
    NONE = "", "No condition"
    IN_SEGMENT = "in_segment", "Is in segment"
    TIER = "tier", "Is in tier"
    OPENED_PREVIOUS = "opened_previous", "Opened the previous message"
    CLICKED_PREVIOUS = "clicked_previous", "Clicked the previous message"
    PURCHASED_SINCE_ENTRY = "purchased", "Ordered since entering"
    HAS_CONSENT = "has_consent", "Has consent on channel"
    PREFERRED_CHANNEL = "preferred", "Prefers channel"


class Otherwise(models.TextChoices):
    SKIP = "skip", "skip this step"
    EXIT = "exit", "leave the journey"
    GOTO = "goto", "go to step"


class Action(models.TextChoices):
    EMAIL = "email", "Send email"
    SMS = "sms", "Send SMS"
    IN_APP = "in_app", "Send in-app message"
    PREFERRED = "preferred", "Send on the customer's preferred channel"
    CALLBACK = "callback", "Create a callback for support"
    SEGMENT_ADD = "segment_add", "Add to segment"
    SEGMENT_REMOVE = "segment_remove", "Remove from segment"
    WEBHOOK = "webhook", "Post to an outbound webhook"
    SURVEY = "survey", "Send the delivery survey on the customer's preferred channel"


SEND_ACTIONS = (Action.EMAIL, Action.SMS, Action.IN_APP, Action.PREFERRED, Action.SURVEY)
# Sends whose channel is the customer's preferred one among the step's templates.
PREFERRED_ACTIONS = (Action.PREFERRED, Action.SURVEY)


class ChannelTemplates(TenantOwnedModel):
    """A template per channel: what a send step (or one of its variants) sends."""

    email_template = models.ForeignKey(
        "messaging.Template", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    sms_template = models.ForeignKey(
        "messaging.Template", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    in_app_template = models.ForeignKey(
        "messaging.Template", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )

    class Meta:
        abstract = True

    def template_for(self, channel: str):
        return {
            "email": self.email_template,
            "sms": self.sms_template,
            "in_app": self.in_app_template,
        }.get(channel)


class JourneyStep(ChannelTemplates):
    """One step: wait, check a condition, act.

    The wait is ``delay`` ``delay_unit`` after the trigger or the previous
    step, or the trigger order's product-family window; it may be snapped to a
    send window in the customer's timezone. When the condition is false the
    step does ``otherwise`` (skip, exit, or jump to step ``goto_position``).
    """

    version = models.ForeignKey(JourneyVersion, on_delete=models.CASCADE, related_name="steps")
    position = models.PositiveSmallIntegerField()
    name = models.CharField(max_length=200)

    delay = models.PositiveIntegerField(default=0)
    delay_unit = models.CharField(max_length=10, choices=DelayUnit.choices, default=DelayUnit.DAYS)
    delay_from = models.CharField(
        max_length=10, choices=DelayFrom.choices, default=DelayFrom.TRIGGER
    )
    family_window = models.CharField(
        max_length=15, choices=FamilyWindow.choices, blank=True, default=""
    )
    window_start = models.TimeField(
        null=True, blank=True, help_text="Send no earlier than this, customer's local time."
    )
    window_end = models.TimeField(
        null=True, blank=True, help_text="Send no later than this, customer's local time."
    )

    condition = models.CharField(
        max_length=20, choices=Condition.choices, blank=True, default=Condition.NONE
    )
    condition_value = models.CharField(
        max_length=100, blank=True, default="", help_text="Segment id, tier or channel."
    )
    otherwise = models.CharField(max_length=5, choices=Otherwise.choices, default=Otherwise.SKIP)
    goto_position = models.PositiveSmallIntegerField(null=True, blank=True)

    action = models.CharField(max_length=20, choices=Action.choices, default=Action.EMAIL)
    action_segment = models.ForeignKey(
        "segments.Segment", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    webhook_url = models.URLField(max_length=500, blank=True, default="")
    callback_reason = models.CharField(max_length=200, blank=True, default="")

    class Meta:
        ordering = ["version", "position"]
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "version", "position"], name="journeystep_position_uniq"
            )
        ]

    def __str__(self) -> str:
        return f"{self.position}. {self.name}"


class StepVariant(ChannelTemplates):
    """An A/B variant of a send step: its own templates (subject, copy, offer),
    optionally its own channel (email vs SMS) and send window (send time), and
    a weight. A step with variants picks one per enrollment, deterministically;
    while an experiment runs on the step, the experiment's assignment (per
    customer) picks instead and records the exposure."""

    step = models.ForeignKey(JourneyStep, on_delete=models.CASCADE, related_name="variants")
    key = models.CharField(max_length=20, help_text="A, B, …")
    weight = models.PositiveSmallIntegerField(default=50, validators=[MinValueValidator(1)])
    channel = models.CharField(
        max_length=10,
        blank=True,
        default="",
        choices=[
            ("", "The step's channel"),
            ("email", "Email"),
            ("sms", "SMS"),
            ("in_app", "In-app"),
        ],
        help_text="Send on this channel instead of the step's (an email vs SMS test).",
    )
    window_start = models.TimeField(
        null=True, blank=True, help_text="Send-time test: no earlier than this, local time."
    )
    window_end = models.TimeField(
        null=True, blank=True, help_text="Send-time test: no later than this, local time."
    )

    class Meta:
        ordering = ["step", "key"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "step", "key"], name="stepvariant_key_uniq")
        ]

    def __str__(self) -> str:
        return f"{self.step} / {self.key}"


class EnrollmentStatus(models.TextChoices):
    ACTIVE = "active", "Active"
    COMPLETED = "completed", "Completed"
    EXITED = "exited", "Exited"
    HELD_OUT = "held_out", "Held out"
    FAILED = "failed", "Failed"


# Enrollments still walking their steps (held-out ones walk them without acting).
LIVE_STATUSES = (EnrollmentStatus.ACTIVE, EnrollmentStatus.HELD_OUT)


class Enrollment(TenantOwnedModel):
    journey = models.ForeignKey(Journey, on_delete=models.CASCADE, related_name="enrollments")
    version = models.ForeignKey(JourneyVersion, on_delete=models.CASCADE, related_name="+")
    customer = models.ForeignKey(
        "commerce.Customer", on_delete=models.CASCADE, related_name="enrollments"
    )
    trigger_key = models.CharField(max_length=100)
    trigger_at = models.DateTimeField()
    context = models.JSONField(default=dict, blank=True, help_text="order, family, cart, …")
    status = models.CharField(
        max_length=10, choices=EnrollmentStatus.choices, default=EnrollmentStatus.ACTIVE
    )
    position = models.PositiveSmallIntegerField(default=1, help_text="The next step to run.")
    next_run_at = models.DateTimeField(null=True, blank=True)
    last_step_at = models.DateTimeField(null=True, blank=True)
    entered_at = models.DateTimeField(default=clock.now)
    finished_at = models.DateTimeField(null=True, blank=True)
    exit_reason = models.CharField(max_length=50, blank=True, default="")
    attempts = models.PositiveSmallIntegerField(default=0)
    last_error = models.CharField(max_length=500, blank=True, default="")
    is_test = models.BooleanField(default=False)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "journey", "customer", "trigger_key"],
                name="enrollment_trigger_uniq",
            )
        ]
        indexes = [
            # The dispatcher's claim: only live rows, by due time. Held-out
            # rows walk the steps too (recording what they would have got).
            models.Index(
                fields=["tenant", "next_run_at"],
                name="enrollment_due",
                condition=Q(status__in=["active", "held_out"]),
            ),
            models.Index(fields=["tenant", "customer", "status"], name="enrollment_customer"),
            models.Index(fields=["tenant", "journey", "status"], name="enrollment_journey"),
        ]

    def __str__(self) -> str:
        return f"{self.customer_id} in {self.journey_id} ({self.status})"


class StepOutcome(models.TextChoices):
    QUEUED = "queued", "Message queued"
    DONE = "done", "Action done"
    SKIPPED = "skipped", "Condition false, skipped"
    NO_CONTENT = "no_content", "No template for the channel"
    HELD_OUT = "held_out", "Held out"
    FAILED = "failed", "Failed"


class StepRun(TenantOwnedModel):
    """What one enrollment did at one step: the record behind per-step figures
    (joined to the outbox through ``message``) and the simulation's report."""

    enrollment = models.ForeignKey(Enrollment, on_delete=models.CASCADE, related_name="runs")
    step = models.ForeignKey(JourneyStep, on_delete=models.CASCADE, related_name="runs")
    variant = models.CharField(max_length=20, blank=True, default="")
    outcome = models.CharField(max_length=10, choices=StepOutcome.choices)
    message = models.ForeignKey(
        "messaging.Message", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    at = models.DateTimeField(default=clock.now)
    detail = models.CharField(max_length=300, blank=True, default="")

    class Meta:
        ordering = ["at", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "enrollment", "step"], name="steprun_enrollment_step_uniq"
            )
        ]
        indexes = [models.Index(fields=["tenant", "step", "at"], name="steprun_step_at")]


class TriggerCursor(TenantOwnedModel):
    """How far the trigger scan has read each feed of a tenant. Rows behind
    the cursor are re-read for a few minutes (``lookback``) because ids are
    handed out before their transactions commit; the enrollment's unique key
    makes the re-read harmless."""

    feed = models.CharField(max_length=20)
    last_id = models.BigIntegerField(default=0)
    # [[iso time, last_id], …]: where the cursor stood, to re-read from.
    marks = models.JSONField(default=list, blank=True)
    updated_at = models.DateTimeField(default=clock.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant", "feed"], name="triggercursor_feed_uniq")
        ]


class WebhookStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    DELIVERED = "delivered", "Delivered"
    FAILED = "failed", "Failed"


class OutboundWebhook(TenantOwnedModel):
    """A journey step's POST to a marketer's URL, stored before it is sent and
    signed per Standard Webhooks; retried with backoff, then failed."""

    url = models.URLField(max_length=500)
    event_id = models.CharField(max_length=100, help_text="webhook-id: the receiver de-duplicates")
    payload = models.JSONField(default=dict)
    status = models.CharField(
        max_length=10, choices=WebhookStatus.choices, default=WebhookStatus.PENDING
    )
    attempts = models.PositiveSmallIntegerField(default=0)
    due_at = models.DateTimeField(default=clock.now)
    last_status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    last_error = models.CharField(max_length=500, blank=True, default="")
    created_at = models.DateTimeField(default=clock.now, editable=False)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "event_id"], name="outboundwebhook_event_uniq"
            )
        ]
        indexes = [
            models.Index(
                fields=["tenant", "due_at"],
                name="outboundwebhook_pending",
                condition=Q(status="pending"),
            )
        ]


class JourneySettings(TenantOwnedModel):
    """Per-tenant journey settings: the secret outbound webhooks are signed with."""

    webhook_secret = models.CharField(
        max_length=100, help_text="whsec_…: receivers verify our outbound webhooks with it."
    )

    class Meta:
        verbose_name_plural = "journey settings"
        constraints = [
            models.UniqueConstraint(fields=["tenant"], name="journeysettings_tenant_uniq")
        ]
