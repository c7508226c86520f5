"""Commerce data: one picture of each customer, what they bought, how it was
delivered, what they left in carts or returned, and every touchpoint.

Every table is tenant-owned; unique constraints and hot indexes lead with
``tenant``. Rows from storefronts are keyed by ``(tenant, source, external_id)``
so that re-delivered webhooks, API retries and CSV re-runs update rather than
duplicate.
"""

from __future__ import annotations

from decimal import Decimal

from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models.functions import Now

from retention import clock
from retention.tenancy import TenantOwnedModel

MONEY = {"max_digits": 14, "decimal_places": 2, "default": Decimal("0")}


class CommerceSettings(TenantOwnedModel):
    """Per-tenant commerce configuration (one row per tenant)."""

    cart_abandon_minutes = models.PositiveIntegerField(
        default=60, help_text="A cart with no order after this many minutes is abandoned."
    )
    return_window_days = models.PositiveIntegerField(default=30)
    late_delivery_policy = models.TextField(
        blank=True,
        default=(
            "If your parcel is more than two days late, we will send a replacement or "
            "refund the shipping, whichever you prefer. Just reply to your order email."
        ),
        help_text="Shown to shoppers on the order page when a delivery is late.",
    )
    return_instructions = models.TextField(
        blank=True,
        default=(
            "Bring the items and this page to any of our stores, or pack them with the "
            "return label from your order email and drop them at the carrier."
        ),
    )
    shopify_webhook_secret = models.CharField(
        max_length=200,
        blank=True,
        help_text="The app's shared secret, used to verify Shopify webhooks.",
    )
    inbox_keep_days = models.PositiveIntegerField(
        default=30,
        validators=[MinValueValidator(1), MaxValueValidator(365)],
        help_text="Processed webhooks are deleted from the inbox this many days after they "
        "arrived; one re-sent after that is applied again, like a late event. Pending "
        "and failed ones are kept.",
    )

    class Meta:
        verbose_name = "commerce settings"
        verbose_name_plural = "commerce settings"
        constraints = [
            models.UniqueConstraint(fields=["tenant"], name="commercesettings_tenant_uniq")
        ]

    def __str__(self) -> str:
        return "Commerce settings"


class Channel(models.TextChoices):
    EMAIL = "email", "Email"
    SMS = "sms", "SMS"
    IN_APP = "in_app", "In-app"


class ConsentStatus(models.TextChoices):
    OPTED_IN = "opted_in", "Opted in"
    OPTED_OUT = "opted_out", "Opted out"
    UNKNOWN = "unknown", "Unknown"


class Customer(TenantOwnedModel):
    """One person across every storefront ID, email and phone number.

    ``email`` and ``phone`` are the current primary contact points; all known
    identifiers live in :class:`CustomerIdentity`. A customer merged into another
    keeps its row with ``merged_into`` set, so old references still resolve.
    """

    email = models.EmailField(max_length=254, blank=True, default="")
    phone = models.CharField(max_length=20, blank=True, default="", help_text="E.164")
    first_name = models.CharField(max_length=100, blank=True, default="")
    last_name = models.CharField(max_length=100, blank=True, default="")
    timezone = models.CharField(
        max_length=64, blank=True, default="", help_text="IANA; blank = store's"
    )
    locale = models.CharField(max_length=20, blank=True, default="")
    preferred_channel = models.CharField(
        max_length=10, choices=Channel.choices, blank=True, default=""
    )
    created_at = models.DateTimeField(default=clock.now, editable=False)
    updated_at = models.DateTimeField(default=clock.now)
    merged_into = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="merged_from"
    )
    erased_at = models.DateTimeField(
        null=True, blank=True, editable=False, help_text="When personal data was erased (GDPR)"
    )

    class Meta:
        ordering = ["-id"]
        indexes = [
            models.Index(fields=["tenant", "email"], name="customer_tenant_email"),
            models.Index(fields=["tenant", "phone"], name="customer_tenant_phone"),
            models.Index(fields=["tenant", "-created_at"], name="customer_tenant_created"),
        ]

    def __str__(self) -> str:
        name = f"{self.first_name} {self.last_name}".strip()
        return name or self.email or self.phone or f"Customer {self.pk}"


