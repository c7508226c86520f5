"""Admin screens for message templates: the change form (checked and saved by
``messaging.services.templates``, with the variables to use and an SMS's length
in segments), and a preview page that renders a template for a real customer of
the store and sends a test to the marketer.

Imported by ``messaging.admin``, which registers every messaging screen.
"""

from __future__ import annotations

from urllib.parse import urlencode
from uuid import uuid4

import phonenumbers
from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template import engines
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join

from commerce.models import Channel, Customer
from commerce.selectors import customer_get, customer_list
from messaging.models import Category, Template
from messaging.services.outbox import Content, message_enqueue
from messaging.services.templates import (
    sms_segments,
    template_check,
    template_preview,
    template_render,
    template_save,
    template_variables,
)
from retention.admin_base import TenantAdmin
from retention.errors import InvalidInput, NotFound
from retention.models import Tenant

FIELDS = ["name", "channel", "category", "subject", "html", "text"]

# The preview page lives here rather than in a template file: it is this
# screen's only page and small. Content is escaped, and the HTML is shown in a
# sandboxed frame so a message cannot run script in the admin.
PREVIEW_PAGE = """{% extends "admin/base_site.html" %}
{% block breadcrumbs %}<div class="breadcrumbs">
<a href="{% url 'admin:index' %}">Home</a> &rsaquo;
<a href="{% url 'admin:messaging_template_changelist' %}">Templates</a> &rsaquo;
<a href="{{ change_url }}">{{ template.name }}</a> &rsaquo; Preview</div>{% endblock %}
{% block content %}<div id="content-main" class="template-preview">
<form method="get">
  <label for="id_customer">Preview for a customer (id or email):</label>
  <input type="text" id="id_customer" name="customer" value="{{ lookup }}" size="40">
  <button type="submit" class="button">Preview</button>
</form>
{% if error %}<p class="errornote">{{ error }}</p>{% endif %}
{% if content %}
  <h2>{{ template.get_channel_display }} for {{ customer }}</h2>
  {% if content.subject %}<h3>Subject</h3>
    <p class="preview-subject">{{ content.subject }}</p>{% endif %}
  {% if content.html %}<h3>HTML</h3><iframe sandbox srcdoc="{{ content.html }}" title="HTML"
    style="width:100%;max-width:700px;height:480px;border:1px solid #ccc"></iframe>{% endif %}
  <h3>Text</h3><pre class="preview-text" style="white-space:pre-wrap">{{ content.text }}</pre>
  {% if sms %}<p class="preview-sms">{{ sms.characters }} characters ({{ sms.encoding }}):
    {{ sms.segments }} segment{{ sms.segments|pluralize }}.</p>{% endif %}
{% endif %}
{% if may_send %}
<form method="post">{% csrf_token %}
  <input type="hidden" name="customer" value="{{ customer.pk|default:'' }}">
  <h2>Send a test</h2>
  {% if template.channel == "sms" %}
    <label for="id_phone">To the phone number:</label>
    <input type="tel" id="id_phone" name="phone" placeholder="+4915112345678" required>
  {% elif template.channel == "email" %}
    <p>To {{ request.user.email }}{% if customer %}, rendered for {{ customer }}{% endif %}.</p>
  {% endif %}
  <button type="submit" name="_send_test" value="1" class="button">Send test to me</button>
</form>
{% endif %}
</div>{% endblock %}
"""


class TemplateForm(forms.ModelForm):
    """A template, checked by the template service (the same checks as every
    other way in), so an unknown variable is named next to its field."""

    #: set by TemplateAdmin.get_form: the tenant the template belongs to
    tenant_id: int | None = None

    class Meta:
        model = Template
        fields = FIELDS
        widgets = {
            "subject": forms.TextInput(attrs={"size": 90}),
            "html": forms.Textarea(attrs={"rows": 16, "cols": 90}),
            "text": forms.Textarea(attrs={"rows": 8, "cols": 90}),
        }

    def clean(self):
        data = super().clean()
        tenant = self.tenant_id or getattr(data.get("tenant"), "pk", None)
        if tenant is None:
            raise forms.ValidationError("Pick a store first.")
        try:
            template_check(
                tenant=tenant,
                template=self.instance if self.instance.pk else None,
                **{key: data.get(key) or "" for key in FIELDS},
            )
        except InvalidInput as exc:
            for key, errors in exc.fields.items():
                if key not in self.fields:
                    self.add_error(None, f"{key}: {' '.join(errors)}")
                elif key not in self.errors:  # a field's own error says it already
                    self.add_error(key, errors)
        return data


