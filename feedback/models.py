"""Feedback: surveys after delivery, their responses and classes, and the
callback queue that support agents work against an SLA.

- ``SurveyInvitation``: one per delivery (a partial unique constraint on the
  fulfillment), sent through the customer's preferred channel. Its public link
  ``/s/<token>/`` carries a short signed token (see ``feedback.tokens``); it
  expires, and answers once (``SurveyResponse`` is unique per invitation).
- ``SurveyResponse``: the answers (rating 1-5, what stood out, what the customer
  would like next, a comment), the class (promoter / neutral / detractor, by the
  tenant's thresholds) and where it came from (the web page or an SMS reply).
- ``Callback``: a customer to call back (a detractor, someone who asked for a
  call, a journey step). ``idempotency_key`` is unique per tenant, so a retried
  step or survey queues one call. ``due_by`` is the SLA deadline for the first
  contact, from the tenant's business hours. Agents claim, log contacts
  (``CallbackContact``), schedule follow-ups and resolve.
"""

from __future__ import annotations

from datetime import datetime

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q

from retention import clock
from retention.tenancy import TenantOwnedModel

QUESTION_SET = "delivery-v1"


def default_business_days() -> list[int]:
    # No field uses this any more (business hours are the Tenant's, see
    # feedback.services.callbacks.business_hours_of), but migration 0002 refers
    # to it, so it stays for as long as that migration does.
    return [0, 1, 2, 3, 4]  # Monday to Friday (Python's weekday numbers)


class FeedbackSettings(TenantOwnedModel):
    """Per-tenant feedback settings, created on first use. The business hours
    the callback SLA counts in are the store's own (``Tenant.business_hours_start``,
    ``business_hours_end``, ``business_days``), not kept here."""

    # --- surveys
    survey_valid_days = models.PositiveSmallIntegerField(
        default=30,
        validators=[MinValueValidator(1), MaxValueValidator(365)],
        help_text="A survey link works for this many days after it is sent.",
    )
    promoter_min_rating = models.PositiveSmallIntegerField(
        default=5,
        validators=[MinValueValidator(1), MaxValueValidator(5)],
        help_text="A rating at or above this is a promoter.",
    )
    neutral_min_rating = models.PositiveSmallIntegerField(
        default=4,
        validators=[MinValueValidator(1), MaxValueValidator(5)],
        help_text="A rating at or above this (and below the promoter rating) is neutral; "
        "below it, a detractor.",
    )
    # --- callbacks
    first_contact_minutes = models.PositiveIntegerField(
        default=15,
        validators=[MinValueValidator(1), MaxValueValidator(7 * 24 * 60)],
        help_text="First contact with a new callback is due within this many minutes of "
        "business time (outside business hours: after the next opening).",
    )

    class Meta:
        verbose_name = "feedback settings"
        verbose_name_plural = "feedback settings"
        constraints = [
            models.UniqueConstraint(fields=["tenant"], name="feedbacksettings_tenant_uniq")
        ]

    def __str__(self) -> str:
        return f"Feedback settings of {self.tenant_id}"


# --- surveys --------------------------------------------------------------------------------


class SurveyClass(models.TextChoices):
    PROMOTER = "promoter", "Promoter"
    NEUTRAL = "neutral", "Neutral"
    DETRACTOR = "detractor", "Detractor"


class Highlight(models.TextChoices):
    """Question 2: what stood out or slowed you down (any number of these)."""

    FAST_DELIVERY = "fast_delivery", "Fast delivery"
    PRODUCT_QUALITY = "product_quality", "Product quality"
    EASY_ORDERING = "easy_ordering", "Easy ordering"
    HELPFUL_SUPPORT = "helpful_support", "Helpful support"
    SLOW_DELIVERY = "slow_delivery", "Slow delivery"
    DAMAGED_OR_WRONG = "damaged_or_wrong", "Damaged or wrong item"
    HARD_TO_USE = "hard_to_use", "Hard to use"
    PRICE = "price", "Price"


class Want(models.TextChoices):
    """Question 3: what the customer would like next (one)."""

    TIP = "tip", "A tailored tip"
    PROMOTION = "promotion", "A promotion"
    DEMO = "demo", "A product demo"
    CALLBACK = "callback", "A call back"
    NOTHING = "nothing", "Nothing, thanks"


class SurveyChannel(models.TextChoices):
    EMAIL = "email", "Email"
    SMS = "sms", "SMS"
    IN_APP = "in_app", "In-app"