class IdentityKind(models.TextChoices):
    EMAIL = "email", "Email"
    PHONE = "phone", "Phone"
    EXTERNAL = "external", "Storefront ID"


class CustomerIdentity(TenantOwnedModel):
    """An identifier that leads to a customer: an email (lower case), a phone
    (E.164) or a storefront's own customer id (per ``source``)."""

    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="identities")
    kind = models.CharField(max_length=10, choices=IdentityKind.choices)
    source = models.CharField(max_length=50, blank=True, default="", help_text="For storefront IDs")
    value = models.CharField(max_length=254)
    created_at = models.DateTimeField(default=clock.now, editable=False)

    class Meta:
        verbose_name_plural = "customer identities"
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "kind", "source", "value"], name="identity_tenant_kind_value_uniq"
            )
        ]
        indexes = [models.Index(fields=["tenant", "customer"], name="identity_tenant_customer")]

    def __str__(self) -> str:
        return f"{self.kind}:{self.source + ':' if self.source else ''}{self.value}"


class ChannelConsent(TenantOwnedModel):
    """The current consent of a customer for one channel, with where it came from."""

    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="consents")
    channel = models.CharField(max_length=10, choices=Channel.choices)
    status = models.CharField(max_length=10, choices=ConsentStatus.choices)
    source = models.CharField(max_length=50, help_text="e.g. checkout, shopify, api, sms_stop")
    at = models.DateTimeField(default=clock.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "customer", "channel"],
                name="consent_tenant_customer_channel_uniq",
            )
        ]

    def __str__(self) -> str:
        return f"{self.channel}: {self.status}"


class CustomerMerge(TenantOwnedModel):
    """A record that two customer rows turned out to be one person."""

    survivor = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="merges")
    merged = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="+")
    reason = models.CharField(max_length=200)
    moved = models.JSONField(default=dict, help_text="How many rows of each kind moved")
    at = models.DateTimeField(default=clock.now)

    class Meta:
        indexes = [models.Index(fields=["tenant", "survivor"], name="merge_tenant_survivor")]


class PriceTier(models.TextChoices):
    STANDARD = "standard", "Standard"
    EXPENSIVE = "expensive", "Expensive"


class ErasedContact(TenantOwnedModel):
    """The SHA-256 of an email or phone number whose owner asked to be erased.

    No address is kept, only its hash: a later webhook, import or API call with
    the same address is recognised so it cannot opt the person back in.
    """

    kind = models.CharField(max_length=10, choices=IdentityKind.choices[:2])
    digest = models.CharField(max_length=64, help_text="SHA-256 hex of the normalised value")
    erased_at = models.DateTimeField(default=clock.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "kind", "digest"], name="erasedcontact_tenant_digest_uniq"
            )
        ]

    def __str__(self) -> str:
        return f"erased {self.kind} {self.digest[:12]}…"


class ProductFamily(TenantOwnedModel):
    """A group of products bought on the same rhythm, with the days after a
    purchase at which reorder, upsell and replenishment nudges are due."""

    name = models.CharField(max_length=100)
    slug = models.SlugField(max_length=100)
    reorder_days = models.PositiveIntegerField(default=7)
    upsell_days = models.PositiveIntegerField(default=14)
    replenishment_days = models.PositiveIntegerField(default=28)
    expensive_min_days = models.PositiveIntegerField(
        default=21, help_text="Earliest nudge for the expensive price tier."
    )
    expensive_max_days = models.PositiveIntegerField(
        default=35, help_text="Latest nudge for the expensive price tier."
    )
    related = models.ManyToManyField(
        "self", blank=True, symmetrical=False, help_text="Families to cross-sell after a purchase."
    )
    created_at = models.DateTimeField(default=clock.now, editable=False)

    class Meta:
        ordering = ["name"]
        verbose_name_plural = "product families"
        constraints = [
            models.UniqueConstraint(fields=["tenant", "slug"], name="family_tenant_slug_uniq"),
        ]

    def __str__(self) -> str:
        return self.name


