"""The template admin: creating and editing through the template service, errors
on the form, variables and SMS length, the preview for a real customer, the
test send, roles and tenancy."""

from datetime import UTC, datetime, timedelta

import pytest
from django.urls import reverse

from commerce.models import CustomerIdentity, IdentityKind
from messaging.models import Message, Template
from messaging.services.templates import template_save
from retention import clock
from retention.models import AuditEntry
from tests.factories import CustomerFactory, make_order

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _fixed_clock():
    clock.set_now(NOW)


@pytest.fixture
def welcome(tenant):
    return template_save(
        tenant=tenant,
        name="Welcome",
        channel="email",
        category="marketing",
        subject="Hello {{ customer.first_name }}",
        html="<p>Hi {{ customer.first_name }}</p>",
        text="Hi {{ customer.first_name }}, your order {{ order.number }}",
    )


@pytest.fixture
def theirs(other_tenant):
    return template_save(
        tenant=other_tenant, name="Bravo secret", channel="sms", category="marketing", text="Hi"
    )


@pytest.fixture
def ann(tenant):
    customer = CustomerFactory(tenant=tenant, first_name="Ann", email="ann@alpha.example")
    CustomerIdentity.objects.create(
        tenant=tenant, customer=customer, kind=IdentityKind.EMAIL, value="ann@alpha.example"
    )
    return customer


def url(name, *args):
    return reverse(f"admin:messaging_template_{name}", args=args)


def form_data(**overrides):
    data = {
        "name": "Shipped",
        "channel": "email",
        "category": "transactional",
        "subject": "Order {{ order.number }}",
        "html": "<p>Hi {{ customer.first_name }}</p>",
        "text": "Hi {{ customer.first_name }}",
        "_save": "Save",
    }
    return {**data, **overrides}


def test_a_marketer_creates_a_template_in_the_admin(tenant, marketer_client):
    page = marketer_client.get(url("add"))
    assert page.status_code == 200
    assert b"For SMS templates only." in page.content

    response = marketer_client.post(url("add"), form_data())
    assert response.status_code == 302
    template = Template.objects.for_tenant(tenant).get(name="Shipped")
    assert (template.name, template.channel, template.category, template.subject) == (
        "Shipped",
        "email",
        "transactional",
        "Order {{ order.number }}",
    )
    entry = AuditEntry.objects.get(tenant=tenant, object_type="messaging.template")
    assert (entry.action, entry.actor_user_id) == ("create", marketer_client.user.pk)


def test_an_unknown_variable_is_shown_on_the_form_by_name(tenant, marketer_client):
    response = marketer_client.post(url("add"), form_data(html="<p>{{ customer.frist_name }}</p>"))
    assert response.status_code == 200
    assert response.context["adminform"].form.errors == {
        "html": ["Unknown variable 'customer.frist_name'."]
    }
    assert b"Unknown variable &#x27;customer.frist_name&#x27;." in response.content
    assert not Template.objects.for_tenant(tenant).filter(name="Shipped").exists()


def test_a_syntax_error_is_shown_with_its_line(tenant, marketer_client):
    response = marketer_client.post(url("add"), form_data(text="Hi\n\n{{ customer.first_name|x }}"))
    assert response.context["adminform"].form.errors == {"text": ["Unknown filter |x (line 3)."]}


def test_a_taken_name_is_shown_on_the_form(tenant, marketer_client, welcome):
    response = marketer_client.post(url("add"), form_data(name="Welcome"))
    assert response.context["adminform"].form.errors == {
        "name": ["A template named 'Welcome' already exists in this store."]
    }
    assert Template.objects.for_tenant(tenant).filter(name="Welcome").count() == 1


def test_a_marketer_edits_a_template(tenant, marketer_client, welcome):
    response = marketer_client.post(
        url("change", welcome.pk), form_data(name="Welcome", subject="Welcome!")
    )
    assert response.status_code == 302
    welcome.refresh_from_db()
    assert (welcome.name, welcome.subject) == ("Welcome", "Welcome!")


def test_the_change_form_lists_variables_and_an_sms_length(tenant, marketer_client):
    sms = template_save(
        tenant=tenant, name="Promo", channel="sms", category="marketing", text="a" * 160 + "€"
    )
    body = marketer_client.get(url("change", sms.pk)).content.decode()
    assert "162 characters as written (GSM-7): 2 segments." in body
    assert "<li><code>customer</code>: first_name, last_name, full_name, email" in body
    assert "<li><code>order.items</code>: name, sku, quantity</li>" in body
    assert "{{ customer.first_name|default:&quot;there&quot; }}" in body
    assert url("preview", sms.pk) in body


