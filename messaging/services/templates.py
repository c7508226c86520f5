"""Message templates: check them, save them, and render them for a customer.

Templates are written in the Django template language on the cut-down engine of
``messaging.template_language``. HTML is autoescaped; subject, text and SMS are
not. The context is plain values in read-only mappings, so a template cannot
call model methods or walk relations:

    Hi {{ customer.first_name|default:"there" }},
    order {{ order.number }} ({{ order.total }} {{ order.currency }}) is on its way:
    {% for item in order.items %}{{ item.quantity }} x {{ item.name }}
    {% endfor %}Track it at {{ links.order_status }}

A customer with no first name renders ``customer.first_name`` as "" (hence the
``default`` filter); a group that does not apply (no order) renders as "" too.
The variables are listed by :func:`template_variables`; an SMS's length by
:func:`sms_segments`.
"""

from __future__ import annotations

import logging
from types import MappingProxyType
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.db import IntegrityError, transaction
from django.forms.models import model_to_dict
from django.template import TemplateSyntaxError
from django.utils import timezone

from commerce.models import Cart, Channel, Customer, Order, Product
from commerce.selectors import order_get, order_list
from commerce.tokens import order_page_url, preferences_page_url
from messaging.models import Category, Template
from messaging.services.outbox import Content
from messaging.services.preferences import PreferencesLinks
from messaging.sms_length import SmsLength, sms_segments
from messaging.template_language import (
    check_source,
    render_source,
    syntax_message,
    template_variables,
)
from retention import clock
from retention.errors import InvalidInput, NotFound
from retention.models import Tenant
from retention.services import audit_changes, audit_record

__all__ = [
    "SmsLength",
    "sms_segments",
    "template_check",
    "template_preview",
    "template_render",
    "template_save",
    "template_validate",
    "template_variables",
]

logger = logging.getLogger(__name__)
NEEDS_TEXT = {
    Channel.SMS: "An SMS needs a text.",
    Channel.IN_APP: "An in-app message needs a text.",
}


# --- checking ---------------------------------------------------------------------------


def template_validate(*, channel: str, subject: str, html: str, text: str) -> None:
    """Raise InvalidInput naming each field and what is wrong in it: an unknown
    variable or attribute, a syntax error (with its line), a refused tag, or a
    part the channel needs that is missing."""
    fields: dict[str, list[str]] = {}
    if channel not in Channel.values:
        fields["channel"] = [f"Unknown channel {channel!r}."]
    elif channel == Channel.EMAIL:
        if not subject.strip():
            fields["subject"] = ["An email needs a subject."]
        if not text.strip() and not html.strip():
            fields["text"] = ["An email needs a text body, an HTML body or both."]
    else:
        if not text.strip():
            fields["text"] = [NEEDS_TEXT[channel]]
        if html.strip():
            fields["html"] = ["HTML is for email only."]
    for field, source in (("subject", subject), ("html", html), ("text", text)):
        errors = check_source(source)
        if errors:
            fields.setdefault(field, []).extend(errors)
    if fields:
        raise _invalid(fields)


def _invalid(fields: dict[str, list[str]]) -> InvalidInput:
    field, messages = next(iter(fields.items()))
    return InvalidInput(f"{field}: {messages[0]}", fields=fields)


# --- saving -----------------------------------------------------------------------------


def template_check(
    *,
    tenant: Tenant | int,
    name: str,
    channel: str,
    category: str,
    subject: str = "",
    html: str = "",
    text: str = "",
    template: Template | None = None,
) -> None:
    """Everything :func:`template_save` checks, without saving (forms call it
    to show errors next to their fields)."""
    tenant_id = getattr(tenant, "pk", tenant)
    fields: dict[str, list[str]] = {}
    name = (name or "").strip()
    if not name or len(name) > 100:
        fields["name"] = ["A template needs a name of 1 to 100 characters."]
    elif (
        Template.objects.for_tenant(tenant_id)
        .filter(name=name)
        .exclude(pk=getattr(template, "pk", None))
        .exists()
    ):
        fields["name"] = [f"A template named '{name}' already exists in this store."]
    if category not in (Category.MARKETING, Category.TRANSACTIONAL):
        fields["category"] = ["Choose marketing or transactional."]
    if len(subject) > 300:
        fields["subject"] = ["At most 300 characters."]
    try:
        template_validate(channel=channel, subject=subject, html=html, text=text)
    except InvalidInput as exc:
        for field, messages in exc.fields.items():
            fields.setdefault(field, []).extend(messages)
    if fields:
        raise _invalid(fields)


