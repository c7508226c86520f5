"""The send path against the fake provider, through the real SDKs: one provider
call per idempotency key, consent, cap and quiet hours enforced at send time,
retries, permanent failures, timeouts and recovery from a dead worker."""

from datetime import UTC, datetime, time, timedelta

import pytest

from commerce.models import Touchpoint
from commerce.services.customers import consent_set
from messaging.models import Message, Reason, Status, Suppression
from messaging.services.outbox import Content, message_enqueue
from messaging.services.send import LEASE, RECORD_EVERY, _claim, send_batch
from messaging.services.sweep import messages_dispatch_due, messages_recover
from retention import clock
from tests.factories import CustomerFactory
from tests.messaging.conftest import NOON

HELLO = Content(subject="Hello", text="Hello there", html="<p>Hello there</p>")


def _customer(tenant, *, email_consent="opted_in", sms_consent="opted_in", **fields):
    customer = CustomerFactory(tenant=tenant, phone=fields.pop("phone", "+4915112345678"), **fields)
    for channel, status in (("email", email_consent), ("sms", sms_consent)):
        if status:
            consent_set(customer=customer, channel=channel, status=status, source="test")
    return customer


def _queue(tenant, customer, key, *, channel="email", category="marketing", **kw) -> Message:
    return message_enqueue(
        tenant=tenant,
        customer=customer,
        channel=channel,
        category=category,
        idempotency_key=key,
        content=kw.pop("content", HELLO),
        **kw,
    )


def _send(tenant, *messages: Message) -> dict:
    return send_batch(tenant_id=tenant.pk, message_ids=[m.pk for m in messages])


def _reload(message: Message) -> Message:
    message.refresh_from_db()
    return message


def test_one_key_is_one_message_and_one_provider_call(tenant, sender, fake_provider, now):
    customer = _customer(tenant)
    first = _queue(tenant, customer, "journey:1:1")
    again = _queue(tenant, customer, "journey:1:1", content=Content(subject="Other"))

    assert again.pk == first.pk
    assert _send(tenant, first) == {"sent": 1}
    assert _send(tenant, first) == {}  # a duplicate delivery of the task finds nothing to do
    message = _reload(first)
    assert message.status == Status.SENT
    assert message.provider_id and message.sent_at == now
    assert len(fake_provider.calls_for(message.pk)) == 1
    assert Touchpoint.objects.for_tenant(tenant).filter(kind="message.sent").count() == 1


def test_a_message_of_another_tenant_is_not_sent_by_this_tenants_task(
    tenant, other_tenant, sender, fake_provider, now
):
    message = _queue(tenant, _customer(tenant), "k1")
    assert send_batch(tenant_id=other_tenant.pk, message_ids=[message.pk]) == {}
    assert _reload(message).status == Status.QUEUED
    assert fake_provider.calls == []


def test_an_sms_goes_out_with_a_status_callback_naming_the_message(
    tenant, sender, fake_provider, now
):
    message = _queue(tenant, _customer(tenant), "sms1", channel="sms", category="transactional")
    assert _send(tenant, message) == {"sent": 1}
    (call,) = fake_provider.calls_for(message.pk)
    assert call.to == "+4915112345678"
    assert _reload(message).provider_id.startswith("SM")


def test_an_opted_out_customer_gets_no_marketing_but_gets_transactional_email(
    tenant, sender, fake_provider, now
):
    customer = _customer(tenant, email_consent="opted_out")
    marketing = _queue(tenant, customer, "m")
    order_mail = _queue(tenant, customer, "t", category="transactional")

    assert _send(tenant, marketing, order_mail) == {"suppressed": 1, "sent": 1}
    assert (_reload(marketing).status, marketing.reason) == (Status.SUPPRESSED, Reason.OPTED_OUT)
    assert fake_provider.calls_for(marketing.pk) == []
    assert _reload(order_mail).status == Status.SENT


def test_consent_is_read_at_send_time_not_when_queued(tenant, sender, fake_provider, now):
    customer = _customer(tenant)
    message = _queue(tenant, customer, "m")
    consent_set(customer=customer, channel="email", status="opted_out", source="preferences_page")

    _send(tenant, message)

    assert (_reload(message).status, message.reason) == (Status.SUPPRESSED, Reason.OPTED_OUT)
    assert fake_provider.calls == []


