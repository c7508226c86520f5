"""The in-app inbox a storefront fetches: list, delivered on fetch, mark read,
and nothing of another tenant or another customer."""

import pytest

from commerce.models import Touchpoint
from messaging.models import Message, Status
from messaging.services.outbox import Content, message_enqueue
from messaging.services.send import send_batch
from tests.factories import CustomerFactory


def _in_app(tenant, customer, key: str, *, send: bool = True) -> Message:
    message = message_enqueue(
        tenant=tenant,
        customer=customer,
        channel="in_app",
        category="marketing",
        idempotency_key=key,
        content=Content(subject=f"Title {key}", text=f"Body {key}"),
    )
    if send:
        send_batch(tenant_id=tenant.pk, message_ids=[message.pk])
    return message


@pytest.fixture
def customer(tenant):
    return CustomerFactory(tenant=tenant)


def test_the_inbox_lists_sent_in_app_messages_newest_first_and_marks_them_delivered(
    tenant, customer, api_client
):
    old, new = _in_app(tenant, customer, "a"), _in_app(tenant, customer, "b")
    _in_app(tenant, customer, "queued", send=False)
    CustomerFactory(tenant=tenant)  # someone else's inbox stays out of it

    response = api_client.get(f"/api/v1/customers/{customer.pk}/inbox/")

    assert response.status_code == 200
    body = response.json()
    assert [(m["id"], m["title"], m["text"], m["read"]) for m in body["results"]] == [
        (new.pk, "Title b", "Body b", False),
        (old.pk, "Title a", "Body a", False),
    ]
    assert {m["status"] for m in body["results"]} == {"delivered"}
    old.refresh_from_db()
    assert old.status == Status.DELIVERED and old.delivered_at is not None


def test_marking_a_message_read_opens_it_once_and_records_a_touchpoint(
    tenant, customer, api_client
):
    message = _in_app(tenant, customer, "a")
    url = f"/api/v1/customers/{customer.pk}/inbox/{message.pk}/read/"

    first = api_client.post(url)
    again = api_client.post(url)

    assert first.status_code == again.status_code == 200
    assert first.json()["read"] is True and first.json()["status"] == "opened"
    assert Touchpoint.objects.for_tenant(tenant).filter(kind="message.opened").count() == 1
    unread = api_client.get(f"/api/v1/customers/{customer.pk}/inbox/?unread=true")
    assert unread.json()["results"] == []


def test_another_tenants_customer_or_message_answers_404_and_changes_nothing(
    tenant, other_tenant, customer, api_client
):
    stranger = CustomerFactory(tenant=other_tenant)
    theirs = _in_app(other_tenant, stranger, "x")
    mine = _in_app(tenant, customer, "y")

    assert api_client.get(f"/api/v1/customers/{stranger.pk}/inbox/").status_code == 404
    assert (
        api_client.post(f"/api/v1/customers/{stranger.pk}/inbox/{theirs.pk}/read/").status_code
        == 404
    )
    assert (
        api_client.post(f"/api/v1/customers/{customer.pk}/inbox/{theirs.pk}/read/").status_code
        == 404
    )
    other_customer = CustomerFactory(tenant=tenant)
    assert (
        api_client.post(f"/api/v1/customers/{other_customer.pk}/inbox/{mine.pk}/read/").status_code
        == 404
    )
    theirs.refresh_from_db()
    assert theirs.status == Status.SENT and theirs.opened_at is None


def test_bad_ids_and_filters_get_json_errors(tenant, customer, api_client):
    assert api_client.get("/api/v1/customers/abc/inbox/").status_code == 404
    response = api_client.post(f"/api/v1/customers/{customer.pk}/inbox/nope/read/")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
    bad = api_client.get(f"/api/v1/customers/{customer.pk}/inbox/?unread=maybe")
    assert bad.status_code == 422
    assert "unread" in bad.json()["error"]["fields"]


def test_the_inbox_needs_an_api_key_and_marking_read_needs_write_scope(
    tenant, customer, read_only_key, client
):
    message = _in_app(tenant, customer, "a")
    assert client.get(f"/api/v1/customers/{customer.pk}/inbox/").status_code == 401
    response = client.post(
        f"/api/v1/customers/{customer.pk}/inbox/{message.pk}/read/",
        HTTP_AUTHORIZATION=f"Bearer {read_only_key}",
    )
    assert response.status_code == 403


def test_a_request_with_too_many_parameters_gets_a_json_400(tenant, customer, api_client):
    query = "&".join(f"p{i}=1" for i in range(1200))
    response = api_client.get(f"/api/v1/customers/{customer.pk}/inbox/?{query}")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "bad_request"
