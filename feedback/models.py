"""Feedback: for now the callback queue's rows (surveys, responses and the
agents' screens come with the feedback issue).

A ``Callback`` asks a support agent to call a customer back: a detractor, a
customer who asked for a call, or a journey step ("create a callback"). Its
``idempotency_key`` is unique per tenant, so a step or a survey retried after a
crash queues one call, not two. ``due_by`` is the SLA deadline, set when the
row is created from the tenant's ``FeedbackSettings``.
"""

from __future__ import annotations

from datetime import datetime

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

from retention import clock
from retention.tenancy import TenantOwnedModel


class FeedbackSettings(TenantOwnedModel):
    """Per-tenant feedback settings, created on first use."""

    callback_sla_hours = models.PositiveIntegerField(
        default=24,
        validators=[MinValueValidator(1), MaxValueValidator(24 * 30)],
        help_text="A new callback is due this many hours after it is queued.",
    )

    class Meta:
        verbose_name = "feedback settings"
        verbose_name_plural = "feedback settings"
        constraints = [
            models.UniqueConstraint(fields=["tenant"], name="feedbacksettings_tenant_uniq")
        ]

    def __str__(self) -> str:
        return f"Feedback settings of {self.tenant_id}"


class CallbackStatus(models.TextChoices):
    OPEN = "open", "Open"
    CLAIMED = "claimed", "Claimed"
    DONE = "done", "Done"
    CANCELLED = "cancelled", "Cancelled"


OPEN_STATUSES = (CallbackStatus.OPEN, CallbackStatus.CLAIMED)


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
        ]

    def __str__(self) -> str:
        return f"Call {self.customer_id}: {self.reason}"

    def is_overdue(self, now: datetime | None = None) -> bool:
        """Still waiting for its first contact after the deadline."""
        return self.status in OPEN_STATUSES and self.due_by < (now or clock.now())
