"""factory_boy factories shared by the suite."""

import factory

from commerce.models import Product, ProductFamily
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
