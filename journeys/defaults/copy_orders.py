"""Copy about one order: delivery updates (transactional, on the customer's
preferred channel) and the abandoned-cart reminders.

Delivery SMS stay in one GSM-7 segment with room for the order link, so they use
plain ASCII punctuation only.
"""

from __future__ import annotations

from journeys.defaults.base import MARKETING, TRANSACTIONAL, email, in_app, sms

TRACK = "{% if order.status_url %} Track it: {{ order.status_url }}{% endif %}"
TRACK_EMAIL = """{% if order.status_url %}

Follow your parcel and see every update here: {{ order.status_url }}{% endif %}"""

# status -> (label, email subject, email body, SMS text, in-app title, in-app text)
DELIVERY = {
    "packed": (
        "Delivery: packed",
        "Order {{ order.number }} is packed",
        """\
Good news: your order {{ order.number }} is packed and waiting for the carrier.
{% if order.items %}
In the box:
{% for item in order.items %}  {{ item.quantity }} x {{ item.name }}
{% endfor %}{% endif %}
We'll let you know as soon as it's on its way.""",
        "order {{ order.number }} is packed and will be on its way soon.",
        "Your order is packed",
        "Order {{ order.number }} is packed and waiting for the carrier. We'll tell you "
        "when it's on its way.",
    ),
    "shipped": (
        "Delivery: shipped",
        "Order {{ order.number }} is on its way",
        """\
Your order {{ order.number }} has left us and is with the carrier now.
Most parcels arrive within 1 to 3 working days.""",
        "order {{ order.number }} is on its way." + TRACK,
        "Your order is on its way",
        "Order {{ order.number }} is with the carrier. Most parcels arrive within 1 to 3 "
        "working days.",
    ),
    "out_for_delivery": (
        "Delivery: out for delivery",
        "Order {{ order.number }} arrives today",
        """\
Your order {{ order.number }} is out for delivery and should reach you today.

Not at home? The carrier will usually leave it with a neighbour or at a nearby pickup \
point, and leave a note telling you where.""",
        "order {{ order.number }} is out for delivery and arrives today." + TRACK,
        "Arriving today",
        "Order {{ order.number }} is out for delivery and should reach you today.",
    ),
    "delivered": (
        "Delivery: delivered",
        "Order {{ order.number }} has arrived",
        """\
Your order {{ order.number }} has been delivered. We hope you enjoy it!

If anything is missing or damaged, reply to this email within 14 days and we'll put it \
right: a replacement or a refund, whichever you prefer.""",
        "order {{ order.number }} has been delivered. Anything wrong? Reply and we'll fix it.",
        "Your order has arrived",
        "Order {{ order.number }} has been delivered. Anything missing or damaged? Tell us "
        "and we'll put it right.",
    ),
    "delayed": (
        "Delivery: delayed",
        "Order {{ order.number }} is running late. Here's our plan",
        """\
We're sorry: the carrier has told us that your order {{ order.number }} is delayed.

Here's what happens now:
- We're keeping an eye on it and will tell you as soon as it moves again.
- If it hasn't arrived within 3 working days, reply to this email and we'll send a \
replacement straight away, or refund you in full if you'd rather not wait.
- You don't need to return anything if the late parcel turns up afterwards.

Sorry for the wait. Thank you for your patience.""",
        "sorry, order {{ order.number }} is delayed. Not there in 3 working days? Reply and "
        "we'll send a replacement or refund you.",
        "Your order is delayed",
        "Sorry, order {{ order.number }} is running late. If it isn't with you within 3 "
        "working days, tell us and we'll send a replacement or refund you in full.",
    ),
}

DELIVERY_TEMPLATES = tuple(
    template
    for status, (label, subject, body, text, title, app_text) in DELIVERY.items()
    for template in (
        email(
            f"delivery-{status}-email",
            label,
            TRANSACTIONAL,
            subject,
            body.strip() + ("" if status in ("packed", "delivered") else TRACK_EMAIL),
        ),
        sms(f"delivery-{status}-sms", label, TRANSACTIONAL, text),
        in_app(f"delivery-{status}-in-app", label, TRANSACTIONAL, title, app_text),
    )
)

# The cart as the storefront last sent it: its items and its recovery link.
CART_ITEMS = (
    "{% if cart.items %}\n\nIn your cart:{% for item in cart.items %}\n"
    "  {{ item.quantity }} x {{ item.name }}{% endfor %}{% endif %}"
    "{% if cart.url %}\n\nPick up where you stopped: {{ cart.url }}{% endif %}"
)

CART = (
    email(
        "cart-1",
        "Abandoned cart 1: you left something behind",
        MARKETING,
        "You left something in your cart",
        """\
It looks like you didn't quite finish your order at {{ store.name }}. No problem: we've \
kept your cart just as you left it, so you can pick up where you stopped."""
        + CART_ITEMS
        + """

Had a question about a product, delivery or payment? Reply to this email and we'll \
answer quickly, so you can decide with confidence.""",
    ),
    email(
        "cart-2",
        "Abandoned cart 2: still thinking it over?",
        MARKETING,
        "Still thinking it over?",
        """\
Just a quick note: the items in your cart at {{ store.name }} are still waiting for you, \
but we can't hold them forever.{% if cart.url %} Your cart: {{ cart.url }}{% endif %}

Good to know before you decide:
- Delivery usually takes 2 to 4 working days.
- Unopened items can be returned within 30 days.

If something held you back, tell us by replying. We might be able to help.""",
    ),
)
