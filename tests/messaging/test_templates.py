"""Message templates: rendering each variable group, escaping, validation of
variables, syntax and refused tags, saving, the preview for a real customer,
and an SMS's length in segments."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from commerce.models import Order, OrderLine
from commerce.tokens import order_page_url, preferences_page_url
from messaging.models import Template
from messaging.services.outbox import Content, message_enqueue
from messaging.services.templates import (
    sms_segments,
    template_preview,
    template_render,
    template_save,
    template_validate,
    template_variables,
)
from messaging.sms_length import GSM_BASIC
from retention import clock
from retention.errors import InvalidInput, NotFound
from retention.models import AuditEntry
from tests.factories import CustomerFactory, ProductFactory, UserFactory, make_order

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _fixed_clock():
    clock.set_now(NOW)


@pytest.fixture
def ann(tenant):
    return CustomerFactory(
        tenant=tenant,
        first_name="Ann",
        last_name="Lee",
        email="ann@alpha.example",
        phone="+4915112345678",
        locale="de",
    )


@pytest.fixture
def order(ann):
    """Ann's order 1001 of a candle (with a product) and a gift card (without)."""
    placed = make_order(ann, NOW - timedelta(days=2), "59.90")
    placed.number = "1001"
    placed.save(update_fields=["number"])
    candle = ProductFactory(tenant=ann.tenant, sku="CANDLE-1", name="Fig candle")
    for product, sku, name, quantity in (
        (candle, "CANDLE-1", "Fig candle", 2),
        (None, "GIFT", "", 1),
    ):
        OrderLine.objects.create(
            tenant=ann.tenant, order=placed, product=product, sku=sku, name=name, quantity=quantity
        )
    return placed


def tpl(tenant, channel="email", *, subject="", html="", text="", name="T") -> Template:
    return Template(
        tenant=tenant, name=name, channel=channel, subject=subject, html=html, text=text
    )


def render_text(tenant, text, **kwargs) -> str:
    return template_render(template=tpl(tenant, "sms", text=text), **kwargs).text


def errors_of(channel="email", *, subject="Hi", html="", text="Body") -> dict:
    with pytest.raises(InvalidInput) as caught:
        template_validate(channel=channel, subject=subject, html=html, text=text)
    return caught.value.fields


# --- rendering ------------------------------------------------------------------------------


def test_customer_variables_render(tenant, ann):
    text = (
        "{{ customer.first_name }}|{{ customer.last_name }}|{{ customer.full_name }}|"
        "{{ customer.email }}|{{ customer.phone }}|{{ customer.locale }}"
    )
    assert render_text(tenant, text, customer=ann) == (
        "Ann|Lee|Ann Lee|ann@alpha.example|+4915112345678|de"
    )


def test_a_customer_without_first_name_renders_empty_and_default_fills_in(tenant):
    nameless = CustomerFactory(tenant=tenant, first_name="")
    text = '[{{ customer.first_name }}] Hi {{ customer.first_name|default:"there" }}'
    assert render_text(tenant, text, customer=nameless) == "[] Hi there"


def test_order_variables_render_in_the_customers_store_timezone(tenant, ann, order):
    text = (
        "{{ order.number }}|{{ order.total }} {{ order.currency }}|"
        '{{ order.placed_at|date:"Y-m-d H:i" }}|{{ order.status_url }}|'
        "{% for item in order.items %}{{ item.quantity }}x{{ item.name }} ({{ item.sku }});"
        "{% endfor %}"
    )
    rendered = render_text(tenant, text, customer=ann, order=order)
    # Placed 2026-05-30 12:00 UTC: 14:00 in the store's Europe/Berlin (summer time).
    assert rendered == (
        f"1001|59.90 EUR|2026-05-30 14:00|{order_page_url(order)}|"
        "2xFig candle (CANDLE-1);1xGIFT (GIFT);"
    )


def test_order_number_falls_back_to_the_external_id(tenant, ann):
    unnumbered = make_order(ann, NOW, "10.00")
    assert render_text(tenant, "{{ order.number }}", order=unnumbered) == unnumbered.external_id


def test_product_variables_render(tenant):
    product = ProductFactory(tenant=tenant, sku="TEA-9", name="Green tea", price=Decimal("7.50"))
    text = "{{ product.name }}|{{ product.sku }}|{{ product.price }}|{{ product.family }}"
    assert (
        render_text(tenant, text, product=product) == f"Green tea|TEA-9|7.50|{product.family.name}"
    )


def test_store_and_link_variables_render(tenant, ann, order):
    text = (
        "{{ store.name }}|{{ links.preferences }}|{{ links.unsubscribe }}|{{ links.order_status }}"
    )
    preferences = preferences_page_url(ann)
    assert render_text(tenant, text, customer=ann, order=order) == (
        f"Alpha Store|{preferences}|{preferences}|{order_page_url(order)}"
    )