@admin.register(Template)
class TemplateAdmin(TenantAdmin):
    """Templates for email, SMS and in-app messages."""

    form = TemplateForm
    list_display = ["name", "channel", "category", "updated_at"]
    list_filter = ["channel", "category"]
    search_fields = ["name"]
    readonly_fields = ["sms_length", "variables", "preview_link", "updated_at"]

    def get_fieldsets(self, request, obj=None):
        head = ["name", "channel", "category"]
        if obj is None and self._is_operator_view(request):
            head.insert(0, "tenant")
        fieldsets = [
            (None, {"fields": head}),
            (
                "Content",
                {
                    "fields": ["subject", "html", "text", "sms_length"],
                    "description": "Email uses subject, HTML and text; SMS uses text; "
                    "in-app uses text with the subject as its title.",
                },
            ),
            ("Variables", {"fields": ["variables"]}),
        ]
        if obj is not None:
            fieldsets.append(("Preview", {"fields": ["preview_link", "updated_at"]}))
        return fieldsets

    def get_form(self, request, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change=change, **kwargs)
        form.tenant_id = obj.tenant_id if obj is not None else getattr(request.tenant, "pk", None)
        return form

    # --- read-only displays ----------------------------------------------------------
    @admin.display(description="SMS length")
    def sms_length(self, obj: Template) -> str:
        if obj.channel != Channel.SMS:
            return "For SMS templates only."
        length = sms_segments(obj.text)
        return format_html(
            "{} characters as written ({}): {} segment{}. Variables count as written "
            "here; the preview shows the length for a real customer.",
            length.characters,
            length.encoding,
            length.segments,
            "" if length.segments == 1 else "s",
        )

    @admin.display(description="variables you can use")
    def variables(self, obj: Template) -> str:
        rows = format_html_join(
            "",
            "<li><code>{}</code>: {}</li>",
            ((root, ", ".join(attributes)) for root, attributes in template_variables().items()),
        )
        return format_html(
            "<ul>{}</ul><p>Write <code>{}</code>; a missing value prints nothing, so give a "
            "fallback with <code>{}</code>. Loop over an order's items with "
            "<code>{}</code>.</p>",
            rows,
            "{{ customer.first_name }}",
            '{{ customer.first_name|default:"there" }}',
            "{% for item in order.items %}{{ item.quantity }} x {{ item.name }}{% endfor %}",
        )

    @admin.display(description="preview")
    def preview_link(self, obj: Template) -> str:
        url = reverse("admin:messaging_template_preview", args=[obj.pk])
        return format_html('<a href="{}">Preview for a customer and send a test</a>', url)

    # --- saving goes through the service ---------------------------------------------
    def save_model(self, request, obj, form, change):
        # The service checks, saves and audits, so the base class's audited save
        # is not used (it would audit twice).
        tenant_id = obj.tenant_id or request.tenant.pk
        saved = template_save(
            tenant=tenant_id,
            template=obj if change else None,
            actor=request.user,
            **{key: form.cleaned_data.get(key) or "" for key in FIELDS},
        )
        if not change:
            for field in Template._meta.concrete_fields:
                setattr(obj, field.attname, getattr(saved, field.attname))
            obj._state.adding = False

    # --- the preview and the test send ------------------------------------------------
    def get_urls(self):
        preview = self.admin_site.admin_view(self.preview_view)
        return [
            path("<path:object_id>/preview/", preview, name="messaging_template_preview"),
            *super().get_urls(),
        ]

    def preview_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """GET: the template rendered for the customer named by ``customer`` (an
        id or an email). POST (editors only): queue a test send to the marketer."""
        template = self.get_object(request, unquote(object_id))
        if template is None:
            raise Http404("No such template.")  # another tenant's, or missing
        if not self.has_view_or_change_permission(request, template):
            raise PermissionDenied
        may_send = self.has_change_permission(request, template)
        if request.method == "POST" and not may_send:
            raise PermissionDenied
        params = request.POST if request.method == "POST" else request.GET
        lookup = params.get("customer", "").strip()
        customer, error = _find_customer(template.tenant, lookup) if lookup else (None, "")
        if request.method == "POST":
            return self._send_test(request, template, customer)

        content, sms = None, None
        if customer is not None:
            try:
                content = template_preview(template=template, customer=customer)
            except InvalidInput as exc:
                error = exc.message
        if content is not None and template.channel == Channel.SMS:
            sms = sms_segments(content.text)
        context = {
            **self.admin_site.each_context(request),
            "title": f"Preview: {template.name}",
            "opts": self.model._meta,
            "template": template,
            "change_url": reverse("admin:messaging_template_change", args=[template.pk]),
            "lookup": lookup,
            "customer": customer,
            "content": content,
            "sms": sms,
            "error": error,
            "may_send": may_send and template.channel != Channel.IN_APP,
        }
        page = engines["django"].from_string(PREVIEW_PAGE)
        return TemplateResponse(request, page, context)

    def _send_test(
        self, request: HttpRequest, template: Template, customer: Customer | None
    ) -> HttpResponse:
        back = reverse("admin:messaging_template_preview", args=[template.pk])
        if customer is not None:
            back += "?" + urlencode({"customer": customer.pk})
        to_address = _test_address(request, template)
        if not to_address:
            return HttpResponseRedirect(back)
        try:
            content: Content = (
                template_preview(template=template, customer=customer)
                if customer is not None
                else template_render(template=template)
            )
            # Rendered here, not by message_enqueue: the test goes to the marketer,
            # with no customer on the message, but reads as the chosen customer's.
            message_enqueue(
                tenant=template.tenant,
                channel=template.channel,
                category=Category.TEST,
                customer=None,
                to_address=to_address,
                content=content,
                idempotency_key=f"test:{template.pk}:{uuid4()}",
                source="test",
                context={"template_id": template.pk},
            )
        except InvalidInput as exc:
            self.message_user(request, exc.message, messages.ERROR)
            return HttpResponseRedirect(back)
        self.message_user(request, f"Test queued to {to_address}.", messages.SUCCESS)
        return HttpResponseRedirect(back)


