"""The hosted preferences page /u/<token>/: channels with their consent, changes
per channel, unsubscribe from all, and RFC 8058 one-click from the mailbox."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from django.core import signing
from django.test import Client

from commerce.models import Channel, ChannelConsent, ConsentStatus, Customer, Touchpoint
from commerce.services.customers import consent_set
from commerce.tokens import (
    PREFERENCES_PURPOSE,
    make_token,
    preferences_page_path,
    preferences_page_url,
    preferences_token,
)
from messaging.models import Suppression, SuppressionReason
from messaging.services.outbox import messaging_settings
from retention import clock
from retention.models import Tenant
from tests.factories import CustomerFactory

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
EMAIL = "buyer@shop.example"
PHONE = "+4915112345678"
NOT_VALID = "This link is not valid or has expired"
FORM = "application/x-www-form-urlencoded"


@pytest.fixture(autouse=True)
def _frozen_now():
    clock.set_now(NOW)  # the suite's autouse fixture unfreezes it afterwards


def _customer(tenant: Tenant, **fields) -> Customer:
    return CustomerFactory(tenant=tenant, **{"email": EMAIL, "phone": PHONE, **fields})


def _url(customer: Customer, message_id: int | None = None) -> str:
    return preferences_page_path(customer, message_id)


def _consents(customer: Customer) -> dict[str, tuple[str, str]]:
    return {
        c.channel: (c.status, c.source)
        for c in ChannelConsent.objects.for_tenant(customer.tenant_id).filter(customer=customer)
    }


def _touchpoints(customer: Customer) -> list[tuple[str, dict, str]]:
    return list(
        Touchpoint.objects.for_tenant(customer.tenant_id)
        .filter(customer=customer)
        .order_by("id")
        .values_list("kind", "properties", "source")
    )


def _suppress(customer: Customer, channel: str, reason: str) -> None:
    address = customer.email if channel == Channel.EMAIL else customer.phone
    Suppression.objects.create(
        tenant_id=customer.tenant_id, channel=channel, address=address, reason=reason
    )


def _suppressions(tenant: Tenant) -> list[tuple[str, str]]:
    return sorted(Suppression.objects.for_tenant(tenant).values_list("channel", "reason"))


def _channel_block(body: str, channel: str) -> str:
    match = re.search(rf'<div class="channel" id="channel-{channel}">(.*?)</div>', body, re.S)
    assert match, f"no {channel} block"
    return match.group(1)


def _assert_link_not_valid(response) -> None:
    assert response.status_code == 404
    assert NOT_VALID in response.content.decode()
    assert response["Cache-Control"] == "private, no-store"


# --- the page ----------------------------------------------------------------------------


def test_page_shows_the_store_and_each_channel_with_its_consent(tenant):
    customer = _customer(tenant)
    consent_set(customer=customer, channel=Channel.EMAIL, status="opted_in", source="checkout")

    response = Client().get(_url(customer))

    assert response.status_code == 200
    body = response.content.decode()
    assert "Alpha Store" in body
    email, sms, in_app = (_channel_block(body, ch) for ch in ("email", "sms", "in_app"))
    assert "bu•••@shop.example" in email
    assert "Subscribed</span>" in email
    assert 'value="opted_out"' in email
    assert "••••••••••5678" in sms
    assert "Not subscribed</span>" in sms  # SMS marketing needs an opt-in
    assert 'value="opted_in"' in sms
    assert "Subscribed</span>" in in_app
    assert 'value="unsubscribe_all"' in body
    assert EMAIL not in body and PHONE not in body  # masked: links get forwarded
    assert response["Referrer-Policy"] == "no-referrer"
    assert response["X-Robots-Tag"] == "noindex"


def test_page_lists_only_channels_the_customer_has_an_address_for(tenant):
    customer = _customer(tenant, phone="")

    body = Client().get(_url(customer)).content.decode()

    assert 'id="channel-email"' in body
    assert 'id="channel-sms"' not in body
    assert 'id="channel-in_app"' in body


def test_unknown_email_consent_reads_subscribed_when_the_store_does_not_require_opt_in(tenant):
    customer = _customer(tenant)
    settings_row = messaging_settings(tenant)
    settings_row.email_requires_opt_in = False
    settings_row.save()

    body = Client().get(_url(customer)).content.decode()

    assert "Subscribed</span>" in _channel_block(body, "email")


def test_viewing_the_page_changes_nothing(tenant):
    customer = _customer(tenant)

    Client().get(_url(customer))
    Client().head(_url(customer))

    assert _consents(customer) == {}
    assert _touchpoints(customer) == []


# --- changes --------------------------------------------------------------------------------


def test_opting_out_of_a_channel_is_recorded_with_its_source(tenant):
    customer = _customer(tenant)
    consent_set(customer=customer, channel=Channel.EMAIL, status="opted_in", source="checkout")
    url = _url(customer)

    response = Client().post(url, {"channel": "email", "status": "opted_out"})

    assert response.status_code == 302
    assert response["Location"] == f"{url}?saved=out-email"
    assert _consents(customer) == {"email": (ConsentStatus.OPTED_OUT, "preferences_page")}
    assert _touchpoints(customer) == [
        (
            "message.unsubscribed",
            {"channel": "email", "status": "opted_out", "source": "preferences_page"},
            "preferences_page",
        )
    ]
    page = Client().get(response["Location"]).content.decode()
    assert "You will no longer get marketing email." in page
    assert "Not subscribed</span>" in _channel_block(page, "email")


def test_opting_in_to_sms_is_recorded_with_its_source_and_the_message(tenant):
    customer = _customer(tenant)

    Client().post(_url(customer, message_id=77), {"channel": "sms", "status": "opted_in"})

    assert _consents(customer) == {"sms": (ConsentStatus.OPTED_IN, "preferences_page")}
    assert _touchpoints(customer) == [
        (
            "preferences.changed",
            {
                "channel": "sms",
                "status": "opted_in",
                "source": "preferences_page",
                "message_id": 77,
            },
            "preferences_page",
        )
    ]


def test_choosing_what_is_already_on_record_records_no_change(tenant):
    customer = _customer(tenant)
    client, url = Client(), _url(customer)
    client.post(url, {"channel": "email", "status": "opted_out"})
    clock.advance(minutes=1)

    client.post(url, {"channel": "email", "status": "opted_out"})

    assert len(_touchpoints(customer)) == 1


def test_unsubscribe_from_all_opts_out_of_every_channel(tenant):
    customer = _customer(tenant)
    for channel in (Channel.EMAIL, Channel.SMS):
        consent_set(customer=customer, channel=channel, status="opted_in", source="checkout")
    url = _url(customer)

    response = Client().post(url, {"action": "unsubscribe_all"})

    assert response["Location"] == f"{url}?saved=all"
    assert _consents(customer) == {
        "email": (ConsentStatus.OPTED_OUT, "preferences_page"),
        "sms": (ConsentStatus.OPTED_OUT, "preferences_page"),
        "in_app": (ConsentStatus.OPTED_OUT, "preferences_page"),
    }
    assert sorted(kind for kind, _, _ in _touchpoints(customer)) == ["message.unsubscribed"] * 3
    page = Client().get(response["Location"]).content.decode()
    assert "You are unsubscribed from all marketing messages." in page
    assert page.count("Not subscribed</span>") == 3


@pytest.mark.parametrize(
    "data",
    [
        {},
        {"channel": "email"},
        {"channel": "email", "status": "unknown"},
        {"channel": "fax", "status": "opted_out"},
        {"channel": "sms", "status": "opted_in"},  # no phone: not on the page
    ],
)
def test_an_invalid_choice_gets_400_and_changes_nothing(tenant, data):
    customer = _customer(tenant, phone="")

    response = Client().post(_url(customer), data)

    assert response.status_code == 400
    assert "Nothing was changed" in response.content.decode()
    assert _consents(customer) == {}


def test_opting_back_in_lifts_the_unsubscribe_suppression_but_not_a_bounce(tenant):
    customer = _customer(tenant)
    _suppress(customer, Channel.EMAIL, SuppressionReason.UNSUBSCRIBE)
    _suppress(customer, Channel.SMS, SuppressionReason.SMS_STOP)

    Client().post(_url(customer), {"channel": "email", "status": "opted_in"})
    Client().post(_url(customer), {"channel": "sms", "status": "opted_in"})

    assert _suppressions(tenant) == []

    bounced = _customer(tenant, email="gone@shop.example", phone="")
    _suppress(bounced, Channel.EMAIL, SuppressionReason.BOUNCE)

    Client().post(_url(bounced), {"channel": "email", "status": "opted_in"})

    assert _suppressions(tenant) == [("email", SuppressionReason.BOUNCE)]
    assert _consents(bounced) == {"email": (ConsentStatus.OPTED_IN, "preferences_page")}
    assert "could not be delivered" in Client().get(_url(bounced)).content.decode()


def test_opting_back_in_lifts_a_spam_report_suppression(tenant):
    customer = _customer(tenant)
    _suppress(customer, Channel.EMAIL, SuppressionReason.SPAM_REPORT)

    Client().post(_url(customer), {"channel": "email", "status": "opted_in"})

    assert _suppressions(tenant) == []


# --- RFC 8058 one-click -----------------------------------------------------------------------


def test_one_click_post_without_csrf_opts_out_of_email(tenant):
    customer = _customer(tenant)
    consent_set(customer=customer, channel=Channel.EMAIL, status="opted_in", source="checkout")
    client = Client(enforce_csrf_checks=True)

    response = client.post(
        _url(customer, message_id=42),
        data="List-Unsubscribe=One-Click",
        content_type="application/x-www-form-urlencoded",
    )

    assert response.status_code == 200
    assert response["Content-Type"] == "text/plain; charset=utf-8"
    assert response.content.decode() == "Unsubscribed from marketing email from Alpha Store.\n"
    assert _consents(customer) == {"email": (ConsentStatus.OPTED_OUT, "one_click")}
    assert _touchpoints(customer) == [
        (
            "message.unsubscribed",
            {"channel": "email", "status": "opted_out", "source": "one_click", "message_id": 42},
            "one_click",
        )
    ]


def test_one_click_post_as_multipart_works_too(tenant):
    customer = _customer(tenant)

    response = Client(enforce_csrf_checks=True).post(
        _url(customer), {"List-Unsubscribe": "One-Click"}
    )

    assert response.status_code == 200
    assert _consents(customer) == {"email": (ConsentStatus.OPTED_OUT, "one_click")}


def test_page_form_posts_work_without_a_csrf_token(tenant):
    customer = _customer(tenant)

    response = Client(enforce_csrf_checks=True).post(
        _url(customer), {"channel": "email", "status": "opted_out"}
    )

    assert response.status_code == 302
    assert _consents(customer) == {"email": (ConsentStatus.OPTED_OUT, "preferences_page")}


def test_unsubscribe_url_is_the_public_page_url(tenant, settings):
    customer = _customer(tenant)

    assert preferences_page_url(customer, 5) == (
        f"{settings.PUBLIC_BASE_URL}/u/{preferences_token(customer, 5)}/"
    )


# --- bad links and tenancy --------------------------------------------------------------------


@pytest.mark.parametrize("position", [0, 5, -1, -10])
def test_tampered_token_gets_the_link_not_valid_page(tenant, position):
    customer = _customer(tenant)
    token = preferences_token(customer)
    index = position % len(token)
    tampered = token[:index] + ("A" if token[index] != "A" else "B") + token[index + 1 :]

    _assert_link_not_valid(Client().get(f"/u/{tampered}/"))
    _assert_link_not_valid(Client().post(f"/u/{tampered}/", {"action": "unsubscribe_all"}))
    assert _consents(customer) == {}


@pytest.mark.parametrize("token", ["not-a-token", "a:b:c", "x" * 2000, "..:.."])
def test_malformed_token_gets_the_link_not_valid_page(db, token):
    _assert_link_not_valid(Client().get(f"/u/{token}/"))


def test_expired_token_gets_the_link_not_valid_page(tenant):
    customer = _customer(tenant)
    url = _url(customer)

    clock.advance(days=364)
    assert Client().get(url).status_code == 200
    clock.advance(days=2)

    _assert_link_not_valid(Client().get(url))
    _assert_link_not_valid(
        Client().post(
            url, data="List-Unsubscribe=One-Click", content_type="application/x-www-form-urlencoded"
        )
    )
    assert _consents(customer) == {}


def test_token_forged_without_the_key_gets_the_link_not_valid_page(tenant):
    customer = _customer(tenant)
    forged = signing.TimestampSigner(
        key="attacker-guess", salt=f"retention.hosted.{PREFERENCES_PURPOSE}"
    ).sign_object({"t": tenant.pk, "c": customer.pk})

    _assert_link_not_valid(Client().post(f"/u/{forged}/", {"action": "unsubscribe_all"}))
    assert _consents(customer) == {}


def test_order_token_is_not_a_preferences_token(tenant):
    customer = _customer(tenant)
    wrong_purpose = make_token("order", t=tenant.pk, c=customer.pk)

    _assert_link_not_valid(Client().get(f"/u/{wrong_purpose}/"))


def test_token_of_tenant_a_cannot_touch_tenant_bs_customer(tenant, other_tenant):
    theirs = _customer(other_tenant, email="bravo-buyer@shop.example")
    mixed = make_token(PREFERENCES_PURPOSE, t=tenant.pk, c=theirs.pk)

    page = Client().get(f"/u/{mixed}/")
    post = Client().post(f"/u/{mixed}/", {"action": "unsubscribe_all"})
    one_click = Client().post(
        f"/u/{mixed}/",
        data="List-Unsubscribe=One-Click",
        content_type="application/x-www-form-urlencoded",
    )

    for response in (page, post, one_click):
        _assert_link_not_valid(response)
        assert "Bravo" not in response.content.decode()
    assert _consents(theirs) == {}
    assert _touchpoints(theirs) == []


def test_inactive_store_links_get_the_link_not_valid_page(tenant):
    customer = _customer(tenant)
    Tenant.objects.filter(pk=tenant.pk).update(is_active=False)

    _assert_link_not_valid(Client().get(_url(customer)))


def test_merged_customers_link_leads_to_the_survivor(tenant):
    survivor = _customer(tenant)
    merged = _customer(tenant, email="old@shop.example", phone="")
    Customer.objects.for_tenant(tenant).filter(pk=merged.pk).update(merged_into=survivor)

    Client().post(_url(merged), {"channel": "email", "status": "opted_out"})

    assert _consents(survivor) == {"email": (ConsentStatus.OPTED_OUT, "preferences_page")}


def test_other_methods_are_not_allowed(tenant):
    response = Client().put(_url(_customer(tenant)))

    assert response.status_code == 405


# --- a decision on record stamped in the future --------------------------------------

LATER = datetime(2026, 3, 10, 14, 0, tzinfo=UTC)  # a storefront clock two hours ahead


def test_one_click_unsubscribe_wins_over_a_consent_stamped_in_the_future(tenant):
    customer = _customer(tenant)
    consent_set(customer=customer, channel=Channel.EMAIL, status="opted_in", source="s", at=LATER)

    response = Client().post(_url(customer), data="List-Unsubscribe=One-Click", content_type=FORM)

    assert response.status_code == 200
    assert _consents(customer) == {"email": (ConsentStatus.OPTED_OUT, "one_click")}
    assert [t[0] for t in _touchpoints(customer)] == ["message.unsubscribed"]


def test_page_unsubscribe_wins_over_a_consent_stamped_in_the_future(tenant):
    customer = _customer(tenant)
    consent_set(customer=customer, channel=Channel.SMS, status="opted_in", source="s", at=LATER)

    response = Client().post(_url(customer), {"channel": "sms", "status": "opted_out"})

    assert response.status_code == 302
    assert _consents(customer) == {"sms": (ConsentStatus.OPTED_OUT, "preferences_page")}


def test_opt_in_over_an_opt_out_stamped_in_the_future_says_so_and_lifts_nothing(tenant):
    customer = _customer(tenant)
    consent_set(customer=customer, channel=Channel.SMS, status="opted_out", source="s", at=LATER)
    Suppression.objects.create(
        tenant=tenant, channel="sms", address=PHONE, reason=SuppressionReason.SMS_STOP
    )

    response = Client().post(_url(customer), {"channel": "sms", "status": "opted_in"})

    assert response.status_code == 409
    assert "A more recent choice for this channel is on record" in response.content.decode()
    assert _consents(customer) == {"sms": (ConsentStatus.OPTED_OUT, "s")}
    assert Suppression.objects.for_tenant(tenant).count() == 1
