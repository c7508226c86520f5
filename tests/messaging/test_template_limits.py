"""A marketer's template cannot make rendering expensive or crash it: deep
nesting, nested loops, loops over literals and huge counts are refused on save
and again before every render (for a template stored some other way), and a
customer's unusable timezone falls back to the store's."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest

from commerce.models import Customer
from messaging.models import Template
from messaging.services.outbox import message_enqueue
from messaging.services.templates import template_render, template_save, template_validate
from messaging.template_language import MAX_OUTPUT, UnsafeTemplate, render_source
from retention import clock
from retention.errors import InvalidInput
from tests.factories import CustomerFactory

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)  # 14:00 in Berlin, the tenant's zone
HUGE = [
    ('{{ customer.first_name|ljust:"300000000" }}', "|ljust allows numbers up to 500."),
    ('{{ customer.first_name|center:"99999999999" }}', "|center allows numbers up to 500."),
    ('{{ product.price|stringformat:".100000000f" }}', "|stringformat allows numbers up to 500."),
    ('{{ product.price|floatformat:"1000000" }}', "|floatformat allows numbers up to 500."),
    (
        '{% filter rjust:"100000000" %}x{% endfilter %}',
        "|rjust allows numbers up to 500.",
    ),
    ("{% lorem 100000000 w %}", "{% lorem %} allows numbers up to 50."),
    (
        "{% lorem customer.first_name w %}",
        "{% lorem %} takes a number written in the template, not a variable.",
    ),
    (
        "{{ customer.first_name|ljust:product.price }}",
        "|ljust takes a number written in the template, not a variable.",
    ),
    (
        '{% for a in "0123456789" %}{% endfor %}',
        "Loop over a list variable, e.g. {% for item in order.items %}, not over a literal.",
    ),
    (
        "{% for a in order.items %}{% for b in order.items %}{% endfor %}{% endfor %}",
        "A {% for %} loop cannot be inside another loop.",
    ),
    ("{% if 1 %}" * 30 + "x" + "{% endif %}" * 30, "Tags are nested more than 20 deep"),
    ("{% if 1 %}" * 3000 + "x" + "{% endif %}" * 3000, "Tags are nested more than 20 deep"),
]


@pytest.fixture(autouse=True)
def _fixed_clock():
    clock.set_now(NOW)


@pytest.mark.parametrize(("source", "message"), HUGE)
def test_expensive_templates_are_refused_on_save_with_the_reason(tenant, source, message):
    with pytest.raises(InvalidInput) as refused:
        template_save(tenant=tenant, name="Big", channel="sms", category="marketing", text=source)

    assert refused.value.fields["text"][0].startswith(message)
    assert not Template.objects.for_tenant(tenant).filter(name="Big").exists()


@pytest.mark.parametrize(("source", "message"), HUGE)
def test_expensive_templates_stored_another_way_do_not_render(tenant, source, message):
    template = Template.objects.create(tenant=tenant, name="Big", channel="sms", text=source)
    customer = CustomerFactory(tenant=tenant, first_name="Ann")

    started = time.monotonic()
    with pytest.raises(InvalidInput) as refused:
        template_render(template=template, customer=customer)

    assert time.monotonic() - started < 1
    assert message in refused.value.message
    with pytest.raises(InvalidInput):
        message_enqueue(
            tenant=tenant,
            customer=customer,
            channel="sms",
            category="marketing",
            idempotency_key="big:1",
            template=template,
        )


def test_ordinary_templates_within_the_limits_still_pass():
    template_validate(
        channel="email",
        subject='{{ customer.first_name|default:"there"|ljust:"20" }}',
        html=(
            "{% for item in order.items|slice:':5' %}{% if forloop.first %}<ul>{% endif %}"
            "<li>{{ item.quantity }} x {{ item.name }}</li>{% endfor %}{% lorem 2 p %}"
        ),
        text='{{ product.price|floatformat:2 }} {{ order.total|stringformat:".2f" }}',
    )


def test_a_rendered_part_longer_than_the_limit_is_refused():
    items = tuple({"name": "x" * 100, "sku": "", "quantity": 1} for _ in range(1_001))
    source = '{% for item in order.items %}{{ item.name|ljust:"500" }}{% endfor %}'

    with pytest.raises(UnsafeTemplate, match=f"longer than {MAX_OUTPUT} characters"):
        render_source(source, {"order": {"items": items}}, autoescape=False)
    assert len(render_source(source, {"order": {"items": items[:1_000]}}, autoescape=False)) == (
        1_000 * 500
    )


@pytest.mark.parametrize("zone", ["America", "Etc", "Europe/Nowhere", "../etc"])
def test_an_unusable_customer_timezone_renders_in_the_stores(tenant, zone):
    # The admin's customer form takes any text; "America" is a directory of the
    # tz database and made ZoneInfo raise IsADirectoryError.
    customer: Customer = CustomerFactory(tenant=tenant, timezone=zone)
    template = Template.objects.create(
        tenant=tenant, name="Time", channel="sms", text='{{ order.placed_at|date:"H:i e" }}'
    )

    content = template_render(
        template=template, customer=customer, extra={"order": {"placed_at": NOW}}
    )

    assert content.text == "14:00 CEST"


def test_now_reads_the_projects_clock_in_the_customers_timezone(tenant):
    customer = CustomerFactory(tenant=tenant, timezone="America/New_York")
    template = Template.objects.create(
        tenant=tenant, name="Now", channel="sms", text='{% now "Y-m-d H:i" as today %}{{ today }}'
    )

    with clock.travel_to(datetime(2031, 12, 31, 23, 30, tzinfo=UTC)):
        content = template_render(template=template, customer=customer)

    assert content.text == "2031-12-31 18:30"


def test_tags_that_set_a_name_render(tenant):
    customer = CustomerFactory(tenant=tenant, first_name="")
    template_save(
        tenant=tenant,
        name="Names",
        channel="sms",
        category="marketing",
        text=(
            '{% firstof customer.first_name "there" as name %}Hi {{ name }}! '
            '{% cycle "a" "b" as letter %}{{ letter }} {% widthratio 5 10 100 as pct %}{{ pct }}%'
        ),
    )
    template = Template.objects.for_tenant(tenant).get(name="Names")

    assert template_render(template=template, customer=customer).text == "Hi there! aa 50%"