def template_save(
    *,
    tenant: Tenant | int,
    name: str,
    channel: str,
    category: str,
    subject: str = "",
    html: str = "",
    text: str = "",
    template: Template | None = None,
    actor: Any = None,
) -> Template:
    """Create (``template=None``) or update a template after checking it.
    ``actor`` (a user or API key) goes to the audit log; None when the caller
    audits itself."""
    tenant_id = getattr(tenant, "pk", tenant)
    if template is not None and template.pk and template.tenant_id != tenant_id:
        raise NotFound("No such template in this store.")
    values = {
        "name": (name or "").strip(),
        "channel": channel,
        "category": category,
        "subject": subject,
        "html": html,
        "text": text,
    }
    template_check(tenant=tenant_id, template=template, **values)
    creating = template is None or not template.pk
    saved = template if template is not None else Template(tenant_id=tenant_id)
    saved.tenant_id = tenant_id
    before = (
        {} if creating else model_to_dict(Template.objects.for_tenant(tenant_id).get(pk=saved.pk))
    )
    for key, value in values.items():
        setattr(saved, key, value)
    saved.updated_at = clock.now()
    try:
        with transaction.atomic():
            saved.save()
    except IntegrityError:
        # Another save took the name between our check and our insert.
        message = f"A template named '{values['name']}' already exists in this store."
        raise InvalidInput(message, fields={"name": [message]}) from None
    after = model_to_dict(saved)
    if creating:
        after = {k: v for k, v in after.items() if v not in (None, "", [])}
    changes = audit_changes(before, after)
    if actor is not None and (creating or changes):
        audit_record(
            tenant=tenant_id,
            action="create" if creating else "update",
            obj=saved,
            changes=changes,
            user=actor if getattr(actor, "is_authenticated", False) else None,
        )
    logger.info(
        "messaging.template_saved tenant_id=%s template_id=%s created=%s",
        tenant_id,
        saved.pk,
        creating,
    )
    return saved


# --- rendering --------------------------------------------------------------------------


def _freeze(value: Any) -> Any:
    if isinstance(value, dict):
        return MappingProxyType({k: _freeze(v) for k, v in value.items()})
    if isinstance(value, list | tuple):
        return tuple(_freeze(v) for v in value)
    return value


def _values(
    *,
    tenant: Tenant,
    customer: Customer | None,
    order: Order | None,
    product: Product | None,
    extra: dict | None,
    sources: tuple[str, ...],
    links: PreferencesLinks | None,
    cart: Cart | None = None,
) -> dict[str, Any]:
    for what, obj in (
        ("customer", customer),
        ("order", order),
        ("product", product),
        ("cart", cart),
    ):
        if obj is not None and obj.tenant_id != tenant.pk:
            raise InvalidInput(
                f"The {what} belongs to another store.",
                fields={what: ["Belongs to another store."]},
            )
    # Signed links cost a HMAC each: made only for a template that can show
    # them (a variable is named in full in the source, so "links" or "order"
    # appear in any source that reaches one).
    uses_links = any("links" in source for source in sources)
    uses_order = uses_links or any("order" in source for source in sources)
    link_map: dict[str, Any] = {}
    values: dict[str, Any] = {"store": {"name": tenant.name}, "links": link_map}
    if customer is not None:
        values["customer"] = {
            "first_name": customer.first_name,
            "last_name": customer.last_name,
            "full_name": f"{customer.first_name} {customer.last_name}".strip(),
            "email": customer.email,
            "phone": customer.phone,
            "locale": customer.locale,
        }
        if uses_links:
            link_map["preferences"] = link_map["unsubscribe"] = (
                links.url(customer) if links is not None else preferences_page_url(customer)
            )
    if order is not None and uses_order:
        status_url = order_page_url(order)
        lines = sorted(order.lines.all(), key=lambda line: line.pk)  # prefetched when given
        values["order"] = {
            "number": order.number or order.external_id,
            "total": order.total,
            "currency": order.currency,
            "placed_at": order.placed_at,
            "status_url": status_url,
            "items": [
                {"name": line.name or line.sku, "sku": line.sku, "quantity": line.quantity}
                for line in lines
            ],
        }
        link_map["order_status"] = status_url
    if product is not None:
        values["product"] = {
            "name": product.name,
            "sku": product.sku,
            "price": product.price,
            "family": product.family.name if product.family_id else "",
        }
    if cart is not None:
        values["cart"] = {
            "total": cart.total,
            "currency": cart.currency,
            "url": cart.recovery_url,
            "items": [
                {
                    "name": item.get("name") or item.get("sku") or "",
                    "sku": item.get("sku") or "",
                    "quantity": item.get("quantity") or 1,
                }
                for item in cart.items or []
                if isinstance(item, dict)
            ],
        }
    for key, value in (extra or {}).items():
        if isinstance(value, dict) and isinstance(values.get(key), dict):
            values[key] = {**values[key], **value}
        else:
            values[key] = value
    return values


