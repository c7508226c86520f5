"""Hosted pages for shoppers: the order status page ``/o/<token>/`` and its
one-tap "how did checkout feel?" answer.

The signed token in the URL is the only credential (see :mod:`commerce.tokens`):
it names the tenant, so every read below is scoped to that tenant, and a bad,
expired or unknown token gets the same friendly 404 page. Responses are never
cached, never indexed, and never leak the URL to other sites.
"""

from __future__ import annotations

import logging
import zoneinfo
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from functools import lru_cache

import qrcode
import qrcode.image.svg
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import dateformat, timezone
from django.utils.safestring import SafeString, mark_safe
from django.views.decorators.http import require_POST, require_safe

from commerce.models import (
    CommerceSettings,
    Fulfillment,
    FulfillmentStatus,
    Order,
    OrderStatus,
    Touchpoint,
    TouchpointCategory,
)
from commerce.services.touchpoints import touchpoint_record
from commerce.tokens import order_from_token, preferences_page_path, public_url
from retention import clock
from retention.http import shopper_headers as _shopper_headers

logger = logging.getLogger(__name__)

FEEDBACK_KIND = "checkout.feedback"
FEEDBACK_SOURCE = "order_page"
# value -> (emoji, label); the order is the order of the buttons.
CHECKOUT_RATINGS: dict[str, tuple[str, str]] = {
    "easy": ("😊", "Easy"),
    "okay": ("😐", "Okay"),
    "hard": ("😞", "Hard"),
}
# Added to the order page URL in the return QR code; the page then greets the
# store clerk who scanned it.
RETURN_MARKER = ("return", "instore")

# The URL is a credential: it must never reach another site in a Referer header.
# Pages without a form say "no-referrer". The order page holds the feedback form,
# and under "no-referrer" browsers send "Origin: null" with its POST, which
# Django's CSRF check rejects; "strict-origin" still never sends the path (the
# token) anywhere, and lets the same-origin POST carry its real Origin.
FORM_REFERRER_POLICY = "strict-origin"

CURRENCY_SYMBOLS = {"USD": "$", "EUR": "€", "GBP": "£", "JPY": "¥", "INR": "₹", "KRW": "₩"}
ZERO_DECIMAL_CURRENCIES = frozenset({"JPY", "KRW", "VND", "CLP", "ISK", "XAF", "XOF"})


# --- presentation helpers -----------------------------------------------------------


def format_money(amount: Decimal, currency: str) -> str:
    """``€1,234.50``, ``¥1,200`` or ``1,234.50 SEK``; negatives with a minus sign."""
    currency = (currency or "").upper()
    places = 0 if currency in ZERO_DECIMAL_CURRENCIES else 2
    number = f"{abs(amount):,.{places}f}"
    sign = "\N{MINUS SIGN}" if amount < 0 else ""
    symbol = CURRENCY_SYMBOLS.get(currency)
    if symbol:
        return f"{sign}{symbol}{number}"
    return f"{sign}{number} {currency}".strip()


def shopper_timezone(order: Order) -> zoneinfo.ZoneInfo:
    """The customer's timezone if it is a real one, else the store's, else UTC."""
    for name in (order.customer.timezone, order.tenant.timezone):
        if not name:
            continue
        try:
            return zoneinfo.ZoneInfo(name)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            continue
    return zoneinfo.ZoneInfo("UTC")


def _fmt(at: datetime, tz: zoneinfo.ZoneInfo, pattern: str) -> str:
    return dateformat.format(timezone.localtime(at, tz), pattern)


def _delivery_window(f: Fulfillment, tz: zoneinfo.ZoneInfo) -> str:
    start, end = f.estimated_delivery_start, f.estimated_delivery_end
    if start and end:
        first, last = _fmt(start, tz, "D j M"), _fmt(end, tz, "D j M")
        return first if first == last else f"{first} \N{EN DASH} {last}"
    if end:
        return f"by {_fmt(end, tz, 'D j M')}"
    if start:
        return f"from {_fmt(start, tz, 'D j M')}"
    return ""