def test_a_suppressed_address_gets_nothing_and_the_reason_is_recorded(
    tenant, sender, fake_provider, now
):
    customer = _customer(tenant)
    Suppression.objects.create(
        tenant=tenant, channel="email", address=customer.email, reason="bounce"
    )
    message = _queue(tenant, customer, "t", category="transactional")

    _send(tenant, message)

    assert (_reload(message).status, message.reason) == (Status.SUPPRESSED, Reason.SUPPRESSED)
    assert message.detail == "address suppressed (bounce)"
    assert fake_provider.calls == []


def test_a_customer_without_an_address_is_suppressed_with_the_reason(
    tenant, sender, fake_provider, now
):
    customer = _customer(tenant, phone="", sms_consent="opted_in")
    message = _queue(tenant, customer, "s", channel="sms")
    _send(tenant, message)
    assert (_reload(message).status, message.reason) == (Status.SUPPRESSED, Reason.NO_ADDRESS)


def test_the_fourth_marketing_message_in_seven_days_is_capped(tenant, sender, fake_provider, now):
    customer = _customer(tenant)
    sent = [_queue(tenant, customer, f"m{i}") for i in range(3)]
    assert _send(tenant, *sent) == {"sent": 3}
    fourth = _queue(tenant, customer, "m4")
    receipt = _queue(tenant, customer, "t1", category="transactional")

    assert _send(tenant, fourth, receipt) == {"suppressed": 1, "sent": 1}
    assert (_reload(fourth).status, fourth.reason) == (Status.SUPPRESSED, Reason.FREQUENCY_CAP)
    assert fourth.detail == "3 marketing messages in 7 days"


def test_the_cap_counts_the_last_seven_days_to_the_second(tenant, sender, fake_provider, now):
    customer = _customer(tenant)
    for i in range(3):
        _send(tenant, _queue(tenant, customer, f"old{i}"))
    # Exactly 7 days later the three still count; one second after, they do not.
    with clock.travel_to(NOON + timedelta(days=7)):
        edge = _queue(tenant, customer, "edge")
        _send(tenant, edge)
    with clock.travel_to(NOON + timedelta(days=7, seconds=1)):
        after = _queue(tenant, customer, "after")
        _send(tenant, after)
    assert _reload(edge).reason == Reason.FREQUENCY_CAP
    assert _reload(after).status == Status.SENT


def test_messages_in_one_batch_count_toward_the_cap_in_order(tenant, sender, fake_provider, now):
    customer = _customer(tenant)
    batch = [_queue(tenant, customer, f"m{i}", channel=("email", "sms")[i % 2]) for i in range(5)]
    assert _send(tenant, *batch) == {"sent": 3, "suppressed": 2}
    statuses = [_reload(m).status for m in batch]
    assert statuses == [Status.SENT] * 3 + [Status.SUPPRESSED] * 2


def test_the_cap_follows_the_tenant_setting(tenant, sender, fake_provider, now):
    sender.frequency_cap, sender.frequency_cap_days = 1, 1
    sender.save()
    customer = _customer(tenant)
    assert _send(tenant, _queue(tenant, customer, "a"), _queue(tenant, customer, "b")) == {
        "sent": 1,
        "suppressed": 1,
    }


@pytest.mark.parametrize(
    ("tz", "quiet_utc", "resume_utc"),
    [
        # 21:00 local → deferred to 08:00 local the next morning.
        ("Europe/Berlin", datetime(2026, 6, 1, 19, 0), datetime(2026, 6, 2, 6, 0)),
        ("America/New_York", datetime(2026, 6, 2, 1, 0), datetime(2026, 6, 2, 12, 0)),
        ("Asia/Tokyo", datetime(2026, 6, 1, 12, 0), datetime(2026, 6, 1, 23, 0)),
    ],
)
def test_a_marketing_message_in_quiet_hours_waits_for_08_00_in_the_customers_zone(
    tenant, sender, fake_provider, tz, quiet_utc, resume_utc
):
    customer = _customer(tenant, timezone=tz)
    quiet_utc, resume_utc = quiet_utc.replace(tzinfo=UTC), resume_utc.replace(tzinfo=UTC)
    with clock.travel_to(quiet_utc - timedelta(seconds=1)):
        before = _queue(tenant, customer, "before")
        assert _send(tenant, before) == {"sent": 1}
    with clock.travel_to(quiet_utc):
        message = _queue(tenant, customer, "night")
        assert _send(tenant, message) == {"deferred": 1}
    message = _reload(message)
    assert (message.status, message.reason, message.due_at) == (
        Status.DEFERRED,
        Reason.QUIET_HOURS,
        resume_utc,
    )
    assert fake_provider.calls_for(message.pk) == []

    queued: list = []
    with clock.travel_to(resume_utc - timedelta(seconds=1)):
        messages_dispatch_due(enqueue=lambda t, ids: queued.append(ids))
        assert queued == []
    with clock.travel_to(resume_utc):
        messages_dispatch_due(enqueue=lambda t, ids: queued.append(ids))
        assert queued == [[message.pk]]
        assert _send(tenant, message) == {"sent": 1}
    assert len(fake_provider.calls_for(message.pk)) == 1


