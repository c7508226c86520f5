"""`demo_messaging` gives the demo store a sender, five templates and messages
whose statuses come from the real send path, once, in its own tenant only."""

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from commerce.models import ProductFamily
from messaging.models import Message, MessagingSettings, Reason, Status, Template
from messaging.services.demo import DRAMA_NUMBERS, TEMPLATES
from messaging.services.outbox import messaging_settings
from messaging.sms_length import sms_segments
from retention import clock
from tests.factories import CustomerFactory, make_order

QUEUED_NO_PROVIDER = (Status.QUEUED, Reason.NO_PROVIDER)
DEMO_NAMES = [t.name for t in TEMPLATES]
SENT = (Status.SENT, "")


@pytest.fixture
def keyless(settings):
    """The embedded demo: no provider keys, so email and SMS stay in the outbox."""
    settings.SENDGRID_API_KEY = ""
    settings.TWILIO_ACCOUNT_SID = ""
    settings.TWILIO_AUTH_TOKEN = ""
    return settings


def _buyers(tenant) -> dict:
    """Three customers with orders (two with a phone) and one without orders."""
    coffee = ProductFamily.objects.create(tenant=tenant, name="Coffee", slug="coffee")
    ada = CustomerFactory(tenant=tenant, first_name="Ada", phone="+4915112340001")
    ben = CustomerFactory(tenant=tenant, first_name="Ben", phone="+4915112340002")
    cleo = CustomerFactory(tenant=tenant, first_name="")
    CustomerFactory(tenant=tenant, first_name="Nobuy", phone="+4915112340004")
    make_order(ada, clock.now() - timedelta(days=40), families=(coffee,))
    latest = make_order(ada, clock.now() - timedelta(days=2), families=(coffee,))
    make_order(ben, clock.now() - timedelta(days=5))
    make_order(cleo, clock.now() - timedelta(days=9))
    return {"ada": ada, "ben": ben, "cleo": cleo, "ada_latest": latest}


def _run(tenant) -> str:
    out = StringIO()
    call_command("demo_messaging", "--tenant", tenant.slug, stdout=out)
    return out.getvalue()


def _outbox(tenant) -> dict[str, tuple]:
    return {
        m.idempotency_key: (m.channel, m.category, m.status, m.reason)
        for m in Message.objects.for_tenant(tenant)
    }


def _snapshot(tenant) -> dict:
    return {
        "messages": list(
            Message.objects.for_tenant(tenant)
            .order_by("pk")
            .values_list("pk", "status", "reason", "attempts", "updated_at", "body_text")
        ),
        "templates": list(
            Template.objects.for_tenant(tenant).order_by("pk").values_list("pk", "updated_at")
        ),
        "settings": list(MessagingSettings.objects.for_tenant(tenant).values()),
    }


def test_demo_messaging_creates_templates_and_messages_whose_status_comes_from_the_send_path(
    tenant, keyless
):
    people = _buyers(tenant)
    ada, ben, cleo = people["ada"], people["ben"], people["cleo"]

    out = _run(tenant)

    # Every store also has the shipped journeys' templates; these are the demo's.
    templates = Template.objects.for_tenant(tenant).filter(name__in=DEMO_NAMES)
    assert sorted(templates.values_list("name", "channel", "category")) == [
        ("Delivery update SMS", "sms", "transactional"),
        ("Reorder reminder SMS", "sms", "marketing"),
        ("Thanks for your order (in-app)", "in_app", "transactional"),
        ("Tips email (day 3)", "email", "marketing"),
        ("Welcome email (day 0)", "email", "marketing"),
    ]
    assert _outbox(tenant) == {
        f"demo:thanks:{ada.pk}": ("in_app", "transactional", *SENT),
        f"demo:welcome:{ada.pk}": ("email", "marketing", *QUEUED_NO_PROVIDER),
        f"demo:delivery:{ada.pk}": ("sms", "transactional", *QUEUED_NO_PROVIDER),
        f"demo:thanks:{ben.pk}": ("in_app", "transactional", *SENT),
        f"demo:tips:{ben.pk}": ("email", "marketing", *QUEUED_NO_PROVIDER),
        f"demo:reorder:{ben.pk}": ("sms", "marketing", *QUEUED_NO_PROVIDER),
        f"demo:thanks:{cleo.pk}": ("in_app", "transactional", *SENT),
        f"demo:welcome:{cleo.pk}": ("email", "marketing", *QUEUED_NO_PROVIDER),
    }
    messages = Message.objects.for_tenant(tenant)
    assert set(messages.values_list("source", flat=True)) == {"demo"}
    assert not messages.filter(status=Status.SENT, sent_at__isnull=True).exists()

    number = people["ada_latest"].external_id
    welcome = messages.get(idempotency_key=f"demo:welcome:{ada.pk}")
    assert welcome.to_address == ada.email
    assert welcome.subject == "Welcome to Alpha Store, Ada"
    assert welcome.body_text.startswith(f"Hi Ada,\n\nThank you for your order {number}.")
    assert "1 x coffee-1" in welcome.body_text
    assert f"<strong>{number}</strong>" in welcome.body_html
    assert "/u/" in welcome.body_text  # the preferences link
    assert messages.get(idempotency_key=f"demo:welcome:{cleo.pk}").subject == (
        "Welcome to Alpha Store, there"
    )
    delivery = messages.get(idempotency_key=f"demo:delivery:{ada.pk}")
    assert delivery.to_address == ada.phone
    assert delivery.body_text.startswith(f"Alpha Store: order {number} is on its way.")
    assert sms_segments(delivery.body_text).encoding == "GSM-7"
    assert sms_segments(delivery.body_text).segments == 1
    reorder = messages.get(idempotency_key=f"demo:reorder:{ben.pk}")
    assert "running low on your favourites?" in reorder.body_text
    assert reorder.body_text.endswith("Reply STOP to opt out")
    thanks = messages.get(idempotency_key=f"demo:thanks:{cleo.pk}")
    assert thanks.subject == "Thanks for your order, there!"

    ms = MessagingSettings.objects.for_tenant(tenant).get()
    assert (ms.from_email, ms.from_name) == ("hello@alpha.example", "Alpha Store")
    assert ms.sms_from == f"{DRAMA_NUMBERS}{tenant.pk % 1000:03d}"
    assert ms.postal_address == "Alpha Store, Musterstraße 1, 10115 Berlin, Germany"

    assert "templates   5 created, 0 already there" in out
    assert "messages    8 new, 8 in all, for 3 customers with orders" in out
    assert "Queued           5  Outbox only: no provider key set" in out
    assert "Sent             3\n" in out
    assert "/admin/messaging/message/" in out