class SurveyInvitation(TenantOwnedModel):
    """One invitation to the post-delivery survey."""

    customer = models.ForeignKey(
        "commerce.Customer", on_delete=models.CASCADE, related_name="survey_invitations"
    )
    order = models.ForeignKey(
        "commerce.Order", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    fulfillment = models.ForeignKey(
        "commerce.Fulfillment",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="survey_invitations",
    )
    question_set = models.CharField(max_length=20, default=QUESTION_SET)
    channel = models.CharField(max_length=10, choices=SurveyChannel.choices)
    message = models.ForeignKey(
        "messaging.Message", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    source = models.CharField(max_length=50, blank=True, default="", help_text="journey, …")
    created_at = models.DateTimeField(default=clock.now)
    expires_at = models.DateTimeField()
    retry_prompted_at = models.DateTimeField(
        null=True, blank=True, help_text="When an unreadable SMS reply got its one retry prompt."
    )

    class Meta:
        constraints = [
            # No survey twice for one delivery.
            models.UniqueConstraint(
                fields=["tenant", "fulfillment"],
                condition=Q(fulfillment__isnull=False),
                name="surveyinvite_fulfillment_uniq",
            )
        ]
        indexes = [
            models.Index(
                fields=["tenant", "customer", "-created_at"], name="surveyinvite_customer"
            ),
            models.Index(fields=["tenant", "created_at"], name="surveyinvite_created"),
        ]

    def __str__(self) -> str:
        return f"Survey {self.pk} for {self.customer_id}"

    def is_expired(self, now: datetime | None = None) -> bool:
        return self.expires_at <= (now or clock.now())


class ResponseChannel(models.TextChoices):
    WEB = "web", "Web page"
    SMS = "sms", "SMS reply"


class SurveyResponse(TenantOwnedModel):
    """The answers to one invitation (at most one: a token answers once)."""

    invitation = models.ForeignKey(
        SurveyInvitation, on_delete=models.CASCADE, related_name="responses"
    )
    customer = models.ForeignKey(
        "commerce.Customer", on_delete=models.CASCADE, related_name="survey_responses"
    )
    rating = models.PositiveSmallIntegerField(
        validators=[MinValueValidator(1), MaxValueValidator(5)]
    )
    classification = models.CharField(max_length=10, choices=SurveyClass.choices)
    highlights = models.JSONField(default=list, blank=True, help_text="Highlight values")
    highlight_text = models.CharField(max_length=500, blank=True, default="")
    wants = models.CharField(max_length=10, choices=Want.choices, blank=True, default="")
    comment = models.TextField(blank=True, default="")
    channel = models.CharField(max_length=5, choices=ResponseChannel.choices)
    sms_body = models.CharField(max_length=1600, blank=True, default="")
    answered_at = models.DateTimeField(default=clock.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "invitation"], name="surveyresponse_invitation_uniq"
            )
        ]
        indexes = [
            models.Index(fields=["tenant", "answered_at"], name="surveyresponse_answered"),
            models.Index(
                fields=["tenant", "customer", "-answered_at"], name="surveyresponse_customer"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.rating}/5 from {self.customer_id} ({self.classification})"


# --- the callback queue ---------------------------------------------------------------------


class CallbackStatus(models.TextChoices):
    OPEN = "open", "Open"
    CLAIMED = "claimed", "Claimed"
    SCHEDULED = "scheduled", "Follow-up scheduled"
    DONE = "done", "Resolved"
    CANCELLED = "cancelled", "Cancelled"


OPEN_STATUSES = (CallbackStatus.OPEN, CallbackStatus.CLAIMED, CallbackStatus.SCHEDULED)


class Callback(TenantOwnedModel):
    """One customer to call back, with why, from where and by when."""

    customer = models.ForeignKey(
        "commerce.Customer", on_delete=models.CASCADE, related_name="callbacks"
    )
    reason = models.CharField(max_length=200)
    source = models.CharField(max_length=50, help_text="journey, survey, agent, …")
    context = models.JSONField(
        default=dict, blank=True, help_text="journey, step, survey response, …"
    )
    survey_response = models.ForeignKey(
        SurveyResponse, null=True, blank=True, on_delete=models.SET_NULL, related_name="callbacks"
    )
    asked_for_call = models.BooleanField(
        default=False, help_text="The customer asked to be called (a survey answer)."
    )
    status = models.CharField(
        max_length=10, choices=CallbackStatus.choices, default=CallbackStatus.OPEN
    )
    priority = models.SmallIntegerField(default=0, help_text="Higher is called first.")
    due_by = models.DateTimeField(help_text="The SLA deadline for the first contact.")
    created_at = models.DateTimeField(default=clock.now, editable=False)
    claimed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    claimed_at = models.DateTimeField(null=True, blank=True)
    first_contact_at = models.DateTimeField(null=True, blank=True)
    follow_up_at = models.DateTimeField(null=True, blank=True)
    done_at = models.DateTimeField(null=True, blank=True)
    idempotency_key = models.CharField(max_length=200)

    class Meta:
        ordering = ["-priority", "due_by", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "idempotency_key"], name="callback_idempotency_uniq"
            )
        ]
        indexes = [
            # The queue: open (and claimed) callbacks by deadline.
            models.Index(fields=["tenant", "status", "due_by"], name="callback_queue"),
            models.Index(fields=["tenant", "customer"], name="callback_customer"),
        ]

    def __str__(self) -> str:
        return f"Call {self.customer_id}: {self.reason}"

    def is_overdue(self, now: datetime | None = None) -> bool:
        """Still waiting for its first contact after the deadline."""
        return (
            self.status in OPEN_STATUSES
            and self.first_contact_at is None
            and self.due_by < (now or clock.now())
        )


class ContactOutcome(models.TextChoices):
    REACHED = "reached", "Reached"
    NO_ANSWER = "no_answer", "No answer"
    LEFT_MESSAGE = "left_message", "Left a message"
    RESOLVED = "resolved", "Resolved"
    REFUND_OFFERED = "refund_offered", "Refund offered"
    REPLACEMENT_OFFERED = "replacement_offered", "Replacement offered"
    ESCALATED = "escalated", "Escalated"


class CallbackContact(TenantOwnedModel):
    """One logged attempt to reach the customer, with its outcome and notes."""

    callback = models.ForeignKey(Callback, on_delete=models.CASCADE, related_name="contacts")
    agent = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    outcome = models.CharField(max_length=20, choices=ContactOutcome.choices)
    notes = models.TextField(blank=True, default="")
    follow_up_at = models.DateTimeField(null=True, blank=True)
    at = models.DateTimeField(default=clock.now)

    class Meta:
        ordering = ["at", "id"]
        indexes = [
            models.Index(fields=["tenant", "callback", "at"], name="callbackcontact_callback")
        ]

    def __str__(self) -> str:
        return f"{self.get_outcome_display()} ({self.callback_id})"