class Product(TenantOwnedModel):
    sku = models.CharField(max_length=100)
    name = models.CharField(max_length=300)
    family = models.ForeignKey(
        ProductFamily, null=True, blank=True, on_delete=models.SET_NULL, related_name="products"
    )
    price = models.DecimalField(
        max_digits=12,
        decimal_places=2,
        default=Decimal("0"),
        validators=[MinValueValidator(Decimal("0"))],
    )
    price_tier = models.CharField(
        max_length=10, choices=PriceTier.choices, default=PriceTier.STANDARD
    )
    created_at = models.DateTimeField(default=clock.now, editable=False)

    class Meta:
        ordering = ["sku"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "sku"], name="product_tenant_sku_uniq"),
        ]

    def __str__(self) -> str:
        return f"{self.sku} {self.name}"


class OrderStatus(models.TextChoices):
    OPEN = "open", "Open"
    PAID = "paid", "Paid"
    FULFILLED = "fulfilled", "Fulfilled"
    CANCELLED = "cancelled", "Cancelled"
    REFUNDED = "refunded", "Refunded"


class Order(TenantOwnedModel):
    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="orders")
    source = models.CharField(
        max_length=50, default="storefront", help_text="storefront, shopify, api, csv"
    )
    external_id = models.CharField(max_length=100)
    number = models.CharField(
        max_length=50, blank=True, default="", help_text="Shown to the shopper"
    )
    status = models.CharField(max_length=10, choices=OrderStatus.choices, default=OrderStatus.PAID)
    currency = models.CharField(max_length=3)
    subtotal = models.DecimalField(**MONEY)
    discount_total = models.DecimalField(**MONEY)
    shipping_total = models.DecimalField(**MONEY)
    tax_total = models.DecimalField(**MONEY)
    fee_total = models.DecimalField(**MONEY)
    total = models.DecimalField(**MONEY)
    placed_at = models.DateTimeField()
    cancelled_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=clock.now, editable=False)
    updated_at = models.DateTimeField(default=clock.now)

    class Meta:
        ordering = ["-placed_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "source", "external_id"], name="order_tenant_source_ext_uniq"
            )
        ]
        indexes = [
            # RFM reads (tenant, customer, placed_at, total) with an index-only scan.
            models.Index(
                fields=["tenant", "customer", "placed_at"],
                include=["total", "status"],
                name="order_tenant_cust_placed",
            ),
            models.Index(fields=["tenant", "placed_at"], name="order_tenant_placed"),
        ]

    def __str__(self) -> str:
        return f"Order {self.number or self.external_id}"