def test_groups_that_do_not_apply_render_empty(tenant, ann):
    text = (
        "[{{ order.number }}]{% if order %}order{% else %}no order{% endif %}"
        "[{{ links.order_status }}]"
    )
    assert render_text(tenant, text, customer=ann) == "[]no order[]"


def test_html_is_escaped_but_subject_and_text_are_not(tenant):
    shopper = CustomerFactory(tenant=tenant, first_name="<b>Ann</b> & Co")
    template = tpl(
        tenant,
        subject="For {{ customer.first_name }}",
        html="<p>Hi {{ customer.first_name }}</p>",
        text="Hi {{ customer.first_name }}",
    )
    assert template_render(template=template, customer=shopper) == Content(
        subject="For <b>Ann</b> & Co",
        text="Hi <b>Ann</b> & Co",
        html="<p>Hi &lt;b&gt;Ann&lt;/b&gt; &amp; Co</p>",
    )


def test_a_subject_renders_on_one_line(tenant, ann):
    template = tpl(tenant, subject="Hello\n{{ customer.first_name }}\n\n  !", text="x")
    assert template_render(template=template, customer=ann).subject == "Hello Ann !"


def test_extra_adds_variables_to_a_group(tenant, ann):
    text = "{{ links.survey }}|{{ links.preferences }}"
    extra = {"links": {"survey": "https://alpha.example/s/abc/"}}
    assert render_text(tenant, text, customer=ann, extra=extra) == (
        f"https://alpha.example/s/abc/|{preferences_page_url(ann)}"
    )


def test_a_template_cannot_reach_model_methods_or_relations(tenant, ann, order):
    text = "[{{ customer.delete }}{{ customer.orders }}{{ order.customer.email }}{{ customer.pk }}]"
    assert render_text(tenant, text, customer=ann, order=order) == "[]"
    assert Order.objects.for_tenant(tenant).filter(customer=ann).count() == 1


def test_queueing_a_message_renders_its_template_for_the_customer(tenant, ann, order):
    template = template_save(
        tenant=tenant,
        name="Shipped",
        channel="email",
        category="transactional",
        subject="Order {{ order.number }} is on its way",
        text="Hi {{ customer.first_name }}",
    )
    message = message_enqueue(
        tenant=tenant,
        customer=ann,
        channel="email",
        category="transactional",
        idempotency_key="shipped:1",
        template=template,
        render_context={"order": order},
    )
    assert (message.subject, message.body_text, message.template_id) == (
        "Order 1001 is on its way",
        "Hi Ann",
        template.pk,
    )


# --- validation -----------------------------------------------------------------------------


def test_a_valid_template_passes():
    html = (
        '<p>Hi {{ customer.first_name|default:"there" }}</p>'
        "{% if order.total > 50 and links.order_status %}<a href='{{ links.order_status }}'>"
        "track</a>{% endif %}"
        "{% for item in order.items %}{{ forloop.counter }}. {{ item.name|upper }}"
        "{% empty %}none{% endfor %}"
        "{% with who=customer.full_name %}{{ who }}{% endwith %}"
        "{{ product.price|floatformat:2 }} {{ store.name }} {{ order.items|length }}"
    )
    assert template_validate(channel="email", subject="Hi", html=html, text="") is None


def test_an_unknown_attribute_is_refused_by_name():
    assert errors_of(html="<p>{{ customer.frist_name }}</p>") == {
        "html": ["Unknown variable 'customer.frist_name'."]
    }


def test_an_unknown_variable_is_refused_by_name_in_each_field():
    fields = errors_of(subject="{{ shop.name }}", text="{% if coupon %}x{% endif %}")
    assert fields == {
        "subject": ["Unknown variable 'shop.name'."],
        "text": ["Unknown variable 'coupon'."],
    }


def test_unknown_variables_in_filter_arguments_are_refused():
    assert errors_of(text="{{ customer.first_name|default:customer.nick }}") == {
        "text": ["Unknown variable 'customer.nick'."]
    }


def test_printing_a_whole_group_is_refused():
    assert errors_of(text="{{ customer }} {{ order.items }}") == {
        "text": [
            "'customer' is a group: use one of its attributes, e.g. 'customer.first_name'.",
            "'order.items' is a list: loop over it with {% for item in order.items %}.",
        ]
    }


def test_a_syntax_error_names_its_line():
    assert errors_of(text="Hi\n{% if customer.first_name %}\nno end") == {
        "text": [
            "Syntax error on line 2: Unclosed tag: 'if'. Looking for one of: elif, else, endif."
        ]
    }
    assert errors_of(text="a\nb\n{{ customer.first_name|nosuch }}") == {
        "text": ["Unknown filter |nosuch (line 3)."]
    }


