"""Commerce admin screens: search, the timeline, inbox retry, tenancy and roles."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from django.urls import reverse

from commerce.models import (
    CommerceSettings,
    Customer,
    CustomerIdentity,
    InboxEntry,
    InboxStatus,
    Order,
)
from commerce.services.orders import commerce_settings
from commerce.services.touchpoints import touchpoint_record

ORDER_BODY = {
    "type": "order.created",
    "data": {
        "id": "A-1",
        "placed_at": "2026-11-20T10:00:00Z",
        "customer": {"email": "ann@example.com"},
        "lines": [{"sku": "S-1", "quantity": 1, "unit_price": "10.00"}],
    },
}


pytestmark = pytest.mark.usefixtures("eager_tasks")


@pytest.fixture
def people(tenant, other_tenant):
    ann = Customer.objects.create(
        tenant=tenant, email="ann@example.com", phone="+4915112345678", first_name="Ann"
    )
    CustomerIdentity.objects.create(
        tenant=tenant, customer=ann, kind="external", source="storefront", value="shop-42"
    )
    bob = Customer.objects.create(tenant=tenant, email="bob@example.com", first_name="Bob")
    eve = Customer.objects.create(tenant=other_tenant, email="ann@other.example", first_name="Eve")
    return {"ann": ann, "bob": bob, "eve": eve}


def _changelist(client, q: str) -> str:
    resp = client.get(reverse("admin:commerce_customer_changelist"), {"q": q})
    assert resp.status_code == 200
    return resp.content.decode()


@pytest.mark.parametrize("query", ["ann@example.com", "+49151", "shop-42"])
def test_customer_search_by_email_phone_and_identity(marketer_client, people, query):
    body = _changelist(marketer_client, query)
    assert "ann@example.com" in body
    assert "bob@example.com" not in body
    assert "ann@other.example" not in body


def test_customer_search_by_id(marketer_client, people):
    body = _changelist(marketer_client, str(people["bob"].pk))
    assert "bob@example.com" in body
    assert "ann@other.example" not in body


def test_customer_page_shows_the_timeline_and_orders(viewer_client, tenant, people):
    touchpoint_record(
        tenant=tenant,
        customer=people["ann"],
        category="product",
        kind="onboarding.completed",
        source="app",
        occurred_at=datetime(2026, 11, 1, tzinfo=UTC),
    )
    Order.objects.create(
        tenant=tenant,
        customer=people["ann"],
        external_id="ORD-77",
        currency="EUR",
        placed_at=datetime(2026, 11, 2, tzinfo=UTC),
    )
    resp = viewer_client.get(reverse("admin:commerce_customer_change", args=[people["ann"].pk]))
    assert resp.status_code == 200
    body = resp.content.decode()
    assert "Timeline (last 50)" in body
    assert "onboarding.completed" in body
    assert "ORD-77" in body


def _failed_entry(tenant, webhook_id="w-1") -> InboxEntry:
    return InboxEntry.objects.create(
        tenant=tenant,
        channel="standard",
        webhook_id=webhook_id,
        topic="order.created",
        body=json.dumps(ORDER_BODY),
        status=InboxStatus.FAILED,
        attempts=8,
        error="Order 'A-1' is not known yet.",
    )


def test_inbox_retry_action_processes_failed_entries(
    marketer_client, tenant, django_capture_on_commit_callbacks
):
    entry = _failed_entry(tenant)
    with django_capture_on_commit_callbacks(execute=True):
        resp = marketer_client.post(
            reverse("admin:commerce_inboxentry_changelist"),
            {"action": "retry_selected", "_selected_action": [entry.pk]},
        )
    assert resp.status_code == 302
    entry.refresh_from_db()
    assert (entry.status, entry.attempts, entry.error) == ("processed", 1, "")
    assert Order.objects.for_tenant(tenant).get().external_id == "A-1"


def test_inbox_retry_ignores_other_tenants_entries(
    marketer_client, other_tenant, django_capture_on_commit_callbacks
):
    theirs = _failed_entry(other_tenant)
    with django_capture_on_commit_callbacks(execute=True):
        marketer_client.post(
            reverse("admin:commerce_inboxentry_changelist"),
            {"action": "retry_selected", "_selected_action": [theirs.pk]},
        )
    theirs.refresh_from_db()
    assert (theirs.status, theirs.attempts) == ("failed", 8)
    assert Order.objects.for_tenant(other_tenant).count() == 0


def test_viewer_cannot_retry_inbox_entries(viewer_client, tenant):
    entry = _failed_entry(tenant)
    viewer_client.post(
        reverse("admin:commerce_inboxentry_changelist"),
        {"action": "retry_selected", "_selected_action": [entry.pk]},
    )
    entry.refresh_from_db()
    assert entry.status == "failed"


def test_inbox_entry_page_shows_pretty_body_read_only(marketer_client, tenant):
    entry = _failed_entry(tenant)
    resp = marketer_client.get(reverse("admin:commerce_inboxentry_change", args=[entry.pk]))
    assert resp.status_code == 200
    body = resp.content.decode()
    assert "&quot;type&quot;: &quot;order.created&quot;" in body
    assert 'name="body"' not in body
    assert marketer_client.get(reverse("admin:commerce_inboxentry_add")).status_code == 403


def test_inbox_filters_by_status_channel_topic(marketer_client, tenant):
    _failed_entry(tenant)
    resp = marketer_client.get(
        reverse("admin:commerce_inboxentry_changelist"),
        {"status__exact": "failed", "channel__exact": "standard", "topic": "order.created"},
    )
    assert resp.status_code == 200
    assert "w-1" in resp.content.decode()


@pytest.mark.parametrize("model", ["customer", "order", "inboxentry"])
def test_other_tenants_rows_answer_404(marketer_client, other_tenant, people, model):
    rows = {
        "customer": people["eve"],
        "order": Order.objects.create(
            tenant=other_tenant,
            customer=people["eve"],
            external_id="THEIRS",
            currency="EUR",
            placed_at=datetime(2026, 11, 2, tzinfo=UTC),
        ),
        "inboxentry": _failed_entry(other_tenant),
    }
    resp = marketer_client.get(reverse(f"admin:commerce_{model}_change", args=[rows[model].pk]))
    assert resp.status_code == 404


def _settings_form(**overrides) -> dict:
    form = {
        "cart_abandon_minutes": 45,
        "return_window_days": 30,
        "late_delivery_policy": "x",
        "return_instructions": "y",
        "shopify_webhook_secret": "shpss_new",
        "inbox_keep_days": 14,
    }
    form.update(overrides)
    return form


def test_agent_cannot_change_commerce_settings(agent_client, tenant):
    row = commerce_settings(tenant)
    resp = agent_client.post(
        reverse("admin:commerce_commercesettings_change", args=[row.pk]), _settings_form()
    )
    assert resp.status_code == 403
    row.refresh_from_db()
    assert (row.cart_abandon_minutes, row.shopify_webhook_secret) == (60, "")


@pytest.mark.parametrize("client_fixture", ["marketer_client", "owner_client"])
def test_marketers_and_owners_edit_commerce_settings(request, tenant, client_fixture):
    client = request.getfixturevalue(client_fixture)
    row = commerce_settings(tenant)
    resp = client.post(
        reverse("admin:commerce_commercesettings_change", args=[row.pk]), _settings_form()
    )
    assert resp.status_code == 302
    row.refresh_from_db()
    assert (row.cart_abandon_minutes, row.shopify_webhook_secret) == (45, "shpss_new")
    assert row.inbox_keep_days == 14
    # one row per tenant: no second one can be added
    assert client.get(reverse("admin:commerce_commercesettings_add")).status_code == 403
    assert CommerceSettings.objects.for_tenant(tenant).count() == 1


@pytest.mark.parametrize(
    "name",
    ["order", "product", "productfamily", "cart", "return", "commercesettings", "inboxentry"],
)
def test_changelists_render(marketer_client, tenant, name):
    assert marketer_client.get(reverse(f"admin:commerce_{name}_changelist")).status_code == 200


def test_change_pages_with_raw_id_fields_render_scoped_labels(marketer_client, tenant, people):
    # given an order and a cart of tenant A (raw-id fields: customer, order, family)
    from commerce import ingest
    from commerce.models import Cart, Product

    order, _ = ingest.apply(tenant=tenant, topic="order.created", data=ORDER_BODY["data"])
    cart = Cart.objects.create(
        tenant=tenant, external_id="c-1", customer=people["ann"], order=order
    )
    product = Product.objects.for_tenant(tenant).get(sku="S-1")
    # when a marketer opens their change pages
    for url in (
        reverse("admin:commerce_order_change", args=[order.pk]),
        reverse("admin:commerce_cart_change", args=[cart.pk]),
        reverse("admin:commerce_product_change", args=[product.pk]),
    ):
        resp = marketer_client.get(url)
        # then they render, with the related object's label
        assert resp.status_code == 200, url
    assert (
        "Ann"
        in marketer_client.get(
            reverse("admin:commerce_cart_change", args=[cart.pk])
        ).content.decode()
    )


def _cart_form(cart, **changes) -> dict:
    """The cart change form as the admin posts it, with ``changes``."""
    return {
        "source": "storefront",
        "external_id": cart.external_id,
        "status": "active",
        "currency": "EUR",
        "total": "0",
        "items": "[]",
        "recovery_url": "",
        "updated_at_0": "2026-11-20",
        "updated_at_1": "10:00:00",
        "customer": cart.customer_id,
        "order": "",
        **changes,
    }


def test_raw_id_of_other_tenants_customer_is_refused_without_its_label(
    marketer_client, tenant, people
):
    from commerce.models import Cart

    cart = Cart.objects.create(tenant=tenant, external_id="c-1", customer=people["bob"])
    url = reverse("admin:commerce_cart_change", args=[cart.pk])
    resp = marketer_client.post(url, _cart_form(cart, customer=people["eve"].pk))
    body = resp.content.decode()
    assert resp.status_code == 200  # the form is shown again with an error
    assert "Eve" not in body
    cart.refresh_from_db()
    assert cart.customer_id == people["bob"].pk


def test_a_link_typed_without_a_scheme_is_saved_as_https(marketer_client, tenant, people):
    from commerce.models import Cart

    cart = Cart.objects.create(tenant=tenant, external_id="c-2", customer=people["bob"])
    url = reverse("admin:commerce_cart_change", args=[cart.pk])
    assert 'type="url"' in marketer_client.get(url).content.decode()  # the admin's URL widget
    resp = marketer_client.post(url, _cart_form(cart, recovery_url="shop.example/cart/2"))
    assert resp.status_code == 302, resp.content.decode()[-2000:]
    cart.refresh_from_db()
    assert cart.recovery_url == "https://shop.example/cart/2"