def test_preview_shows_the_template_rendered_for_a_real_customer(marketer_client, welcome, ann):
    order = make_order(ann, NOW - timedelta(days=1))
    response = marketer_client.get(url("preview", welcome.pk), {"customer": ann.pk})
    assert response.status_code == 200
    body = response.content.decode()
    assert '<p class="preview-subject">Hello Ann</p>' in body
    assert f"Hi Ann, your order {order.external_id}</pre>" in body
    assert 'sandbox srcdoc="&lt;p&gt;Hi Ann&lt;/p&gt;"' in body


def test_preview_finds_a_customer_by_email(marketer_client, welcome, ann):
    response = marketer_client.get(url("preview", welcome.pk), {"customer": "ANN@alpha.example"})
    assert '<p class="preview-subject">Hello Ann</p>' in response.content.decode()


def test_preview_says_when_no_customer_has_the_email(marketer_client, welcome):
    response = marketer_client.get(url("preview", welcome.pk), {"customer": "nobody@x.example"})
    assert response.status_code == 200
    assert response.context["error"] == "No customer with the email nobody@x.example in this store."
    assert response.context["content"] is None


def test_preview_shows_an_sms_length_for_the_customer(tenant, marketer_client, ann):
    sms = template_save(
        tenant=tenant,
        name="Promo",
        channel="sms",
        category="marketing",
        text="{{ customer.first_name }} 😀",
    )
    response = marketer_client.get(url("preview", sms.pk), {"customer": ann.pk})
    assert response.context["sms"].segments == 1
    assert "6 characters (UCS-2):\n    1 segment." in response.content.decode()


def test_another_stores_template_answers_404(marketer_client, theirs):
    assert marketer_client.get(url("change", theirs.pk)).status_code == 404
    assert marketer_client.get(url("preview", theirs.pk)).status_code == 404
    response = marketer_client.post(url("preview", theirs.pk), {"phone": "+4915112345678"})
    assert response.status_code == 404
    assert Message.objects.for_tenant(theirs.tenant_id).count() == 0


def test_preview_for_another_stores_customer_answers_404(marketer_client, welcome, other_tenant):
    stranger = CustomerFactory(tenant=other_tenant, first_name="Eve")
    response = marketer_client.get(url("preview", welcome.pk), {"customer": stranger.pk})
    assert response.status_code == 404
    assert b"Eve" not in response.content


def test_test_send_queues_one_test_message_to_the_marketer(tenant, marketer_client, welcome, ann):
    response = marketer_client.post(
        url("preview", welcome.pk), {"customer": ann.pk, "_send_test": "1"}
    )
    assert response.status_code == 302
    assert response["Location"] == url("preview", welcome.pk) + f"?customer={ann.pk}"
    message = Message.objects.for_tenant(tenant).get()
    assert (
        message.category,
        message.channel,
        message.to_address,
        message.customer_id,
        message.template_id,
        message.source,
        message.context,
        message.subject,
        message.body_html,
    ) == (
        "test",
        "email",
        "marketer@alpha.example",
        None,
        None,
        "test",
        {"template_id": welcome.pk},
        "Hello Ann",
        "<p>Hi Ann</p>",
    )
    assert message.idempotency_key.startswith(f"test:{welcome.pk}:")


def test_an_sms_test_goes_to_the_number_given(tenant, marketer_client, ann):
    sms = template_save(
        tenant=tenant,
        name="Promo",
        channel="sms",
        category="marketing",
        text="Hi {{ customer.first_name }}",
    )
    marketer_client.post(url("preview", sms.pk), {"customer": ann.pk, "phone": "+49 151 12345678"})
    message = Message.objects.for_tenant(tenant).get()
    assert (message.channel, message.to_address, message.body_text) == (
        "sms",
        "+4915112345678",
        "Hi Ann",
    )


def test_an_sms_test_without_a_valid_number_sends_nothing(tenant, marketer_client, ann):
    sms = template_save(tenant=tenant, name="Promo", channel="sms", category="marketing", text="Hi")
    response = marketer_client.post(url("preview", sms.pk), {"phone": "12"}, follow=True)
    assert "Give the phone number in international form" in response.content.decode()
    assert Message.objects.for_tenant(tenant).count() == 0


def test_a_viewer_may_look_but_not_save_or_send(tenant, viewer_client, welcome, ann):
    assert viewer_client.get(url("change", welcome.pk)).status_code == 200
    preview = viewer_client.get(url("preview", welcome.pk), {"customer": ann.pk})
    assert preview.status_code == 200
    assert b"Send test to me" not in preview.content

    changed = viewer_client.post(url("change", welcome.pk), form_data(name="Welcome", subject="X"))
    added = viewer_client.post(url("add"), form_data())
    sent = viewer_client.post(url("preview", welcome.pk), {"customer": ann.pk})

    assert (changed.status_code, added.status_code, sent.status_code) == (403, 403, 403)
    welcome.refresh_from_db()
    assert welcome.subject == "Hello {{ customer.first_name }}"
    assert not Template.objects.for_tenant(tenant).filter(name="Shipped").exists()
    assert Message.objects.for_tenant(tenant).count() == 0