def test_order_email_ignores_quiet_hours_but_a_delivery_sms_waits(tenant, sender, fake_provider):
    customer = _customer(tenant)
    with clock.travel_to(datetime(2026, 6, 1, 21, 30, tzinfo=UTC)):  # 23:30 in Berlin
        email = _queue(tenant, customer, "order-email", category="transactional")
        sms = _queue(tenant, customer, "order-sms", channel="sms", category="transactional")
        assert _send(tenant, email, sms) == {"sent": 1, "deferred": 1}
    assert _reload(sms).due_at == datetime(2026, 6, 2, 6, 0, tzinfo=UTC)


def test_quiet_hours_follow_the_tenant_settings(tenant, sender, fake_provider, now):
    sender.quiet_start, sender.quiet_end = time(11, 0), time(13, 0)
    sender.save()
    message = _queue(tenant, _customer(tenant), "lunch")
    assert _send(tenant, message) == {"deferred": 1}
    sender.quiet_hours_enabled = False
    sender.save()
    message.due_at = now
    message.save()
    assert _send(tenant, message) == {"sent": 1}


def test_a_transient_failure_is_retried_later_and_sent_once(tenant, sender, fake_provider, now):
    customer = _customer(tenant)
    fake_provider.fail(to=customer.email, status=503, times=1)
    message = _queue(tenant, customer, "m")

    assert _send(tenant, message) == {"retry": 1}
    message = _reload(message)
    assert (message.status, message.reason, message.attempts) == (
        Status.DEFERRED,
        Reason.TRANSIENT,
        1,
    )
    assert message.due_at == now + timedelta(seconds=30)

    with clock.travel_to(now + timedelta(seconds=30)):
        assert _send(tenant, message) == {"sent": 1}
    assert _reload(message).attempts == 2
    assert [c.status for c in fake_provider.calls_for(message.pk)] == [503, 202]


def test_a_429_waits_as_long_as_the_provider_asks(tenant, sender, fake_provider, now):
    customer = _customer(tenant)
    fake_provider.fail(to=customer.email, status=429, times=1, retry_after=120)
    message = _queue(tenant, customer, "m")
    _send(tenant, message)
    assert _reload(message).due_at == now + timedelta(seconds=120)


def test_a_message_that_keeps_failing_gives_up_after_the_last_attempt(
    tenant, sender, fake_provider, now
):
    customer = _customer(tenant)
    fake_provider.fail(to=customer.email, status=500, times=None)
    message = _queue(tenant, customer, "m")
    for _ in range(8):
        message = _reload(message)
        with clock.travel_to(message.due_at):
            _send(tenant, message)
    message = _reload(message)
    assert (message.status, message.reason, message.attempts) == (
        Status.FAILED,
        Reason.RETRIES_EXHAUSTED,
        8,
    )
    assert len(fake_provider.calls_for(message.pk)) == 8


def test_an_invalid_number_fails_for_good_and_is_suppressed(tenant, sender, fake_provider, now):
    customer = _customer(tenant)
    fake_provider.fail(to=customer.phone, status=400, code=21211)
    message = _queue(tenant, customer, "s", channel="sms")

    assert _send(tenant, message) == {"failed": 1}
    message = _reload(message)
    assert (message.status, message.reason, message.failed_at) == (
        Status.FAILED,
        Reason.PERMANENT,
        now,
    )
    assert "21211" in message.detail or "Invalid" in message.detail
    assert Suppression.objects.for_tenant(tenant).get(address=customer.phone).reason == "invalid"


