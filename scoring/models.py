"""Churn scores, the model versions that made them, and what was done about them.

- ``ScoringSettings``: per tenant, the horizon, the risk-band thresholds, when
  the nightly run and the weekly training happen, and what counts as recent
  contact for the next-best-action policy.
- ``ModelVersion``: one trained model (or the buy-till-you-die fallback) with
  its training window, metrics, feature importances and the fitted artifact.
  One version per tenant is active; rolling back activates an earlier one.
- ``ChurnScore``: the current score of every customer (one row each), and
  ``ChurnScoreHistory`` one row per customer and as-of date.
- ``ActionPolicy``: risk band x value tier x recent contact -> action.
- ``ChosenAction``: every action the policy chose, with the score that chose it
  and, once its horizon has passed, whether the customer ordered.

Score tables are written set-based (COPY into a temporary table, then one
statement), so like segments' derived tables they reference customers without
a database constraint (see ``segments.models.derived_fk``).
"""

from __future__ import annotations

from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q

from commerce.models import Customer
from retention import clock
from retention.tenancy import TenantOwnedModel
from segments.models import derived_fk

NO_ORDER_TIER = "none"


class RiskBand(models.TextChoices):
    LOW = "low", "Low"
    MEDIUM = "medium", "Medium"
    HIGH = "high", "High"


class NextAction(models.TextChoices):
    CALL = "call", "Personal check-in call"
    WINBACK = "winback", "Win-back journey with an incentive"
    NUDGE = "nudge", "Content nudge"
    NONE = "none", "Nothing (do not over-message)"


class PolicyTier(models.TextChoices):
    """The segments tiers, plus customers with no counted order yet."""

    HIGH_VALUE_REPEAT = "high_value_repeat", "High-value repeat"
    MID_VALUE_REPEAT = "mid_value_repeat", "Mid-value repeat"
    ONE_TIME = "one_time", "One-time"
    NONE = NO_ORDER_TIER, "No order yet"


class ModelKind(models.TextChoices):
    GBM = "gbm", "Gradient boosting, calibrated"
    LOGIT = "logit", "Logistic regression, calibrated"
    BTYD = "btyd", "Buy-till-you-die (BG/NBD) only"


class ScoringSettings(TenantOwnedModel):
    horizon_days = models.PositiveIntegerField(
        default=90,
        validators=[MinValueValidator(14), MaxValueValidator(365)],
        help_text="p_churn is the chance of no order in this many days after the score.",
    )
    medium_from = models.FloatField(
        default=0.5,
        validators=[MinValueValidator(0.0), MaxValueValidator(1.0)],
        help_text="Churn probability from which a customer is in the medium band.",
    )
    high_from = models.FloatField(
        default=0.75,
        validators=[MinValueValidator(0.0), MaxValueValidator(1.0)],
        help_text="Churn probability from which a customer is in the high band.",
    )
    recent_contact_days = models.PositiveIntegerField(
        default=14,
        validators=[MinValueValidator(1), MaxValueValidator(180)],
        help_text="A message or call in this many days counts as recent contact for the policy.",
    )
    nightly_hour = models.PositiveSmallIntegerField(
        default=3,
        validators=[MaxValueValidator(23)],
        help_text="Local hour (store timezone) of the nightly scoring run.",
    )
    train_weekday = models.PositiveSmallIntegerField(
        default=7,
        validators=[MinValueValidator(1), MaxValueValidator(7)],
        help_text="ISO weekday (1 = Monday … 7 = Sunday) whose night retrains the model.",
    )
    min_buyers_for_model = models.PositiveIntegerField(
        default=300,
        validators=[MinValueValidator(50)],
        help_text="With fewer buyers (or under two horizons of history) the store is scored "
        "by the buy-till-you-die model alone.",
    )
    history_days = models.PositiveIntegerField(
        default=400,
        validators=[MinValueValidator(30), MaxValueValidator(3650)],
        help_text="Nightly scores older than this many days are deleted after each run; "
        "every customer's latest score is kept, however old.",
    )
    last_nightly_at = models.DateTimeField(null=True, blank=True, editable=False)
    last_trained_at = models.DateTimeField(null=True, blank=True, editable=False)
    last_scored_at = models.DateTimeField(null=True, blank=True, editable=False)
    updated_at = models.DateTimeField(default=clock.now, editable=False)

    class Meta:
        verbose_name = "scoring settings"
        verbose_name_plural = "scoring settings"
        constraints = [
            models.UniqueConstraint(fields=["tenant"], name="scoringsettings_tenant_uniq"),
            models.CheckConstraint(
                condition=Q(medium_from__lt=models.F("high_from")),
                name="scoringsettings_bands_ordered",
                violation_error_message="The high band must start above the medium band.",
            ),
        ]

    def __str__(self) -> str:
        return f"Scoring settings of {self.tenant_id}"


