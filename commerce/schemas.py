"""Payload schemas for storefront data, shared by webhooks and the REST API.

Each serializer validates one payload shape and returns plain Python values
(str, int, Decimal, aware datetime, dict, list) that the services take. They
are documented in the OpenAPI schema and the README.
"""

from __future__ import annotations

import json
import re
import zoneinfo

from rest_framework import serializers

from commerce.models import (
    Channel,
    FulfillmentStatus,
    OrderStatus,
    PriceTier,
    TouchpointCategory,
)

MAX_LINES = 500
MAX_PROPERTIES_BYTES = 16_384
KIND_RE = re.compile(r"^[a-z0-9_]+(\.[a-z0-9_]+)*$")


def _money(**kw) -> serializers.DecimalField:
    return serializers.DecimalField(
        max_digits=14, decimal_places=2, min_value=0, coerce_to_string=False, **kw
    )


class CustomerPayload(serializers.Serializer):
    id = serializers.CharField(
        max_length=100,
        required=False,
        allow_blank=True,
        help_text="The storefront's own customer id",
    )
    email = serializers.CharField(max_length=254, required=False, allow_blank=True)
    phone = serializers.CharField(
        max_length=40, required=False, allow_blank=True, help_text="Any format; stored as E.164"
    )
    first_name = serializers.CharField(max_length=100, required=False, allow_blank=True)
    last_name = serializers.CharField(max_length=100, required=False, allow_blank=True)
    timezone = serializers.CharField(max_length=64, required=False, allow_blank=True)
    locale = serializers.CharField(max_length=20, required=False, allow_blank=True)
    preferred_channel = serializers.ChoiceField(Channel.choices, required=False, allow_blank=True)
    accepts_email = serializers.BooleanField(required=False, allow_null=True, default=None)
    accepts_sms = serializers.BooleanField(required=False, allow_null=True, default=None)
    updated_at = serializers.DateTimeField(required=False)

    def validate_timezone(self, value: str) -> str:
        if value and value not in zoneinfo.available_timezones():
            raise serializers.ValidationError(f"Unknown timezone {value[:64]!r}.")
        return value

    def validate(self, attrs: dict) -> dict:
        if not any(
            (attrs.get("id") or "").strip() or (attrs.get(k) or "").strip()
            for k in ("email", "phone")
        ):
            raise serializers.ValidationError({"id": ["Give at least one of id, email, phone."]})
        return attrs


class OrderLinePayload(serializers.Serializer):
    sku = serializers.CharField(max_length=100, required=False, allow_blank=True)
    name = serializers.CharField(max_length=300, required=False, allow_blank=True)
    product_family = serializers.CharField(max_length=100, required=False, allow_blank=True)
    quantity = serializers.IntegerField(min_value=1, max_value=1_000_000, default=1)
    unit_price = _money(default=0)
    discount = _money(default=0)
    total = _money(required=False, allow_null=True, default=None)
    price_tier = serializers.ChoiceField(PriceTier.choices, required=False)


class OrderPayload(serializers.Serializer):
    id = serializers.CharField(max_length=100, help_text="The storefront's order id")
    number = serializers.CharField(max_length=50, required=False, allow_blank=True)
    status = serializers.ChoiceField(OrderStatus.choices, default=OrderStatus.PAID)
    currency = serializers.RegexField(
        r"^[A-Za-z]{3}$", required=False, help_text="ISO 4217; default the store's"
    )
    placed_at = serializers.DateTimeField()
    customer = CustomerPayload()
    lines = OrderLinePayload(many=True, required=False, max_length=MAX_LINES)
    subtotal = _money(
        required=False, allow_null=True, default=None, help_text="Default: the sum of the lines"
    )
    discount_total = _money(required=False, allow_null=True, default=None)
    shipping_total = _money(required=False, allow_null=True, default=None)
    tax_total = _money(required=False, allow_null=True, default=None)
    fee_total = _money(required=False, allow_null=True, default=None)
    total = _money(
        required=False,
        allow_null=True,
        default=None,
        help_text="Default: subtotal - discounts + shipping + tax + fees",
    )
    cart_id = serializers.CharField(max_length=100, required=False, allow_blank=True)
    cancelled_at = serializers.DateTimeField(required=False, allow_null=True)