@pytest.mark.parametrize(
    ("source", "message"),
    [
        (
            'x\n{% include "footer.html" %}',
            "{% include %} is not allowed (line 2): templates stand alone and cannot include "
            "others.",
        ),
        (
            '{% extends "base.html" %}',
            "{% extends %} is not allowed (line 1): templates stand alone and cannot extend "
            "others.",
        ),
        (
            "{% load static %}",
            "{% load %} is not allowed (line 1): only the built-in tags and filters are available.",
        ),
        (
            "{% autoescape off %}{{ customer.first_name }}{% endautoescape %}",
            "{% autoescape %} is not allowed (line 1): HTML is always escaped.",
        ),
        (
            "{{ customer.first_name|safe }}",
            "The filter |safe is not allowed (line 1): customer data is always escaped.",
        ),
        ("{% debug %}", "{% debug %} is not allowed (line 1): it would reveal internals."),
    ],
)
def test_tags_and_filters_that_reach_outside_the_template_are_refused(source, message):
    assert errors_of(html=source, text="") == {"html": [message]}


def test_refused_tags_do_not_render_even_if_stored(tenant):
    template = tpl(tenant, "sms", text='{% include "x.html" %}')
    with pytest.raises(InvalidInput) as caught:
        template_render(template=template)
    assert caught.value.message == (
        "Template 'T': {% include %} is not allowed (line 1): templates stand alone and "
        "cannot include others."
    )


def test_loop_variables_are_known_inside_the_loop_only():
    text = (
        "{% for item in order.items %}{{ item.name }} {{ item.colour }} {{ forloop.last }}"
        "{% endfor %}{{ item.name }}{{ forloop.counter }}"
    )
    assert errors_of(text=text) == {
        "text": [
            "Unknown variable 'item.colour'.",
            "Unknown variable 'item.name'.",
            "Unknown variable 'forloop.counter'.",
        ]
    }


def test_with_names_are_known_inside_the_block_only():
    text = "{% with n=customer.first_name %}{{ n }}{% endwith %}{{ n }}"
    assert errors_of(text=text) == {"text": ["Unknown variable 'n'."]}


@pytest.mark.parametrize(
    ("channel", "parts", "fields"),
    [
        ("email", {"subject": "", "text": "x"}, {"subject": ["An email needs a subject."]}),
        (
            "email",
            {"subject": "Hi", "text": " ", "html": ""},
            {"text": ["An email needs a text body, an HTML body or both."]},
        ),
        ("sms", {"text": ""}, {"text": ["An SMS needs a text."]}),
        ("sms", {"text": "x", "html": "<p>x</p>"}, {"html": ["HTML is for email only."]}),
        ("in_app", {"subject": "Title", "text": ""}, {"text": ["An in-app message needs a text."]}),
    ],
)
def test_each_channel_needs_its_parts(channel, parts, fields):
    values = {"subject": "", "html": "", "text": "", **parts}
    assert errors_of(channel, **values) == fields


def test_an_email_with_only_html_is_complete():
    assert template_validate(channel="email", subject="Hi", html="<p>x</p>", text="") is None


def test_the_documented_variables_are_the_known_ones():
    assert template_variables() == {
        "customer": ["first_name", "last_name", "full_name", "email", "phone", "locale"],
        "order": ["number", "total", "currency", "placed_at", "status_url", "items"],
        "order.items": ["name", "sku", "quantity"],
        "product": ["name", "sku", "price", "family"],
        "cart": ["total", "currency", "url", "items"],
        "cart.items": ["name", "sku", "quantity"],
        "store": ["name"],
        "links": ["preferences", "unsubscribe", "order_status", "survey"],
    }


# --- saving ---------------------------------------------------------------------------------


def test_save_creates_then_updates_a_template_and_audits_it(tenant):
    marketer = UserFactory(email="m@alpha.example")
    created = template_save(
        tenant=tenant,
        name=" Welcome ",
        channel="sms",
        category="marketing",
        text="Hi",
        actor=marketer,
    )
    updated = template_save(
        tenant=tenant,
        name="Welcome",
        channel="sms",
        category="marketing",
        text="Hi {{ customer.first_name }}",
        template=created,
        actor=marketer,
    )
    stored = Template.objects.for_tenant(tenant).get(name="Welcome")
    assert (updated.pk, stored.name, stored.text) == (created.pk, "Welcome", updated.text)
    entries = AuditEntry.objects.filter(tenant=tenant, object_type="messaging.template")
    assert list(entries.order_by("id").values_list("action", flat=True)) == ["create", "update"]
    assert entries.order_by("id").last().changes == {"text": ["Hi", "Hi {{ customer.first_name }}"]}


