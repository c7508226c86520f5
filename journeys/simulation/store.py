"""The simulated storefront: each day's orders, parcels, carts and product
events as storefront payloads with their times, deterministic for a seed."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

from commerce import demo_data
from commerce.models import Customer, Product
from journeys.simulation.effects import Effects
from retention.models import Tenant

HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
ORDER_PREFIX = "SIM-"  # the storefront ids of simulated orders
# Activity per day as a share of the store's customers, with a floor so a
# small store still sees every kind of event.
NEW_BUYERS = (0.003, 2)
REPEAT_ORDERS = (0.005, 2)
CARTS = (0.002, 1)
DELAYED_SHARE = 0.1
RECOVERED_SHARE = 0.25


@dataclass(order=True)
class Event:
    at: datetime
    seq: int
    topic: str = field(compare=False)
    data: dict = field(compare=False)


@dataclass
class Line:
    sku: str
    name: str
    family: str
    price: Decimal
    tier: str


class Store:
    """Makes each day's storefront events, deterministically for a seed."""

    def __init__(
        self, tenant: Tenant, *, seed: int, start: datetime, effects: Effects | None = None
    ) -> None:
        self.tenant, self.seed, self.tag = tenant, seed, start.strftime("%y%m%d%H")
        self.effects = effects
        self.catalogue = _catalogue(tenant)
        customers = Customer.objects.for_tenant(tenant).filter(merged_into__isnull=True)
        self.size = customers.count()
        self.buyers = [
            _ref(email, phone)
            for email, phone in customers.filter(orders__isnull=False)
            .distinct()
            .order_by("pk")
            .values_list("email", "phone")
        ]
        self.made = 0
        self.seq = 0
        # First orders whose delivery may bring a first_value.reached event.
        self.first_orders: dict[str, dict] = {}

    def day(self, index: int, day_start: datetime) -> list[Event]:
        rng = random.Random(f"{self.seed}:{index}")  # noqa: S311 - a simulation, not a secret
        events: list[Event] = []
        # Repeat orders and carts come from customers known before today, so a
        # new customer's first order is their first.
        known = self.buyers[:]
        for _ in range(self._count(rng, NEW_BUYERS)):
            customer = self._new_customer(rng)
            at = day_start + timedelta(seconds=rng.randrange(86_400))
            events += self._order(rng, customer, at, first=True)
            self.buyers.append(_ref(customer["email"], customer.get("phone", "")))
        if self.effects is not None:
            self.effects.refresh(day_start)
        for _ in range(self._count(rng, REPEAT_ORDERS) if known else 0):
            at = day_start + timedelta(seconds=rng.randrange(86_400))
            who = rng.choice(known)
            keep, extra = self.effects.adjust(who) if self.effects else (True, [])
            if keep:
                events += self._order(rng, who, at)
            for other in extra:  # an injected experiment effect (simulation.effects)
                when = day_start + timedelta(seconds=self.effects.rng.randrange(86_400))
                events += self._order(self.effects.rng, other, when)
        for _ in range(self._count(rng, CARTS) if known else 0):
            events += self._cart(rng, rng.choice(known), day_start)
        return events

    def _count(self, rng: random.Random, rate: tuple[float, int]) -> int:
        share, floor = rate
        mean = max(floor, self.size * share)
        return max(floor, round(rng.gauss(mean, math.sqrt(mean))))

    def _event(self, at: datetime, topic: str, data: dict) -> Event:
        self.seq += 1
        return Event(at, self.seq, topic, data)

    def _new_customer(self, rng: random.Random) -> dict:
        self.made += 1
        number = self.size + self.made
        zone, locale, prefix, digits, _ = rng.choices(
            demo_data.REGIONS, weights=[r[4] for r in demo_data.REGIONS]
        )[0]
        customer = {
            "id": f"sim-{self.tag}-{self.made}",
            "email": f"sim-{self.tag}-{self.made}@demo.example",
            "first_name": rng.choice(demo_data.FIRST_NAMES),
            "last_name": rng.choice(demo_data.LAST_NAMES),
            "timezone": zone,
            "locale": locale,
            "accepts_email": rng.random() < 0.95,
            "preferred_channel": "email",
        }
        if rng.random() < 0.55:
            # Counted down from the top of the range: the demo's numbers count up.
            customer["phone"] = f"{prefix}{10**digits - number:0{digits}d}"
            customer["accepts_sms"] = rng.random() < 0.65
            if rng.random() < 0.2:
                customer["preferred_channel"] = "sms"
        if rng.random() < 0.1:
            customer["preferred_channel"] = "in_app"
        return customer

    def _lines(self, rng: random.Random) -> list[dict]:
        """One to three products; the expensive tier sells less often."""
        picked = rng.sample(self.catalogue, k=min(len(self.catalogue), rng.choice((1, 1, 2, 3))))
        kept = [p for p in picked if p.tier != "expensive" or rng.random() < 0.3] or picked[:1]
        return [
            {
                "sku": p.sku,
                "name": p.name,
                "product_family": p.family,
                "quantity": rng.choice((1, 1, 1, 2)),
                "unit_price": str(p.price),
                "price_tier": p.tier,
            }
            for p in kept
        ]

    def _order(
        self, rng: random.Random, customer: dict, at: datetime, *, first=False, cart_id=""
    ) -> list[Event]:
        self.seq += 1
        order_id = f"{ORDER_PREFIX}{self.tag}-{self.seq}"
        data = {
            "id": order_id,
            "number": f"#S{self.tag}{self.seq}",
            "placed_at": at,
            "customer": customer,
            "lines": self._lines(rng),
            "shipping_total": "4.95",
        }
        if cart_id:
            data["cart_id"] = cart_id
        events = [self._event(at, "order.created", data)]
        events += self._parcel(rng, order_id, at)
        if first:
            self.first_orders[order_id] = customer
            if rng.random() < 0.5:
                onboarded = at + _hours(rng, 12, 60)
                events.append(self._tracked(customer, "onboarding.completed", onboarded))
        return events

    def _parcel(self, rng: random.Random, order_id: str, placed: datetime) -> list[Event]:
        packed = placed + _hours(rng, 2, 16)
        shipped = packed + _hours(rng, 4, 20)
        statuses = [("packed", packed), ("shipped", shipped)]
        if rng.random() < DELAYED_SHARE:
            statuses.append(("delayed", shipped + _hours(rng, 12, 30)))
            out = shipped + _hours(rng, 60, 110)
        else:
            out = shipped + _hours(rng, 20, 50)
        delivered = out + _hours(rng, 1, 8)
        statuses += [("out_for_delivery", out), ("delivered", delivered)]
        base = {
            "id": f"F{order_id}",
            "order_id": order_id,
            "carrier": rng.choice(demo_data.CARRIERS),
            "tracking_number": f"00340{order_id}",
            "estimated_delivery": {"start": placed + 2 * DAY, "end": placed + 4 * DAY},
        }
        return [
            self._event(at, "fulfillment.updated", {**base, "status": status, "occurred_at": at})
            for status, at in statuses
        ]

    def _cart(self, rng: random.Random, customer: dict, day_start: datetime) -> list[Event]:
        self.seq += 1
        at = day_start + timedelta(seconds=rng.randrange(86_400))
        cart_id = f"CART-{self.tag}-{self.seq}"
        items = [
            {k: line[k] for k in ("sku", "name", "quantity", "unit_price")}
            for line in self._lines(rng)
        ]
        data = {
            "id": cart_id,
            "customer": customer,
            "items": items,
            "recovery_url": f"https://demo.example/cart/{cart_id}",
            "updated_at": at,
        }
        events = [self._event(at, "cart.updated", data)]
        if rng.random() < RECOVERED_SHARE:
            # Some come back within the hour (the cart never counts as abandoned),
            # most later, after a reminder or two.
            events += self._order(rng, customer, at + _hours(rng, 0.2, 30), cart_id=cart_id)
        return events

    def _tracked(self, customer: dict, kind: str, at: datetime, **properties) -> Event:
        self.seq += 1
        data = {
            "id": f"sim-{self.tag}-{self.seq}",
            "customer": _ref(customer.get("email", ""), customer.get("phone", "")),
            "category": "product",
            "kind": kind,
            "occurred_at": at,
            "properties": properties,
        }
        return self._event(at, "event.tracked", data)

    def after(self, event: Event, rng: random.Random) -> list[Event]:
        """Events that follow one applied now: a first delivery is the first value."""
        if event.topic == "fulfillment.updated" and event.data["status"] == "delivered":
            order = event.data["order_id"]
            if order in self.first_orders and rng.random() < 0.7:
                customer = self.first_orders.pop(order)
                return [
                    self._tracked(customer, "first_value.reached", event.at + HOUR, order=order)
                ]
        return []


def _hours(rng: random.Random, low: float, high: float) -> timedelta:
    return timedelta(hours=rng.uniform(low, high))


def _ref(email: str, phone: str) -> dict:
    return {"email": email} if email else {"phone": phone}


def _catalogue(tenant: Tenant) -> list[Line]:
    """The store's products, or the demo catalogue for a store without any
    (ingestion then creates its families and products)."""
    products = [
        Line(p.sku, p.name, p.family.name if p.family else "", p.price, p.price_tier)
        for p in Product.objects.for_tenant(tenant).select_related("family").order_by("sku")
    ]
    if products:
        return products
    return [
        Line(
            p.sku,
            p.name,
            demo_data.FAMILIES[p.family].name,
            Decimal(p.price).scaleb(-2),
            "expensive" if p.expensive else "standard",
        )
        for p in demo_data.PRODUCTS
    ]
