"""Commerce data: product families and products (more arrives with the commerce issue)."""

from decimal import Decimal

from django.core.validators import MinValueValidator
from django.db import models

from retention import clock
from retention.tenancy import TenantOwnedModel


class PriceTier(models.TextChoices):
    STANDARD = "standard", "Standard"
    EXPENSIVE = "expensive", "Expensive"


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