class OrderLine(TenantOwnedModel):
    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="lines")
    product = models.ForeignKey(
        Product, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # Denormalised from the product at order time, so family windows and
    # category flags read one table and history survives catalogue edits.
    family = models.ForeignKey(
        ProductFamily, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    sku = models.CharField(max_length=100, blank=True, default="")
    name = models.CharField(max_length=300, blank=True, default="")
    quantity = models.PositiveIntegerField(default=1)
    unit_price = models.DecimalField(**MONEY)
    discount = models.DecimalField(**MONEY)
    total = models.DecimalField(**MONEY)
    price_tier = models.CharField(
        max_length=10, choices=PriceTier.choices, default=PriceTier.STANDARD
    )

    class Meta:
        indexes = [
            models.Index(fields=["tenant", "order"], name="line_tenant_order"),
            models.Index(fields=["tenant", "family"], name="line_tenant_family"),
        ]

    def __str__(self) -> str:
        return f"{self.quantity} x {self.name or self.sku}"


class FulfillmentStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    PACKED = "packed", "Packed"
    SHIPPED = "shipped", "Shipped"
    OUT_FOR_DELIVERY = "out_for_delivery", "Out for delivery"
    DELIVERED = "delivered", "Delivered"
    DELAYED = "delayed", "Delayed"
    FAILED = "failed", "Delivery failed"


# The order a parcel moves through; "delayed" and "failed" can happen at any
# point and do not move a delivered parcel back.
FULFILLMENT_PROGRESS = {
    FulfillmentStatus.PENDING: 0,
    FulfillmentStatus.PACKED: 1,
    FulfillmentStatus.SHIPPED: 2,
    FulfillmentStatus.DELAYED: 2,
    FulfillmentStatus.OUT_FOR_DELIVERY: 3,
    FulfillmentStatus.FAILED: 3,
    FulfillmentStatus.DELIVERED: 4,
}


class Fulfillment(TenantOwnedModel):
    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="fulfillments")
    external_id = models.CharField(max_length=100)
    status = models.CharField(
        max_length=20, choices=FulfillmentStatus.choices, default=FulfillmentStatus.PENDING
    )
    carrier = models.CharField(max_length=100, blank=True, default="")
    tracking_number = models.CharField(max_length=100, blank=True, default="")
    tracking_url = models.URLField(max_length=500, blank=True, default="")
    estimated_delivery_start = models.DateTimeField(null=True, blank=True)
    estimated_delivery_end = models.DateTimeField(null=True, blank=True)
    shipped_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(default=clock.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "order", "external_id"], name="fulfillment_tenant_order_ext_uniq"
            )
        ]
        indexes = [
            models.Index(fields=["tenant", "status", "updated_at"], name="fulfil_tenant_status")
        ]

    def __str__(self) -> str:
        return f"Fulfilment {self.external_id} ({self.status})"

    @property
    def is_late(self) -> bool:
        return (
            self.status != FulfillmentStatus.DELIVERED
            and self.estimated_delivery_end is not None
            and clock.now() > self.estimated_delivery_end
        ) or self.status == FulfillmentStatus.DELAYED


class DeliveryEvent(TenantOwnedModel):
    fulfillment = models.ForeignKey(Fulfillment, on_delete=models.CASCADE, related_name="events")
    status = models.CharField(max_length=20, choices=FulfillmentStatus.choices)
    at = models.DateTimeField()
    message = models.CharField(max_length=500, blank=True, default="")

    class Meta:
        ordering = ["at", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "fulfillment", "status", "at"], name="delivery_event_uniq"
            )
        ]
        indexes = [
            # Churn features ask which parcels were ever delayed: without this the
            # question scans every delivery event (2 s per scoring chunk at 14M).
            models.Index(
                fields=["tenant", "fulfillment", "at"],
                condition=models.Q(status="delayed"),
                name="delivery_event_delayed",
            )
        ]

    def __str__(self) -> str:
        return f"{self.status} at {self.at:%Y-%m-%d %H:%M}"


class CartStatus(models.TextChoices):
    ACTIVE = "active", "Active"
    ABANDONED = "abandoned", "Abandoned"
    CONVERTED = "converted", "Converted"


class Cart(TenantOwnedModel):
    customer = models.ForeignKey(
        Customer, null=True, blank=True, on_delete=models.SET_NULL, related_name="carts"
    )
    source = models.CharField(max_length=50, default="storefront")
    external_id = models.CharField(max_length=100)
    status = models.CharField(max_length=10, choices=CartStatus.choices, default=CartStatus.ACTIVE)
    currency = models.CharField(max_length=3, blank=True, default="")
    total = models.DecimalField(**MONEY)
    items = models.JSONField(default=list, blank=True)
    recovery_url = models.URLField(max_length=1000, blank=True, default="")
    updated_at = models.DateTimeField(default=clock.now)
    abandoned_at = models.DateTimeField(null=True, blank=True)
    order = models.ForeignKey(
        Order, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "source", "external_id"], name="cart_tenant_source_ext_uniq"
            )
        ]
        indexes = [
            # The abandonment sweeper reads active carts by age.
            models.Index(
                fields=["tenant", "updated_at"],
                name="cart_active_updated",
                condition=models.Q(status="active"),
            ),
            models.Index(fields=["tenant", "customer"], name="cart_tenant_customer"),
        ]

    def __str__(self) -> str:
        return f"Cart {self.external_id} ({self.status})"


