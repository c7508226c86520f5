"""Example messaging for the demo store (``make demo`` runs ``demo_messaging``
after the seed): a sender identity, five templates, and messages to customers
who ordered, handed to the real send path.

Nothing here sets a status: what the outbox shows is what ``send_batch`` made
of each message. With no provider keys (the embedded default) email and SMS
stay ``queued`` with reason ``no_provider`` and in-app messages are ``sent``.
Consent, suppressions and quiet hours are checked when a message is claimed,
which needs a provider for its channel.

The demo customers' addresses are made up (``c1@demo.example``), but their
mobile numbers lie in real ranges. So a channel whose provider is configured
is left out: the demo never makes a provider call.

Safe to run again: templates are found by name (an edited one is kept),
messages by ``demo:<template>:<customer id>`` keys, settings fill only blanks.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from django.db import transaction
from django.db.models import Count

from commerce.models import Channel, Customer, Order
from commerce.selectors import customer_list, order_queryset
from messaging.models import Category, Message, MessagingSettings, Template
from messaging.services.outbox import address_for, message_enqueue, messaging_settings
from messaging.services.send import BATCH_SIZE, channel_ready, send_batch
from messaging.services.templates import template_save
from retention.models import Tenant

logger = logging.getLogger(__name__)

DEMO_CUSTOMERS = 20
KEY_PREFIX = "demo:"
SOURCE = "demo"
# The Bundesnetzagentur keeps Berlin's 030 23125 000-999 for films and books:
# never assigned to anyone, yet valid numbers (the settings form accepts them).
DRAMA_NUMBERS = "+493023125"
DRAMA_COUNT = 1000


@dataclass(frozen=True)
class DemoTemplate:
    key: str  # in the idempotency key: demo:<key>:<customer id>
    name: str
    channel: str
    category: str
    subject: str = ""
    html: str = ""
    text: str = ""


WELCOME = DemoTemplate(
    key="welcome",
    name="Welcome email (day 0)",
    channel=Channel.EMAIL,
    category=Category.MARKETING,
    subject='Welcome to {{ store.name }}, {{ customer.first_name|default:"there" }}',
    html="""\
<div style="font-family: Helvetica, Arial, sans-serif; max-width: 560px; margin: 0 auto; \
color: #1f2933; line-height: 1.5;">
  <h1 style="font-size: 22px; margin-bottom: 8px;">Welcome to {{ store.name }}</h1>
  <p>Hi {{ customer.first_name|default:"there" }},</p>
  <p>Thank you for your order <strong>{{ order.number }}</strong>. We're glad you're here.</p>
  {% if order.items %}<table role="presentation" style="width: 100%; border-collapse: collapse; \
margin: 16px 0;">
    {% for item in order.items %}<tr>
      <td style="padding: 6px 0; border-bottom: 1px solid #e4e7eb;">{{ item.name }}</td>
      <td style="padding: 6px 0; border-bottom: 1px solid #e4e7eb; text-align: right;">\
&times; {{ item.quantity }}</td>
    </tr>{% endfor %}
  </table>{% endif %}
  <p>
    <a href="{{ order.status_url }}" style="display: inline-block; padding: 10px 18px; \
background: #0b7285; color: #ffffff; text-decoration: none; border-radius: 4px;">\
Follow your order</a>
  </p>
  <p>Everything we sell runs out sooner or later. We'll send you a short reminder before yours \
does, and you can turn reminders off any time.</p>
  <p>Something not right? Just reply to this email: a real person reads it.</p>
  <p>See you soon,<br>The {{ store.name }} team</p>
  <p style="font-size: 12px; color: #7b8794;">You get this email because you shop with \
{{ store.name }}. <a href="{{ links.preferences }}" style="color: #7b8794;">Choose what we send \
you, or unsubscribe</a>.</p>
</div>""",
    text="""\
Hi {{ customer.first_name|default:"there" }},

Thank you for your order {{ order.number }}. We're glad you're here.
{% if order.items %}
{% for item in order.items %}  {{ item.quantity }} x {{ item.name }}
{% endfor %}{% endif %}
Follow your order: {{ order.status_url }}

