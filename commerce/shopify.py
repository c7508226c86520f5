"""Shopify-format webhooks: check their signature and map their bodies to our events.

Pure functions, no views and no database, apart from the one small service that
stores a tenant's Shopify secret. The endpoint ``POST /hooks/<slug>/shopify/``
checks ``X-Shopify-Hmac-Sha256`` with :func:`verify`, stores the raw body in the
inbox, and its task applies each ``(topic, data)`` pair from :func:`to_events`
with ``commerce.ingest.apply(tenant=..., topic=..., data=..., source="shopify")``.

The mapping follows Shopify's admin REST webhook bodies. Ids (large integers in
Shopify's JSON) become strings; money strings such as ``"199.00"`` pass through
and numbers become strings, so the serializers parse them without float error.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from decimal import Decimal, InvalidOperation
from typing import Any

from django.core.exceptions import ValidationError
from django.core.validators import URLValidator
from django.db import transaction

from commerce import ingest
from commerce.identity import BadIdentifier, normalize_email, normalize_phone
from commerce.models import CommerceSettings, FulfillmentStatus, OrderStatus
from commerce.services.orders import commerce_settings
from retention.errors import InvalidInput
from retention.models import Tenant

SOURCE = "shopify"
SECRET_MAX_LENGTH = CommerceSettings._meta.get_field("shopify_webhook_secret").max_length

TOPICS: frozenset[str] = frozenset(
    {
        "orders/create",
        "orders/updated",
        "orders/cancelled",
        "fulfillments/create",
        "fulfillments/update",
        "checkouts/create",
        "checkouts/update",
        "customers/create",
        "customers/update",
        "refunds/create",
    }
)

# Shopify's marketing consent states; pending and invalid tell us nothing yet.
CONSENT_STATES: dict[str, bool | None] = {
    "subscribed": True,
    "not_subscribed": False,
    "unsubscribed": False,
    "redacted": False,
    "pending": None,
    "invalid": None,
}

# fulfillment.shipment_status (the carrier's word) → our delivery status.
SHIPMENT_STATUSES: dict[str, str] = {
    "label_printed": FulfillmentStatus.PACKED,
    "label_purchased": FulfillmentStatus.PACKED,
    "confirmed": FulfillmentStatus.PACKED,
    "carrier_picked_up": FulfillmentStatus.SHIPPED,
    "in_transit": FulfillmentStatus.SHIPPED,
    "out_for_delivery": FulfillmentStatus.OUT_FOR_DELIVERY,
    "ready_for_pickup": FulfillmentStatus.OUT_FOR_DELIVERY,
    "attempted_delivery": FulfillmentStatus.DELAYED,
    "delayed": FulfillmentStatus.DELAYED,
    "delivered": FulfillmentStatus.DELIVERED,
    "picked_up": FulfillmentStatus.DELIVERED,
    "failure": FulfillmentStatus.FAILED,
}

# fulfillment.status when there is no shipment_status yet. A cancelled
# fulfilment is recorded as an event but never moves the parcel backwards
# (status only moves forward), so it maps to pending rather than to "failed",
# which would tell the shopper their delivery failed.
FULFILLMENT_STATES: dict[str, str] = {
    "success": FulfillmentStatus.SHIPPED,
    "pending": FulfillmentStatus.PENDING,
    "open": FulfillmentStatus.PENDING,
    "cancelled": FulfillmentStatus.PENDING,
    "error": FulfillmentStatus.FAILED,
    "failure": FulfillmentStatus.FAILED,
}

_url = URLValidator(schemes=["http", "https"])


# --- signature ------------------------------------------------------------------


def verify(secret: str, body: bytes, header_value: str | None) -> bool:
    """True when ``header_value`` is base64(HMAC-SHA256(secret, body)).

    Constant-time; never raises: an empty secret, a missing, non-ASCII or
    garbled header all answer False.
    """
    try:
        if not secret or not header_value or not isinstance(secret, str):
            return False
        if isinstance(header_value, str):
            header_value = header_value.strip().encode("ascii")
        given = base64.b64decode(header_value, validate=True)
        if isinstance(body, str):
            body = body.encode("utf-8")
        expected = hmac.new(secret.encode("utf-8"), bytes(body), hashlib.sha256).digest()
        return hmac.compare_digest(expected, given)
    except (TypeError, ValueError, UnicodeError, binascii.Error):
        return False


def sign(secret: str, body: bytes) -> str:
    """The ``X-Shopify-Hmac-Sha256`` value Shopify would send for ``body``."""
    digest = hmac.new(secret.encode("utf-8"), body, hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


# --- the tenant's secret ----------------------------------------------------------


def shopify_secret_set(*, tenant: Tenant, secret: str) -> CommerceSettings:
    """Store the tenant's Shopify webhook secret ("" clears it)."""
    secret = (secret or "").strip()
    if len(secret) > SECRET_MAX_LENGTH:
        raise InvalidInput(
            "The Shopify webhook secret is too long.",
            fields={"shopify_webhook_secret": [f"At most {SECRET_MAX_LENGTH} characters."]},
        )
    with transaction.atomic():
        settings = commerce_settings(tenant)
        if settings.shopify_webhook_secret != secret:
            settings.shopify_webhook_secret = secret
            settings.save(update_fields=["shopify_webhook_secret"])
    return settings


