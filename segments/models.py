"""Segments: every buyer's RFM and tier, rule segments, memberships, transitions
and rising-interest alerts.

- ``CustomerRFM`` holds one row per customer with at least one counted order
  (not cancelled or refunded). Recency is kept as ``last_order_at`` so "days since
  last order" is always current; frequency and monetary count the tenant's
  window. Scores are 1-5 by quintile within the tenant; ties share a score.
- Tiers are segments too (``kind=tier``, three per tenant, created with the
  tenant), so journeys trigger on ``segment.entered`` / ``segment.left`` the same
  way for a tier or a rule segment. A tier's members are the RFM rows with that
  tier; a rule segment's members are ``SegmentMembership`` rows.
- ``SegmentTransition`` records every entry and exit once, with its time.
"""

from __future__ import annotations

from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

from commerce.models import Customer, ProductFamily
from retention import clock
from retention.tenancy import TenantOwnedModel


def derived_fk(to, **kwargs) -> models.ForeignKey:
    """A reference from a derived table (RFM rows, bought families, memberships,
    transitions) without a database constraint.

    These tables are written set-based, hundreds of thousands of rows at a time,
    from ids the same statement just read from the tables they point at;
    PostgreSQL's per-row constraint triggers would cost more than the writes
    (about 45 s for a first recompute of a million buyers). Nothing is lost:
    Django still cascades deletes, customers are never deleted (a merge leaves a
    tombstone), and every row can be rebuilt from the orders."""
    kwargs.setdefault("related_name", "+")
    return models.ForeignKey(
        to, on_delete=models.CASCADE, db_index=False, db_constraint=False, **kwargs
    )


class Tier(models.TextChoices):
    HIGH_VALUE_REPEAT = "high_value_repeat", "High-value repeat"
    MID_VALUE_REPEAT = "mid_value_repeat", "Mid-value repeat"
    ONE_TIME = "one_time", "One-time"


class SegmentSettings(TenantOwnedModel):
    """Per-tenant RFM window, tier thresholds, nightly hour and alert settings.

    ``boundaries`` holds the quintile edges of the last full recompute: for each
    of recency (last order time), frequency and monetary, the smallest value that
    earns a score of 2, 3, 4 and 5 (``null`` when no customer reaches it). A new
    order scores against these edges within seconds; the nightly recompute
    re-ranks everyone and moves the edges.
    """

    window_days = models.PositiveIntegerField(
        default=365,
        validators=[MinValueValidator(7), MaxValueValidator(3650)],
        help_text="Frequency and monetary value count orders placed in this many days.",
    )
    repeat_min_orders = models.PositiveIntegerField(
        default=2,
        validators=[MinValueValidator(2), MaxValueValidator(1000)],
        help_text="Orders in the window that make a repeat buyer (high- or mid-value tier).",
    )
    high_value_min_monetary_score = models.PositiveSmallIntegerField(
        default=4,
        validators=[MinValueValidator(1), MaxValueValidator(5)],
        help_text="A repeat buyer with at least this monetary score (1-5) is high-value.",
    )
    nightly_hour = models.PositiveSmallIntegerField(
        default=3,
        validators=[MaxValueValidator(23)],
        help_text="Hour of the night (tenant's timezone) for the full recompute.",
    )
    rising_threshold_pct = models.PositiveIntegerField(
        default=50,
        validators=[MinValueValidator(1), MaxValueValidator(10000)],
        help_text="Raise a rising-interest alert when a segment's engagement per member over "
        "the last 7 days is this many percent above its trailing 4-week weekly average.",
    )
    rising_min_members = models.PositiveIntegerField(
        default=20, help_text="Segments smaller than this never raise rising-interest alerts."
    )
    boundaries = models.JSONField(default=dict, blank=True, editable=False)
    last_full_at = models.DateTimeField(null=True, blank=True, editable=False)
    last_full_seconds = models.FloatField(null=True, blank=True, editable=False)
    last_nightly_at = models.DateTimeField(
        null=True, blank=True, editable=False, help_text="When tonight's run was claimed"
    )
    updated_at = models.DateTimeField(default=clock.now, editable=False)

    class Meta:
        verbose_name = "segment settings"
        verbose_name_plural = "segment settings"
        constraints = [
            models.UniqueConstraint(fields=["tenant"], name="segmentsettings_tenant_uniq")
        ]

    def __str__(self) -> str:
        return f"Segment settings of {self.tenant_id}"