def _test_address(request: HttpRequest, template: Template) -> str:
    """Where a test goes: the marketer's own email, or the number they typed."""
    if template.channel == Channel.EMAIL:
        if not request.user.email:
            messages.error(request, "Your account has no email address to send a test to.")
        return request.user.email
    if template.channel == Channel.SMS:
        raw = request.POST.get("phone", "").strip()
        try:
            number = phonenumbers.parse(raw, None)
        except phonenumbers.NumberParseException:
            number = None
        if number is None or not phonenumbers.is_valid_number(number):
            messages.error(request, "Give the phone number in international form, e.g. +4915…")
            return ""
        return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    messages.error(request, "In-app messages cannot be sent as a test; use the preview.")
    return ""


def _find_customer(tenant: Tenant, lookup: str) -> tuple[Customer | None, str]:
    """The store's customer with this id (another store's id is a 404, like a
    missing one) or email; else an error to show."""
    if lookup.isdigit():
        try:
            return customer_get(tenant=tenant, customer_id=lookup), ""
        except NotFound:
            raise Http404("No such customer.") from None
    if "@" in lookup:
        found = customer_list(tenant=tenant, email=lookup.lower()).first()
        if found is not None:
            return found, ""
        return None, f"No customer with the email {lookup} in this store."
    return None, "Give a customer id or an email address."
