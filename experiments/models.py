"""Experiments: randomized A/B tests and holdouts on customers.

An ``Experiment`` splits a tenant's customers between its ``Variant`` rows by
weight (one of them the control). Which variant a customer is in is a pure
function of (tenant, experiment, customer) (``experiments.assignment``), so
every worker and every re-run agrees without asking the database. A customer
counts only once they reach the point of treatment: the first time, an
``Exposure`` row records the variant and that moment (for the control, the
moment they would have been treated). Every metric is measured from it.

Three kinds, all on a journey:

- ``holdout``: the control never gets the journey (its enrollments are held
  out: they walk the steps without acting); exposure is the trigger.
- ``step``: a send step's variants (subject line, copy, offer, send window,
  email vs SMS) are the variants; exposure is the moment the step runs.
- ``checkin``: a proactive check-in journey started by a product milestone
  (onboarding completed, first value, feature activated), acting within 48
  hours, against no check-in; exposure is the milestone.
"""

from __future__ import annotations

from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q

from retention import clock
from retention.tenancy import TenantOwnedModel


class ExperimentKind(models.TextChoices):
    HOLDOUT = "holdout", "Journey holdout (control gets no journey)"
    STEP = "step", "Step variants (subject, copy, offer, send time, channel)"
    CHECKIN = "checkin", "Proactive check-in after a milestone vs none"


class ExperimentStatus(models.TextChoices):
    DRAFT = "draft", "Draft"
    RUNNING = "running", "Running"
    STOPPED = "stopped", "Stopped"
    CONCLUDED = "concluded", "Concluded"


class Metric(models.TextChoices):
    CONVERSION = "conversion", "Conversion (order within N days of exposure)"
    RETENTION_30 = "retention_30", "Retention at 30 days (ordered again)"
    RETENTION_60 = "retention_60", "Retention at 60 days (ordered again)"
    RETENTION_90 = "retention_90", "Retention at 90 days (ordered again)"
    REPEAT_PURCHASES = "repeat_purchases", "Repeat purchases per customer (horizon)"
    REVENUE = "revenue", "Revenue per exposed customer (horizon)"
    RESPONSE_RATE = "response_rate", "Message response rate (click or reply, horizon)"


class Decision(models.TextChoices):
    NONE = "", "—"
    SHIP = "ship", "Ship the winning variant"
    KEEP_CONTROL = "keep_control", "Keep the control"
    INCONCLUSIVE = "inconclusive", "Inconclusive: no change"


# Product milestones a check-in experiment may start from.
MILESTONES = ("onboarding.completed", "first_value.reached", "feature.activated")
CHECKIN_MAX_HOURS = 48


