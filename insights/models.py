"""Insights: the tenant's settings for the dashboard (the retention metric and
its target, KPI target ranges, the weekly summary), the daily rollups the
dashboard reads, and the weekly summaries sent.

The dashboard never scans orders or messages: tasks keep these rollups (one
row per tenant-local day and dimension) and the page sums a few hundred rows.
Every rollup row is rewritten whole for its day (delete the tenant's days in
range, insert them again, in one transaction), so a re-run is harmless and a
late event is picked up by the next run over that day.
"""

from __future__ import annotations

from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

from retention import clock
from retention.tenancy import TenantOwnedModel


class Kpi(models.TextChoices):
    DELIVERY = "delivery_rate", "Delivery rate"
    OPEN = "open_rate", "Open rate"
    CLICK = "click_rate", "Click-through rate"
    CONVERSION = "conversion_rate", "Conversion (order within 7 days)"
    RESPONSE = "response_rate", "Response rate"
    UNSUBSCRIBE = "unsubscribe_rate", "Unsubscribe rate"


# Unsubscribes are better low: above the range is red, not green.
LOWER_IS_BETTER = (Kpi.UNSUBSCRIBE,)


class InsightsSettings(TenantOwnedModel):
    """One per tenant."""

    retention_window_days = models.PositiveSmallIntegerField(
        default=90,
        validators=[MinValueValidator(7), MaxValueValidator(365)],
        help_text="The retention metric: share of first-time buyers who order again within "
        "this many days of their first order.",
    )
    retention_target = models.FloatField(
        default=0.30,
        validators=[MinValueValidator(0), MaxValueValidator(1)],
        help_text="The share you aim for (0.30 = 30%).",
    )
    conversion_days = models.PositiveSmallIntegerField(
        default=7,
        validators=[MinValueValidator(1), MaxValueValidator(90)],
        help_text="A message converts when the customer orders within this many days.",
    )
    summary_weekday = models.PositiveSmallIntegerField(
        default=0,
        validators=[MaxValueValidator(6)],
        help_text="Weekday of the weekly summary (0 = Monday), in the store's timezone.",
    )
    summary_hour = models.PositiveSmallIntegerField(
        default=8, validators=[MaxValueValidator(23)], help_text="Hour of the weekly summary."
    )
    nightly_hour = models.PositiveSmallIntegerField(
        default=5,
        validators=[MaxValueValidator(23)],
        help_text="Local hour of the nightly rollup refresh (after segments and scoring).",
    )
    last_rollups_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        verbose_name_plural = "insights settings"
        constraints = [
            models.UniqueConstraint(fields=["tenant"], name="insightssettings_tenant_uniq")
        ]

    def __str__(self) -> str:
        return "Insights settings"


class KpiTarget(TenantOwnedModel):
    """A KPI's target range for one tier (blank: every customer). Inside the
    range is green; within a fifth of the range's width outside it amber;
    further red (for unsubscribes, below the range is green)."""

    tier = models.CharField(
        max_length=20,
        blank=True,
        default="",
        choices=[
            ("", "All customers"),
            ("high_value_repeat", "High-value repeat"),
            ("mid_value_repeat", "Mid-value repeat"),
            ("one_time", "One-time"),
        ],
    )
    kpi = models.CharField(max_length=20, choices=Kpi.choices)
    low = models.FloatField(validators=[MinValueValidator(0), MaxValueValidator(1)])
    high = models.FloatField(validators=[MinValueValidator(0), MaxValueValidator(1)])

    class Meta:
        ordering = ["tier", "kpi"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "tier", "kpi"], name="kpitarget_uniq"),
            models.CheckConstraint(
                condition=models.Q(low__lte=models.F("high")), name="kpitarget_range"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_kpi_display()} ({self.get_tier_display()})"


class SummarySubscription(TenantOwnedModel):
    """An owner or marketer who asked for the weekly summary by email."""

    user = models.ForeignKey("retention.User", on_delete=models.CASCADE, related_name="+")
    created_at = models.DateTimeField(default=clock.now, editable=False)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant", "user"], name="summarysubscription_uniq")
        ]