class ModelVersion(TenantOwnedModel):
    version = models.PositiveIntegerField(help_text="Counts up per store")
    kind = models.CharField(max_length=10, choices=ModelKind.choices)
    is_active = models.BooleanField(default=False)
    trained_at = models.DateTimeField(default=clock.now)
    train_as_of = models.DateTimeField(help_text="Features were computed as of this time")
    label_end = models.DateTimeField(
        help_text="Labels (orders in the horizon) were read up to this time; "
        "the model uses nothing after it."
    )
    history_start = models.DateTimeField(null=True, blank=True)
    horizon_days = models.PositiveIntegerField()
    n_train = models.PositiveIntegerField(default=0)
    n_buyers = models.PositiveIntegerField(default=0)
    base_rate = models.FloatField(
        null=True, blank=True, help_text="Share of training customers who churned"
    )
    features = models.JSONField(default=list, blank=True)
    importances = models.JSONField(default=dict, blank=True)
    metrics = models.JSONField(default=dict, blank=True)
    btyd_params = models.JSONField(default=dict, blank=True)
    notes = models.TextField(blank=True, default="")
    artifact = models.BinaryField(editable=False)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant", "version"], name="modelversion_tenant_uniq"),
            models.UniqueConstraint(
                fields=["tenant"], condition=Q(is_active=True), name="modelversion_one_active"
            ),
        ]
        ordering = ["-version"]

    def __str__(self) -> str:
        return f"v{self.version} {self.get_kind_display()}"


class ChurnScore(TenantOwnedModel):
    customer = derived_fk(Customer)
    p_churn = models.FloatField()
    expected_orders = models.FloatField()
    band = models.CharField(max_length=10, choices=RiskBand.choices)
    tier = models.CharField(max_length=20, choices=PolicyTier.choices, default=NO_ORDER_TIER)
    reasons = models.JSONField(default=list, blank=True)
    next_action = models.CharField(max_length=10, choices=NextAction.choices)
    model_version = models.ForeignKey(
        ModelVersion, null=True, on_delete=models.SET_NULL, related_name="+", db_constraint=False
    )
    as_of = models.DateTimeField()
    band_since = models.DateTimeField()
    scored_at = models.DateTimeField(default=clock.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant", "customer"], name="churnscore_cust_uniq")
        ]
        # Every nightly run rewrites every row, so no index covers a column the
        # run changes (band, p_churn): with the table at fillfactor 50 (set in
        # migration 0004 on PostgreSQL) each rewrite is then a HOT update that
        # touches no index, 2 s instead of 9 s for a million rows. Lists by risk
        # sort the tenant's rows instead (0.12 s for the top 100 of a million).

    def __str__(self) -> str:
        return f"{self.p_churn:.0%} {self.band}"


class ChurnScoreHistory(TenantOwnedModel):
    customer = derived_fk(Customer)
    as_of = models.DateTimeField()
    p_churn = models.FloatField()
    expected_orders = models.FloatField()
    band = models.CharField(max_length=10, choices=RiskBand.choices)
    model_version = models.ForeignKey(
        ModelVersion, null=True, on_delete=models.SET_NULL, related_name="+", db_constraint=False
    )

    class Meta:
        verbose_name_plural = "churn score history"
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "customer", "as_of"], name="churnhistory_cust_asof_uniq"
            )
        ]
        # The nightly pruning finds a night's rows by their date.
        indexes = [models.Index(fields=["tenant", "as_of"], name="churnhistory_asof")]