class Experiment(TenantOwnedModel):
    name = models.CharField(max_length=200)
    kind = models.CharField(max_length=10, choices=ExperimentKind.choices)
    hypothesis = models.TextField(
        help_text="What you expect and why, e.g. 'The welcome series raises 90-day retention "
        "of first-time buyers by at least 5% (relative).'"
    )
    status = models.CharField(
        max_length=10, choices=ExperimentStatus.choices, default=ExperimentStatus.DRAFT
    )
    journey = models.ForeignKey(
        "journeys.Journey", on_delete=models.PROTECT, related_name="experiments"
    )
    step_position = models.PositiveSmallIntegerField(
        null=True,
        blank=True,
        help_text="Step variants: the number of the send step whose variants are tested.",
    )
    eligibility_segment = models.ForeignKey(
        "segments.Segment",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        help_text="Only customers in this segment (or tier) when they reach the point of "
        "treatment take part; the others go through the journey as usual.",
    )
    primary_metric = models.CharField(
        max_length=20, choices=Metric.choices, default=Metric.RETENTION_90
    )
    conversion_days = models.PositiveSmallIntegerField(
        default=7,
        validators=[MinValueValidator(1), MaxValueValidator(365)],
        help_text="N for conversion: an order within N days of exposure.",
    )
    horizon_days = models.PositiveSmallIntegerField(
        default=90,
        validators=[MinValueValidator(1), MaxValueValidator(365)],
        help_text="Window for repeat purchases, revenue and response rate.",
    )
    exposure_days = models.PositiveSmallIntegerField(
        default=28,
        validators=[MinValueValidator(1), MaxValueValidator(365)],
        help_text="How long customers are taken in. The planned end is this plus the primary "
        "metric's window; results before then are a peek, not a verdict.",
    )
    baseline_rate = models.FloatField(
        default=0.25,
        validators=[MinValueValidator(0.0001), MaxValueValidator(0.9999)],
        help_text="The control's expected rate of the primary metric, for the sample size.",
    )
    minimum_effect = models.FloatField(
        default=0.05,
        validators=[MinValueValidator(0.001), MaxValueValidator(10)],
        help_text="The smallest relative lift worth detecting (0.05 = +5%).",
    )
    power = models.FloatField(
        default=0.8, validators=[MinValueValidator(0.5), MaxValueValidator(0.99)]
    )
    alpha = models.FloatField(
        default=0.05,
        validators=[MinValueValidator(0.001), MaxValueValidator(0.2)],
        help_text="Significance level (two-sided).",
    )
    created_at = models.DateTimeField(default=clock.now, editable=False)
    started_at = models.DateTimeField(null=True, blank=True, editable=False)
    stopped_at = models.DateTimeField(null=True, blank=True, editable=False)
    concluded_at = models.DateTimeField(null=True, blank=True, editable=False)
    decision = models.CharField(
        max_length=15, choices=Decision.choices, blank=True, default="", editable=False
    )
    decision_note = models.TextField(blank=True, default="", editable=False)
    winner = models.ForeignKey(
        "Variant", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    promoted_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "name"], name="experiment_tenant_name_uniq")
        ]
        indexes = [
            models.Index(fields=["tenant", "status"], name="experiment_tenant_status"),
            models.Index(fields=["tenant", "journey"], name="experiment_tenant_journey"),
        ]

    def __str__(self) -> str:
        return self.name


class Variant(TenantOwnedModel):
    """An arm. For a step experiment its key is the key of one of the step's
    variants (A, B, …); for a holdout or check-in the treatment arm gets the
    journey and the control does not."""

    experiment = models.ForeignKey(Experiment, on_delete=models.CASCADE, related_name="variants")
    key = models.SlugField(max_length=20, help_text="control, treatment, A, B, …")
    name = models.CharField(max_length=200, blank=True, default="")
    weight = models.PositiveSmallIntegerField(
        default=50, validators=[MinValueValidator(1), MaxValueValidator(1000)]
    )
    is_control = models.BooleanField(default=False)

    class Meta:
        ordering = ["experiment", "-is_control", "key"]
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "experiment", "key"], name="variant_experiment_key_uniq"
            ),
            models.UniqueConstraint(
                fields=["tenant", "experiment"],
                condition=Q(is_control=True),
                name="variant_one_control",
            ),
        ]

    def __str__(self) -> str:
        return self.name or self.key


class Exposure(TenantOwnedModel):
    """A customer reaching the point of treatment for the first time, in the
    variant the hash put them in. One per customer and experiment."""

    experiment = models.ForeignKey(Experiment, on_delete=models.CASCADE, related_name="exposures")
    variant = models.ForeignKey(Variant, on_delete=models.CASCADE, related_name="exposures")
    customer = models.ForeignKey(
        "commerce.Customer", on_delete=models.CASCADE, related_name="exposures"
    )
    exposed_at = models.DateTimeField()
    source = models.CharField(
        max_length=100, blank=True, default="", help_text="What exposed them (the trigger)."
    )

    class Meta:
        ordering = ["exposed_at", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "experiment", "customer"], name="exposure_customer_uniq"
            )
        ]
        indexes = [
            models.Index(
                fields=["tenant", "experiment", "variant", "exposed_at"],
                name="exposure_variant_at",
            )
        ]