def test_a_send_to_a_stopped_number_records_the_stop(tenant, sender, fake_provider, now):
    customer = _customer(tenant)
    fake_provider.fail(to=customer.phone, status=400, code=21610)
    _send(tenant, _queue(tenant, customer, "s", channel="sms"))
    assert Suppression.objects.for_tenant(tenant).get(address=customer.phone).reason == "sms_stop"


def test_a_timed_out_call_leaves_the_message_unknown_and_it_is_never_resent(
    tenant, sender, fake_provider, now
):
    customer = _customer(tenant)
    fake_provider.delay(to=customer.email, seconds=3)
    message = _queue(tenant, customer, "m")

    assert _send(tenant, message) == {"unknown": 1}
    assert (_reload(message).status, message.reason) == (Status.UNKNOWN, Reason.TIMEOUT)

    later = now + timedelta(hours=2)
    queued: list = []
    messages_recover(now=later)
    messages_dispatch_due(now=later, enqueue=lambda t, ids: queued.append(ids))
    assert queued == []
    assert _send(tenant, message) == {}
    assert len(fake_provider.calls_for(message.pk)) == 1


def test_a_dead_workers_batch_is_recovered_without_a_second_send(
    tenant, sender, fake_provider, now
):
    customer = _customer(tenant, email_consent="opted_in")
    messages = [
        _queue(tenant, customer, f"t{i}", category="transactional") for i in range(RECORD_EVERY + 2)
    ]
    # A worker claims the batch and dies during its calls: up to RECORD_EVERY
    # accepted calls may be unwritten, and they are the lowest of the batch.
    _claim(tenant.pk, [m.pk for m in messages], __import__("uuid").uuid4(), now)

    assert messages_recover(now=now + LEASE - timedelta(seconds=1)) == {
        "unknown": 0,
        "requeued": 0,
    }
    assert messages_recover(now=now + LEASE + timedelta(seconds=1)) == {
        "unknown": RECORD_EVERY,
        "requeued": 2,
    }
    messages = [_reload(m) for m in messages]
    maybe_sent, rest = messages[:RECORD_EVERY], messages[RECORD_EVERY:]
    assert {(m.status, m.reason) for m in maybe_sent} == {(Status.UNKNOWN, Reason.WORKER_LOST)}
    assert [(m.status, m.attempts) for m in rest] == [(Status.QUEUED, 0)] * 2

    with clock.travel_to(now + LEASE + timedelta(minutes=1)):
        queued: list = []
        messages_dispatch_due(enqueue=lambda t, ids: queued.append(ids))
        assert queued == [[m.pk for m in rest]]
        assert _send(tenant, *rest) == {"sent": 2}
    assert [len(fake_provider.calls_for(m.pk)) for m in messages] == [0] * RECORD_EVERY + [1, 1]


def test_without_provider_keys_messages_stay_in_the_outbox(tenant, sender, settings, now):
    settings.SENDGRID_API_KEY = ""
    message = _queue(tenant, _customer(tenant), "m")

    assert _send(tenant, message) == {}
    message = _reload(message)
    assert (message.status, message.reason) == (Status.QUEUED, Reason.NO_PROVIDER)
    assert message.body_text == "Hello there"
    queued: list = []
    messages_dispatch_due(now=now + timedelta(hours=1), enqueue=lambda t, ids: queued.append(ids))
    assert queued == []


def test_a_store_without_a_sender_keeps_its_email_queued_with_the_reason(
    tenant, fake_provider, settings, now
):
    settings.MESSAGING_FROM_EMAIL = ""
    message = _queue(tenant, _customer(tenant), "m")
    assert _send(tenant, message) == {"queued": 1}
    message = _reload(message)
    assert (message.status, message.reason) == (Status.QUEUED, Reason.NO_PROVIDER)
    assert message.detail == "Set the store's sender address in Messaging settings."
    assert message.due_at == now + timedelta(hours=1)
    assert fake_provider.calls == []


@pytest.mark.parametrize("category", ["staff", "test"])
def test_an_email_to_the_stores_team_without_a_sender_goes_from_the_platform_address(
    tenant, fake_provider, settings, now, category
):
    settings.MESSAGING_FROM_EMAIL = ""
    settings.DEFAULT_FROM_EMAIL = "Retention platform <alerts@retention.example.com>"
    message = _queue(tenant, None, "report", category=category, to_address="olga@alpha.example")
    assert _send(tenant, message) == {"sent": 1}
    assert _reload(message).status == Status.SENT
    (call,) = fake_provider.calls_for(message.pk)
    assert call.to == "olga@alpha.example"
    assert call.body["from"] == {
        "email": "alerts@retention.example.com",
        "name": "Retention platform",
    }
    assert Touchpoint.objects.for_tenant(tenant).count() == 0