class ActionPolicy(TenantOwnedModel):
    band = models.CharField(max_length=10, choices=RiskBand.choices)
    tier = models.CharField(max_length=20, choices=PolicyTier.choices)
    recently_contacted = models.BooleanField()
    action = models.CharField(max_length=10, choices=NextAction.choices)
    updated_at = models.DateTimeField(default=clock.now, editable=False)

    class Meta:
        verbose_name = "next-best-action rule"
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "band", "tier", "recently_contacted"], name="actionpolicy_uniq"
            )
        ]
        ordering = ["band", "tier", "recently_contacted"]

    def __str__(self) -> str:
        contact = "contacted" if self.recently_contacted else "not contacted"
        return f"{self.band} / {self.tier} / {contact} -> {self.action}"


class ChosenAction(TenantOwnedModel):
    customer = derived_fk(Customer)
    action = models.CharField(max_length=10, choices=NextAction.choices)
    band = models.CharField(max_length=10, choices=RiskBand.choices)
    tier = models.CharField(max_length=20, choices=PolicyTier.choices)
    recently_contacted = models.BooleanField()
    p_churn = models.FloatField()
    expected_orders = models.FloatField()
    model_version = models.ForeignKey(
        ModelVersion, null=True, on_delete=models.SET_NULL, related_name="+", db_constraint=False
    )
    as_of = models.DateTimeField()
    chosen_at = models.DateTimeField(default=clock.now)
    horizon_end = models.DateTimeField()
    ordered = models.BooleanField(
        null=True, blank=True, help_text="Ordered within the horizon; empty until it has passed"
    )
    judged_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "customer", "as_of"], name="chosenaction_cust_asof_uniq"
            )
        ]
        indexes = [
            models.Index(fields=["tenant", "customer", "chosen_at"], name="chosenaction_cust"),
            models.Index(
                fields=["tenant", "horizon_end"],
                condition=Q(ordered__isnull=True),
                name="chosenaction_open",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.action} ({self.band})"


class RunStatus(models.TextChoices):
    RUNNING = "running", "Running"
    DONE = "done", "Done"


class ScoringRun(TenantOwnedModel):
    """One scoring of a tenant as of a moment, split into chunks of customer ids
    that workers score in parallel. A chunk commits its scores and its ``done``
    mark together, so a chunk that died is simply run again (by the sweeper)."""

    as_of = models.DateTimeField()
    model_version = models.ForeignKey(
        ModelVersion, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    announce = models.BooleanField(
        default=True, help_text="Band entries start journeys and calls (not on the first run)"
    )
    status = models.CharField(max_length=10, choices=RunStatus.choices, default=RunStatus.RUNNING)
    chunks = models.PositiveIntegerField(default=0)
    scored = models.PositiveIntegerField(default=0)
    entered = models.PositiveIntegerField(default=0)
    started_at = models.DateTimeField(default=clock.now)
    finished_at = models.DateTimeField(null=True, blank=True)
    seconds = models.JSONField(default=dict, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant", "as_of"], name="scoringrun_tenant_asof_uniq")
        ]
        indexes = [
            models.Index(
                fields=["status", "started_at"],
                condition=Q(status="running"),
                name="scoringrun_running",
            )
        ]

    def __str__(self) -> str:
        return f"Scoring as of {self.as_of:%Y-%m-%d %H:%M} ({self.status})"


class ScoringChunk(TenantOwnedModel):
    run = models.ForeignKey(ScoringRun, on_delete=models.CASCADE, related_name="chunk_rows")
    lo = models.BigIntegerField(help_text="First customer id (inclusive)")
    hi = models.BigIntegerField(help_text="Last customer id (inclusive)")
    done = models.BooleanField(default=False)
    scored = models.PositiveIntegerField(default=0)
    entered = models.PositiveIntegerField(default=0)
    attempts = models.PositiveIntegerField(default=0)
    queued_at = models.DateTimeField(default=clock.now)
    finished_at = models.DateTimeField(null=True, blank=True)
    seconds = models.JSONField(default=dict, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant", "run", "lo"], name="scoringchunk_uniq")
        ]
