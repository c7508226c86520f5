"""GDPR export and erasure: the API, the admin actions and the suppression that
keeps an erased person from being opted back in."""

from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal

import pytest
from django.test import Client

from commerce.models import (
    ChannelConsent,
    ConsentStatus,
    Customer,
    CustomerIdentity,
    ErasedContact,
    InboxEntry,
    Order,
    OrderLine,
    Touchpoint,
)
from commerce.schemas import CustomerPayload, OrderPayload
from commerce.services.customers import customer_upsert
from commerce.services.orders import order_upsert
from commerce.services.privacy import contact_digest, customer_erase
from commerce.services.touchpoints import touchpoint_record
from feedback.models import SurveyInvitation, SurveyResponse
from messaging.models import Message
from retention import clock
from retention.models import AuditEntry, Role
from tests.commerce.test_webhooks import post
from tests.conftest import login_as

pytestmark = pytest.mark.usefixtures("eager_tasks")

EMAIL = "ann.marker@example.com"
PHONE = "+14155552671"
ORDER = {
    "id": "1001",
    "number": "#1001",
    "placed_at": "2026-03-01T10:00:00Z",
    "currency": "eur",
    "customer": {
        "id": "c-1",
        "email": "Ann.Marker@Example.com",
        "phone": "(415) 555-2671",
        "first_name": "Annamarie",
        "last_name": "Zyxwort",
        "accepts_email": True,
    },
    "lines": [
        {"sku": "BEAN-1", "name": "Beans", "product_family": "Coffee", "unit_price": "12.50"},
        {"sku": "MUG", "name": "Mug", "quantity": 2, "unit_price": "8.00"},
    ],
    "shipping_total": "4.90",
}
PII = ("ann.marker", "Annamarie", "Zyxwort", "555-2671", "5552671")


def _order(tenant, order_id: str = "1001", **kw) -> Order:
    payload = OrderPayload(data={**ORDER, "id": order_id, **kw})
    payload.is_valid(raise_exception=True)
    return order_upsert(tenant=tenant, data=payload.validated_data, source="storefront")[0]


@pytest.fixture
def person(tenant) -> Customer:
    """A customer with an order, consent, an event, a message and a survey answer."""
    order = _order(tenant)
    customer = order.customer
    touchpoint_record(
        tenant=tenant,
        customer=customer,
        category="product",
        kind="viewed",
        source="storefront",
        occurred_at=clock.now(),
        properties={"email": EMAIL, "page": "/beans"},
    )
    Message.objects.create(
        tenant=tenant,
        customer=customer,
        channel="email",
        category="transactional",
        idempotency_key=f"test:{customer.pk}",
        to_address=EMAIL,
        subject="Thanks Annamarie",
        body_text="Hello Annamarie Zyxwort",
        status="sent",
    )
    invitation = SurveyInvitation.objects.create(
        tenant=tenant,
        customer=customer,
        channel="email",
        expires_at=clock.now() + timedelta(days=30),
    )
    SurveyResponse.objects.create(
        tenant=tenant,
        invitation=invitation,
        customer=customer,
        rating=2,
        classification="detractor",
        comment="Call me, Annamarie, on 415 555-2671",
        channel="web",
    )
    return customer


@pytest.fixture
def send(tenant, django_capture_on_commit_callbacks):
    """Post a signed storefront webhook and run the processing it enqueued."""

    def _send(topic: str, data: dict):
        with django_capture_on_commit_callbacks(execute=True):
            return post(tenant, {"type": topic, "data": data})

    return _send


def _bearer(key: str) -> Client:
    return Client(HTTP_AUTHORIZATION=f"Bearer {key}")


def _dump(obj) -> str:
    return json.dumps(obj, default=str)


# --- export ----------------------------------------------------------------------------


