"""Messaging admin screens: the outbox (read-only, filterable, tenant-scoped),
the suppression list, consent and the store's messaging settings."""

import pytest
from django.urls import reverse

from commerce.services.customers import consent_set
from messaging.models import Message, MessagingSettings, Suppression
from messaging.services.outbox import Content, message_enqueue, messaging_settings
from tests.conftest import login_as
from tests.factories import CustomerFactory


def _message(tenant, key="k", **kw) -> Message:
    customer = CustomerFactory(tenant=tenant, email=f"{key}@{tenant.slug}.example")
    return message_enqueue(
        tenant=tenant,
        customer=customer,
        channel="email",
        category="marketing",
        idempotency_key=key,
        content=Content(subject=f"Subject {key}", text="Body", html="<p>Body <b>bold</b></p>"),
        **kw,
    )


def test_the_outbox_lists_this_tenants_messages_with_filters(tenant, other_tenant, marketer_client):
    _message(tenant, "mine")
    _message(other_tenant, "theirs")

    response = marketer_client.get(reverse("admin:messaging_message_changelist"))
    filtered = marketer_client.get(
        reverse("admin:messaging_message_changelist") + "?status__exact=queued&channel__exact=email"
    )

    assert response.status_code == filtered.status_code == 200
    assert b"Subject mine" in response.content and b"Subject theirs" not in response.content
    assert b"Subject mine" in filtered.content


def test_a_queued_message_is_readable_in_full_and_says_why_it_waits(
    tenant, marketer_client, settings
):
    settings.SENDGRID_API_KEY = ""
    message = _message(tenant)
    response = marketer_client.get(reverse("admin:messaging_message_change", args=[message.pk]))
    assert response.status_code == 200
    assert b"No provider key is set for this channel" in response.content
    assert b"sandbox srcdoc=" in response.content
    assert b"&lt;p&gt;Body &lt;b&gt;bold&lt;/b&gt;&lt;/p&gt;" in response.content


def test_another_tenants_message_answers_404(tenant, other_tenant, marketer_client):
    theirs = _message(other_tenant, "theirs")
    url = reverse("admin:messaging_message_change", args=[theirs.pk])
    assert marketer_client.get(url).status_code == 404


def test_the_outbox_cannot_be_edited_from_the_admin(tenant, owner_client):
    message = _message(tenant)
    url = reverse("admin:messaging_message_change", args=[message.pk])
    owner_client.post(url, {"status": "delivered"})
    message.refresh_from_db()
    assert message.status == "queued"
    assert owner_client.get(reverse("admin:messaging_message_add")).status_code == 403


def test_a_marketer_adds_a_suppression_and_the_address_is_normalised(tenant, marketer_client):
    response = marketer_client.post(
        reverse("admin:messaging_suppression_add"),
        {"channel": "sms", "address": "+49 151 1234 5678", "reason": "manual", "detail": "asked"},
    )
    assert response.status_code == 302
    row = Suppression.objects.for_tenant(tenant).get()
    assert (row.address, row.reason, row.source) == (
        "+4915112345678",
        "manual",
        f"staff:{marketer_client.user.email}",
    )


def test_a_bad_suppression_address_is_refused_on_the_form(tenant, marketer_client):
    response = marketer_client.post(
        reverse("admin:messaging_suppression_add"),
        {"channel": "sms", "address": "call me", "reason": "manual"},
    )
    assert response.status_code == 200
    assert b"Not a phone number" in response.content
    assert not Suppression.objects.for_tenant(tenant).exists()


def test_a_viewer_sees_suppressions_but_cannot_add_one(tenant, viewer_client):
    assert viewer_client.get(reverse("admin:messaging_suppression_changelist")).status_code == 200
    response = viewer_client.post(
        reverse("admin:messaging_suppression_add"),
        {"channel": "email", "address": "a@b.example", "reason": "manual"},
    )
    assert response.status_code == 403
    assert not Suppression.objects.for_tenant(tenant).exists()


def test_consent_is_listed_with_its_source(tenant, other_tenant, marketer_client):
    mine = CustomerFactory(tenant=tenant, email="mine@alpha.example")
    theirs = CustomerFactory(tenant=other_tenant, email="theirs@bravo.example")
    consent_set(customer=mine, channel="sms", status="opted_out", source="sms_stop")
    consent_set(customer=theirs, channel="sms", status="opted_out", source="sms_stop")
    response = marketer_client.get(reverse("admin:commerce_channelconsent_changelist"))
    assert response.status_code == 200
    assert b"mine@alpha.example" in response.content
    assert b"theirs@bravo.example" not in response.content
    assert b"sms_stop" in response.content


def _settings_post(client, ms, **change):
    data = {
        "from_email": "shop@alpha.example",
        "from_name": "Alpha",
        "reply_to": "",
        "postal_address": "1 Main St",
        "sms_from": "",
        "sms_help_text": "Help",
        "quiet_hours_enabled": "on",
        "quiet_start": "21:00",
        "quiet_end": "08:00",
        "frequency_cap": "3",
        "frequency_cap_days": "7",
        "email_requires_opt_in": "on",
    } | change
    return client.post(reverse("admin:messaging_messagingsettings_change", args=[ms.pk]), data)


def test_settings_store_the_sms_number_in_e164(tenant, marketer_client):
    ms = messaging_settings(tenant)
    response = _settings_post(marketer_client, ms, sms_from="+49 30 901820")
    assert response.status_code == 302
    ms.refresh_from_db()
    assert (ms.sms_from, ms.from_email) == ("+4930901820", "shop@alpha.example")


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"sms_from": "12"}, b"international form"),
        ({"quiet_end": "21:00"}, b"turn quiet hours off instead"),
        ({"frequency_cap": "0"}, b"greater than or equal to 1"),
    ],
)
def test_settings_refuse_bad_values_with_a_clear_message(tenant, marketer_client, change, error):
    ms = messaging_settings(tenant)
    response = _settings_post(marketer_client, ms, **change)
    assert response.status_code == 200
    assert error in response.content


def test_two_stores_cannot_share_an_sms_number(tenant, other_tenant, marketer_client):
    theirs = messaging_settings(other_tenant)
    theirs.sms_from = "+4930901820"
    theirs.save()
    response = _settings_post(marketer_client, messaging_settings(tenant), sms_from="+4930901820")
    assert response.status_code == 200
    assert b"Another store already uses this number" in response.content


def test_another_tenants_settings_answer_404(tenant, other_tenant, marketer_client):
    theirs = messaging_settings(other_tenant)
    url = reverse("admin:messaging_messagingsettings_change", args=[theirs.pk])
    assert marketer_client.get(url).status_code == 404
    assert _settings_post(marketer_client, theirs, from_email="x@evil.example").status_code == 404
    theirs.refresh_from_db()
    assert theirs.from_email == ""


def test_every_new_tenant_gets_messaging_settings(tenant, other_tenant):
    assert (
        MessagingSettings.objects.unscoped().filter(tenant__in=[tenant, other_tenant]).count() == 2
    )


def test_an_agent_sees_no_settings_to_change(tenant):
    client = login_as(tenant, "agent")
    ms = messaging_settings(tenant)
    assert _settings_post(client, ms, from_email="x@y.example").status_code == 403