class OrderCancelPayload(serializers.Serializer):
    id = serializers.CharField(max_length=100)
    cancelled_at = serializers.DateTimeField(required=False)


class DeliveryWindowPayload(serializers.Serializer):
    start = serializers.DateTimeField(required=False, allow_null=True)
    end = serializers.DateTimeField(required=False, allow_null=True)

    def validate(self, attrs: dict) -> dict:
        if attrs.get("start") and attrs.get("end") and attrs["end"] < attrs["start"]:
            raise serializers.ValidationError({"end": ["Must not be before start."]})
        return attrs


class FulfillmentPayload(serializers.Serializer):
    id = serializers.CharField(max_length=100, help_text="The storefront's fulfilment id")
    order_id = serializers.CharField(max_length=100)
    status = serializers.ChoiceField(FulfillmentStatus.choices)
    occurred_at = serializers.DateTimeField(required=False)
    carrier = serializers.CharField(max_length=100, required=False, allow_blank=True)
    tracking_number = serializers.CharField(max_length=100, required=False, allow_blank=True)
    tracking_url = serializers.URLField(max_length=500, required=False, allow_blank=True)
    estimated_delivery = DeliveryWindowPayload(required=False)
    message = serializers.CharField(max_length=500, required=False, allow_blank=True)


class CartItemPayload(serializers.Serializer):
    sku = serializers.CharField(max_length=100, required=False, allow_blank=True)
    name = serializers.CharField(max_length=300, required=False, allow_blank=True)
    quantity = serializers.IntegerField(min_value=1, max_value=1_000_000, default=1)
    unit_price = _money(default=0)


class CartPayload(serializers.Serializer):
    id = serializers.CharField(max_length=100, help_text="The storefront's cart/checkout id")
    customer = CustomerPayload(required=False)
    currency = serializers.RegexField(r"^[A-Za-z]{3}$", required=False)
    items = CartItemPayload(many=True, required=False, max_length=MAX_LINES)
    total = _money(required=False, allow_null=True, default=None)
    recovery_url = serializers.URLField(max_length=1000, required=False, allow_blank=True)
    updated_at = serializers.DateTimeField(required=False)
    order_id = serializers.CharField(
        max_length=100,
        required=False,
        allow_blank=True,
        help_text="Set when the cart became an order",
    )
    completed_at = serializers.DateTimeField(
        required=False, allow_null=True, help_text="Set when the checkout was completed"
    )


class ReturnLinePayload(serializers.Serializer):
    sku = serializers.CharField(max_length=100, required=False, allow_blank=True)
    quantity = serializers.IntegerField(min_value=1, max_value=1_000_000, default=1)


class ReturnPayload(serializers.Serializer):
    id = serializers.CharField(max_length=100)
    order_id = serializers.CharField(max_length=100)
    reason = serializers.CharField(max_length=300, required=False, allow_blank=True)
    refund_amount = _money(default=0)
    lines = ReturnLinePayload(many=True, required=False, max_length=MAX_LINES)
    created_at = serializers.DateTimeField(required=False)


class EventPayload(serializers.Serializer):
    id = serializers.CharField(
        max_length=100,
        required=False,
        allow_blank=True,
        help_text="Client id; an event sent again with it is ignored",
    )
    customer = CustomerPayload()
    category = serializers.ChoiceField(TouchpointCategory.choices)
    kind = serializers.CharField(max_length=100, help_text="Dotted name, e.g. onboarding.completed")
    occurred_at = serializers.DateTimeField(required=False)
    properties = serializers.DictField(required=False, default=dict)

    def validate_kind(self, value: str) -> str:
        if not KIND_RE.match(value):
            raise serializers.ValidationError(
                "Use lower-case words separated by dots, e.g. onboarding.completed."
            )
        return value

    def validate_properties(self, value: dict) -> dict:
        if len(json.dumps(value, default=str)) > MAX_PROPERTIES_BYTES:
            raise serializers.ValidationError(f"At most {MAX_PROPERTIES_BYTES} bytes of JSON.")
        return value


class WebhookEnvelope(serializers.Serializer):
    type = serializers.CharField(max_length=100)
    data = serializers.DictField()
    timestamp = serializers.DateTimeField(required=False)