def test_export_holds_everything_about_the_customer(person, read_only_key):
    resp = _bearer(read_only_key).get(f"/api/v1/customers/{person.pk}/export/")

    assert resp.status_code == 200
    doc = resp.json()
    assert doc["format"] == "retention.gdpr-export/1"
    assert doc["customer"]["email"] == EMAIL
    assert doc["customer"]["first_name"] == "Annamarie"
    data = doc["data"]
    assert {i["value"] for i in data["commerce.customeridentity"]} == {"c-1", EMAIL, PHONE}
    assert [(c["channel"], c["status"]) for c in data["commerce.channelconsent"]] == [
        ("email", "opted_in")
    ]
    [order] = data["commerce.order"]
    assert order["total"] == "33.40"
    assert sorted(line["sku"] for line in order["lines"]) == ["BEAN-1", "MUG"]
    viewed = [t for t in data["commerce.touchpoint"] if t["kind"] == "viewed"]
    assert [t["properties"]["page"] for t in viewed] == ["/beans"]
    [message] = data["messaging.message"]
    assert message["subject"] == "Thanks Annamarie"
    assert "body_text" not in message
    assert [r["comment"] for r in data["feedback.surveyresponse"]] == [
        "Call me, Annamarie, on 415 555-2671"
    ]
    assert len(data["feedback.surveyinvitation"]) == 1
    for key in ("segments.segmentmembership", "scoring.churnscore", "experiments.exposure"):
        assert key in data


def test_export_of_another_tenants_customer_is_404(person, other_tenant):
    resp = _bearer(other_tenant.api_key).get(f"/api/v1/customers/{person.pk}/export/")

    assert resp.status_code == 404
    assert "ann.marker" not in resp.content.decode()


def test_admin_export_action_downloads_the_document(person, tenant):
    client = login_as(tenant, Role.MARKETER)

    resp = client.post(
        "/admin/commerce/customer/",
        {"action": "export_personal_data", "_selected_action": [person.pk]},
    )

    assert resp.status_code == 200
    assert resp["Content-Type"] == "application/json"
    assert "attachment" in resp["Content-Disposition"]
    doc = json.loads(resp.content)
    assert doc["customer"]["id"] == person.pk
    assert len(doc["data"]["commerce.order"]) == 1


def test_admin_actions_cannot_reach_another_tenants_customer(person, other_tenant):
    client = login_as(other_tenant, Role.OWNER)

    export = client.post(
        "/admin/commerce/customer/",
        {"action": "export_personal_data", "_selected_action": [person.pk]},
    )
    client.post(
        "/admin/commerce/customer/",
        {"action": "erase_personal_data", "_selected_action": [person.pk], "confirm": "yes"},
    )

    assert "ann.marker" not in export.content.decode()
    person.refresh_from_db()
    assert person.erased_at is None
    assert person.email == EMAIL


# --- erasure ---------------------------------------------------------------------------


def test_erasure_removes_personal_data_and_keeps_the_books(person, tenant):
    order = Order.objects.for_tenant(tenant).get(customer=person)
    resp = _bearer(tenant.api_key).post(f"/api/v1/customers/{person.pk}/erase/")

    assert resp.status_code == 200
    assert resp.json()["already_erased"] is False
    person.refresh_from_db()
    assert (person.email, person.phone, person.first_name, person.last_name) == ("", "", "", "")
    assert person.erased_at is not None
    assert not CustomerIdentity.objects.for_tenant(tenant).filter(customer=person).exists()
    assert list(ChannelConsent.objects.for_tenant(tenant).values_list("status", flat=True)) == [
        ConsentStatus.OPTED_OUT
    ]
    message = Message.objects.for_tenant(tenant).get(customer=person)
    assert (message.to_address, message.subject, message.body_text) == ("", "", "")
    assert Touchpoint.objects.for_tenant(tenant).get(kind="viewed").properties == {}
    assert SurveyResponse.objects.for_tenant(tenant).get().comment == ""
    kept = Order.objects.for_tenant(tenant).get(pk=order.pk)
    assert (kept.customer_id, kept.total, kept.placed_at) == (
        person.pk,
        Decimal("33.40"),
        order.placed_at,
    )
    assert OrderLine.objects.for_tenant(tenant).filter(order=kept).count() == 2
    assert set(ErasedContact.objects.for_tenant(tenant).values_list("kind", "digest")) == {
        ("email", contact_digest("email", EMAIL)),
        ("phone", contact_digest("phone", PHONE)),
    }
    export = customer_export_text(tenant, person)
    assert not any(marker.lower() in export.lower() for marker in PII)


def customer_export_text(tenant, customer) -> str:
    from commerce.services.privacy import customer_export

    return _dump(customer_export(tenant=tenant, customer=customer))