class Return(TenantOwnedModel):
    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="returns")
    source = models.CharField(max_length=50, default="storefront")
    external_id = models.CharField(max_length=100)
    reason = models.CharField(max_length=300, blank=True, default="")
    refund_amount = models.DecimalField(**MONEY)
    lines = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(default=clock.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "source", "external_id"], name="return_tenant_source_ext_uniq"
            )
        ]
        indexes = [models.Index(fields=["tenant", "order"], name="return_tenant_order")]

    def __str__(self) -> str:
        return f"Return {self.external_id}"


class TouchpointCategory(models.TextChoices):
    PRODUCT = "product", "Product"
    MARKETING = "marketing", "Marketing"
    SUPPORT = "support", "Support"
    COMMERCE = "commerce", "Commerce"


class Touchpoint(TenantOwnedModel):
    """Anything that happened to a customer: the one timeline every screen shows.

    ``kind`` is a dotted name such as ``onboarding.completed``, ``feature.activated``,
    ``first_value.reached``, ``message.opened``, ``ticket.opened``, ``ticket.answered``
    (with ``properties.response_seconds``), ``order.placed``, ``checkout.feedback``.
    """

    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="touchpoints")
    category = models.CharField(max_length=10, choices=TouchpointCategory.choices)
    kind = models.CharField(max_length=100)
    source = models.CharField(max_length=50, default="storefront")
    occurred_at = models.DateTimeField()
    properties = models.JSONField(default=dict, blank=True)
    # NULL, not "", means "no client id": the partial unique constraint skips NULLs.
    external_id = models.CharField(  # noqa: DJ001
        max_length=100, null=True, blank=True, help_text="Client-given id: a repeat is ignored"
    )
    created_at = models.DateTimeField(default=clock.now, editable=False)

    class Meta:
        ordering = ["-occurred_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "source", "external_id"],
                name="touchpoint_tenant_source_ext_uniq",
                condition=models.Q(external_id__isnull=False),
            )
        ]
        indexes = [
            models.Index(
                fields=["tenant", "customer", "-occurred_at"], name="touch_tenant_cust_time"
            ),
            models.Index(fields=["tenant", "kind", "occurred_at"], name="touch_tenant_kind_time"),
            models.Index(fields=["tenant", "occurred_at"], name="touch_tenant_time"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} at {self.occurred_at:%Y-%m-%d %H:%M}"


class InboxStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    PROCESSED = "processed", "Processed"
    FAILED = "failed", "Failed"


class InboxEntry(TenantOwnedModel):
    """A webhook exactly as it arrived, stored before it is acknowledged.

    Processing (a per-tenant drain task on the ``ingest`` queue) reads due
    pending entries from here and can be re-run; ``(tenant, channel, webhook_id)``
    is unique so a replay is seen once.
    """

    channel = models.CharField(max_length=20, help_text="standard or shopify")
    webhook_id = models.CharField(max_length=200)
    topic = models.CharField(max_length=100)
    headers = models.JSONField(default=dict)
    body = models.TextField()
    received_at = models.DateTimeField(default=clock.now)
    status = models.CharField(
        max_length=10, choices=InboxStatus.choices, default=InboxStatus.PENDING
    )
    # When a pending entry may next be processed: now for a new one, later for
    # an out-of-order event waiting for what it refers to. A due time in the
    # row, not a long countdown in the broker (ARCHITECTURE.md rule 3).
    available_at = models.DateTimeField(default=clock.now, db_default=Now())
    attempts = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True, default="")
    processed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "inbox entry"
        verbose_name_plural = "inbox"
        ordering = ["-received_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "channel", "webhook_id"], name="inbox_tenant_channel_hook_uniq"
            )
        ]
        indexes = [
            # The drain and the sweeper read pending entries that are due.
            models.Index(
                fields=["tenant", "available_at"],
                name="inbox_pending",
                condition=models.Q(status="pending"),
            ),
            models.Index(fields=["tenant", "status", "-received_at"], name="inbox_tenant_status"),
        ]

    def __str__(self) -> str:
        return f"{self.topic} {self.webhook_id}"