def _safe_link(url: str) -> str:
    # Stored from webhooks; only ever link to the web.
    return url if url.lower().startswith(("https://", "http://")) else ""


@lru_cache(maxsize=64)  # ~10 ms to draw; a reload reuses it
def qr_svg(data: str) -> SafeString:
    """An inline SVG QR code (no external image, no JavaScript)."""
    image = qrcode.make(
        data,
        image_factory=qrcode.image.svg.SvgPathImage,
        error_correction=qrcode.constants.ERROR_CORRECT_M,
        border=2,
    )
    # Our own library output, with nothing from the shopper in it.
    return mark_safe(image.to_string(encoding="unicode"))  # noqa: S308


# --- what the page shows ----------------------------------------------------------------


@dataclass
class TimelineStep:
    label: str
    at: datetime
    message: str = ""
    is_problem: bool = False


@dataclass
class Shipment:
    title: str
    status: str
    status_label: str
    carrier: str
    tracking_number: str
    tracking_url: str
    window: str
    delivered_at: datetime | None
    is_late: bool
    steps: list[TimelineStep] = field(default_factory=list)


@dataclass
class ReturnWindow:
    days: int
    until: date
    is_open: bool


def _commerce_settings(order: Order) -> CommerceSettings:
    # Read-only: a tenant that never saved settings gets the defaults.
    found = CommerceSettings.objects.for_tenant(order.tenant_id).first()
    return found or CommerceSettings(tenant=order.tenant)


STATUS_LABELS = dict(FulfillmentStatus.choices)
PROBLEM_STATUSES = frozenset({FulfillmentStatus.DELAYED, FulfillmentStatus.FAILED})


def _shipments(order: Order, tz: zoneinfo.ZoneInfo) -> list[Shipment]:
    fulfillments = list(
        Fulfillment.objects.for_tenant(order.tenant_id)
        .filter(order=order)
        .prefetch_related("events")
        .order_by("id")
    )
    shipments = []
    for number, f in enumerate(fulfillments, start=1):
        title = (
            f"Parcel {number} of {len(fulfillments)}" if len(fulfillments) > 1 else "Your parcel"
        )
        steps = [
            TimelineStep(
                label=STATUS_LABELS.get(e.status, e.status),
                at=e.at,
                message=e.message,
                is_problem=e.status in PROBLEM_STATUSES,
            )
            for e in f.events.all()
        ]
        shipments.append(
            Shipment(
                title=title,
                status=f.status,
                status_label=f.get_status_display(),
                carrier=f.carrier,
                tracking_number=f.tracking_number,
                tracking_url=_safe_link(f.tracking_url),
                window=_delivery_window(f, tz),
                delivered_at=f.delivered_at,
                is_late=f.is_late,
                steps=steps,
            )
        )
    return shipments


def _return_window(
    order: Order, settings_row: CommerceSettings, tz: zoneinfo.ZoneInfo
) -> ReturnWindow:
    days = settings_row.return_window_days
    until = timezone.localtime(order.placed_at, tz).date() + timedelta(days=days)
    today = timezone.localtime(clock.now(), tz).date()
    return ReturnWindow(days=days, until=until, is_open=days > 0 and today <= until)


def _checkout_feedback_id(order: Order) -> str:
    return f"checkout-feedback:{order.pk}"


def _given_rating(order: Order) -> str | None:
    properties = (
        Touchpoint.objects.for_tenant(order.tenant_id)
        .filter(source=FEEDBACK_SOURCE, external_id=_checkout_feedback_id(order))
        .values_list("properties", flat=True)
        .first()
    )
    return properties.get("rating") if isinstance(properties, dict) else None