def shopify_secret(*, tenant: Tenant) -> str:
    """The tenant's Shopify webhook secret, or "" when none is set."""
    return (
        CommerceSettings.objects.for_tenant(tenant)
        .values_list("shopify_webhook_secret", flat=True)
        .first()
        or ""
    )


# --- mapping --------------------------------------------------------------------


def to_events(topic: str, payload: dict) -> list[tuple[str, dict]]:
    """Our ``(topic, data)`` pairs for one Shopify webhook body, in the order to
    apply them. Every data dict has passed ``ingest.validate``. Raises
    InvalidInput (with field errors) for an unknown topic or a body that lacks
    what the mapping needs."""
    mapper = _MAPPERS.get(topic) if isinstance(topic, str) else None
    if mapper is None:
        raise InvalidInput(
            f"Unknown Shopify topic {str(topic)[:100]!r}.",
            fields={"topic": [f"Use one of: {', '.join(sorted(TOPICS))}."]},
            code="unknown_topic",
        )
    if not isinstance(payload, dict):
        raise InvalidInput(
            f"The Shopify {topic} body must be a JSON object.",
            fields={"body": ["Expected a JSON object."]},
        )
    errors: dict[str, list[str]] = {}
    events = mapper(payload, errors)
    if errors:
        raise InvalidInput(f"The Shopify {topic} body lacks what we need.", fields=errors)
    for our_topic, data in events:
        try:
            ingest.validate(topic=our_topic, data=data)
        except InvalidInput as exc:
            raise InvalidInput(
                f"The Shopify {topic} body maps to invalid {our_topic} data.", fields=exc.fields
            ) from exc
    return events


def _orders_create(p: dict, errors: dict) -> list[tuple[str, dict]]:
    return [("order.created", _order(p, errors))]


def _orders_updated(p: dict, errors: dict) -> list[tuple[str, dict]]:
    return [("order.updated", _order(p, errors))]


def _orders_cancelled(p: dict, errors: dict) -> list[tuple[str, dict]]:
    # The body is the whole order: bring it up to date first (which also creates
    # it if orders/create never arrived), then cancel it.
    order = _order(p, errors)
    cancel = {"id": order.get("id", "")}
    _put(cancel, "cancelled_at", p.get("cancelled_at"))
    return [("order.updated", order), ("order.cancelled", cancel)]


def _fulfillments(p: dict, errors: dict) -> list[tuple[str, dict]]:
    data = {
        "id": _required_id(p, "id", errors),
        "order_id": _required_id(p, "order_id", errors),
        "status": _fulfillment_status(p),
    }
    _put(data, "occurred_at", p.get("updated_at") or p.get("created_at"))
    _put(data, "carrier", _text(p.get("tracking_company"), 100))
    _put(
        data,
        "tracking_number",
        _text(p.get("tracking_number") or _first(p, "tracking_numbers"), 100),
    )
    _put(data, "tracking_url", _valid_url(p.get("tracking_url") or _first(p, "tracking_urls"), 500))
    if p.get("estimated_delivery_at"):
        data["estimated_delivery"] = {"end": p["estimated_delivery_at"]}
    state = p.get("shipment_status") or p.get("status")
    _put(data, "message", _text(f"Shopify: {state}" if state else "", 500))
    return [("fulfillment.updated", data)]