def test_erasure_is_idempotent(person, tenant, owner_client):
    first = customer_erase(tenant=tenant, customer=person, actor=owner_client.user)
    audits = AuditEntry.objects.for_tenant(tenant).count()

    second = customer_erase(tenant=tenant, customer=person, actor=owner_client.user)
    again = _bearer(tenant.api_key).post(f"/api/v1/customers/{person.pk}/erase/")

    assert first["identities"] == 3
    assert second == {}
    assert again.status_code == 200
    assert again.json()["already_erased"] is True
    assert AuditEntry.objects.for_tenant(tenant).count() == audits


def test_erasure_is_audited_without_personal_data(person, tenant):
    _bearer(tenant.api_key).post(f"/api/v1/customers/{person.pk}/erase/")

    entries = AuditEntry.objects.for_tenant(tenant).filter(object_id=str(person.pk))
    erasure = entries.get(changes__has_key="gdpr_erasure")
    assert erasure.actor_api_key is not None
    assert erasure.object_repr == f"Customer {person.pk}"
    text = _dump(list(entries.values("object_repr", "changes")))
    assert not any(marker.lower() in text.lower() for marker in PII)


def test_erasure_redacts_processed_webhook_bodies(tenant, send):
    send("order.created", ORDER)
    customer = Customer.objects.for_tenant(tenant).get()

    customer_erase(tenant=tenant, customer=customer, actor=None)

    body = InboxEntry.objects.for_tenant(tenant).get().body
    assert not any(marker.lower() in body.lower() for marker in PII)
    assert '"BEAN-1"' in body


def test_later_webhook_with_the_same_email_cannot_opt_them_back_in(person, tenant, send):
    customer_erase(tenant=tenant, customer=person, actor=None)

    send("order.created", {**ORDER, "id": "1002"})

    newcomer = Customer.objects.for_tenant(tenant).exclude(pk=person.pk).get()
    assert newcomer.pk != person.pk
    consent = ChannelConsent.objects.for_tenant(tenant).get(customer=newcomer)
    assert (consent.status, consent.source) == (ConsentStatus.OPTED_OUT, "gdpr_erasure")
    assert Order.objects.for_tenant(tenant).get(external_id="1001").customer_id == person.pk


def test_later_import_by_phone_cannot_opt_them_back_in(person, tenant):
    customer_erase(tenant=tenant, customer=person, actor=None)
    payload = CustomerPayload(data={"id": "x-9", "phone": "415-555-2671", "accepts_sms": True})
    payload.is_valid(raise_exception=True)

    again = customer_upsert(tenant=tenant, data=payload.validated_data, source="import")

    assert again.pk != person.pk
    consent = ChannelConsent.objects.for_tenant(tenant).get(customer=again)
    assert consent.status == ConsentStatus.OPTED_OUT


def test_other_people_can_still_opt_in(person, tenant):
    customer_erase(tenant=tenant, customer=person, actor=None)
    payload = CustomerPayload(data={"email": "someone.else@example.com", "accepts_email": True})
    payload.is_valid(raise_exception=True)

    other = customer_upsert(tenant=tenant, data=payload.validated_data, source="import")

    assert ChannelConsent.objects.for_tenant(tenant).get(customer=other).status == "opted_in"


def test_erase_needs_the_write_scope_and_the_right_tenant(person, read_only_key, other_tenant):
    denied = _bearer(read_only_key).post(f"/api/v1/customers/{person.pk}/erase/")
    foreign = _bearer(other_tenant.api_key).post(f"/api/v1/customers/{person.pk}/erase/")

    assert denied.status_code == 403
    assert foreign.status_code == 404
    person.refresh_from_db()
    assert person.email == EMAIL
    assert not ErasedContact.objects.unscoped().exists()


def test_admin_erase_asks_for_confirmation_first(person, tenant):
    client = login_as(tenant, Role.OWNER)
    selected = {"action": "erase_personal_data", "_selected_action": [person.pk]}

    confirm = client.post("/admin/commerce/customer/", selected)
    person.refresh_from_db()
    assert confirm.status_code == 200
    assert b"Yes, erase" in confirm.content
    assert person.erased_at is None

    done = client.post("/admin/commerce/customer/", {**selected, "confirm": "yes"})
    person.refresh_from_db()
    assert done.status_code == 302
    assert person.erased_at is not None
    assert person.email == ""


def test_marketers_cannot_erase_in_the_admin(person, tenant):
    client = login_as(tenant, Role.MARKETER)

    client.post(
        "/admin/commerce/customer/",
        {"action": "erase_personal_data", "_selected_action": [person.pk], "confirm": "yes"},
    )

    person.refresh_from_db()
    assert person.erased_at is None
