"""Queueing a batch of messages (the journey dispatcher's path): one INSERT from
unnest on PostgreSQL, a look-up and bulk_create elsewhere. Both store the same
rows, each key once, and say which keys are new; batch rendering signs the
same preferences links as rendering one at a time."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.db import connection

from commerce.models import Customer
from commerce.tokens import preferences_page_url
from messaging.models import Message, Template
from messaging.services.outbox import Content, MessageIn, messages_enqueue_many
from messaging.services.preferences import PreferencesLinks
from messaging.services.templates import template_render
from retention import clock

NOW = datetime(2026, 5, 4, 9, 0, tzinfo=UTC)
# Everything but what names the row itself.
OWN_FIELDS = {"id", "idempotency_key"}


def _customers(tenant) -> list[Customer]:
    return [
        Customer.objects.create(tenant=tenant, email="Ada@Shop.Example", first_name="Ada"),
        Customer.objects.create(tenant=tenant, phone="+4915112345678", first_name="Bo"),
        Customer.objects.create(tenant=tenant, email="cy@shop.example"),
    ]


def _items(tenant, prefix: str) -> list[MessageIn]:
    ada, bo, cy = _customers(tenant)
    email = Template.objects.create(
        tenant=tenant, name=f"{prefix}-mail", channel="email", subject="Hi", text="Hello"
    )
    content = Content(subject="Hi Ada", text="Hello Ada", html="<p>Hello Ada</p>")
    return [
        MessageIn(
            idempotency_key=f"{prefix}:1",
            customer=ada,
            channel="email",
            category="marketing",
            content=content,
            template=email,
            source="journey",
            context={"journey_id": 7, "nested": {"a": [1, "x"]}, "variant": ""},
        ),
        # An SMS keeps no HTML, whatever the content holds.
        MessageIn(
            idempotency_key=f"{prefix}:2",
            customer=bo,
            channel="sms",
            category="transactional",
            content=content,
            source="journey",
        ),
        MessageIn(
            idempotency_key=f"{prefix}:3",
            customer=cy,
            channel="in_app",
            category="marketing",
            content=Content(text="Welcome back"),
        ),
    ]


def _row(message: Message) -> dict:
    return {
        f.attname: getattr(message, f.attname)
        for f in Message._meta.concrete_fields
        if f.attname not in OWN_FIELDS | {"customer_id", "template_id"}
    }


def test_a_repeated_batch_stores_each_key_once_and_says_which_are_new(tenant):
    clock.set_now(NOW)
    items = _items(tenant, "k")

    first = messages_enqueue_many(tenant=tenant, items=items[:2])
    again = messages_enqueue_many(tenant=tenant, items=items)

    assert first.created == {"k:1", "k:2"}
    assert again.created == {"k:3"}
    assert again.ids["k:1"] == first.ids["k:1"]
    assert again.ids["k:2"] == first.ids["k:2"]
    stored = dict(Message.objects.for_tenant(tenant).values_list("idempotency_key", "id"))
    assert stored == again.ids
    assert messages_enqueue_many(tenant=tenant, items=items).created == frozenset()
    assert Message.objects.for_tenant(tenant).count() == 3


def test_a_key_twice_in_one_batch_is_stored_once(tenant):
    clock.set_now(NOW)
    items = _items(tenant, "d")

    result = messages_enqueue_many(tenant=tenant, items=[items[0], items[0]])

    assert result.created == {"d:1"}
    assert Message.objects.for_tenant(tenant).filter(idempotency_key="d:1").count() == 1


def test_the_postgresql_and_portable_paths_store_identical_rows(tenant, monkeypatch):
    if connection.vendor != "postgresql":
        pytest.skip("the unnest path is PostgreSQL's")
    clock.set_now(NOW)
    unnest = messages_enqueue_many(tenant=tenant, items=_items(tenant, "pg"))
    # Django's vendor switch, not ours: the same call takes the portable path.
    monkeypatch.setattr(connection, "vendor", "portable")
    orm = messages_enqueue_many(tenant=tenant, items=_items(tenant, "orm"))

    assert unnest.created == {"pg:1", "pg:2", "pg:3"}
    assert orm.created == {"orm:1", "orm:2", "orm:3"}
    for n in (1, 2, 3):
        a = Message.objects.for_tenant(tenant).get(pk=unnest.ids[f"pg:{n}"])
        b = Message.objects.for_tenant(tenant).get(pk=orm.ids[f"orm:{n}"])
        assert _row(a) == _row(b)
        assert (a.customer.first_name, a.customer.email) == (
            b.customer.first_name,
            b.customer.email,
        )
        assert (a.template_id is None) == (b.template_id is None)
    email = Message.objects.for_tenant(tenant).get(pk=unnest.ids["pg:1"])
    assert email.to_address == "ada@shop.example"
    assert email.context == {"journey_id": 7, "nested": {"a": [1, "x"]}, "variant": ""}
    assert email.status == "queued"
    assert email.due_at == email.created_at == NOW
    sms = Message.objects.for_tenant(tenant).get(pk=unnest.ids["pg:2"])
    assert (sms.to_address, sms.body_html, sms.context) == ("+4915112345678", "", {})


def test_batch_links_are_the_links_made_one_at_a_time(tenant):
    clock.set_now(NOW)
    ada = Customer.objects.create(tenant=tenant, email="ada@shop.example", first_name="Ada")
    template = Template.objects.create(
        tenant=tenant,
        name="with-link",
        channel="email",
        subject="Hi {{ customer.first_name }}",
        text="Stop: {{ links.unsubscribe }}",
        html='<a href="{{ links.preferences }}">Preferences</a>',
    )
    links = PreferencesLinks()

    assert links.url(ada) == preferences_page_url(ada)
    batch = template_render(template=template, customer=ada, links=links)
    single = template_render(template=template, customer=ada)
    assert batch == single
    assert single.text == f"Stop: {preferences_page_url(ada)}"
