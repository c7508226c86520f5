"""Orders, fulfilments, carts and returns from validated storefront payloads.

Every function here is idempotent on the storefront's ids: the same payload
applied twice leaves the same rows. Status only moves forward.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal

from django.db import transaction
from django.utils.text import slugify

from commerce.models import (
    FULFILLMENT_PROGRESS,
    Cart,
    CartStatus,
    CommerceSettings,
    DeliveryEvent,
    Fulfillment,
    FulfillmentStatus,
    Order,
    OrderLine,
    OrderStatus,
    PriceTier,
    Product,
    ProductFamily,
    Return,
    TouchpointCategory,
)
from commerce.services.customers import CustomerRef, consent_from_payload, customer_resolve
from commerce.services.touchpoints import TouchpointIn, touchpoint_record, touchpoints_record_many
from retention import clock
from retention.errors import DomainError
from retention.models import Tenant

logger = logging.getLogger(__name__)

ZERO = Decimal("0")

# Later apps (segments, journeys) register a function(order, created) called
# after the order's transaction commits.
ORDER_INGESTED_HOOKS: list[Callable[[Order, bool], None]] = []
FULFILLMENT_UPDATED_HOOKS: list[Callable[[Fulfillment, str], None]] = []
# Called with the tenant after a bulk load (CSV import, demo seed) commits:
# listeners recompute once instead of reacting to each order.
ORDERS_BULK_LOADED_HOOKS: list[Callable[[Tenant], None]] = []


FINAL_ORDER_STATUSES = frozenset({OrderStatus.CANCELLED, OrderStatus.REFUNDED})


class NotYetKnown(DomainError):
    """The event refers to something we have not received yet (out-of-order
    webhooks); processing is retried later rather than failing for good."""

    status = 409
    code = "not_yet_known"


def commerce_settings(tenant: Tenant | int) -> CommerceSettings:
    tenant_id = tenant if isinstance(tenant, int) else tenant.pk
    settings, _ = CommerceSettings.objects.get_or_create(tenant_id=tenant_id)
    return settings


# --- catalogue ------------------------------------------------------------------


def family_for(*, tenant: Tenant, name: str) -> ProductFamily | None:
    name = (name or "").strip()
    if not name:
        return None
    slug = slugify(name)[:100] or "family"
    family, _ = ProductFamily.objects.get_or_create(
        tenant=tenant, slug=slug, defaults={"name": name[:100]}
    )
    return family


def product_for(*, tenant: Tenant, line: dict) -> Product | None:
    sku = (line.get("sku") or "").strip()
    if not sku:
        return None
    family = family_for(tenant=tenant, name=line.get("product_family") or "")
    product, created = Product.objects.get_or_create(
        tenant=tenant,
        sku=sku,
        defaults={
            "name": (line.get("name") or sku)[:300],
            "family": family,
            "price": line.get("unit_price") or ZERO,
            "price_tier": line.get("price_tier") or PriceTier.STANDARD,
        },
    )
    if not created and family is not None and product.family_id is None:
        product.family = family
        product.save(update_fields=["family"])
    return product


# --- orders -------------------------------------------------------------------


def order_upsert(*, tenant: Tenant, data: dict, source: str) -> tuple[Order, bool]:
    """Create or update an order (and its customer and lines) from a validated
    order payload. Returns (order, created)."""
    ref = CustomerRef.from_data(data["customer"], source=source)
    with transaction.atomic():
        customer = customer_resolve(tenant=tenant, ref=ref, profile=data["customer"])
        consent_from_payload(customer=customer, data=data["customer"], source=source)
        order = (
            Order.objects.for_tenant(tenant)
            .select_for_update()
            .filter(source=source, external_id=data["id"])
            .first()
        )
        created = order is None
        if created:
            order = Order(tenant=tenant, source=source, external_id=data["id"])
        lines = data.get("lines")
        _apply_order_fields(order, data, customer, lines, tenant)
        order.save()
        if lines is not None:
            _replace_lines(tenant, order, lines)
        if created:
            _convert_carts(tenant, order, data.get("cart_id"))
            touchpoint_record(
                tenant=tenant,
                customer=customer,
                category=TouchpointCategory.COMMERCE,
                kind="order.placed",
                source="commerce",
                occurred_at=order.placed_at,
                external_id=f"order:{order.pk}",
                properties={
                    "order_id": order.pk,
                    "number": order.number,
                    "total": str(order.total),
                    "currency": order.currency,
                },
            )
        transaction.on_commit(lambda: _run_hooks(ORDER_INGESTED_HOOKS, order, created))
    logger.info(
        "commerce.order_ingested tenant_id=%s order_id=%s created=%s", tenant.pk, order.pk, created
    )
    return order, created


def _apply_order_fields(order: Order, data: dict, customer, lines, tenant: Tenant) -> None:
    order.customer = customer
    order.number = (data.get("number") or order.number or data["id"])[:50]
    order.currency = (data.get("currency") or order.currency or tenant.currency).upper()
    order.placed_at = data.get("placed_at") or order.placed_at or clock.now()
    # Cancelled and refunded are final: a late order.created arriving after the
    # cancellation must not bring the order back.
    if data.get("status") and order.status not in FINAL_ORDER_STATUSES:
        order.status = data["status"]
    for field in ("discount_total", "shipping_total", "tax_total", "fee_total"):
        if data.get(field) is not None:
            setattr(order, field, data[field])
    if lines is not None:
        order.subtotal = (
            sum((_line_total(line) for line in lines), start=ZERO)
            if data.get("subtotal") is None
            else data["subtotal"]
        )
    elif data.get("subtotal") is not None:
        order.subtotal = data["subtotal"]
    order.total = (
        data["total"]
        if data.get("total") is not None
        else (
            order.subtotal
            - order.discount_total
            + order.shipping_total
            + order.tax_total
            + order.fee_total
        )
    )
    if order.status == OrderStatus.CANCELLED and not order.cancelled_at:
        order.cancelled_at = data.get("cancelled_at") or clock.now()
    order.updated_at = clock.now()


def _line_total(line: dict) -> Decimal:
    if line.get("total") is not None:
        return line["total"]
    return (line.get("unit_price") or ZERO) * line.get("quantity", 1) - (
        line.get("discount") or ZERO
    )


def _replace_lines(tenant: Tenant, order: Order, lines: list[dict]) -> None:
    OrderLine.objects.for_tenant(tenant).filter(order=order).delete()
    products = _products_for(tenant, lines)
    rows = []
    for line in lines:
        product = products.get((line.get("sku") or "").strip())
        rows.append(
            OrderLine(
                tenant=tenant,
                order=order,
                product=product,
                family_id=product.family_id if product else None,
                sku=line.get("sku") or "",
                name=(line.get("name") or "")[:300],
                quantity=line.get("quantity", 1),
                unit_price=line.get("unit_price") or ZERO,
                discount=line.get("discount") or ZERO,
                total=_line_total(line),
                price_tier=(product.price_tier if product else line.get("price_tier"))
                or PriceTier.STANDARD,
            )
        )
    OrderLine.objects.bulk_create(rows)


def _products_for(tenant: Tenant, lines: list[dict]) -> dict[str, Product]:
    """The lines' products by sku: the known ones in one query; a new sku (or a
    known one still without a family the line names) goes through product_for."""
    skus = {(line.get("sku") or "").strip() for line in lines} - {""}
    if not skus:
        return {}
    products = {p.sku: p for p in Product.objects.for_tenant(tenant).filter(sku__in=skus)}
    for line in lines:
        sku = (line.get("sku") or "").strip()
        known = products.get(sku)
        if sku and (known is None or (known.family_id is None and line.get("product_family"))):
            products[sku] = product_for(tenant=tenant, line=line)
    return products


def _convert_carts(tenant: Tenant, order: Order, cart_id: str | None) -> None:
    """An order converts the cart it came from, or the customer's open carts
    touched in the day before it (a recovered abandoned cart counts)."""
    carts = Cart.objects.for_tenant(tenant).exclude(status=CartStatus.CONVERTED)
    if cart_id:
        carts = carts.filter(external_id=cart_id)
    else:
        carts = carts.filter(
            customer=order.customer,
            updated_at__gte=order.placed_at - timedelta(days=1),
            updated_at__lte=order.placed_at,
        )
    carts.update(status=CartStatus.CONVERTED, order=order)


def order_cancel(*, tenant: Tenant, data: dict, source: str) -> Order:
    with transaction.atomic():
        order = (
            Order.objects.for_tenant(tenant)
            .select_for_update()
            .filter(source=source, external_id=data["id"])
            .first()
        )
        if order is None:
            raise NotYetKnown(f"Order {data['id']!r} is not known yet.")
        if order.status != OrderStatus.CANCELLED:
            order.status = OrderStatus.CANCELLED
            order.cancelled_at = data.get("cancelled_at") or clock.now()
            order.updated_at = clock.now()
            order.save(update_fields=["status", "cancelled_at", "updated_at"])
            transaction.on_commit(lambda: _run_hooks(ORDER_INGESTED_HOOKS, order, False))
    return order


def _order_for(tenant: Tenant, source: str, external_id: str) -> Order:
    order = Order.objects.for_tenant(tenant).filter(source=source, external_id=external_id).first()
    if order is None:
        raise NotYetKnown(f"Order {external_id!r} is not known yet.")
    return order


# --- fulfilments ----------------------------------------------------------------


def fulfillment_update(*, tenant: Tenant, data: dict, source: str) -> Fulfillment:
    """Apply a delivery status change. A late or repeated event is recorded in
    the timeline but never moves the status backwards."""
    order = _order_for(tenant, source, data["order_id"])
    status = data["status"]
    at = data.get("occurred_at") or clock.now()
    with transaction.atomic():
        fulfillment, _ = Fulfillment.objects.select_for_update().get_or_create(
            tenant=tenant, order=order, external_id=data["id"]
        )
        old = fulfillment.status
        for field in ("carrier", "tracking_number", "tracking_url"):
            if data.get(field):
                setattr(fulfillment, field, data[field])
        window = data.get("estimated_delivery") or {}
        if window.get("start"):
            fulfillment.estimated_delivery_start = window["start"]
        if window.get("end"):
            fulfillment.estimated_delivery_end = window["end"]
        if _moves_forward(old, status):
            fulfillment.status = status
        if status == FulfillmentStatus.SHIPPED and not fulfillment.shipped_at:
            fulfillment.shipped_at = at
        if status == FulfillmentStatus.DELIVERED and not fulfillment.delivered_at:
            fulfillment.delivered_at = at
        fulfillment.updated_at = clock.now()
        fulfillment.save()
        DeliveryEvent.objects.get_or_create(
            tenant=tenant,
            fulfillment=fulfillment,
            status=status,
            at=at,
            defaults={"message": (data.get("message") or "")[:500]},
        )
        if fulfillment.status != old:
            # On the timeline, and the feed journeys start delivery updates from.
            touchpoint_record(
                tenant=tenant,
                customer=order.customer,
                category=TouchpointCategory.COMMERCE,
                kind=f"fulfillment.{fulfillment.status}",
                source="commerce",
                occurred_at=at,
                external_id=f"fulfillment:{fulfillment.pk}:{fulfillment.status}",
                properties={
                    "order_id": order.pk,
                    "fulfillment_id": fulfillment.pk,
                    "status": fulfillment.status,
                },
            )
            transaction.on_commit(lambda: _run_hooks(FULFILLMENT_UPDATED_HOOKS, fulfillment, old))
    return fulfillment


def _moves_forward(old: str, new: str) -> bool:
    if new == old or old == FulfillmentStatus.DELIVERED:
        return False
    if new == FulfillmentStatus.DELAYED:
        # A parcel can be late until it is out for delivery.
        return FULFILLMENT_PROGRESS[old] <= FULFILLMENT_PROGRESS[FulfillmentStatus.DELAYED]
    return FULFILLMENT_PROGRESS[new] >= FULFILLMENT_PROGRESS[old]


# --- carts --------------------------------------------------------------------


def cart_upsert(*, tenant: Tenant, data: dict, source: str) -> Cart:
    customer = None
    with transaction.atomic():
        if data.get("customer"):
            ref = CustomerRef.from_data(data["customer"], source=source)
            customer = customer_resolve(tenant=tenant, ref=ref, profile=data["customer"])
            consent_from_payload(customer=customer, data=data["customer"], source=source)
        cart, _ = Cart.objects.select_for_update().get_or_create(
            tenant=tenant, source=source, external_id=data["id"]
        )
        if cart.status == CartStatus.CONVERTED:
            return cart
        if customer is not None:
            cart.customer = customer
        cart.currency = (data.get("currency") or cart.currency or tenant.currency).upper()
        if data.get("items") is not None:
            cart.items = [
                {k: str(v) if isinstance(v, Decimal) else v for k, v in item.items()}
                for item in data["items"]
            ]
        if data.get("total") is not None:
            cart.total = data["total"]
        elif data.get("items") is not None:
            cart.total = sum(
                (i.get("unit_price") or ZERO) * i.get("quantity", 1) for i in data["items"]
            )
        cart.recovery_url = data.get("recovery_url") or cart.recovery_url
        cart.updated_at = data.get("updated_at") or clock.now()
        if data.get("order_id") or data.get("completed_at"):
            order = (
                Order.objects.for_tenant(tenant)
                .filter(source=source, external_id=data["order_id"])
                .first()
                if data.get("order_id")
                else None
            )
            cart.status, cart.order = CartStatus.CONVERTED, order
        elif cart.status == CartStatus.ABANDONED and data.get("items"):
            cart.status, cart.abandoned_at = CartStatus.ACTIVE, None  # the shopper came back
        cart.save()
    return cart


def carts_mark_abandoned(*, tenant: Tenant) -> int:
    """Set-based: active carts with a known customer and no activity for the
    tenant's abandonment time become abandoned. Returns how many."""
    minutes = commerce_settings(tenant).cart_abandon_minutes
    now = clock.now()
    with transaction.atomic():
        carts = list(
            Cart.objects.for_tenant(tenant)
            .filter(
                status=CartStatus.ACTIVE,
                customer__isnull=False,
                updated_at__lte=now - timedelta(minutes=minutes),
            )
            .select_for_update(skip_locked=True)
            .values_list("pk", "customer_id", "total", "currency")
        )
        if not carts:
            return 0
        Cart.objects.for_tenant(tenant).filter(pk__in=[c[0] for c in carts]).update(
            status=CartStatus.ABANDONED, abandoned_at=now
        )
        # One touchpoint per abandonment (the feed journeys start reminders from);
        # a cart abandoned again after the shopper came back is a new one.
        touchpoints_record_many(
            tenant_id=tenant.pk,
            source="commerce",
            items=[
                TouchpointIn(
                    customer_id=customer_id,
                    category=TouchpointCategory.COMMERCE,
                    kind="cart.abandoned",
                    occurred_at=now,
                    properties={"cart_id": pk, "total": str(total), "currency": currency},
                    external_id=f"cart:{pk}:{now.isoformat()}",
                )
                for pk, customer_id, total, currency in carts
            ],
        )
    return len(carts)


