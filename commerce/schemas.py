"""Payload schemas for storefront data, shared by webhooks and the REST API.

Each serializer validates one payload shape and returns plain Python values
(str, int, Decimal, aware datetime, dict, list) that the services take. They
are documented in the OpenAPI schema and the README.
"""

from __future__ import annotations

import json
import re
import zoneinfo
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal

from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework import fields, serializers

from commerce import fastfields
from commerce.identity import BadIdentifier, normalize_email, normalize_phone
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


# Amounts fit the database columns with room for sums: a unit price up to a
# billion, a line or order total up to a hundred billion.
MAX_UNIT_PRICE = Decimal("999999999.99")
MAX_TOTAL = Decimal("99999999999.99")
MAX_QUANTITY = 100_000
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(2100, 1, 1, tzinfo=UTC)


def _money(*, max_value: Decimal = MAX_TOTAL, **kw) -> serializers.DecimalField:
    return serializers.DecimalField(
        max_digits=14,
        decimal_places=2,
        min_value=0,
        max_value=max_value,
        coerce_to_string=False,
        **kw,
    )


class BoundedDateTimeField(serializers.DateTimeField):
    """An ISO 8601 time between 1970 and 2100 (naive = UTC)."""

    def to_internal_value(self, value):
        parsed = super().to_internal_value(value)
        if not EARLIEST <= parsed < LATEST:
            raise serializers.ValidationError("Must be between 1970 and 2100.")
        return parsed