def test_a_second_run_adds_and_changes_nothing_and_keeps_edits(tenant, keyless):
    _buyers(tenant)
    ms = messaging_settings(tenant)
    ms.from_email = "shop@alpha.example"
    ms.save()
    _run(tenant)
    before = _snapshot(tenant)

    out = _run(tenant)

    assert _snapshot(tenant) == before
    ms.refresh_from_db()
    assert ms.from_email == "shop@alpha.example"
    assert "sender      already set, kept" in out
    assert "templates   0 created, 5 already there" in out
    assert "messages    0 new, 8 in all, for 3 customers with orders" in out


def test_an_unknown_tenant_is_refused_and_nothing_is_written(tenant, keyless):
    _buyers(tenant)
    with pytest.raises(CommandError, match="Unknown tenant 'nope'"):
        call_command("demo_messaging", "--tenant", "nope")
    assert not Template.objects.unscoped().filter(name__in=DEMO_NAMES).exists()
    assert not Message.objects.unscoped().exists()


def test_the_other_tenant_is_untouched_and_gets_its_own_number(tenant, other_tenant, keyless):
    _buyers(tenant)
    _buyers(other_tenant)
    others_before = _snapshot(other_tenant)

    _run(tenant)

    assert _snapshot(other_tenant) == others_before
    assert not Template.objects.for_tenant(other_tenant).filter(name__in=DEMO_NAMES).exists()
    assert not Message.objects.for_tenant(other_tenant).exists()
    assert {m.customer.tenant_id for m in Message.objects.for_tenant(tenant)} == {tenant.pk}

    _run(other_tenant)
    numbers = MessagingSettings.objects.unscoped().values_list("sms_from", flat=True)
    assert len(set(numbers)) == 2
    assert all(n.startswith(DRAMA_NUMBERS) for n in numbers)


def test_a_channel_with_a_provider_configured_is_left_out(tenant, keyless):
    keyless.SENDGRID_API_KEY = "SG.configured"
    _buyers(tenant)

    out = _run(tenant)

    assert set(Message.objects.for_tenant(tenant).values_list("channel", flat=True)) == {
        "in_app",
        "sms",
    }
    assert "left out    email: a provider is configured" in out


def test_the_seeded_demo_store_gets_twenty_customers_of_messages(
    tenant, keyless, eager_tasks, django_capture_on_commit_callbacks
):
    call_command("seed_demo", tenant=tenant.slug, customers=60, seed=1, stdout=StringIO())

    # As in `make demo`: each queued message's own send task runs too, in-process.
    with django_capture_on_commit_callbacks(execute=True) as kicked:
        out = _run(tenant)

    assert kicked  # the send tasks queued by message_enqueue ran

    messages = Message.objects.for_tenant(tenant)
    assert messages.values("customer").distinct().count() == 20
    assert set(messages.values_list("template__name", flat=True)) == set(DEMO_NAMES)
    outcomes = {(m.channel, m.status, m.reason) for m in messages}
    assert outcomes == {
        ("in_app", *SENT),
        ("email", *QUEUED_NO_PROVIDER),
        ("sms", *QUEUED_NO_PROVIDER),
    }
    for sms in messages.filter(channel="sms"):
        assert sms_segments(sms.body_text).encoding == "GSM-7"
        assert sms.to_address.startswith("+")
    for delivery in messages.filter(idempotency_key__startswith="demo:delivery:"):
        assert sms_segments(delivery.body_text).segments == 1
    assert "for 20 customers with orders" in out