def _checkouts(p: dict, errors: dict) -> list[tuple[str, dict]]:
    cart_id = _id(p.get("token")) or _id(p.get("id"))
    if not cart_id:
        errors["token"] = ["A checkout needs its token."]
    data: dict[str, Any] = {"id": cart_id[:100]}
    customer = _customer(
        p.get("customer"),
        email=p.get("email"),
        phone=p.get("phone") or p.get("sms_marketing_phone"),
        locale=p.get("customer_locale"),
        buyer_accepts_email=p.get("buyer_accepts_marketing"),
        buyer_accepts_sms=p.get("buyer_accepts_sms_marketing"),
        at=p.get("updated_at") or p.get("created_at"),
    )
    if customer:
        data["customer"] = customer
    _put(data, "currency", p.get("currency"))
    data["items"] = [_cart_item(item) for item in _list(p, "line_items", errors)]
    _put(data, "total", _money(p.get("total_price")))
    _put(data, "recovery_url", _valid_url(p.get("abandoned_checkout_url"), 1000))
    _put(data, "updated_at", p.get("updated_at") or p.get("created_at"))
    # Checkout bodies carry order_id only in some API versions; without it, the
    # order's checkout_token converts the cart when the order arrives.
    _put(data, "order_id", _id(p.get("order_id")))
    return [("cart.updated", data)]


def _customers(p: dict, errors: dict) -> list[tuple[str, dict]]:
    if not _id(p.get("id")):
        errors["id"] = ["A customer needs its id."]
    customer = _customer(p, at=p.get("updated_at") or p.get("created_at"))
    return [("customer.updated", customer or {})]


def _refunds(p: dict, errors: dict) -> list[tuple[str, dict]]:
    data: dict[str, Any] = {
        "id": _required_id(p, "id", errors),
        "order_id": _required_id(p, "order_id", errors),
        "refund_amount": _refund_amount(p),
    }
    _put(data, "reason", _text(p.get("note"), 300))
    data["lines"] = [
        {"sku": _text(_dict(item.get("line_item")).get("sku"), 100), "quantity": item["quantity"]}
        for item in _list(p, "refund_line_items", errors)
        if _positive_int(item.get("quantity"))
    ]
    _put(data, "created_at", p.get("created_at") or p.get("processed_at"))
    return [("return.created", data)]


_MAPPERS = {
    "orders/create": _orders_create,
    "orders/updated": _orders_updated,
    "orders/cancelled": _orders_cancelled,
    "fulfillments/create": _fulfillments,
    "fulfillments/update": _fulfillments,
    "checkouts/create": _checkouts,
    "checkouts/update": _checkouts,
    "customers/create": _customers,
    "customers/update": _customers,
    "refunds/create": _refunds,
}
if set(_MAPPERS) != TOPICS:  # pragma: no cover - a programming error, caught at import
    raise RuntimeError("Every Shopify topic needs a mapper.")


# --- orders ---------------------------------------------------------------------


def _order(p: dict, errors: dict) -> dict:
    data: dict[str, Any] = {"id": _required_id(p, "id", errors), "status": _order_status(p)}
    _put(data, "number", _text(p.get("name") or _id(p.get("order_number")), 50))
    placed_at = p.get("created_at") or p.get("processed_at")
    if not placed_at:
        errors["created_at"] = ["An order needs created_at or processed_at."]
    _put(data, "placed_at", placed_at)
    _put(data, "currency", p.get("currency"))
    customer = _customer(
        p.get("customer"),
        email=p.get("email") or p.get("contact_email"),
        phone=p.get("phone"),
        locale=p.get("customer_locale"),
        buyer_accepts_email=p.get("buyer_accepts_marketing"),
        at=p.get("updated_at") or p.get("created_at"),
    )
    if customer is None:
        errors["customer"] = ["An order needs a customer id, an email or a phone number."]
    data["customer"] = customer or {}
    data["lines"] = [_order_line(item) for item in _list(p, "line_items", errors)]
    # Our subtotal is before order discounts (subtotal - discounts + shipping +
    # tax = total); Shopify's subtotal_price is after them.
    subtotal = _money(p.get("total_line_items_price"))
    if subtotal is None and p.get("subtotal_price") is not None:
        subtotal = _add(p.get("subtotal_price"), p.get("total_discounts"))
    _put(data, "subtotal", subtotal)
    _put(data, "discount_total", _money(p.get("total_discounts")))
    _put(data, "shipping_total", _shipping(p))
    _put(data, "tax_total", _money(p.get("total_tax")))
    _put(data, "total", _money(p.get("total_price")))
    _put(data, "cart_id", _text(p.get("checkout_token") or p.get("cart_token"), 100))
    return data


