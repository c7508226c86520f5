"""factory_boy factories shared by the suite."""

from datetime import datetime
from decimal import Decimal

import factory

from commerce.models import (
    Customer,
    Order,
    OrderLine,
    OrderStatus,
    PriceTier,
    Product,
    ProductFamily,
)
from journeys.models import Journey
from retention.models import Membership, Role, Tenant, User


class TenantFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Tenant
        django_get_or_create = ("slug",)

    slug = factory.Sequence(lambda n: f"store-{n}")
    name = factory.LazyAttribute(lambda o: f"Store {o.slug}")
    timezone = "Europe/Berlin"
    currency = "EUR"
    business_days = [1, 2, 3, 4, 5]


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        django_get_or_create = ("email",)

    email = factory.Sequence(lambda n: f"person{n}@example.com")
    is_staff = True
    password = factory.django.Password("pw-for-tests-123")


class MembershipFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Membership

    tenant = factory.SubFactory(TenantFactory)
    user = factory.SubFactory(UserFactory)
    role = Role.MARKETER


class JourneyFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Journey

    tenant = factory.SubFactory(TenantFactory)
    name = factory.Sequence(lambda n: f"Journey {n}")


class ProductFamilyFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ProductFamily

    tenant = factory.SubFactory(TenantFactory)
    name = factory.Sequence(lambda n: f"Family {n}")
    slug = factory.Sequence(lambda n: f"family-{n}")


class ProductFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Product

    tenant = factory.SubFactory(TenantFactory)
    sku = factory.Sequence(lambda n: f"SKU-{n:05d}")
    name = factory.Sequence(lambda n: f"Product {n}")
    family = factory.SubFactory(ProductFamilyFactory, tenant=factory.SelfAttribute("..tenant"))


class CustomerFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Customer

    tenant = factory.SubFactory(TenantFactory)
    email = factory.Sequence(lambda n: f"buyer{n}@shop.example")


def make_order(
    customer: Customer,
    placed_at: datetime,
    total: Decimal | str | int = "50.00",
    *,
    status: str = OrderStatus.PAID,
    families: tuple[ProductFamily, ...] = (),
    price_tier: str = PriceTier.STANDARD,
) -> Order:
    """An order written straight to the tables (no hooks): data for set-based
    code under test. One line per family, the total split evenly."""
    seq = Order.objects.for_tenant(customer.tenant_id).count() + 1
    total = Decimal(str(total))
    order = Order.objects.create(
        tenant_id=customer.tenant_id,
        customer=customer,
        external_id=f"T{customer.pk}-{seq}",
        currency="EUR",
        subtotal=total,
        total=total,
        status=status,
        placed_at=placed_at,
    )
    for family in families:
        share = (total / len(families)).quantize(Decimal("0.01"))
        OrderLine.objects.create(
            tenant_id=customer.tenant_id,
            order=order,
            family=family,
            sku=f"{family.slug}-1",
            unit_price=share,
            total=share,
            price_tier=price_tier,
        )
    return order