# --- returns ------------------------------------------------------------------


def return_create(*, tenant: Tenant, data: dict, source: str) -> Return:
    order = _order_for(tenant, source, data["order_id"])
    with transaction.atomic():
        ret, created = Return.objects.get_or_create(
            tenant=tenant,
            source=source,
            external_id=data["id"],
            defaults={
                "order": order,
                "reason": (data.get("reason") or "")[:300],
                "refund_amount": data.get("refund_amount") or ZERO,
                "lines": [
                    {k: str(v) if isinstance(v, Decimal) else v for k, v in line.items()}
                    for line in data.get("lines") or []
                ],
                "created_at": data.get("created_at") or clock.now(),
            },
        )
        if created:
            refunded = sum(
                Return.objects.for_tenant(tenant)
                .filter(order=order)
                .values_list("refund_amount", flat=True),
                start=ZERO,
            )
            if order.total and refunded >= order.total:
                Order.objects.for_tenant(tenant).filter(pk=order.pk).update(
                    status=OrderStatus.REFUNDED, updated_at=clock.now()
                )
                order.status = OrderStatus.REFUNDED
                transaction.on_commit(lambda: _run_hooks(ORDER_INGESTED_HOOKS, order, False))
            touchpoint_record(
                tenant=tenant,
                customer=order.customer,
                category=TouchpointCategory.COMMERCE,
                kind="return.created",
                source="commerce",
                occurred_at=ret.created_at,
                external_id=f"return:{ret.pk}",
                properties={
                    "order_id": order.pk,
                    "refund_amount": str(ret.refund_amount),
                    "reason": ret.reason,
                },
            )
    return ret


def orders_bulk_loaded(tenant: Tenant) -> None:
    """Tell listeners (segments) that many orders arrived at once, once the
    load has committed (at once outside a transaction)."""
    transaction.on_commit(lambda: _run_hooks(ORDERS_BULK_LOADED_HOOKS, tenant))


def _run_hooks(hooks, *args) -> None:
    for hook in hooks:
        hook(*args)


__all__ = [
    "FULFILLMENT_UPDATED_HOOKS",
    "ORDERS_BULK_LOADED_HOOKS",
    "ORDER_INGESTED_HOOKS",
    "NotYetKnown",
    "cart_upsert",
    "carts_mark_abandoned",
    "commerce_settings",
    "fulfillment_update",
    "order_cancel",
    "order_upsert",
    "orders_bulk_loaded",
    "return_create",
]