def _zone(customer: Customer | None, tenant: Tenant) -> ZoneInfo:
    for name in (getattr(customer, "timezone", ""), tenant.timezone):
        if not name:  # most customers have none: skip the exception ZoneInfo("") raises
            continue
        try:
            return ZoneInfo(name)
        # A customer's timezone is free text in the admin: "America" is a
        # directory of the tz database (IsADirectoryError), a long one is too
        # long a file name (OSError), neither is a zone.
        except (ZoneInfoNotFoundError, ValueError, TypeError, OSError):
            continue
    return ZoneInfo("UTC")


def _render(source: str, values: dict[str, Any], *, autoescape: bool, name: str) -> str:
    try:
        return render_source(source, values, autoescape=autoescape)
    except TemplateSyntaxError as exc:
        raise InvalidInput(f"Template {name!r}: {syntax_message(exc)}") from None
    except Exception as exc:
        # A filter can still fail on a value (|divisibleby:0): a clear domain
        # error instead of a crash in the sender.
        raise InvalidInput(f"Template {name!r} failed to render: {exc}") from None


def template_render(
    *,
    template: Template,
    customer: Customer | None = None,
    order: Order | None = None,
    product: Product | None = None,
    cart: Cart | None = None,
    extra: dict | None = None,
    links: PreferencesLinks | None = None,
) -> Content:
    """The subject, text and HTML of ``template`` for this customer (and order,
    product or abandoned cart, when the message is about them). ``extra`` adds variables or
    attributes to groups (``{"links": {"survey": url}}``). Times show in the
    customer's timezone, else the store's. A caller rendering many messages
    passes one ``links`` for them all (see ``PreferencesLinks``)."""
    tenant = template.tenant
    values = _freeze(
        _values(
            tenant=tenant,
            customer=customer,
            order=order,
            product=product,
            extra=extra,
            sources=(template.subject, template.text, template.html),
            links=links,
            cart=cart,
        )
    )
    with timezone.override(_zone(customer, tenant)):
        subject = _render(template.subject, values, autoescape=False, name=template.name)
        text = _render(template.text, values, autoescape=False, name=template.name)
        html = (
            _render(template.html, values, autoescape=True, name=template.name)
            if template.channel == Channel.EMAIL
            else ""
        )
    return Content(
        # A subject is one header line, whatever the template's line breaks.
        subject="" if template.channel == Channel.SMS else " ".join(subject.split()),
        text=text.strip(),
        html=html.strip(),
    )


def template_preview(*, template: Template, customer: Customer) -> Content:
    """The template as this customer would get it now: with their latest order
    and the product of its first line, if any."""
    if customer.tenant_id != template.tenant_id:
        raise NotFound("No such customer.")
    tenant = template.tenant
    latest = order_list(tenant=tenant, customer_id=customer.pk).first()
    order = order_get(tenant=tenant, order_id=latest.pk) if latest is not None else None
    first_line = next(iter(order.lines.all()), None) if order is not None else None
    product = first_line.product if first_line is not None and first_line.product_id else None
    return template_render(template=template, customer=customer, order=order, product=product)
