"""The hosted order status page /o/<token>/ and its one-tap checkout feedback."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
import qrcode
import qrcode.image.svg
from django.conf import settings
from django.core import signing
from django.test import Client

from commerce.models import (
    CommerceSettings,
    Customer,
    DeliveryEvent,
    Fulfillment,
    FulfillmentStatus,
    Order,
    OrderLine,
    OrderStatus,
    Touchpoint,
)
from commerce.tokens import (
    ORDER_PURPOSE,
    PREFERENCES_PURPOSE,
    make_token,
    order_from_token,
    order_page_url,
    order_token,
    preferences_token,
    read_token,
)
from retention import clock
from retention.models import Tenant

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
PLACED = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)  # 10:30 in Berlin
POLICY = "Late by two days? We refund the shipping. Reply to your order email."
INSTRUCTIONS = "Bring the items to Main Street 1, or use the label in your email."
NOT_FOUND_TEXT = "This link is not valid or has expired"
DASH, MINUS, TIMES = "\N{EN DASH}", "\N{MINUS SIGN}", "\N{MULTIPLICATION SIGN}"


@pytest.fixture(autouse=True)
def _frozen_now():
    clock.set_now(NOW)  # the suite's autouse fixture unfreezes it afterwards


def _settings(tenant: Tenant, **fields) -> CommerceSettings:
    row, _ = CommerceSettings.objects.get_or_create(tenant=tenant)
    values = {
        "return_window_days": 30,
        "late_delivery_policy": POLICY,
        "return_instructions": INSTRUCTIONS,
        **fields,
    }
    for name, value in values.items():
        setattr(row, name, value)
    row.save()
    return row


def _order(
    tenant: Tenant,
    *,
    number: str = "1001",
    customer_tz: str = "",
    status: str = OrderStatus.PAID,
    fulfilment_status: str | None = FulfillmentStatus.SHIPPED,
    window: tuple[datetime, datetime] | None = (
        datetime(2026, 3, 11, 8, 0, tzinfo=UTC),
        datetime(2026, 3, 13, 18, 0, tzinfo=UTC),
    ),
    events: list[tuple[str, datetime, str]] | None = None,
    item_prefix: str = "",
) -> Order:
    customer = Customer.objects.create(
        tenant=tenant, email=f"ada-{number}@{tenant.slug}.example", timezone=customer_tz
    )
    order = Order.objects.create(
        tenant=tenant,
        customer=customer,
        external_id=f"ext-{number}",
        number=number,
        status=status,
        currency="EUR",
        subtotal=Decimal("33.00"),
        discount_total=Decimal("3.00"),
        shipping_total=Decimal("4.90"),
        fee_total=Decimal("1.50"),
        tax_total=Decimal("5.27"),
        total=Decimal("41.67"),
        placed_at=PLACED,
    )
    OrderLine.objects.create(
        tenant=tenant,
        order=order,
        sku="MUG-1",
        name=f"{item_prefix}Blue Mug",
        quantity=2,
        unit_price=Decimal("12.50"),
        total=Decimal("25.00"),
    )
    OrderLine.objects.create(
        tenant=tenant,
        order=order,
        sku="TEA-250",
        name=f"{item_prefix}Green Tea 250g",
        quantity=1,
        unit_price=Decimal("8.00"),
        discount=Decimal("1.00"),
        total=Decimal("7.00"),
    )
    if fulfilment_status is not None:
        fulfilment = Fulfillment.objects.create(
            tenant=tenant,
            order=order,
            external_id=f"ful-{number}",
            status=fulfilment_status,
            carrier="DHL",
            tracking_number="JD0001",
            tracking_url="https://track.example/JD0001",
            estimated_delivery_start=window[0] if window else None,
            estimated_delivery_end=window[1] if window else None,
        )
        if events is None:
            events = [
                (FulfillmentStatus.PACKED, datetime(2026, 3, 2, 8, 0, tzinfo=UTC), "At warehouse"),
                (FulfillmentStatus.SHIPPED, datetime(2026, 3, 3, 10, 0, tzinfo=UTC), ""),
            ]
        for status_, at, message in events:
            DeliveryEvent.objects.create(
                tenant=tenant, fulfillment=fulfilment, status=status_, at=at, message=message
            )
    return order


def _page(order: Order, client: Client | None = None, query: str = ""):
    return (client or Client()).get(f"/o/{order_token(order)}/{query}")


def _assert_shopper_headers(response, referrer_policy: str = "no-referrer") -> None:
    assert response["Cache-Control"] == "private, no-store"
    assert response["X-Robots-Tag"] == "noindex"
    assert response["Referrer-Policy"] == referrer_policy


def _assert_link_not_found(response) -> None:
    assert response.status_code == 404
    assert NOT_FOUND_TEXT in response.content.decode()
    _assert_shopper_headers(response)


def _feedback(tenant: Tenant):
    return Touchpoint.objects.for_tenant(tenant).filter(kind="checkout.feedback")


# --- the page ---------------------------------------------------------------------------


def test_order_page_shows_items_totals_timeline_window_and_returns(tenant):
    _settings(tenant)
    order = _order(tenant)

    response = _page(order)

    assert response.status_code == 200
    body = response.content.decode()
    assert "Alpha Store" in body
    assert "<h1>Order 1001</h1>" in body
    assert "Placed 1 March 2026, 10:30" in body  # the store's timezone, Europe/Berlin
    # items with quantities and prices
    assert "Blue Mug" in body
    assert f"2 {TIMES} €12.50" in body
    assert "€25.00" in body
    assert "Green Tea 250g" in body
    assert f"1 {TIMES} €8.00 · discount {MINUS}€1.00" in body
    # totals
    for label, value in [
        ("Subtotal", "€33.00"),
        ("Discounts", f"{MINUS}€3.00"),
        ("Shipping", "€4.90"),
        ("Fees", "€1.50"),
        ("Tax", "€5.27"),
    ]:
        assert f'<tr><td>{label}</td><td class="num">{value}</td></tr>' in body
    assert '<tr class="grand"><td>Total</td><td class="num">€41.67</td></tr>' in body
    # delivery timeline and window (in Berlin time)
    assert f"Estimated delivery: <strong>Wed 11 Mar {DASH} Fri 13 Mar</strong>" in body
    assert '<strong>Order placed</strong><span class="when">Sun 1 Mar, 10:30</span>' in body
    assert (
        f'<strong>Packed</strong> {DASH} At warehouse<span class="when">Mon 2 Mar, 09:00</span>'
        in body
    )
    assert '<strong>Shipped</strong><span class="when">Tue 3 Mar, 11:00</span>' in body
    assert 'href="https://track.example/JD0001" rel="noreferrer noopener"' in body
    assert "running late" not in body
    # returns: 1 March + 30 days, with instructions and the in-store QR code
    assert "You can return items until <strong>31 March 2026</strong>" in body
    assert INSTRUCTIONS in body
    assert "<svg" in body
    # preferences link carries a preferences token for this customer
    prefs = f'href="/u/{preferences_token(order.customer)}/"'
    assert prefs in body
    # the feedback cue
    assert "How did checkout feel?" in body
    assert 'name="csrfmiddlewaretoken"' in body
    for value in ("easy", "okay", "hard"):
        assert f'name="rating" value="{value}"' in body
    _assert_shopper_headers(response, referrer_policy="strict-origin")


def test_return_qr_code_encodes_the_order_page_url_with_a_return_marker(tenant):
    _settings(tenant)
    order = _order(tenant)
    token = order_token(order)
    expected = f"{settings.PUBLIC_BASE_URL}/o/{token}/?return=instore"
    svg = qrcode.make(
        expected,
        image_factory=qrcode.image.svg.SvgPathImage,
        error_correction=qrcode.constants.ERROR_CORRECT_M,
        border=2,
    ).to_string(encoding="unicode")

    body = Client().get(f"/o/{token}/").content.decode()

    assert svg in body


def test_scanned_return_code_greets_the_store_clerk(tenant):
    _settings(tenant)
    order = _order(tenant)

    body = _page(order, query="?return=instore").content.decode()

    assert "In-store return" in body
    assert "This order can be returned until <strong>31 March 2026</strong>" in body


def test_preferences_link_token_names_the_tenant_and_customer(tenant):
    order = _order(tenant)

    fields = read_token(
        PREFERENCES_PURPOSE, preferences_token(order.customer), max_age=timedelta(days=1)
    )

    assert fields == {"t": tenant.pk, "c": order.customer.pk}


def test_dates_read_in_the_customers_timezone_when_known(tenant):
    order = _order(tenant, customer_tz="America/New_York")

    body = _page(order).content.decode()

    assert "Placed 1 March 2026, 04:30" in body
    assert "Times are shown in America/New_York." in body


def test_an_unknown_customer_timezone_falls_back_to_the_stores(tenant):
    order = _order(tenant, customer_tz="Mars/Olympus_Mons")

    body = _page(order).content.decode()

    assert "Placed 1 March 2026, 10:30" in body
    assert "Times are shown in Europe/Berlin." in body


def test_order_without_settings_uses_the_default_return_window(tenant):
    CommerceSettings.objects.filter(tenant=tenant).delete()
    order = _order(tenant, fulfilment_status=None)

    response = _page(order)

    body = response.content.decode()
    assert response.status_code == 200
    assert "You can return items until <strong>31 March 2026</strong>" in body
    assert "Tracking appears here as soon as it ships." in body
    assert not CommerceSettings.objects.filter(tenant=tenant).exists()  # a GET writes nothing


def test_delayed_fulfilment_shows_the_late_notice_and_policy(tenant):
    _settings(tenant)
    order = _order(
        tenant,
        fulfilment_status=FulfillmentStatus.DELAYED,
        events=[
            (FulfillmentStatus.SHIPPED, datetime(2026, 3, 3, 10, 0, tzinfo=UTC), ""),
            (FulfillmentStatus.DELAYED, datetime(2026, 3, 9, 7, 0, tzinfo=UTC), "Storm"),
        ],
    )

    body = _page(order).content.decode()

    assert "Your delivery is running late" in body
    assert POLICY in body
    assert f'<li class="problem"><strong>Delayed</strong> {DASH} Storm' in body
    assert f"We expected it: <strong>Wed 11 Mar {DASH} Fri 13 Mar</strong>" in body


def test_fulfilment_past_its_window_shows_the_late_notice(tenant):
    _settings(tenant)
    order = _order(
        tenant,
        window=(
            datetime(2026, 3, 6, 8, 0, tzinfo=UTC),
            datetime(2026, 3, 8, 18, 0, tzinfo=UTC),
        ),
    )

    body = _page(order).content.decode()

    assert "Your delivery is running late" in body
    assert POLICY in body
    assert "Running late</span>" in body


def test_delivered_parcel_is_never_late(tenant):
    _settings(tenant)
    order = _order(
        tenant,
        fulfilment_status=FulfillmentStatus.DELIVERED,
        window=(
            datetime(2026, 3, 4, 8, 0, tzinfo=UTC),
            datetime(2026, 3, 5, 18, 0, tzinfo=UTC),
        ),
    )
    Fulfillment.objects.for_tenant(tenant).update(
        delivered_at=datetime(2026, 3, 5, 12, 0, tzinfo=UTC)
    )

    body = _page(order).content.decode()

    assert "running late" not in body
    assert "Delivered Thursday 5 March, 13:00" in body


def test_return_window_closes_after_the_configured_days(tenant):
    _settings(tenant, return_window_days=14)
    order = _order(tenant)
    token = order_token(order)

    body = Client().get(f"/o/{token}/").content.decode()  # 10 March: 1 March + 14 is open

    assert "You can return items until <strong>15 March 2026</strong>" in body

    clock.advance(days=6)  # 16 March in Berlin
    body = Client().get(f"/o/{token}/").content.decode()

    assert "The return window is <strong>closed</strong>" in body
    assert "(it ended on 15 March 2026)" in body
    assert "<svg" not in body
    assert INSTRUCTIONS not in body


def test_cancelled_order_says_so_and_offers_no_return(tenant):
    _settings(tenant)
    order = _order(tenant, status=OrderStatus.CANCELLED, fulfilment_status=None)

    body = _page(order).content.decode()

    assert "This order was cancelled" in body
    assert 'id="returns"' not in body


# --- tokens --------------------------------------------------------------------------


def test_order_token_round_trips_and_is_compact(tenant):
    order = _order(tenant)

    token = order_token(order)

    assert len(token) < 100
    assert order_from_token(token) == order
    assert order_page_url(order) == f"{settings.PUBLIC_BASE_URL}/o/{token}/"


@pytest.mark.parametrize("position", [0, 5, -1, -10])
def test_tampered_token_gets_the_not_found_page(tenant, position):
    order = _order(tenant)
    token = order_token(order)
    index = position % len(token)
    flipped = "A" if token[index] != "A" else "B"
    tampered = token[:index] + flipped + token[index + 1 :]

    _assert_link_not_found(Client().get(f"/o/{tampered}/"))


@pytest.mark.parametrize("token", ["not-a-token", "a:b:c", "x" * 2000, "%00", "..:..", ".eJzz:1:2"])
def test_malformed_token_gets_the_not_found_page(db, token):
    _assert_link_not_found(Client().get(f"/o/{token}/"))


def test_expired_token_gets_the_not_found_page(tenant):
    order = _order(tenant)
    token = order_token(order)

    clock.advance(days=179)
    assert Client().get(f"/o/{token}/").status_code == 200

    clock.advance(days=2)  # 181 days after signing
    _assert_link_not_found(Client().get(f"/o/{token}/"))


def test_token_forged_without_the_key_gets_the_not_found_page(tenant, other_tenant):
    other_order = _order(other_tenant, number="2002")
    forged = signing.TimestampSigner(
        key="attacker-guess", salt=f"retention.hosted.{ORDER_PURPOSE}"
    ).sign_object({"t": other_tenant.pk, "o": other_order.pk})

    _assert_link_not_found(Client().get(f"/o/{forged}/"))


def test_token_for_another_purpose_gets_the_not_found_page(tenant):
    order = _order(tenant)
    wrong_purpose = make_token(PREFERENCES_PURPOSE, t=tenant.pk, o=order.pk)

    _assert_link_not_found(Client().get(f"/o/{wrong_purpose}/"))


def test_token_for_an_unknown_order_gets_the_not_found_page(tenant):
    unknown = make_token(ORDER_PURPOSE, t=tenant.pk, o=987654)

    _assert_link_not_found(Client().get(f"/o/{unknown}/"))


def test_token_naming_tenant_a_never_shows_tenant_bs_order(tenant, other_tenant):
    _order(tenant, number="1001")
    b_order = _order(other_tenant, number="2002", item_prefix="Bravo ")
    mixed = make_token(ORDER_PURPOSE, t=tenant.pk, o=b_order.pk)

    response = Client().get(f"/o/{mixed}/")

    _assert_link_not_found(response)
    assert "Bravo" not in response.content.decode()


def test_tenant_as_page_shows_only_tenant_as_data(tenant, other_tenant):
    a_order = _order(tenant, number="1001")
    _order(other_tenant, number="2002", item_prefix="Bravo ")

    body = _page(a_order).content.decode()

    assert "Alpha Store" in body
    assert "Bravo" not in body
    assert "2002" not in body


def test_inactive_store_links_get_the_not_found_page(tenant):
    order = _order(tenant)
    Tenant.objects.filter(pk=tenant.pk).update(is_active=False)

    _assert_link_not_found(_page(order))


# --- checkout feedback -------------------------------------------------------------------


def test_checkout_feedback_is_stored_once_on_double_tap(tenant):
    order = _order(tenant)
    token = order_token(order)
    client = Client()

    first = client.post(f"/o/{token}/checkout-feedback/", {"rating": "easy"})
    second = client.post(f"/o/{token}/checkout-feedback/", {"rating": "hard"})

    for response in (first, second):
        assert response.status_code == 302
        assert response["Location"] == f"/o/{token}/#checkout-feedback"
        _assert_shopper_headers(response)
    stored = list(_feedback(tenant))
    assert len(stored) == 1
    touchpoint = stored[0]
    assert touchpoint.customer_id == order.customer_id
    assert touchpoint.category == "commerce"
    assert touchpoint.kind == "checkout.feedback"
    assert touchpoint.source == "order_page"
    assert touchpoint.properties == {"rating": "easy", "order_id": order.pk}
    assert touchpoint.external_id == f"checkout-feedback:{order.pk}"
    assert touchpoint.occurred_at == NOW

    body = client.get(f"/o/{token}/").content.decode()
    assert "Thank you!" in body
    assert "You told us checkout felt <strong>easy</strong>" in body
    assert "How did checkout feel?" not in body


@pytest.mark.parametrize("data", [{"rating": "great"}, {"rating": ""}, {}, {"rating": "EASY"}])
def test_invalid_rating_gets_400_and_stores_nothing(tenant, data):
    order = _order(tenant)

    response = Client().post(f"/o/{order_token(order)}/checkout-feedback/", data)

    assert response.status_code == 400
    assert "Please pick one of the three faces." in response.content.decode()
    _assert_shopper_headers(response)
    assert not _feedback(tenant).exists()


def test_checkout_feedback_with_a_bad_token_gets_404_and_stores_nothing(tenant, other_tenant):
    order = _order(tenant)
    b_order = _order(other_tenant, number="2002")
    token = order_token(order)
    mixed = make_token(ORDER_PURPOSE, t=tenant.pk, o=b_order.pk)

    tampered = token[:-1] + ("A" if token[-1] != "A" else "B")

    for bad in (tampered, mixed):
        _assert_link_not_found(Client().post(f"/o/{bad}/checkout-feedback/", {"rating": "easy"}))

    assert not _feedback(tenant).exists()
    assert not _feedback(other_tenant).exists()


def test_checkout_feedback_keeps_csrf_protection(tenant):
    order = _order(tenant)
    token = order_token(order)
    url = f"/o/{token}/checkout-feedback/"
    client = Client(enforce_csrf_checks=True)

    assert client.post(url, {"rating": "easy"}).status_code == 403
    assert not _feedback(tenant).exists()

    client.get(f"/o/{token}/")  # sets the CSRF cookie, as the browser would
    csrf = client.cookies["csrftoken"].value
    # Under "Referrer-Policy: no-referrer" browsers send "Origin: null" with the
    # form, which Django rejects: why the order page uses "strict-origin".
    null_origin = client.post(
        url, {"rating": "easy", "csrfmiddlewaretoken": csrf}, HTTP_ORIGIN="null"
    )
    assert null_origin.status_code == 403
    assert not _feedback(tenant).exists()

    response = client.post(
        url, {"rating": "okay", "csrfmiddlewaretoken": csrf}, HTTP_ORIGIN="http://testserver"
    )
    assert response.status_code == 302
    assert [t.properties for t in _feedback(tenant)] == [{"rating": "okay", "order_id": order.pk}]


def test_checkout_feedback_only_accepts_post(tenant):
    order = _order(tenant)

    response = Client().get(f"/o/{order_token(order)}/checkout-feedback/")

    assert response.status_code == 405
    assert not _feedback(tenant).exists()