def _order_context(request: HttpRequest, order: Order, token: str, tz: zoneinfo.ZoneInfo) -> dict:
    settings_row = _commerce_settings(order)
    currency = order.currency
    lines = [
        {
            "name": line.name or line.sku or "Item",
            "sku": line.sku,
            "quantity": line.quantity,
            "unit_price": format_money(line.unit_price, currency),
            "discount": format_money(-line.discount, currency) if line.discount else "",
            "total": format_money(line.total, currency),
        }
        for line in order.lines.order_by("id")
    ]
    totals = [("Subtotal", format_money(order.subtotal, currency))]
    if order.discount_total:
        totals.append(("Discounts", format_money(-abs(order.discount_total), currency)))
    totals.append(
        (
            "Shipping",
            format_money(order.shipping_total, currency) if order.shipping_total else "Free",
        )
    )
    if order.fee_total:
        totals.append(("Fees", format_money(order.fee_total, currency)))
    if order.tax_total:
        totals.append(("Tax", format_money(order.tax_total, currency)))

    shipments = _shipments(order, tz)
    page_path = reverse("order-page", args=[token])
    return_qr_data = f"{public_url(page_path)}?{RETURN_MARKER[0]}={RETURN_MARKER[1]}"
    returns = _return_window(order, settings_row, tz)
    rating = _given_rating(order)
    return {
        "order": order,
        "store_name": order.tenant.name,
        "order_number": order.number or order.external_id,
        "is_cancelled": order.status == OrderStatus.CANCELLED,
        "tz_name": str(tz),
        "lines": lines,
        "totals": totals,
        "total": format_money(order.total, currency),
        "currency": currency,
        "shipments": shipments,
        "is_late": any(s.is_late for s in shipments),
        "late_delivery_policy": settings_row.late_delivery_policy,
        "returns": returns,
        "return_instructions": settings_row.return_instructions,
        "return_qr": qr_svg(return_qr_data) if returns.is_open else "",
        "is_instore_return": request.GET.get(RETURN_MARKER[0]) == RETURN_MARKER[1],
        "preferences_url": preferences_page_path(order.customer),
        "feedback_url": reverse("order-checkout-feedback", args=[token]),
        "ratings": [(value, emoji, label) for value, (emoji, label) in CHECKOUT_RATINGS.items()],
        "given_rating": CHECKOUT_RATINGS.get(rating) if rating else None,
    }


# --- responses ----------------------------------------------------------------------


def link_not_found(request: HttpRequest) -> HttpResponse:
    response = render(request, "commerce/link_not_found.html", status=404)
    return _shopper_headers(response)


def _bad_request(request: HttpRequest, message: str, back_url: str) -> HttpResponse:
    response = render(
        request,
        "commerce/bad_request.html",
        {"message": message, "back_url": back_url},
        status=400,
    )
    return _shopper_headers(response)


@require_safe
def order_page(request: HttpRequest, token: str) -> HttpResponse:
    order = order_from_token(token)
    if order is None:
        return link_not_found(request)
    tz = shopper_timezone(order)
    context = _order_context(request, order, token, tz)
    # Every date on the page reads in the shopper's timezone.
    with timezone.override(tz):
        response = render(request, "commerce/order_page.html", context)
    return _shopper_headers(response, FORM_REFERRER_POLICY)


@require_POST
def checkout_feedback(request: HttpRequest, token: str) -> HttpResponse:
    """Store the one-tap answer once per order (a second tap changes nothing)."""
    order = order_from_token(token)
    if order is None:
        return link_not_found(request)
    page_url = reverse("order-page", args=[token])
    rating = request.POST.get("rating", "")
    if rating not in CHECKOUT_RATINGS:
        return _bad_request(request, "Please pick one of the three faces.", page_url)
    created = touchpoint_record(
        tenant=order.tenant,
        customer=order.customer,
        category=TouchpointCategory.COMMERCE,
        kind=FEEDBACK_KIND,
        source=FEEDBACK_SOURCE,
        properties={"rating": rating, "order_id": order.pk},
        external_id=_checkout_feedback_id(order),
    )
    logger.info(
        "commerce.checkout_feedback tenant_id=%s order_id=%s rating=%s created=%s",
        order.tenant_id,
        order.pk,
        rating,
        created,
    )
    return _shopper_headers(redirect(f"{page_url}#checkout-feedback"))