def test_in_app_messages_are_stored_for_the_storefront_without_a_provider(tenant, settings, now):
    settings.SENDGRID_API_KEY = ""
    customer = _customer(tenant)
    message = _queue(tenant, customer, "inapp", channel="in_app", category="transactional")
    assert _send(tenant, message) == {"sent": 1}
    assert _reload(message).status == Status.SENT


def test_queueing_sends_after_commit(
    tenant, sender, fake_provider, now, eager_tasks, django_capture_on_commit_callbacks
):
    customer = _customer(tenant)
    with django_capture_on_commit_callbacks(execute=True):
        message = _queue(tenant, customer, "m")
    assert _reload(message).status == Status.SENT


def test_enqueue_refuses_bad_input_with_the_field_named(tenant, other_tenant):
    from retention.errors import InvalidInput

    customer = _customer(tenant)
    stranger = _customer(other_tenant)
    cases = [
        ({"channel": "fax"}, "channel"),
        ({"category": "spam"}, "category"),
        ({"idempotency_key": ""}, "idempotency_key"),
        ({"customer": stranger}, "customer"),
    ]
    for change, field in cases:
        kwargs = {
            "tenant": tenant,
            "customer": customer,
            "channel": "email",
            "category": "marketing",
            "idempotency_key": "k",
            "content": HELLO,
        } | change
        with pytest.raises(InvalidInput) as err:
            message_enqueue(**kwargs)
        assert list(err.value.fields) == [field]
    assert Message.objects.for_tenant(tenant).count() == 0


def test_a_merge_moves_the_merged_customers_messages_and_the_cap_counts_them(
    tenant, sender, fake_provider, now
):
    from commerce.services.customers import customer_merge

    survivor, merged = _customer(tenant), _customer(tenant, phone="+4915199999999")
    _send(tenant, *[_queue(tenant, merged, f"m{i}") for i in range(3)])

    record = customer_merge(survivor=survivor, merged=merged, reason="same person")

    assert record.moved["messages"] == 3
    assert Message.objects.for_tenant(tenant).filter(customer=survivor).count() == 3
    fourth = _queue(tenant, survivor, "m4")
    assert _send(tenant, fourth) == {"suppressed": 1}
    assert _reload(fourth).reason == Reason.FREQUENCY_CAP


def test_an_unusable_customer_timezone_falls_back_to_the_stores(tenant, sender, fake_provider):
    customer = _customer(tenant, timezone="America")  # a directory of the tz database
    with clock.travel_to(datetime(2026, 6, 1, 19, 30, tzinfo=UTC)):  # 21:30 in Berlin
        message = _queue(tenant, customer, "m")
        assert _send(tenant, message) == {"deferred": 1}
    assert _reload(message).due_at == datetime(2026, 6, 2, 6, 0, tzinfo=UTC)


def test_a_callback_that_overtakes_the_send_keeps_its_status_and_the_send_is_recorded(
    tenant, sender, fake_provider, now
):
    import uuid

    from messaging.services.outbox import message_advance
    from messaging.services.send import _record_sent

    message = _queue(tenant, _customer(tenant), "m")
    claim = uuid.uuid4()
    _claim(tenant.pk, [message.pk], claim, now)
    # The provider's "delivered" arrives before the worker records its call.
    assert message_advance(tenant_id=tenant.pk, message_id=message.pk, status=Status.DELIVERED)
    assert _record_sent(tenant.pk, message.pk, claim, "SG-123")

    message = _reload(message)
    assert (message.status, message.provider_id, message.sent_at, message.claim) == (
        Status.DELIVERED,
        "SG-123",
        now,
        None,
    )


def test_a_marketing_template_cannot_be_queued_as_transactional(tenant):
    from messaging.models import Template
    from retention.errors import InvalidInput

    template = Template.objects.create(
        tenant=tenant, name="Promo", channel="email", category="marketing", subject="Hi", text="Hi"
    )
    with pytest.raises(InvalidInput) as err:
        message_enqueue(
            tenant=tenant,
            customer=_customer(tenant),
            channel="email",
            category="transactional",
            idempotency_key="k",
            template=template,
        )
    assert list(err.value.fields) == ["category"]