def _order_status(p: dict) -> str:
    if p.get("cancelled_at"):
        return OrderStatus.CANCELLED
    financial = str(p.get("financial_status") or "").lower()
    if financial == "refunded":
        return OrderStatus.REFUNDED
    if financial == "voided":
        return OrderStatus.CANCELLED
    if financial in ("paid", "partially_refunded"):
        if p.get("fulfillment_status") == "fulfilled":
            return OrderStatus.FULFILLED
        return OrderStatus.PAID
    return OrderStatus.OPEN  # pending, authorized, partially_paid, unknown


def _order_line(item: dict) -> dict:
    line: dict[str, Any] = {"quantity": item.get("quantity", 1)}
    _put(line, "sku", _text(item.get("sku"), 100))
    _put(line, "name", _text(item.get("title") or item.get("name"), 300))
    _put(line, "product_family", _text(item.get("product_type") or item.get("vendor"), 100))
    _put(line, "unit_price", _money(item.get("price")))
    discount = _money(item.get("total_discount"))
    if not _nonzero(discount):
        allocations = [a.get("amount") for a in _objects(item.get("discount_allocations"))]
        discount = _add(*allocations) if allocations else discount
    _put(line, "discount", discount)
    return line


def _shipping(p: dict) -> str | None:
    amount = _dict(_dict(p.get("total_shipping_price_set")).get("shop_money")).get("amount")
    if amount is not None:
        return _money(amount)
    lines = p.get("shipping_lines")
    if isinstance(lines, list) and lines:
        return _add(*(line.get("price") for line in lines if isinstance(line, dict)))
    return None


# --- fulfilments, carts, refunds ----------------------------------------------------


def _fulfillment_status(p: dict) -> str:
    shipment = str(p.get("shipment_status") or "").lower()
    if shipment in SHIPMENT_STATUSES:
        return SHIPMENT_STATUSES[shipment]
    return FULFILLMENT_STATES.get(str(p.get("status") or "").lower(), FulfillmentStatus.PENDING)


def _cart_item(item: dict) -> dict:
    out: dict[str, Any] = {"quantity": item.get("quantity", 1)}
    _put(out, "sku", _text(item.get("sku"), 100))
    _put(out, "name", _text(item.get("title") or item.get("presentment_title"), 300))
    _put(out, "unit_price", _money(item.get("price")))
    return out


def _refund_amount(p: dict) -> str:
    """Money that went back: the successful refund transactions, or, when the
    body carries none, the refunded lines with their tax."""
    transactions = [
        t.get("amount")
        for t in _objects(p.get("transactions"))
        if t.get("kind") == "refund" and t.get("status") == "success"
    ]
    if transactions:
        return _add(*transactions) or "0"
    items = _objects(p.get("refund_line_items"))
    return _add(*(i.get("subtotal") for i in items), *(i.get("total_tax") for i in items)) or "0"


# --- customers --------------------------------------------------------------------


def _customer(
    block: Any,
    *,
    email: Any = None,
    phone: Any = None,
    locale: Any = None,
    buyer_accepts_email: Any = None,
    buyer_accepts_sms: Any = None,
    at: Any = None,
) -> dict | None:
    """Our customer block from Shopify's ``customer`` object and the fallbacks of
    the surrounding order or checkout; None when nothing identifies anyone."""
    block = block if isinstance(block, dict) else {}
    data: dict[str, Any] = {}
    _put(data, "id", _id(block.get("id")))
    _put(data, "email", _text(block.get("email") or email, 254))
    _put(data, "phone", _text(block.get("phone") or phone, 40))
    _drop_bad_identifiers(data)
    if not data:
        return None
    _put(data, "first_name", _text(block.get("first_name"), 100))
    _put(data, "last_name", _text(block.get("last_name"), 100))
    _put(data, "locale", _text(block.get("locale") or locale, 20))
    accepts_email = _consent(block.get("email_marketing_consent"))
    if accepts_email is None and isinstance(block.get("accepts_marketing"), bool):
        accepts_email = block["accepts_marketing"]
    # A ticked box at checkout is an opt-in; an unticked one says nothing new.
    if accepts_email is None and buyer_accepts_email is True:
        accepts_email = True
    accepts_sms = _consent(block.get("sms_marketing_consent"))
    if accepts_sms is None and buyer_accepts_sms is True:
        accepts_sms = True
    _put(data, "accepts_email", accepts_email)
    _put(data, "accepts_sms", accepts_sms)
    email_consent = block.get("email_marketing_consent")
    consent_at = (
        email_consent.get("consent_updated_at") if isinstance(email_consent, dict) else None
    )
    _put(data, "updated_at", block.get("updated_at") or consent_at or at)
    return data


