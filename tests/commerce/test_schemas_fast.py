"""Payload validation's shortcut (``Payload.fast``) gives exactly what DRF's own
``to_internal_value`` gives: the same values, or the same errors with the same
codes, for any input, for every payload schema."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rest_framework import serializers

from commerce import fastfields, schemas
from commerce.ingest import TOPICS

SCHEMAS = sorted(
    {spec.schema for spec in TOPICS.values()}
    | {
        cls
        for cls in vars(schemas).values()
        if isinstance(cls, type) and issubclass(cls, schemas.Payload) and cls is not schemas.Payload
    },
    key=lambda cls: cls.__name__,
)

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 200_000),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(
        [
            "",
            " ",
            "a\\x00b",
            "\\ud800",
            "2026-11-20T10:00:00Z",
            "2026-11-20",
            "1969-12-31T23:59:59Z",
            "EUR",
            "eur",
            "19.90",
            "-1",
            "1e400",
            "paid",
            "cancelled",
            "delivered",
            "shipped",
            "email",
            "sms",
            "support",
            "ticket.opened",
            "Europe/Paris",
            "Mars/Base",
            "a@example.com",
            "not an email",
            "+33612345678",
            "12",
            "https://shop.example/cart/1",
            "expensive",
            " SKU-1",
            "SKU-1 ",
            "SKU-\u00e9",
            "0019.90",
            "19.999",
            "1234567890123",
            "1_000",
            "100000",
            "100001",
            "EUR ",
        ]
    ),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)


@st.composite
def payloads(draw, schema):
    """Dicts over the schema's own field names (nested ones filled the same
    way), with values that are sometimes right and often wrong."""
    names = list(schema().fields)

    def fill(serializer_fields, depth):
        out = {}
        for name in draw(st.lists(st.sampled_from(list(serializer_fields)), unique=True)):
            field = serializer_fields[name]
            if depth < 2 and isinstance(field, serializers.ListSerializer):
                if draw(st.booleans()):
                    out[name] = draw(values)
                else:
                    count = draw(st.integers(0, 2))
                    out[name] = [fill(field.child.fields, depth + 1) for _ in range(count)]
            elif depth < 2 and isinstance(field, serializers.Serializer):
                out[name] = draw(st.one_of(values, st.just(fill(field.fields, depth + 1))))
            else:
                out[name] = draw(values)
        if draw(st.booleans()):
            out[draw(st.text(max_size=6))] = draw(values)
        return out

    assert names
    return fill(schema().fields, 0)


def _run(schema, data, *, fast: bool):
    before = schemas.Payload.fast
    schemas.Payload.fast = fast
    try:
        return "ok", schema().run_validation(data)
    except serializers.ValidationError as exc:
        return "error", (exc.detail, exc.get_codes())
    finally:
        schemas.Payload.fast = before


def _same(a, b) -> bool:
    if isinstance(a, Decimal) or isinstance(b, Decimal):
        return type(a) is type(b) and str(a) == str(b)
    if isinstance(a, dict):
        return isinstance(b, dict) and list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple):
        return type(a) is type(b) and len(a) == len(b) and all(map(_same, a, b))
    return type(a) is type(b) and a == b


@pytest.mark.parametrize("schema", SCHEMAS, ids=lambda cls: cls.__name__)
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_the_shortcut_validates_exactly_like_drf(schema, data):
    payload = data.draw(payloads(schema))
    assert _same(_run(schema, payload, fast=True), _run(schema, payload, fast=False))


def test_the_shortcut_is_what_webhooks_use_and_skips_absent_fields():
    # given an order with only its required fields
    order = {
        "id": "1",
        "placed_at": "2026-11-20T10:00:00Z",
        "customer": {"id": "c1"},
        "lines": [{"sku": "A", "unit_price": "1.00"}],
    }
    bound = schemas.OrderPayload()
    # when validated the fast way, then the optional fields it left out are absent, as with DRF
    fast = bound.run_validation(order)
    assert _same(_run(schemas.OrderPayload, order, fast=False), ("ok", fast))
    assert schemas.Payload.fast is True
    plan = {entry[1]: entry for entry in bound._plan()}
    assert plan["number"][3] == schemas._MISSING_SKIPS
    assert plan["status"][3] == schemas._MISSING_DEFAULTS
    assert plan["id"][3] == schemas._MISSING_RUNS
    # and the usual fields of an order have a shortcut
    line = {entry[1]: entry for entry in bound.fields["lines"].child._plan()}
    assert all(plan[name][5] for name in ("id", "status"))
    assert all(line[name][5] for name in ("sku", "quantity", "unit_price"))


SHORTCUT_FIELDS = [
    pytest.param(field, id=f"{schema.__name__}.{name}")
    for schema in SCHEMAS
    for name, field in schema().fields.items()
    if fastfields.converter(field) is not None
]
plain_values = st.one_of(
    scalars,
    st.from_regex(r"\A[0-9]{1,16}(\.[0-9]{1,4})?\Z"),
    st.from_regex(r"\A\s?[A-Za-z0-9_-]{0,120}\s?\Z"),
    st.integers(-(10**20), 10**20),
    st.sampled_from(["paid", "pending", "refunded", "EUR"]),
)


@pytest.mark.parametrize("field", SHORTCUT_FIELDS)
@settings(max_examples=200, deadline=None)
@given(value=plain_values)
def test_a_field_shortcut_returns_what_drf_returns_or_defers_to_it(field, value):
    fast = fastfields.converter(field)(value)
    if fast is fastfields.SLOW:
        return
    assert _same(fast, field.run_validation(value))


def test_shortcuts_cover_the_plain_field_kinds_and_only_them():
    assert len(SHORTCUT_FIELDS) > 20
    assert fastfields.converter(serializers.EmailField()) is None  # a subclass: DRF's
    assert fastfields.converter(serializers.IntegerField()) is None  # unbounded: DRF's
    custom = serializers.CharField(validators=[lambda v: None])
    assert fastfields.converter(custom) is None
