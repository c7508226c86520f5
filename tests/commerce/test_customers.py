"""One customer across storefront ids, emails and phones; merges keep everything."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from commerce.models import (
    ChannelConsent,
    Customer,
    CustomerIdentity,
    CustomerMerge,
    Order,
    Touchpoint,
)
from commerce.services.customers import (
    CustomerRef,
    consent_set,
    customer_merge,
    customer_resolve,
    customer_upsert,
)
from commerce.services.orders import order_upsert
from retention import clock
from retention.errors import InvalidInput

T0 = datetime(2026, 5, 1, 10, 0, tzinfo=UTC)


def _order(order_id: str, customer: dict, total: str = "10.00") -> dict:
    return {
        "id": order_id,
        "placed_at": T0,
        "customer": customer,
        "total": Decimal(total),
        "lines": [
            {
                "sku": "COF-1",
                "name": "Coffee",
                "quantity": 1,
                "unit_price": Decimal(total),
                "discount": Decimal(0),
            }
        ],
    }


def test_same_storefront_id_is_one_customer(tenant):
    a = customer_resolve(tenant=tenant, ref=CustomerRef(external_id="42", email="a@x.com"))
    b = customer_resolve(tenant=tenant, ref=CustomerRef(external_id="42"))
    assert a.pk == b.pk
    assert Customer.objects.for_tenant(tenant).count() == 1


def test_known_email_under_new_storefront_id_lands_on_same_customer(tenant):
    first = customer_resolve(tenant=tenant, ref=CustomerRef(external_id="web-1", email="a@x.com"))
    second = customer_resolve(
        tenant=tenant, ref=CustomerRef(external_id="pos-9", source="pos", email="a@x.com")
    )
    assert second.pk == first.pk
    assert set(
        CustomerIdentity.objects.for_tenant(tenant).values_list("kind", "source", "value")
    ) == {
        ("external", "storefront", "web-1"),
        ("email", "", "a@x.com"),
        ("external", "pos", "pos-9"),
    }


def test_known_phone_lands_on_same_customer(tenant):
    first = customer_resolve(tenant=tenant, ref=CustomerRef(phone="+4915112345678"))
    again = customer_resolve(
        tenant=tenant, ref=CustomerRef(external_id="7", phone="+4915112345678")
    )
    assert again.pk == first.pk


def test_same_email_in_two_tenants_is_two_customers(tenant, other_tenant):
    a = customer_resolve(tenant=tenant, ref=CustomerRef(email="a@x.com"))
    b = customer_resolve(tenant=other_tenant, ref=CustomerRef(email="a@x.com"))
    assert a.pk != b.pk
    assert a.tenant_id == tenant.pk and b.tenant_id == other_tenant.pk


def test_event_linking_two_customers_merges_them_keeping_everything(tenant):
    # Given two customers known separately, each with an order, a touchpoint and consent
    order_upsert(
        tenant=tenant, data=_order("o1", {"id": "web-1", "email": "a@x.com"}), source="storefront"
    )
    order_upsert(
        tenant=tenant,
        data=_order("o2", {"id": "app-7", "phone": "+14155552671"}, "20.00"),
        source="storefront",
    )
    older, newer = Customer.objects.for_tenant(tenant).order_by("pk")
    consent_set(customer=older, channel="email", status="opted_in", source="checkout", at=T0)
    consent_set(
        customer=newer,
        channel="email",
        status="opted_out",
        source="unsubscribe",
        at=T0 + timedelta(days=1),
    )
    consent_set(customer=newer, channel="sms", status="opted_in", source="checkout", at=T0)

    # When one event carries the email of one and the phone of the other
    survivor = customer_resolve(
        tenant=tenant, ref=CustomerRef(email="a@x.com", phone="+14155552671")
    )

    # Then they are one customer with all orders, touchpoints, identities, consent
    assert survivor.pk == older.pk
    assert sorted(
        Order.objects.for_tenant(tenant)
        .filter(customer=survivor)
        .values_list("external_id", flat=True)
    ) == ["o1", "o2"]
    assert Touchpoint.objects.for_tenant(tenant).filter(customer=survivor).count() == 2
    assert CustomerIdentity.objects.for_tenant(tenant).filter(customer=survivor).count() == 4
    consents = dict(
        ChannelConsent.objects.for_tenant(tenant)
        .filter(customer=survivor)
        .values_list("channel", "status")
    )
    assert consents == {"email": "opted_out", "sms": "opted_in"}  # the newer decision wins
    newer.refresh_from_db()
    assert newer.merged_into_id == survivor.pk
    merge = CustomerMerge.objects.for_tenant(tenant).get()
    assert (merge.survivor_id, merge.merged_id) == (older.pk, newer.pk)
    assert merge.moved["orders"] == 1 and merge.moved["touchpoints"] == 1
    # and the merged customer's ids now lead to the survivor
    assert customer_resolve(tenant=tenant, ref=CustomerRef(external_id="app-7")).pk == older.pk


def test_merge_across_tenants_refused(tenant, other_tenant):
    a = customer_resolve(tenant=tenant, ref=CustomerRef(email="a@x.com"))
    b = customer_resolve(tenant=other_tenant, ref=CustomerRef(email="b@x.com"))
    with pytest.raises(InvalidInput):
        customer_merge(survivor=a, merged=b, reason="test")


def test_upsert_normalises_and_records_consent(tenant):
    customer = customer_upsert(
        tenant=tenant,
        source="storefront",
        data={
            "id": "9",
            "email": " Bea@X.com ",
            "phone": "(415) 555-2671",
            "first_name": "Bea",
            "timezone": "America/New_York",
            "accepts_email": True,
            "accepts_sms": False,
        },
    )
    assert (customer.email, customer.phone, customer.first_name) == (
        "bea@x.com",
        "+14155552671",
        "Bea",
    )
    assert dict(ChannelConsent.objects.for_tenant(tenant).values_list("channel", "status")) == {
        "email": "opted_in",
        "sms": "opted_out",
    }


def test_older_consent_never_overrides_newer(tenant):
    customer = customer_resolve(tenant=tenant, ref=CustomerRef(email="a@x.com"))
    consent_set(
        customer=customer,
        channel="email",
        status="opted_out",
        source="unsubscribe",
        at=T0 + timedelta(hours=1),
    )
    consent_set(customer=customer, channel="email", status="opted_in", source="checkout", at=T0)
    assert ChannelConsent.objects.for_tenant(tenant).get().status == "opted_out"


def test_bad_identifiers_are_field_errors(tenant):
    with pytest.raises(InvalidInput) as exc:
        customer_upsert(tenant=tenant, source="storefront", data={"email": "nope", "phone": "12"})
    assert set(exc.value.fields["customer"]) == {"email", "phone"}
    assert not Customer.objects.for_tenant(tenant).exists()


def test_profile_updates_keep_old_email_as_identity(tenant):
    clock.set_now(T0)
    customer_upsert(tenant=tenant, source="storefront", data={"id": "1", "email": "old@x.com"})
    customer = customer_upsert(
        tenant=tenant, source="storefront", data={"id": "1", "email": "new@x.com"}
    )
    assert customer.email == "new@x.com"
    assert customer_resolve(tenant=tenant, ref=CustomerRef(email="old@x.com")).pk == customer.pk


def test_a_storefront_consent_stamped_in_the_future_counts_as_now(tenant):
    clock.set_now(T0)
    customer = customer_upsert(
        tenant=tenant,
        source="storefront",
        data={
            "id": "1",
            "email": "a@x.com",
            "accepts_email": True,
            "updated_at": T0 + timedelta(days=1),
        },
    )
    consent = ChannelConsent.objects.for_tenant(tenant).get()
    assert consent.at == T0
    # The shopper's unsubscribe a minute later wins.
    consent_set(
        customer=customer,
        channel="email",
        status="opted_out",
        source="preferences_page",
        at=T0 + timedelta(minutes=1),
    )
    assert ChannelConsent.objects.for_tenant(tenant).get().status == "opted_out"