Everything we sell runs out sooner or later. We'll send you a short reminder before yours does, \
and you can turn reminders off any time.

Something not right? Just reply to this email: a real person reads it.

See you soon,
The {{ store.name }} team

--
You get this email because you shop with {{ store.name }}.
Choose what we send you, or unsubscribe: {{ links.preferences }}""",
)
TIPS = DemoTemplate(
    key="tips",
    name="Tips email (day 3)",
    channel=Channel.EMAIL,
    category=Category.MARKETING,
    subject="Three ways to get more out of {{ store.name }}",
    text="""\
Hi {{ customer.first_name|default:"there" }},

A few days in, here are three things our regular customers swear by:

1. Reorder before you run out. Most of what we sell lasts a few weeks; note the day you open \
something and you'll soon know your own rhythm.

2. Refills cost less. Where a product comes as a refill, it is cheaper than buying the bottle \
again, and it saves packaging.

3. One page for your order. Tracking, delivery updates and returns for order {{ order.number }} \
are all here: {{ order.status_url }}

Questions? Reply to this email; we read every one.

The {{ store.name }} team

--
Too much email? Choose what we send you, or unsubscribe: {{ links.preferences }}""",
)
DELIVERY = DemoTemplate(
    key="delivery",
    name="Delivery update SMS",
    channel=Channel.SMS,
    category=Category.TRANSACTIONAL,
    # One GSM-7 segment (160) with room to spare: the tracking link alone is ~100.
    text=(
        "{{ store.name }}: order {{ order.number }} is on its way. Track it: {{ order.status_url }}"
    ),
)
REORDER = DemoTemplate(
    key="reorder",
    name="Reorder reminder SMS",
    channel=Channel.SMS,
    category=Category.MARKETING,
    text=(
        '{{ store.name }}: Hi {{ customer.first_name|default:"there" }}, running low on '
        '{{ product.name|default:"your favourites" }}? Reorder in a tap: {{ order.status_url }} '
        "Reply STOP to opt out"
    ),
)
THANKS = DemoTemplate(
    key="thanks",
    name="Thanks for your order (in-app)",
    channel=Channel.IN_APP,
    category=Category.TRANSACTIONAL,
    subject='Thanks for your order, {{ customer.first_name|default:"there" }}!',
    text=(
        "Order {{ order.number }} is in good hands. Delivery, tracking and returns are all on "
        "one page: {{ order.status_url }}"
    ),
)
TEMPLATES = (WELCOME, TIPS, DELIVERY, REORDER, THANKS)


def messaging_demo(*, tenant: Tenant) -> dict:
    """Fill the tenant's blank sender fields, create the demo templates that are
    missing, queue demo messages for up to ``DEMO_CUSTOMERS`` customers with
    orders (lowest ids first) and run them through ``send_batch``. Returns what
    it did and the demo messages per (status, reason)."""
    skipped = [c for c in (Channel.EMAIL, Channel.SMS) if channel_ready(c)]
    with transaction.atomic():
        filled = _sender_fill(tenant)
        templates, created = _templates_ensure(tenant)
        before = _demo_messages(tenant).count()
        customers = _customers(tenant)
        message_ids = _messages_queue(tenant, customers, templates, skip=skipped)
    # After the commit: a provider is never called while a transaction is open.
    for start in range(0, len(message_ids), BATCH_SIZE):
        send_batch(tenant_id=tenant.pk, message_ids=message_ids[start : start + BATCH_SIZE])
    outcomes = list(
        _demo_messages(tenant)
        .values("status", "reason")
        .annotate(n=Count("pk"))
        .order_by("status", "reason")
        .values_list("status", "reason", "n")
    )
    result = {
        "settings_filled": filled,
        "templates_created": created,
        "templates": len(templates),
        "customers": len(customers),
        "messages_created": sum(n for *_, n in outcomes) - before,
        "skipped_channels": skipped,
        "outcomes": outcomes,
    }
    logger.info("messaging.demo tenant_id=%s result=%s", tenant.pk, result)
    return result


def _demo_messages(tenant: Tenant):
    return Message.objects.for_tenant(tenant).filter(idempotency_key__startswith=KEY_PREFIX)


def _sender_fill(tenant: Tenant) -> list[str]:
    """Fill the sender fields that are blank; returns their names."""
    ms = messaging_settings(tenant)
    defaults = {
        "from_email": lambda: f"hello@{tenant.slug}.example",
        "from_name": lambda: tenant.name[:100],
        "sms_from": lambda: _free_drama_number(tenant),
        "postal_address": lambda: f"{tenant.name}, Musterstraße 1, 10115 Berlin, Germany"[:300],
    }
    filled = []
    for field, make in defaults.items():
        if not getattr(ms, field) and (value := make()):
            setattr(ms, field, value)
            filled.append(field)
    if filled:
        ms.save(update_fields=filled)
    return filled


def _free_drama_number(tenant: Tenant) -> str:
    """A drama number picked by tenant id, or the next one no store uses ("" if
    all thousand are taken)."""
    taken = set(
        # Unscoped on purpose: an SMS number belongs to one store platform-wide.
        MessagingSettings.objects.unscoped()
        .filter(sms_from__startswith=DRAMA_NUMBERS)
        .values_list("sms_from", flat=True)
    )
    for step in range(DRAMA_COUNT):
        number = f"{DRAMA_NUMBERS}{(tenant.pk + step) % DRAMA_COUNT:03d}"
        if number not in taken:
            return number
    return ""


def _templates_ensure(tenant: Tenant) -> tuple[dict[str, Template], int]:
    """The demo templates by key, creating those missing; and how many were created."""
    found = {
        t.name: t
        for t in Template.objects.for_tenant(tenant).filter(name__in=[d.name for d in TEMPLATES])
    }
    created = 0
    for spec in TEMPLATES:
        if spec.name not in found:
            found[spec.name] = template_save(
                tenant=tenant,
                name=spec.name,
                channel=spec.channel,
                category=spec.category,
                subject=spec.subject,
                html=spec.html,
                text=spec.text,
            )
            created += 1
    return {spec.key: found[spec.name] for spec in TEMPLATES}, created


def _customers(tenant: Tenant) -> list[Customer]:
    return list(
        customer_list(tenant=tenant)
        .filter(orders__isnull=False)
        .distinct()
        .order_by("pk")[:DEMO_CUSTOMERS]
    )


def _plan(index: int, customer: Customer) -> list[DemoTemplate]:
    """Every customer gets the in-app thanks; alternate customers the welcome
    email and delivery SMS, or the tips email and reorder SMS. A channel the
    customer has no address for is left out."""
    picks = [THANKS, *((WELCOME, DELIVERY) if index % 2 == 0 else (TIPS, REORDER))]
    return [p for p in picks if p.channel == Channel.IN_APP or address_for(customer, p.channel)]


def _messages_queue(
    tenant: Tenant, customers: list[Customer], templates: dict[str, Template], *, skip: list[str]
) -> list[int]:
    ids: list[int] = []
    for index, customer in enumerate(customers):
        plan = [p for p in _plan(index, customer) if p.channel not in skip]
        order = _latest_order(tenant, customer)
        first_line = next(iter(order.lines.all()), None)
        product = first_line.product if first_line and first_line.product_id else None
        for spec in plan:
            message = message_enqueue(
                tenant=tenant,
                customer=customer,
                channel=spec.channel,
                category=spec.category,
                idempotency_key=f"{KEY_PREFIX}{spec.key}:{customer.pk}",
                template=templates[spec.key],
                render_context={"order": order, "product": product},
                source=SOURCE,
                context={"order_id": order.pk},
            )
            ids.append(message.pk)
    return ids


def _latest_order(tenant: Tenant, customer: Customer) -> Order:
    return order_queryset(tenant=tenant).filter(customer=customer).order_by("-placed_at", "-id")[0]
