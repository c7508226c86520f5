"""Signed tokens for the hosted shopper pages: order status ``/o/``, survey ``/s/``
and preferences ``/u/``.

A token is the shopper's only credential, so it carries everything needed to
find the row (the tenant id and the object id, in short keys) and is signed with
``SECRET_KEY`` (``SECRET_KEY_FALLBACKS`` still verify during a rotation) under a
salt per purpose: an order token can never be replayed as a preferences token.

The signing timestamp comes from :mod:`retention.clock`, not ``time.time()``, so
expiry moves with the project's clock in tests and the simulator.

    token = make_token("survey", t=tenant.pk, i=invitation.pk)
    fields = read_token("survey", token, max_age=timedelta(days=30))  # dict or None
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core import signing
from django.urls import reverse

from commerce.models import Customer, Order
from retention import clock

SALT_PREFIX = "retention.hosted"
ORDER_PURPOSE = "order"
PREFERENCES_PURPOSE = "preferences"
ORDER_MAX_AGE = timedelta(days=180)
PREFERENCES_MAX_AGE = timedelta(days=365)
# Real tokens are under 100 characters; anything much longer is not worth a HMAC.
MAX_TOKEN_LENGTH = 400


class _ClockSigner(signing.TimestampSigner):
    """A TimestampSigner that reads the time from ``retention.clock``."""

    def timestamp(self) -> str:
        return signing.b62_encode(int(clock.now().timestamp()))

    def unsign(self, value: str, max_age: float | timedelta | None = None) -> str:
        result = signing.Signer.unsign(self, value)
        value, timestamp = result.rsplit(self.sep, 1)
        signed_at = signing.b62_decode(timestamp)
        if max_age is not None:
            if isinstance(max_age, timedelta):
                max_age = max_age.total_seconds()
            age = clock.now().timestamp() - signed_at
            if age > max_age:
                raise signing.SignatureExpired(f"Signature age {age} > {max_age} seconds")
        return value


def _signer(purpose: str) -> _ClockSigner:
    return _ClockSigner(salt=f"{SALT_PREFIX}.{purpose}")


def make_token(purpose: str, **fields: int | str) -> str:
    """Sign ``fields`` (short keys, JSON values) for one purpose. URL-safe."""
    return _signer(purpose).sign_object(fields, compress=True)


def read_token(purpose: str, token: str, *, max_age: timedelta | None) -> dict[str, Any] | None:
    """The fields of a token made by :func:`make_token` for the same purpose, or
    None when it is tampered with, expired, malformed or for another purpose."""
    if not isinstance(token, str) or not token or len(token) > MAX_TOKEN_LENGTH:
        return None
    try:
        fields = _signer(purpose).unsign_object(token, max_age=max_age)
    except (signing.BadSignature, ValueError, TypeError):
        # BadSignature covers SignatureExpired; the others are defence in depth
        # for a correctly signed payload we would not have produced.
        return None
    return fields if isinstance(fields, dict) else None


def _int_field(fields: dict[str, Any], key: str) -> int | None:
    value = fields.get(key)
    # bool is an int subclass; a real id is a positive int.
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    return None


def public_url(path: str) -> str:
    return f"{settings.PUBLIC_BASE_URL}{path}"


# --- order status page (/o/) ------------------------------------------------------


def order_token(order: Order) -> str:
    return make_token(ORDER_PURPOSE, t=order.tenant_id, o=order.pk)


def order_from_token(token: str, *, max_age: timedelta = ORDER_MAX_AGE) -> Order | None:
    """The order a token points at, loaded in the token's tenant, or None for a
    tampered, expired, malformed or unknown token (or an inactive store)."""
    fields = read_token(ORDER_PURPOSE, token, max_age=max_age)
    if fields is None:
        return None
    tenant_id, order_id = _int_field(fields, "t"), _int_field(fields, "o")
    if tenant_id is None or order_id is None:
        return None
    order = (
        Order.objects.for_tenant(tenant_id)
        .select_related("tenant", "customer")
        .filter(pk=order_id)
        .first()
    )
    if order is None or not order.tenant.is_active:
        return None
    return order


def order_page_path(order: Order) -> str:
    return reverse("order-page", args=[order_token(order)])


def order_page_url(order: Order) -> str:
    return public_url(order_page_path(order))


# --- preferences page (/u/) -----------------------------------------------------------


def preferences_token(customer: Customer, message_id: int | None = None) -> str:
    """Fields: ``t`` tenant id, ``c`` customer id, and ``m`` the message the link
    was sent in, when given (recorded with what the shopper changes)."""
    if message_id is None:
        return make_token(PREFERENCES_PURPOSE, t=customer.tenant_id, c=customer.pk)
    return make_token(PREFERENCES_PURPOSE, t=customer.tenant_id, c=customer.pk, m=message_id)


def preferences_page_path(customer: Customer, message_id: int | None = None) -> str:
    return reverse("preferences-page", args=[preferences_token(customer, message_id)])


def preferences_page_url(customer: Customer, message_id: int | None = None) -> str:
    return public_url(preferences_page_path(customer, message_id))