class CustomerRFM(TenantOwnedModel):
    tenant = derived_fk("retention.Tenant")
    customer = derived_fk(Customer)
    first_order_at = models.DateTimeField()
    last_order_at = models.DateTimeField()
    orders_total = models.PositiveIntegerField(help_text="Counted orders, all time")
    frequency = models.PositiveIntegerField(help_text="Counted orders in the window")
    monetary = models.DecimalField(max_digits=14, decimal_places=2, help_text="Spend in the window")
    r_score = models.PositiveSmallIntegerField()
    f_score = models.PositiveSmallIntegerField()
    m_score = models.PositiveSmallIntegerField()
    tier = models.CharField(max_length=20, choices=Tier.choices)
    # Category flags: family ids by spend, all time (most first), and the price
    # tier that carries most of the customer's spend.
    top_families = models.JSONField(default=list, blank=True)
    price_tier = models.CharField(max_length=10, blank=True, default="")
    computed_at = models.DateTimeField(default=clock.now)

    class Meta:
        verbose_name = "customer RFM"
        verbose_name_plural = "customer RFM"
        constraints = [
            models.UniqueConstraint(fields=["tenant", "customer"], name="rfm_tenant_customer_uniq")
        ]
        indexes = [
            # Tier counts, and tier member pages in customer order.
            models.Index(fields=["tenant", "tier", "customer"], name="rfm_tenant_tier_cust"),
            models.Index(fields=["tenant", "last_order_at"], name="rfm_tenant_last_order"),
            # The nightly recompute merges the stored rows with the orders'
            # aggregate in customer order: read in that order, not sorted
            # (the planner does not take the unique index's order once the
            # tenant is fixed inside the full join). 0.1 s at a million.
            models.Index(fields=["customer"], name="rfm_customer"),
        ]

    def __str__(self) -> str:
        return f"RFM {self.r_score}{self.f_score}{self.m_score} {self.tier}"


class CustomerFamily(TenantOwnedModel):
    """What a customer bought of one product family, all time: the source of
    category flags, "bought family X" conditions and family trigger windows."""

    tenant = derived_fk("retention.Tenant")
    customer = derived_fk(Customer)
    family = derived_fk(ProductFamily)
    orders = models.PositiveIntegerField()
    spend = models.DecimalField(max_digits=14, decimal_places=2)
    expensive_spend = models.DecimalField(max_digits=14, decimal_places=2, default=0)
    first_at = models.DateTimeField()
    last_at = models.DateTimeField()

    class Meta:
        verbose_name_plural = "customer families"
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "customer", "family"], name="custfamily_tenant_cust_fam_uniq"
            )
        ]
        indexes = [
            models.Index(fields=["tenant", "family", "last_at"], name="custfamily_tenant_fam_last")
        ]

    def __str__(self) -> str:
        return f"{self.customer_id} bought {self.family_id}"


class SegmentKind(models.TextChoices):
    TIER = "tier", "Tier"
    RULE = "rule", "Rule segment"
    # Members are added and removed one by one (journey steps, marketers); no
    # rule refresh ever rebuilds them.
    LIST = "list", "List segment"


class SegmentStatus(models.TextChoices):
    ACTIVE = "active", "Active"
    ARCHIVED = "archived", "Archived"


class Match(models.TextChoices):
    ALL = "all", "All conditions"
    ANY = "any", "Any condition"