class WeeklySummary(TenantOwnedModel):
    """The summary of one week (Monday to Sunday, the store's timezone), made
    once; its emails go through the outbox keyed by week and recipient."""

    week_start = models.DateField()
    data = models.JSONField(default=dict)
    created_at = models.DateTimeField(default=clock.now, editable=False)
    sent_to = models.JSONField(default=list, blank=True)

    class Meta:
        ordering = ["-week_start"]
        verbose_name_plural = "weekly summaries"
        constraints = [
            models.UniqueConstraint(fields=["tenant", "week_start"], name="weeklysummary_week_uniq")
        ]


# --- rollups -----------------------------------------------------------------------------


class MessageCounts(TenantOwnedModel):
    """What messages created on one tenant-local day did (attributed to the day
    the message was queued, whenever the open or order came)."""

    day = models.DateField()
    channel = models.CharField(max_length=10)
    messages = models.PositiveIntegerField(default=0, help_text="Queued (any outcome)")
    sent = models.PositiveIntegerField(default=0, help_text="Handed to the provider")
    delivered = models.PositiveIntegerField(default=0)
    opened = models.PositiveIntegerField(default=0)
    clicked = models.PositiveIntegerField(default=0)
    bounced = models.PositiveIntegerField(default=0)
    suppressed = models.PositiveIntegerField(default=0)
    unsubscribed = models.PositiveIntegerField(
        default=0, help_text="Recipients who unsubscribed within 7 days of the send"
    )
    converted = models.PositiveIntegerField(
        default=0, help_text="Sent messages followed by an order within the conversion window"
    )
    responded = models.PositiveIntegerField(
        default=0, help_text="Sent messages clicked or answered (reply, survey answer)"
    )
    next_action = models.PositiveIntegerField(
        default=0, help_text="Sent messages followed by an order or tracked action"
    )
    next_action_seconds = models.FloatField(
        default=0, help_text="Sum of the times from send to that next action"
    )

    class Meta:
        abstract = True


class MessageDaily(MessageCounts):
    journey_id = models.BigIntegerField(default=0, help_text="0: not from a journey")
    step_id = models.BigIntegerField(default=0)
    tier = models.CharField(max_length=20, blank=True, default="")

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "day", "journey_id", "step_id", "channel", "tier"],
                name="messagedaily_uniq",
            )
        ]


class SegmentMessageDaily(MessageCounts):
    """The same counts for the members of each rule segment (membership when
    the rollup ran)."""

    segment_id = models.BigIntegerField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "day", "segment_id", "channel"], name="segmentmessagedaily_uniq"
            )
        ]


class RetentionDaily(TenantOwnedModel):
    """First-time buyers by the tenant-local day of their first order, and how
    many of them ordered again within the window (final once the window has
    passed; younger days are still counting)."""

    day = models.DateField()
    window_days = models.PositiveSmallIntegerField()
    first_buyers = models.PositiveIntegerField(default=0)
    returned = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant", "day"], name="retentiondaily_uniq")
        ]


class CohortMonthly(TenantOwnedModel):
    """Monthly first-order cohorts: of ``size`` customers whose first order was
    in ``cohort`` (first of the month), ``active`` ordered in month ``months``
    after it (0 = the first month)."""

    cohort = models.DateField()
    months = models.PositiveSmallIntegerField()
    size = models.PositiveIntegerField()
    active = models.PositiveIntegerField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "cohort", "months"], name="cohortmonthly_uniq"
            )
        ]


class FamilyDaily(TenantOwnedModel):
    """Per product family and day: orders containing it, how many were
    reorders (the customer had bought the family before), and orders that
    followed an upsell journey's message within the conversion window, with
    their value."""

    day = models.DateField()
    family_id = models.BigIntegerField()
    orders = models.PositiveIntegerField(default=0)
    reorders = models.PositiveIntegerField(default=0)
    buyers = models.PositiveIntegerField(default=0)
    upsell_orders = models.PositiveIntegerField(default=0)
    upsell_revenue = models.DecimalField(max_digits=14, decimal_places=2, default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant", "day", "family_id"], name="familydaily_uniq")
        ]


class Snapshot(TenantOwnedModel):
    """Small figures kept whole per day: tier sizes and flow, the churn-risk
    distribution and the highest-value customers at risk, feedback."""

    day = models.DateField()
    kind = models.CharField(max_length=20)
    data = models.JSONField(default=dict)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant", "day", "kind"], name="snapshot_uniq")
        ]
