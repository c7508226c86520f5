"""The tenant-scoped manager fails closed."""

import pytest

from commerce.models import Product, ProductFamily
from journeys.models import Journey
from retention.tenancy import TenantScopeError
from tests.factories import JourneyFactory, ProductFactory


@pytest.fixture
def journeys(tenant, other_tenant):
    return JourneyFactory(tenant=tenant, name="A1"), JourneyFactory(tenant=other_tenant, name="B1")


@pytest.mark.parametrize(
    "run",
    [
        lambda: list(Journey.objects.all()),
        lambda: list(Journey.objects.filter(name="A1")),
        lambda: Journey.objects.count(),
        lambda: Journey.objects.exists(),
        lambda: Journey.objects.get(name="A1"),
        lambda: Journey.objects.filter(name="A1").first(),
        lambda: Journey.objects.update(name="x"),
        lambda: Journey.objects.filter(name="A1").delete(),
        lambda: list(Journey.objects.values_list("name", flat=True)),
        lambda: list(Journey.objects.iterator()),
        lambda: Journey.objects.aggregate(n=__import__("django.db.models").db.models.Count("id")),
        lambda: list(Journey.objects.exclude(tenant_id=1)),
    ],
    ids=[
        "all",
        "filter",
        "count",
        "exists",
        "get",
        "first",
        "update",
        "delete",
        "values",
        "iterator",
        "aggregate",
        "exclude-tenant",
    ],
)
def test_query_without_tenant_raises(journeys, run):
    with pytest.raises(TenantScopeError):
        run()


def test_nothing_changed_by_refused_writes(journeys):
    with pytest.raises(TenantScopeError):
        Journey.objects.update(name="hijacked")
    ours = Journey.objects.unscoped().filter(pk__in=[j.pk for j in journeys])
    assert sorted(ours.values_list("name", flat=True)) == ["A1", "B1"]


def test_for_tenant_returns_only_that_tenants_rows(journeys, tenant, other_tenant):
    # Both stores also have the shipped journeys; these two names are the test's.
    names = ["A1", "B1"]
    ours = Journey.objects.for_tenant(tenant).filter(name__in=names)
    theirs = Journey.objects.for_tenant(other_tenant).filter(name__in=names)
    assert list(ours.values_list("name", flat=True)) == ["A1"]
    assert list(theirs.values_list("name", flat=True)) == ["B1"]
    assert Journey.objects.for_tenant(tenant).filter(name="B1").count() == 0


def test_for_tenant_none_raises(db):
    with pytest.raises(TenantScopeError):
        Journey.objects.for_tenant(None)


def test_filter_on_tenant_column_counts_as_scoped(journeys, tenant):
    # Django's own unique checks filter on constraints that lead with tenant.
    assert Journey.objects.filter(tenant=tenant, name="A1").exists()
    assert Journey.objects.get(tenant_id=tenant.pk, name="A1").name == "A1"


def test_or_on_tenant_is_not_scoped(journeys, tenant):
    from django.db.models import Q

    with pytest.raises(TenantScopeError):
        list(Journey.objects.filter(Q(tenant=tenant) | Q(name="B1")))


def test_tenant_filter_through_a_join_is_not_scoped(journeys, tenant):
    # Only the model's own tenant column pins the scope.
    product = ProductFactory(tenant=tenant)
    with pytest.raises(TenantScopeError):
        list(Product.objects.filter(family__tenant=tenant))
    assert list(Product.objects.for_tenant(tenant)) == [product]


def test_related_manager_of_scoped_object_works(tenant, other_tenant):
    p = ProductFactory(tenant=tenant)
    ProductFactory(tenant=other_tenant)
    family = ProductFamily.objects.for_tenant(tenant).get(pk=p.family_id)
    assert list(family.products.all()) == [p]


def test_unscoped_is_the_explicit_escape_hatch(journeys):
    assert Journey.objects.unscoped().filter(name__in=["A1", "B1"]).count() == 2