class Segment(TenantOwnedModel):
    """A named set of customers. Tier segments are created with the tenant and
    follow the RFM tiers; rule segments are built by marketers from the safe
    conditions in ``segments.rules`` (no raw SQL)."""

    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=100)
    description = models.TextField(blank=True, default="")
    kind = models.CharField(max_length=10, choices=SegmentKind.choices, default=SegmentKind.RULE)
    tier = models.CharField(max_length=20, choices=Tier.choices, blank=True, default="")
    match = models.CharField(max_length=3, choices=Match.choices, default=Match.ALL)
    conditions = models.JSONField(
        default=list,
        blank=True,
        help_text='A list of {"field": ..., "op": ..., "value": ...}; see the README.',
    )
    status = models.CharField(
        max_length=10, choices=SegmentStatus.choices, default=SegmentStatus.ACTIVE
    )
    member_count = models.PositiveIntegerField(default=0, editable=False)
    counted_at = models.DateTimeField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(default=clock.now, editable=False)
    updated_at = models.DateTimeField(default=clock.now, editable=False)

    class Meta:
        ordering = ["kind", "name"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "slug"], name="segment_tenant_slug_uniq"),
            models.UniqueConstraint(
                fields=["tenant", "tier"],
                name="segment_tenant_tier_uniq",
                condition=models.Q(kind="tier"),
            ),
        ]
        indexes = [models.Index(fields=["tenant", "kind", "status"], name="segment_tenant_kind")]

    def __str__(self) -> str:
        return self.name

    def save(self, *args, **kwargs):
        self.updated_at = clock.now()
        if kwargs.get("update_fields") is not None:
            kwargs["update_fields"] = {*kwargs["update_fields"], "updated_at"}
        super().save(*args, **kwargs)


class SegmentMembership(TenantOwnedModel):
    """A customer currently in a rule segment (tier members live in CustomerRFM)."""

    tenant = derived_fk("retention.Tenant")
    segment = derived_fk(Segment, related_name="memberships")
    customer = derived_fk(Customer)
    since = models.DateTimeField(default=clock.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "segment", "customer"], name="membership_tenant_seg_cust_uniq"
            )
        ]
        indexes = [
            models.Index(fields=["tenant", "customer"], name="membership_tenant_customer"),
        ]

    def __str__(self) -> str:
        return f"{self.customer_id} in {self.segment_id}"


class TransitionKind(models.TextChoices):
    ENTERED = "entered", "Entered"
    LEFT = "left", "Left"


class SegmentTransition(TenantOwnedModel):
    """One entry into or exit from a segment (or tier), recorded once."""

    tenant = derived_fk("retention.Tenant")
    segment = derived_fk(Segment, related_name="transitions")
    customer = derived_fk(Customer)
    kind = models.CharField(max_length=10, choices=TransitionKind.choices)
    at = models.DateTimeField(default=clock.now)
    cause = models.CharField(
        max_length=20, default="", blank=True, help_text="order, recompute, refresh, merge"
    )

    class Meta:
        ordering = ["-at", "-id"]
        indexes = [
            models.Index(fields=["tenant", "customer", "at"], name="transition_tenant_cust_at"),
            models.Index(fields=["tenant", "segment", "at"], name="transition_tenant_seg_at"),
        ]

    def __str__(self) -> str:
        return f"{self.customer_id} {self.kind} {self.segment_id}"


class RisingInterestAlert(TenantOwnedModel):
    """A segment whose engagement per member in the last 7 days rose above its
    trailing 4-week baseline by more than the tenant's threshold."""

    segment = models.ForeignKey(Segment, on_delete=models.CASCADE, related_name="alerts")
    day = models.DateField(help_text="The tenant-local day the alert was raised")
    members = models.PositiveIntegerField()
    current_per_member = models.FloatField(help_text="Engagement per member, last 7 days")
    baseline_per_member = models.FloatField(
        help_text="Engagement per member per week, the 4 weeks before"
    )
    rise_pct = models.FloatField()
    breakdown = models.JSONField(default=dict, help_text="orders, clicks and visits, both periods")
    raised_at = models.DateTimeField(default=clock.now)
    emailed_to = models.JSONField(default=list, blank=True)
    acknowledged_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-raised_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "segment", "day"], name="alert_tenant_segment_day_uniq"
            )
        ]
        indexes = [models.Index(fields=["tenant", "raised_at"], name="alert_tenant_raised")]

    def __str__(self) -> str:
        return f"Rising interest in {self.segment} (+{self.rise_pct:.0f}%)"


class AlertSubscription(TenantOwnedModel):
    """An owner who asked to receive rising-interest alerts by email."""

    user = models.ForeignKey("retention.User", on_delete=models.CASCADE, related_name="+")
    created_at = models.DateTimeField(default=clock.now, editable=False)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant", "user"], name="alertsub_tenant_user_uniq")
        ]

    def __str__(self) -> str:
        return f"{self.user_id} gets alerts of {self.tenant_id}"