def _consent(value: Any) -> bool | None:
    if not isinstance(value, dict):
        return None
    return CONSENT_STATES.get(str(value.get("state") or "").lower())


def _drop_bad_identifiers(data: dict) -> None:
    """Drop an email or phone we cannot normalise when another identifier
    remains: a typo in a phone field must not lose the whole order."""
    for key, normalize in (("phone", normalize_phone), ("email", normalize_email)):
        if key not in data or len(data) < 2:
            continue
        try:
            normalize(data[key])
        except BadIdentifier:
            del data[key]


# --- small helpers ------------------------------------------------------------------


def _id(value: Any) -> str:
    """Shopify's ids are integers (often beyond 2**53) or strings; ours are strings."""
    if value is None or isinstance(value, bool | dict | list):
        return ""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value).strip()


def _required_id(p: dict, key: str, errors: dict) -> str:
    value = _id(p.get(key))
    if not value:
        errors[key] = ["This field is required."]
    elif len(value) > 100:
        errors[key] = ["At most 100 characters."]
    return value


def _text(value: Any, limit: int) -> str:
    if value is None or isinstance(value, dict | list):
        return ""
    return str(value).strip()[:limit]


def _money(value: Any) -> str | None:
    if value is None or value == "" or isinstance(value, bool):
        return None
    if isinstance(value, int | float | Decimal):
        return _cents(Decimal(str(value)))
    return str(value).strip()  # the serializer rejects what is not money


def _cents(amount: Decimal) -> str:
    """``amount`` to two places; one that cannot be (NaN, infinite, beyond the
    decimal context's precision) stays as written, for the serializer to refuse."""
    try:
        return str(amount.quantize(Decimal("0.01")))
    except InvalidOperation:
        return str(amount)


def _decimal(value: Any) -> Decimal | None:
    money = _money(value)
    if money is None:
        return None
    try:
        return Decimal(money)
    except InvalidOperation:
        return None


def _add(*values: Any) -> str | None:
    amounts = [d for d in (_decimal(v) for v in values) if d is not None]
    if not amounts:
        return None
    try:
        total = sum(amounts, start=Decimal("0"))
    except InvalidOperation:  # Infinity + -Infinity
        return "NaN"
    return _cents(total)


def _nonzero(money: str | None) -> bool:
    amount = _decimal(money)
    # is_finite first: comparing a signalling NaN ("sNaN") raises.
    return amount is not None and amount.is_finite() and amount != 0


def _positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _valid_url(value: Any, limit: int) -> str:
    url = _text(value, limit + 1)
    if not url or len(url) > limit:
        return ""
    try:
        _url(url)
    except ValidationError:
        return ""
    return url


def _first(p: dict, key: str) -> Any:
    values = p.get(key)
    return values[0] if isinstance(values, list) and values else None


def _list(p: dict, key: str, errors: dict) -> list[dict]:
    """The objects of a list field; a list of something else is an error."""
    value = p.get(key)
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        errors[key] = ["Expected a list of objects."]
        return []
    return value


def _dict(value: Any) -> dict:
    """An object field, or {} when it is missing or of another type."""
    return value if isinstance(value, dict) else {}


def _objects(value: Any) -> list[dict]:
    """The objects of an optional list field; anything else counts as none."""
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def _put(data: dict, key: str, value: Any) -> None:
    """Set only what is known: Shopify's nulls and empty strings mean "not given"."""
    if value is not None and value != "":
        data[key] = value


__all__ = [
    "SOURCE",
    "TOPICS",
    "shopify_secret",
    "shopify_secret_set",
    "sign",
    "to_events",
    "verify",
]