def _encodable(text: str) -> bool:
    """False for text with a lone surrogate (it has no UTF-8 encoding)."""
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _check_text(value, path: str = "") -> None:
    """PostgreSQL stores neither NUL characters nor lone surrogates."""
    if isinstance(value, str):
        if "\x00" in value or not _encodable(value):
            raise serializers.ValidationError(
                f"Text{' at ' + path if path else ''} contains a NUL or an unpaired surrogate."
            )
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_text(key, path)
            _check_text(item, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _check_text(item, f"{path}[{i}]")


class ContactFields:
    """Normalises ``email`` and ``phone`` fields through commerce.identity."""

    def validate_email(self, value: str) -> str:
        try:
            return normalize_email(value)
        except BadIdentifier as exc:
            raise serializers.ValidationError(str(exc)) from exc

    def validate_phone(self, value: str) -> str:
        try:
            return normalize_phone(value)
        except BadIdentifier as exc:
            raise serializers.ValidationError(str(exc)) from exc


# Field classes whose empty-value handling for a missing key is Field's own.
_PLAIN_EMPTY = (fields.Field.validate_empty_values, fields.DecimalField.validate_empty_values)
_MISSING_RUNS, _MISSING_SKIPS, _MISSING_DEFAULTS = 0, 1, 2


class Payload(serializers.Serializer):
    """Base for every payload: text must be storable in PostgreSQL.

    ``to_internal_value`` is DRF's, step for step, with shortcuts for what
    DRF would only take the long way to: a key the payload leaves out, for an
    optional field, is skipped or takes the field's default without running
    the field; a plain valid value of a plain field (``commerce.fastfields``)
    is taken as DRF would return it. Anything else runs through DRF. An order
    has about 32 declared fields, most of them usually absent, so this cuts
    the validation a webhook waits for by two thirds;
    tests/commerce/test_schemas_fast.py checks that results and errors equal
    DRF's own for any input."""

    fast = True  # False: DRF's own to_internal_value (what the tests compare with)

    def _plan(self) -> list[tuple]:
        """Per writable field: (field, name, validate_<name> method, what a
        missing key does, its default, the shortcut for a present value, the
        key it is stored under or None, already text-checked as a nested payload)."""
        plan = self.__dict__.get("_fast_plan")
        if plan is None:
            plan = [self._field_plan(field) for field in self._writable_fields]
            self.__dict__["_fast_plan"] = plan
        return plan

    def _field_plan(self, field: fields.Field) -> tuple:
        missing = _MISSING_RUNS
        if not field.required and type(field).validate_empty_values in _PLAIN_EMPTY:
            if field.default is fields.empty:
                missing = _MISSING_SKIPS
            elif not callable(field.default):
                missing = _MISSING_DEFAULTS
        nested = isinstance(field, Payload) or (
            isinstance(field, serializers.ListSerializer) and isinstance(field.child, Payload)
        )
        return (
            field,
            field.field_name,
            getattr(self, "validate_" + field.field_name, None),
            missing,
            field.default,
            fastfields.converter(field),
            field.source_attrs[0] if len(field.source_attrs) == 1 else None,
            nested,
        )

    def to_internal_value(self, data):
        if not self.fast or not isinstance(data, Mapping) or getattr(self.root, "partial", False):
            value, checked = super().to_internal_value(data), frozenset()
        else:
            value, checked = self._fast_internal_value(data)
        errors = {}
        for key, item in value.items():
            if key in checked:
                continue
            try:
                _check_text(item)
            except serializers.ValidationError as exc:
                errors[key] = exc.detail
        if errors:
            raise serializers.ValidationError(errors)
        return value

    def _fast_internal_value(self, data) -> tuple[dict, set]:
        ret, errors, checked = {}, {}, set()
        for field, name, validate_method, missing, default, convert, key, nested in self._plan():
            primitive_value = field.get_value(data)
            try:
                if primitive_value is fields.empty and missing != _MISSING_RUNS:
                    if missing == _MISSING_SKIPS:
                        continue  # DRF: run_validation -> get_default -> SkipField
                    validated_value = default  # DRF: validate_empty_values -> get_default
                else:
                    validated_value = fastfields.SLOW
                    if convert is not None and primitive_value is not None:
                        validated_value = convert(primitive_value)
                    if validated_value is fastfields.SLOW:
                        validated_value = field.run_validation(primitive_value)
                if validate_method is not None:
                    validated_value = validate_method(validated_value)
            except serializers.ValidationError as exc:
                errors[name] = exc.detail
            except DjangoValidationError as exc:
                errors[name] = fields.get_error_detail(exc)
            except fields.SkipField:
                pass
            else:
                if key is not None:
                    ret[key] = validated_value
                else:
                    self.set_value(ret, field.source_attrs, validated_value)
                if nested:
                    checked.add(field.source_attrs[0] if field.source_attrs else name)
        if errors:
            raise serializers.ValidationError(errors)
        return ret, checked

    def run_validators(self, value):
        # DRF first merges the read-only fields' defaults into the value, for
        # the serializer's own validators; payloads have neither.
        if self.fast and not self.validators:
            return
        super().run_validators(value)


class CustomerPayload(ContactFields, Payload):
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
    updated_at = BoundedDateTimeField(required=False)

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


class OrderLinePayload(Payload):
    sku = serializers.CharField(max_length=100, required=False, allow_blank=True)
    name = serializers.CharField(max_length=300, required=False, allow_blank=True)
    product_family = serializers.CharField(max_length=100, required=False, allow_blank=True)
    quantity = serializers.IntegerField(min_value=1, max_value=MAX_QUANTITY, default=1)
    unit_price = _money(max_value=MAX_UNIT_PRICE, default=0)
    discount = _money(default=0)
    total = _money(required=False, allow_null=True, default=None)
    price_tier = serializers.ChoiceField(PriceTier.choices, required=False)

    def validate(self, attrs: dict) -> dict:
        if attrs["quantity"] * attrs["unit_price"] > MAX_TOTAL:
            raise serializers.ValidationError({"quantity": ["The line total is too large."]})
        return attrs


class OrderPayload(Payload):
    id = serializers.CharField(max_length=100, help_text="The storefront's order id")
    number = serializers.CharField(max_length=50, required=False, allow_blank=True)
    status = serializers.ChoiceField(OrderStatus.choices, default=OrderStatus.PAID)
    currency = serializers.RegexField(
        r"^[A-Za-z]{3}$", required=False, help_text="ISO 4217; default the store's"
    )
    placed_at = BoundedDateTimeField()
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
    cancelled_at = BoundedDateTimeField(required=False, allow_null=True)

    def validate(self, attrs: dict) -> dict:
        lines_total = sum(
            (line["quantity"] * line["unit_price"] for line in attrs.get("lines") or []),
            start=Decimal(0),
        )
        if lines_total > MAX_TOTAL:
            raise serializers.ValidationError({"lines": ["The order total is too large."]})
        return attrs


class OrderCancelPayload(Payload):
    id = serializers.CharField(max_length=100)
    cancelled_at = BoundedDateTimeField(required=False)


class DeliveryWindowPayload(Payload):
    start = BoundedDateTimeField(required=False, allow_null=True)
    end = BoundedDateTimeField(required=False, allow_null=True)

    def validate(self, attrs: dict) -> dict:
        if attrs.get("start") and attrs.get("end") and attrs["end"] < attrs["start"]:
            raise serializers.ValidationError({"end": ["Must not be before start."]})
        return attrs


class FulfillmentPayload(Payload):
    id = serializers.CharField(max_length=100, help_text="The storefront's fulfilment id")
    order_id = serializers.CharField(max_length=100)
    status = serializers.ChoiceField(FulfillmentStatus.choices)
    occurred_at = BoundedDateTimeField(required=False)
    carrier = serializers.CharField(max_length=100, required=False, allow_blank=True)
    tracking_number = serializers.CharField(max_length=100, required=False, allow_blank=True)
    tracking_url = serializers.URLField(max_length=500, required=False, allow_blank=True)
    estimated_delivery = DeliveryWindowPayload(required=False)
    message = serializers.CharField(max_length=500, required=False, allow_blank=True)


class CartItemPayload(Payload):
    sku = serializers.CharField(max_length=100, required=False, allow_blank=True)
    name = serializers.CharField(max_length=300, required=False, allow_blank=True)
    quantity = serializers.IntegerField(min_value=1, max_value=MAX_QUANTITY, default=1)
    unit_price = _money(max_value=MAX_UNIT_PRICE, default=0)


class CartPayload(Payload):
    id = serializers.CharField(max_length=100, help_text="The storefront's cart/checkout id")
    customer = CustomerPayload(required=False)
    currency = serializers.RegexField(r"^[A-Za-z]{3}$", required=False)
    items = CartItemPayload(many=True, required=False, max_length=MAX_LINES)
    total = _money(required=False, allow_null=True, default=None)
    recovery_url = serializers.URLField(max_length=1000, required=False, allow_blank=True)
    updated_at = BoundedDateTimeField(required=False)
    order_id = serializers.CharField(
        max_length=100,
        required=False,
        allow_blank=True,
        help_text="Set when the cart became an order",
    )
    completed_at = BoundedDateTimeField(
        required=False, allow_null=True, help_text="Set when the checkout was completed"
    )


class ReturnLinePayload(Payload):
    sku = serializers.CharField(max_length=100, required=False, allow_blank=True)
    quantity = serializers.IntegerField(min_value=1, max_value=MAX_QUANTITY, default=1)


class ReturnPayload(Payload):
    id = serializers.CharField(max_length=100)
    order_id = serializers.CharField(max_length=100)
    reason = serializers.CharField(max_length=300, required=False, allow_blank=True)
    refund_amount = _money(default=0)
    lines = ReturnLinePayload(many=True, required=False, max_length=MAX_LINES)
    created_at = BoundedDateTimeField(required=False)


class EventPayload(Payload):
    id = serializers.CharField(
        max_length=100,
        required=False,
        allow_blank=True,
        help_text="Client id; an event sent again with it is ignored",
    )
    customer = CustomerPayload()
    category = serializers.ChoiceField(TouchpointCategory.choices)
    kind = serializers.CharField(max_length=100, help_text="Dotted name, e.g. onboarding.completed")
    occurred_at = BoundedDateTimeField(required=False)
    properties = serializers.DictField(required=False, default=dict)

    def validate_kind(self, value: str) -> str:
        if not KIND_RE.match(value):
            raise serializers.ValidationError(
                "Use lower-case words separated by dots, e.g. onboarding.completed."
            )
        return value

    def validate_properties(self, value: dict) -> dict:
        _check_text(value)
        if len(json.dumps(value, default=str)) > MAX_PROPERTIES_BYTES:
            raise serializers.ValidationError(f"At most {MAX_PROPERTIES_BYTES} bytes of JSON.")
        return value


class WebhookEnvelope(serializers.Serializer):
    """``{"type": ..., "data": {...}}``. Shallow on purpose: ``data`` is
    validated (and checked for storable text) by its topic's schema."""

    type = serializers.CharField(max_length=100)
    data = serializers.JSONField(help_text="The event's payload, per its type")
    timestamp = BoundedDateTimeField(required=False)

    def validate_data(self, value: object) -> dict:
        if not isinstance(value, dict):
            raise serializers.ValidationError("Expected an object.")
        return value