def test_a_template_name_is_unique_per_store(tenant, other_tenant):
    values = {"name": "Welcome", "channel": "sms", "category": "marketing", "text": "Hi"}
    template_save(tenant=tenant, **values)
    template_save(tenant=other_tenant, **values)  # another store may use the name
    with pytest.raises(InvalidInput) as caught:
        template_save(tenant=tenant, **values)
    assert caught.value.fields == {
        "name": ["A template named 'Welcome' already exists in this store."]
    }
    assert Template.objects.for_tenant(tenant).filter(name="Welcome").count() == 1


def test_save_refuses_an_invalid_template_and_stores_nothing(tenant):
    with pytest.raises(InvalidInput) as caught:
        template_save(
            tenant=tenant, name="Bad", channel="sms", category="marketing", text="{{ custmer.x }}"
        )
    assert caught.value.fields == {"text": ["Unknown variable 'custmer.x'."]}
    assert not Template.objects.for_tenant(tenant).filter(name="Bad").exists()


def test_save_refuses_another_stores_template(tenant, other_tenant):
    theirs = template_save(
        tenant=other_tenant, name="X", channel="sms", category="marketing", text="a"
    )
    with pytest.raises(NotFound):
        template_save(
            tenant=tenant, name="X", channel="sms", category="marketing", text="b", template=theirs
        )
    theirs.refresh_from_db()
    assert theirs.text == "a"


# --- preview --------------------------------------------------------------------------------


def test_preview_uses_the_customers_latest_order_and_its_first_product(tenant, ann, order):
    make_order(ann, NOW - timedelta(days=30), "5.00")  # an older order
    template = tpl(
        tenant, "sms", text="{{ customer.first_name }}: {{ order.number }} {{ product.name }}"
    )
    assert template_preview(template=template, customer=ann).text == "Ann: 1001 Fig candle"


def test_preview_without_orders_leaves_order_and_product_empty(tenant, ann):
    template = tpl(
        tenant, "sms", text="{{ customer.first_name }}:{{ order.number }}:{{ product.name }}"
    )
    assert template_preview(template=template, customer=ann).text == "Ann::"


def test_preview_refuses_another_stores_customer(tenant, other_tenant):
    stranger = CustomerFactory(tenant=other_tenant, first_name="Eve")
    with pytest.raises(NotFound):
        template_preview(template=tpl(tenant, "sms", text="x"), customer=stranger)


def test_preview_of_a_merged_customer_uses_the_survivors_orders(tenant, ann, order):
    merged = CustomerFactory(tenant=tenant, first_name="Ann", merged_into=ann)
    template = tpl(tenant, "sms", text="{{ order.number }}")
    assert template_preview(template=template, customer=merged).text == "1001"


# --- SMS length -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "encoding", "characters", "segments"),
    [
        ("", "GSM-7", 0, 0),
        ("a" * 160, "GSM-7", 160, 1),
        ("a" * 161, "GSM-7", 161, 2),
        ("a" * 153 * 2, "GSM-7", 306, 2),
        ("a" * (153 * 2 + 1), "GSM-7", 307, 3),
        ("a" * 158 + "€", "GSM-7", 160, 1),
        ("a" * 159 + "€", "GSM-7", 161, 2),
        # The escape pair of "€" does not fit in the first part's last septet.
        ("a" * 152 + "€" + "a" * 152, "GSM-7", 306, 3),
        ("ą" * 70, "UCS-2", 70, 1),
        ("ą" * 71, "UCS-2", 71, 2),
        ("ą" * 67 * 2, "UCS-2", 134, 2),
        ("ą" * (67 * 2 + 1), "UCS-2", 135, 3),
        ("😀" * 35, "UCS-2", 70, 1),
        ("😀" * 36, "UCS-2", 72, 2),
        ("a" * 69 + "😀", "UCS-2", 71, 2),
    ],
)
def test_sms_segments_at_the_boundaries(text, encoding, characters, segments):
    length = sms_segments(text)
    assert (length.encoding, length.characters, length.segments) == (
        encoding,
        characters,
        segments,
    )


@pytest.mark.parametrize("char", list("\f^{}\\[~]|€"))
def test_gsm_extension_characters_count_two(char):
    assert sms_segments(char).characters == 2
    assert sms_segments("a" + char).encoding == "GSM-7"


ALPHABET = st.sampled_from(["a", "Z", " ", "\n", "é", "€", "{", "ą", "ж", "😀"])


@given(st.text(alphabet=ALPHABET, max_size=400))
def test_segments_never_shrink_as_a_text_grows(text):
    counts = [sms_segments(text[:end]).segments for end in range(len(text) + 1)]
    assert counts == sorted(counts)


@given(st.text(alphabet=sorted(GSM_BASIC), min_size=1, max_size=160))
def test_up_to_160_basic_gsm_characters_are_one_segment(text):
    length = sms_segments(text)
    assert (length.encoding, length.characters, length.segments) == ("GSM-7", len(text), 1)
