"""A demo store's history, generated with numpy: pure computation, no database.

``generate(spec)`` yields one :class:`Chunk` per block of customers. A chunk holds
one *frame* per table: a dict of equally long numpy arrays keyed by database
column. The writers in ``commerce/management/commands/seed_demo.py`` turn frames
into rows (PostgreSQL COPY, or ``bulk_create`` elsewhere).

Conventions inside a frame:

- text is UTF-8 bytes (numpy ``S`` arrays); JSON columns hold JSON text;
- money is int64 cents; times are ``datetime64[us]`` in UTC, ``NaT`` for NULL;
- ``customer_id``, ``order_id`` and ``fulfillment_id`` are row numbers into the
  same chunk's ``customer`` / ``order`` / ``fulfillment`` frames (-1 for NULL);
  ``product_id`` and ``family_id`` are positions in :data:`PRODUCTS` and
  :data:`FAMILIES`. The writer maps all of them to real ids.

The story is buy-till-you-die: every customer has a latent purchase rhythm (the
cycle of their main product family times a personal multiplier) and, after each
order, a chance to drop out for good. That chance rises with what went wrong on
the order (a late parcel, a return, a slow support answer) and falls with
engagement (onboarding, opening our emails), so buying behaviour and the
touchpoints around it carry real signal for churn models. The same seed,
customer count, days and ``now`` give the same data: chunk ``i`` draws from
``SeedSequence([seed, i])`` and chunks have a fixed size.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import numpy as np

CHUNK_CUSTOMERS = 50_000
# Phone numbers and storefront ids derive from the customer number and stay
# unique up to here.
MAX_CUSTOMERS = 5_000_000
CART_ABANDON_MINUTES = 60  # CommerceSettings.cart_abandon_minutes' default
TAX_RATE = 0.08
FREE_SHIPPING_FROM = 5_000  # cents
SHIPPING = 495
GIFT_WRAP_FEE = 250
CAMPAIGN_EVERY_DAYS = 14

Frame = dict[str, np.ndarray]

# Families: slug | name | days one purchase lasts | share of customers | related
# families | SKU prefix; then products: name | price, "*" marks the expensive tier.
_CATALOGUE = """
coffee | Coffee | 21 | 0.22 | tea | COF
    House blend beans 250 g | 9.90
    Espresso roast 250 g | 10.90
    Decaf blend 250 g | 10.50
    Filter coffee ground 500 g | 14.90
    Single origin Ethiopia 250 g | 13.90
    Cold brew pack 6 x 330 ml | 12.90
  * Geisha reserve beans 1 kg | 79.00
  * Espresso box 2 kg | 54.00
tea | Tea | 28 | 0.12 | coffee, supplements | TEA
    Earl grey 100 g | 6.90
    Green sencha 100 g | 7.90
    Spiced chai 150 g | 8.50
    Rooibos vanilla 100 g | 6.50
    Peppermint 40 bags | 4.90
    Chamomile 40 bags | 5.20
  * Ceremonial matcha 100 g | 59.00
skincare | Skincare | 42 | 0.16 | haircare, shaving | SKN
    Daily moisturiser 50 ml | 18.90
    Gentle cleanser 150 ml | 12.90
    SPF 50 fluid 50 ml | 21.90
    Vitamin C serum 30 ml | 28.90
    Night cream 50 ml | 24.90
    Hydrating toner 200 ml | 15.90
  * Retinol renewal set | 89.00
  * Rose face oil 30 ml | 64.00
haircare | Haircare | 35 | 0.10 | skincare | HAI
    Repair shampoo 250 ml | 11.90
    Conditioner 250 ml | 11.90
    Hair mask 200 ml | 16.90
    Scalp serum 50 ml | 22.90
    Dry shampoo 200 ml | 8.90
    Leave-in spray 150 ml | 13.90
  * Salon care bundle | 69.00
supplements | Supplements | 30 | 0.12 | tea, skincare | SUP
    Vitamin D3 90 caps | 12.90
    Magnesium 120 tabs | 14.90
    Omega-3 90 caps | 19.90
    Multivitamin 60 tabs | 16.90
    Probiotic 30 caps | 24.90
    Zinc 100 tabs | 8.90
  * 90-day wellness pack | 89.00
  * Collagen powder 1 kg | 59.00
pet-food | Pet food | 24 | 0.12 | household | PET
    Dry dog food 2 kg | 18.90
    Dry cat food 1.5 kg | 15.90
    Wet cat food 12 x 85 g | 12.90
    Dog treats 300 g | 6.90
    Puppy food 2 kg | 21.90
    Grain-free dog food 2 kg | 24.90
  * Premium dog food 12 kg | 89.00
household | Household | 45 | 0.10 | pet-food | HOU
    Laundry liquid 2 l | 12.90
    Dish soap refill 1 l | 5.90
    All-purpose cleaner 750 ml | 4.90
    Dishwasher tablets 60 | 14.90
    Fabric softener 1.5 l | 7.90
    Bathroom cleaner 750 ml | 5.50
  * Eco refill bundle 6 months | 69.00
shaving | Shaving | 56 | 0.06 | skincare, haircare | SHV
    Razor blades 8 pack | 19.90
    Shaving gel 200 ml | 5.90
    Aftershave balm 100 ml | 14.90
    Shaving cream 150 ml | 8.90
    Beard oil 30 ml | 16.90
    Disposable razors 10 pack | 9.90
  * Razor handle and 24 blades | 59.00
  * Safety razor set | 74.00
"""


@dataclass(frozen=True)
class FamilySpec:
    slug: str
    name: str
    cycle_days: int  # how long one purchase typically lasts
    popularity: float
    related: tuple[str, ...]
    sku_prefix: str

    @property
    def windows(self) -> dict[str, int]:
        """ProductFamily trigger windows (days after a purchase) for this rhythm."""
        c = self.cycle_days
        return {
            "reorder_days": max(3, round(c / 3)),
            "upsell_days": round(c * 2 / 3),
            "replenishment_days": c,
            "expensive_min_days": round(c * 0.75),
            "expensive_max_days": round(c * 1.25),
        }


@dataclass(frozen=True)
class ProductSpec:
    sku: str
    name: str
    family: int  # position in FAMILIES
    price: int  # cents
    expensive: bool


def _parse_catalogue() -> tuple[tuple[FamilySpec, ...], tuple[ProductSpec, ...]]:
    families: list[FamilySpec] = []
    products: list[ProductSpec] = []
    for line in _CATALOGUE.strip("\n").splitlines():
        cells = [c.strip() for c in line.split("|")]
        if not line.startswith(" "):
            slug, name, cycle, share, related, prefix = cells
            rel = tuple(r.strip() for r in related.split(","))
            families.append(FamilySpec(slug, name, int(cycle), float(share), rel, prefix))
            continue
        fam = families[-1]
        number = sum(p.family == len(families) - 1 for p in products) + 1
        products.append(
            ProductSpec(
                sku=f"{fam.sku_prefix}-{number:03d}",
                name=cells[0].removeprefix("*").strip(),
                family=len(families) - 1,
                price=round(float(cells[1]) * 100),
                expensive=cells[0].startswith("*"),
            )
        )
    return tuple(families), tuple(products)


FAMILIES, PRODUCTS = _parse_catalogue()


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


# timezone, locale, mobile prefix (E.164), digits after the prefix, share of customers
REGIONS = (
    ("Europe/Berlin", "de-DE", "+49151", 8, 0.40),
    ("Europe/Vienna", "de-AT", "+43664", 8, 0.05),
    ("Europe/London", "en-GB", "+447", 9, 0.15),
    ("Europe/Paris", "fr-FR", "+336", 8, 0.12),
    ("Europe/Amsterdam", "nl-NL", "+316", 8, 0.10),
    ("Europe/Madrid", "es-ES", "+346", 8, 0.08),
    ("America/New_York", "en-US", "+1415", 7, 0.10),
)
FIRST_NAMES = _words(
    "Anna Ben Clara David Emma Felix Greta Hugo Ida Jonas Lea Luca Mia Noah Olivia Paul Rosa Sam"
)
LAST_NAMES = _words(
    "Becker Martin Smith Garcia Jansen Dubois Fischer Weber Brown Moreau Lopez Wagner Taylor Koch"
)
CARRIERS = ("DHL", "DPD", "UPS", "GLS")
FEATURES = ("wishlist", "subscriptions", "reviews", "referrals", "order_tracking_app")
RETURN_REASONS = (
    "changed my mind",
    "not as described",
    "wrong size or variant",
    "arrived damaged",
    "did not suit me",
)
DAMAGED = 3
EVENT_STATUSES = ("packed", "shipped", "delayed", "out_for_delivery", "delivered")
EVENT_MESSAGES = (
    "Packed at the warehouse",
    "Handed to the carrier",
    "The carrier reported a delay; a new delivery date follows",
    "Out for delivery today",
    "Delivered",
)
TOUCH_KINDS = (  # category, kind, source
    ("product", "onboarding.completed", "app"),
    ("product", "feature.activated", "app"),
    ("product", "first_value.reached", "app"),
    ("support", "ticket.opened", "helpdesk"),
    ("support", "ticket.answered", "helpdesk"),
    ("marketing", "message.sent", "messaging"),
    ("marketing", "message.opened", "messaging"),
    ("marketing", "message.clicked", "messaging"),
)


@dataclass(frozen=True)
class DemoSpec:
    customers: int
    days: int
    seed: int
    now: datetime
    currency: str = "EUR"


@dataclass
class Chunk:
    index: int
    customer_offset: int  # customer number (0-based) of the chunk's first row
    tables: dict[str, Frame] = field(default_factory=dict)

    def counts(self) -> dict[str, int]:
        return {name: len(next(iter(frame.values()))) for name, frame in self.tables.items()}


def generate(spec: DemoSpec) -> Iterator[Chunk]:
    """Every chunk of the demo history, in order."""
    if not 1 <= spec.customers <= MAX_CUSTOMERS:
        raise ValueError(f"customers must be between 1 and {MAX_CUSTOMERS:,}")
    if spec.days < 30:
        raise ValueError("days must be at least 30")
    order_offset = 0
    for index, start in enumerate(range(0, spec.customers, CHUNK_CUSTOMERS)):
        n = min(CHUNK_CUSTOMERS, spec.customers - start)
        chunk = generate_chunk(spec, index=index, start=start, n=n, order_offset=order_offset)
        order_offset += len(chunk.tables["order"]["placed_at"])
        yield chunk


# --- small vectorised helpers -------------------------------------------------


def _b(values) -> np.ndarray:
    """A bytes vocabulary from strings."""
    return np.array([str(v).encode() for v in values])


def _s(a: np.ndarray) -> np.ndarray:
    """Integers as decimal bytes, as narrow as they fit."""
    out = np.asarray(a).astype("S20")
    return out.astype(f"S{max(1, int(np.strings.str_len(out).max(initial=1)))}")


def _cat(*parts) -> np.ndarray:
    out = parts[0]
    for p in parts[1:]:
        out = np.strings.add(out, p)
    return out


def _money_text(cents: np.ndarray) -> np.ndarray:
    frac = np.strings.slice((cents % 100 + 100).astype("S3"), 1, None)
    return _cat(_s(cents // 100), b".", frac)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _within(groups: np.ndarray) -> np.ndarray:
    """Position of each element inside its run of equal (sorted) group ids."""
    if len(groups) == 0:
        return np.zeros(0, np.int64)
    start = np.r_[True, groups[1:] != groups[:-1]]
    first = np.maximum.accumulate(np.where(start, np.arange(len(groups)), 0))
    return np.arange(len(groups)) - first


def group_join(frags: np.ndarray, groups: np.ndarray, n_groups: int) -> np.ndarray:
    """JSON arrays without a Python loop: the byte strings of each group (ids
    sorted ascending) joined as ``[a, b, …]``, one per group."""
    last = np.r_[groups[1:] != groups[:-1], True] if len(groups) else np.zeros(0, bool)
    frags = np.where(last, frags, np.strings.add(frags, b", "))
    lengths = np.strings.str_len(frags).astype(np.int64)
    glen = np.bincount(groups, weights=lengths, minlength=n_groups).astype(np.int64)
    width = int(glen.max(initial=0)) + 2
    out = np.zeros((n_groups, width), np.uint8)
    out[:, 0] = ord("[")
    out[np.arange(n_groups), 1 + glen] = ord("]")
    if len(frags):
        src = frags.view(np.uint8).reshape(len(frags), frags.dtype.itemsize)
        flat = src[np.arange(src.shape[1]) < lengths[:, None]]
        # Byte j of fragment i sits in flat at (bytes of fragments before i) + j
        # and goes to its group's row, after "[" and the group's earlier fragments.
        group_start = (np.cumsum(glen) - glen)[groups]
        base = groups * width + 1 - group_start
        out.ravel()[np.repeat(base, lengths) + np.arange(flat.size)] = flat
    return out.view(f"S{width}").ravel()


class _Catalog:
    """The catalogue as arrays, for vectorised picks."""

    def __init__(self) -> None:
        nf = len(FAMILIES)
        position = {f.slug: i for i, f in enumerate(FAMILIES)}
        self.cycle = np.array([f.cycle_days for f in FAMILIES], float)
        self.popularity = np.array([f.popularity for f in FAMILIES])
        # Two related families per family (repeated when there is one).
        self.related = np.array([([position[s] for s in f.related] * 2)[:2] for f in FAMILIES])
        self.price = np.array([p.price for p in PRODUCTS], np.int64)
        self.family = np.array([p.family for p in PRODUCTS])
        self.expensive = np.array([p.expensive for p in PRODUCTS])
        self.sku = _b(p.sku for p in PRODUCTS)
        self.name = _b(p.name for p in PRODUCTS)
        self.tier = np.where(self.expensive, b"expensive", b"standard")
        self.tables = {}
        for tier in (False, True):
            members = [
                np.flatnonzero((self.family == f) & (self.expensive == tier)) for f in range(nf)
            ]
            width = max(len(m) for m in members)
            self.tables[tier] = (
                np.array([m[np.arange(width) % len(m)] for m in members]),
                np.array([len(m) for m in members]),
            )
        self.item_json_prefix = _b(
            f'{{"sku": "{p.sku}", "name": "{p.name}", '
            f'"unit_price": "{p.price // 100}.{p.price % 100:02d}", "quantity": '
            for p in PRODUCTS
        )

    def pick(self, rng, family: np.ndarray, expensive: np.ndarray) -> np.ndarray:
        """A random product of each family, of the expensive tier where asked."""
        u = rng.random(len(family))
        picks = {}
        for tier, (table, count) in self.tables.items():
            picks[tier] = table[family, (u * count[family]).astype(np.int64)]
        return np.where(expensive, picks[True], picks[False])

    def items_json(self, product: np.ndarray, quantity: np.ndarray) -> np.ndarray:
        return _cat(self.item_json_prefix[product], _s(quantity), b"}")


CATALOG = _Catalog()


@dataclass
class _Ctx:
    rng: np.random.Generator
    T: float  # now, in days since the start of the history
    start_us: int  # the start of the history, in Unix microseconds

    def ts(self, t) -> np.ndarray:
        """Days since the start (NaN = none) as datetime64[us], whole seconds."""
        t = np.asarray(t, float)
        ok = np.isfinite(t)
        us = self.start_us + np.floor(np.where(ok, t, 0) * 86_400).astype(np.int64) * 1_000_000
        return np.where(ok, us, np.iinfo(np.int64).min).view("M8[us]")


# --- one chunk ------------------------------------------------------------------


def generate_chunk(spec: DemoSpec, *, index: int, start: int, n: int, order_offset: int) -> Chunk:
    """Customers ``start .. start + n`` and everything that happened to them."""
    now_us = (spec.now - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)
    cx = _Ctx(
        rng=np.random.default_rng(np.random.SeedSequence([spec.seed, index])),
        T=float(spec.days),
        start_us=now_us - spec.days * 86_400_000_000,
    )
    currency = spec.currency.encode()
    number = np.arange(start, start + n, dtype=np.int64) + 1  # c1@demo.example, …
    cust = _traits(cx, n)
    orders = _purchases(cx, cust)
    lines = _lines(cx, cust, orders)
    tables: dict[str, Frame] = _customer_tables(cx, cust, number, orders)
    money = _money(cx, orders, lines)
    ext = _s(4_500_000_000 + order_offset + np.arange(len(orders["cust"])))
    ful = _fulfilments(cx, orders)
    ret = _returns(cx, orders, lines, ful, money["line_total"])
    tables["order"] = _order_frame(cx, orders, money, ful, ret, ext, order_offset, currency)
    tables["line"] = {
        "order_id": lines["order"],
        "product_id": lines["product"],
        "family_id": CATALOG.family[lines["product"]],
        "sku": CATALOG.sku[lines["product"]],
        "name": CATALOG.name[lines["product"]],
        "quantity": lines["quantity"],
        "unit_price": CATALOG.price[lines["product"]],
        "discount": money["line_discount"],
        "total": money["line_total"],
        "price_tier": CATALOG.tier[lines["product"]],
    }
    tables["fulfillment"] = _fulfilment_frame(cx, ful, ext)
    tables["event"] = {
        "fulfillment_id": ful["ev_ful"],
        "status": _b(EVENT_STATUSES)[ful["ev_kind"]],
        "at": cx.ts(ful["ev_t"]),
        "message": _b(EVENT_MESSAGES)[ful["ev_kind"]],
    }
    tables["cart"] = _carts(cx, cust, number, orders, lines, money["subtotal"], currency)
    tables["return"] = {
        "order_id": ret["order"],
        "source": np.full(len(ret["order"]), b"storefront"),
        "external_id": _cat(b"R", ext[ret["order"]]),
        "reason": _b(RETURN_REASONS)[ret["reason"]],
        "refund_amount": ret["amount"],
        "lines": ret["lines"],
        "created_at": cx.ts(ret["t"]),
    }
    tables["touchpoint"] = _touchpoints(cx, cust, orders, ful, ext)
    return Chunk(index=index, customer_offset=start, tables=tables)


def _traits(cx: _Ctx, n: int) -> dict:
    """Latent traits: when each customer joined, what they buy, how often, how
    likely they are to leave after an order, and how engaged they are."""
    rng, cat = cx.rng, CATALOG
    join = cx.T * rng.random(n) ** 0.9 * 0.995  # a growing store: more recent sign-ups
    fam1 = rng.choice(len(FAMILIES), n, p=cat.popularity)
    fam2 = np.where(rng.random(n) < 0.35, cat.related[fam1, rng.integers(0, 2, n)], -1)
    heavy = rng.random(n) < 0.10
    mult = np.where(heavy, np.exp(rng.normal(-0.15, 0.15, n)), np.exp(rng.normal(0.1, 0.4, n)))
    p_drop = rng.beta(1.0, 3.5, n) * np.where(heavy, 0.25, 1.0)
    engagement = rng.standard_normal(n)
    onboard_t = join + rng.exponential(1.5, n)
    onboarded = (rng.random(n) < _sigmoid(0.2 + 0.9 * engagement)) & (onboard_t < cx.T)
    return {
        "n": n,
        "join": join,
        "buyer": rng.random(n) < 0.9,
        "fam1": fam1,
        "fam2": fam2,
        "fav": cat.pick(rng, fam1, np.zeros(n, bool)),
        "premium": rng.random(n) < 0.15,
        "seeker": rng.random(n) < 0.25,  # buys mostly with a discount
        "gap": cat.cycle[fam1] * mult,  # mean days between orders
        "shape": rng.choice([1.0, 2.0, 3.0], n, p=[0.3, 0.4, 0.3]),  # regularity
        "p_drop": p_drop,
        "engagement": engagement,
        "onboarded": onboarded,
        "onboard_t": np.where(onboarded, onboard_t, np.nan),
        "lines_mean": np.where(heavy, 2.3, 1.8),
    }


def _purchases(cx: _Ctx, c: dict) -> dict[str, np.ndarray]:
    """Orders while alive: gamma-spaced around each customer's rhythm, with a
    chance to drop out after each order that grows with what went wrong. The
    loop runs once per order *number* (a few dozen times), vectorised over
    customers. Sets ``c["died"]`` (inf while still alive)."""
    rng, n = cx.rng, c["n"]
    t = c["join"] + rng.exponential(0.02, n)
    active = c["buyer"] & (t < cx.T)
    died = np.where(c["buyer"], np.inf, c["join"] + rng.exponential(20, n))
    rows: list[dict[str, np.ndarray]] = []
    k = 0
    while active.any():
        idx = np.flatnonzero(active)
        m = len(idx)
        cancelled = rng.random(m) < 0.02
        delayed = ~cancelled & (rng.random(m) < 0.07)
        returned = ~cancelled & (rng.random(m) < np.where(c["premium"][idx], 0.06, 0.035))
        discounted = rng.random(m) < np.where(c["seeker"][idx], 0.6, 0.08)
        ticket = ~cancelled & (rng.random(m) < 0.02 + 0.45 * delayed + 0.5 * returned)
        resp = np.exp(rng.normal(np.log(4 * 3600), 1.2, m))  # median 4 h, long tail
        rows.append(
            {
                "cust": idx,
                "t": t[idx],
                "k": np.full(m, k),
                "cancelled": cancelled,
                "delayed": delayed,
                "returned": returned,
                "discount_rate": np.where(discounted, rng.choice([0.10, 0.15, 0.20], m), 0.0),
                "ticket": ticket,
                "resp": resp,
            }
        )
        hazard = np.exp(
            -0.35 * c["engagement"][idx]
            + 0.4 * c["seeker"][idx]
            - 0.45 * c["onboarded"][idx]
            - 0.2 * c["premium"][idx]
            + 1.0 * delayed
            + 0.8 * returned
            + 0.8 * (ticket & (resp > 24 * 3600))
            + 0.5 * cancelled
        )
        die = rng.random(m) < np.clip(c["p_drop"][idx] * hazard, 0.01, 0.97)
        died[idx[die]] = t[idx][die]
        shape = c["shape"][idx]
        t[idx] += np.maximum(rng.gamma(shape, c["gap"][idx] / shape), 0.5)
        active[idx] = ~die & (t[idx] < cx.T)
        k += 1
    c["died"] = died
    keys = ("cust", "t", "k", "cancelled", "delayed", "returned", "discount_rate", "ticket", "resp")
    if not rows:  # nobody bought (a tiny chunk)
        empty = {"cust": np.int64, "k": np.int64, "t": float, "discount_rate": float, "resp": float}
        return {key: np.zeros(0, empty.get(key, bool)) for key in keys}
    orders = {key: np.concatenate([r[key] for r in rows]) for key in keys}
    perm = np.lexsort((orders["k"], orders["cust"]))  # by customer, then time
    return {key: v[perm] for key, v in orders.items()}


def _lines(cx: _Ctx, c: dict, o: dict) -> dict[str, np.ndarray]:
    """Family-driven baskets: the first line is the customer's rhythm product
    (often their favourite SKU), the others cross-sell related families."""
    rng, cat = cx.rng, CATALOG
    cust = o["cust"].astype(np.int64)
    count = 1 + np.minimum(rng.poisson(c["lines_mean"][cust]), 5)
    order = np.repeat(np.arange(len(cust)), count)
    nl = len(order)
    pos = _within(order)
    lc = cust[order]
    fam1, fam2 = c["fam1"][lc], c["fam2"][lc]
    main = np.where((fam2 >= 0) & (rng.random(nl) < 0.3), fam2, fam1)
    u = rng.random(nl)
    related = cat.related[main, rng.integers(0, 2, nl)]
    anything = rng.choice(len(FAMILIES), nl, p=cat.popularity)
    family = np.where(
        pos == 0, main, np.where(u < 0.45, related, np.where(u < 0.8, main, anything))
    )
    expensive = rng.random(nl) < np.where(c["premium"][lc], 0.5, 0.04)
    product = cat.pick(rng, family, expensive)
    favourite = (pos == 0) & (family == fam1) & ~expensive & (rng.random(nl) < 0.7)
    product = np.where(favourite, c["fav"][lc], product)
    quantity = rng.choice([1, 2, 3], nl, p=[0.8, 0.15, 0.05]).astype(np.int64)
    return {"order": order, "pos": pos, "product": product, "quantity": quantity}


def _money(cx: _Ctx, o: dict, lines: dict) -> dict[str, np.ndarray]:
    """Cents that add up: line total = price x quantity - discount; order total
    = subtotal - discounts + shipping + tax + fees."""
    m = len(o["cust"])
    gross = CATALOG.price[lines["product"]] * lines["quantity"]
    discount = np.round(gross * o["discount_rate"][lines["order"]]).astype(np.int64)
    subtotal = np.bincount(lines["order"], weights=gross, minlength=m).astype(np.int64)
    discount_total = np.bincount(lines["order"], weights=discount, minlength=m).astype(np.int64)
    merchandise = subtotal - discount_total
    shipping = np.where(merchandise < FREE_SHIPPING_FROM, SHIPPING, 0)
    fee = np.where(cx.rng.random(m) < 0.02, GIFT_WRAP_FEE, 0)
    tax = np.round((merchandise + shipping) * TAX_RATE).astype(np.int64)
    return {
        "line_discount": discount,
        "line_total": gross - discount,
        "subtotal": subtotal,
        "discount_total": discount_total,
        "shipping": shipping,
        "fee": fee,
        "tax": tax,
        "total": merchandise + shipping + fee + tax,
    }


def _order_frame(cx: _Ctx, o, money, ful, ret, ext, order_offset, currency) -> Frame:
    m = len(o["cust"])
    placed = o["t"]
    cancelled_at = np.where(
        o["cancelled"], np.minimum(placed + 0.02 + cx.rng.random(m) * 0.3, cx.T), np.nan
    )
    delivered = np.isfinite(ful["order_delivered"])
    status = np.where(delivered, b"fulfilled", b"paid")
    status = np.where(ret["refunded_order"], b"refunded", status)
    status = np.where(o["cancelled"], b"cancelled", status)
    updated = np.fmax.reduce([placed, cancelled_at, ful["order_delivered"], ret["order_returned"]])
    return {
        "customer_id": o["cust"],
        "source": np.full(m, b"storefront"),
        "external_id": ext,
        "number": _cat(b"#", _s(1001 + order_offset + np.arange(m))),
        "status": status,
        "currency": np.full(m, currency),
        "subtotal": money["subtotal"],
        "discount_total": money["discount_total"],
        "shipping_total": money["shipping"],
        "tax_total": money["tax"],
        "fee_total": money["fee"],
        "total": money["total"],
        "placed_at": cx.ts(placed),
        "cancelled_at": cx.ts(cancelled_at),
        "created_at": cx.ts(placed),
        "updated_at": cx.ts(updated),
    }


def _fulfilments(cx: _Ctx, o: dict) -> dict[str, np.ndarray]:
    """One parcel per order that was not cancelled: packed, shipped, (delayed),
    out for delivery, delivered, within the estimated window of 2-4 days
    unless delayed; only what happened before now is recorded."""
    rng, m = cx.rng, len(o["cust"])
    sel = np.flatnonzero(~o["cancelled"])
    f = len(sel)
    placed, late = o["t"][sel], o["delayed"][sel]
    packed = placed + 0.05 + rng.random(f) * 0.55
    shipped = packed + 0.05 + rng.random(f) * 0.45
    transit = 0.7 + rng.random(f) * 1.5
    ofd = np.where(
        late,
        np.maximum(shipped + transit + 1.5 + rng.random(f) * 4.5, placed + 4.2),
        shipped + transit,
    )
    delayed_at = np.where(late, shipped + transit * 0.6, np.nan)
    delivered = ofd + 0.05 + rng.random(f) * 0.25
    times = np.stack([packed, shipped, delayed_at, ofd, delivered], axis=1)
    happened = np.isfinite(times) & (times <= cx.T)
    ev_ful, ev_kind = np.nonzero(happened)  # by fulfilment, then in EVENT_STATUSES order
    last = np.where(happened.any(axis=1), 4 - np.argmax(happened[:, ::-1], axis=1), -1)
    order_delivered = np.full(m, np.nan)
    order_delivered[sel] = np.where(happened[:, 4], delivered, np.nan)
    return {
        "order": sel,
        "placed": placed,
        "carrier": rng.integers(0, len(CARRIERS), f),
        "last": last,
        "shipped": np.where(happened[:, 1], shipped, np.nan),
        "delivered": order_delivered[sel],
        "updated": np.where(last >= 0, times[np.arange(f), np.maximum(last, 0)], placed),
        "ev_ful": ev_ful,
        "ev_kind": ev_kind,
        "ev_t": times[ev_ful, ev_kind],
        "order_delivered": order_delivered,
    }


def _fulfilment_frame(cx: _Ctx, ful: dict, ext: np.ndarray) -> Frame:
    tracking = _cat(b"00340", ext[ful["order"]])
    last = np.maximum(ful["last"], 0)
    return {
        "order_id": ful["order"],
        "external_id": _cat(b"F", ext[ful["order"]]),
        "status": np.where(ful["last"] >= 0, _b(EVENT_STATUSES)[last], b"pending"),
        "carrier": _b(CARRIERS)[ful["carrier"]],
        "tracking_number": tracking,
        "tracking_url": _cat(b"https://track.demo.example/", tracking),
        "estimated_delivery_start": cx.ts(ful["placed"] + 2),
        "estimated_delivery_end": cx.ts(ful["placed"] + 4),
        "shipped_at": cx.ts(ful["shipped"]),
        "delivered_at": cx.ts(ful["delivered"]),
        "updated_at": cx.ts(ful["updated"]),
    }


def _returns(cx: _Ctx, o, lines, ful, line_total) -> dict[str, np.ndarray]:
    """A few percent of delivered orders send their first line back for a
    refund; an order of one line is then refunded in full."""
    rng, m = cx.rng, len(o["cust"])
    delivered = ful["order_delivered"]
    t = delivered + 2 + rng.random(m) * 18
    sel = np.flatnonzero(o["returned"] & np.isfinite(delivered) & (t <= cx.T))
    line = np.flatnonzero(lines["pos"] == 0)[sel]  # each order's first line
    item = _cat(
        b'{"sku": "',
        CATALOG.sku[lines["product"][line]],
        b'", "quantity": ',
        _s(lines["quantity"][line]),
        b', "amount": "',
        _money_text(line_total[line]),
        b'"}',
    )
    reason = rng.integers(0, len(RETURN_REASONS), len(sel))
    reason = np.where(o["delayed"][sel] & (rng.random(len(sel)) < 0.6), DAMAGED, reason)
    refunded = np.zeros(m, bool)
    refunded[sel] = np.bincount(lines["order"], minlength=m)[sel] == 1
    returned_at = np.full(m, np.nan)
    returned_at[sel] = t[sel]
    return {
        "order": sel,
        "t": t[sel],
        "amount": line_total[line],
        "lines": _cat(b"[", item, b"]"),
        "reason": reason,
        "refunded_order": refunded,
        "order_returned": returned_at,
    }


def _customer_tables(cx: _Ctx, c: dict, number: np.ndarray, o: dict) -> dict[str, Frame]:
    """Customers with their identities and channel consent. Sets
    ``c["email_out_t"]``, when they unsubscribed from email (inf: never)."""
    rng, n, T = cx.rng, c["n"], cx.T
    region = rng.choice(len(REGIONS), n, p=[r[4] for r in REGIONS])
    has_phone = rng.random(n) < 0.55
    digits = np.array([r[3] for r in REGIONS])[region]
    # Unique per customer: the customer number padded to the region's length
    # (US numbers start at 2 000 000 so the exchange code never starts with 0 or 1).
    local = 10**digits + number + np.where(digits == 7, 2_000_000, 0)
    local = np.strings.slice(local.astype("S10"), 1, None)
    phone = np.where(has_phone, _cat(_b(r[2] for r in REGIONS)[region], local), b"")
    email = _cat(b"c", _s(number), b"@demo.example")
    lapsed = c["died"] < T
    email_out = rng.random(n) < 0.05 + 0.08 * lapsed  # lapsed customers unsubscribe more
    email_out_t = np.where(
        lapsed,
        np.minimum(c["died"] + rng.random(n) * 60, T - 1e-3),
        c["join"] + rng.random(n) * (T - c["join"]),
    )
    c["email_out_t"] = np.where(email_out, email_out_t, np.inf)
    sms_in = has_phone & (rng.random(n) < 0.65)
    channel = np.where(rng.random(n) < 0.1, b"in_app", b"email")
    channel = np.where(sms_in & (rng.random(n) < 0.35), b"sms", channel)
    last_order = np.full(n, np.nan)
    np.fmax.at(last_order, o["cust"], o["t"])
    created = cx.ts(c["join"])
    rows = np.arange(n)
    phones = int(has_phone.sum())
    identity_of = np.concatenate([rows, rows[has_phone], rows])
    consent_of = np.concatenate([rows, rows[has_phone]])
    return {
        "customer": {
            "email": email,
            "phone": phone,
            "first_name": _b(FIRST_NAMES)[rng.integers(0, len(FIRST_NAMES), n)],
            "last_name": _b(LAST_NAMES)[rng.integers(0, len(LAST_NAMES), n)],
            "timezone": _b(r[0] for r in REGIONS)[region],
            "locale": _b(r[1] for r in REGIONS)[region],
            "preferred_channel": channel,
            "created_at": created,
            "updated_at": cx.ts(np.fmax(c["join"], last_order)),
        },
        "identity": {
            "customer_id": identity_of,
            "kind": np.repeat(_b(["email", "phone", "external"]), [n, phones, n]),
            "source": np.repeat(_b(["", "", "storefront"]), [n, phones, n]),
            "value": np.concatenate([email, phone[has_phone], _s(7_000_000_000 + number)]),
            "created_at": created[identity_of],
        },
        "consent": {
            "customer_id": consent_of,
            "channel": np.repeat(_b(["email", "sms"]), [n, phones]),
            "status": np.concatenate(
                [
                    np.where(email_out, b"opted_out", b"opted_in"),
                    np.where(sms_in[has_phone], b"opted_in", b"opted_out"),
                ]
            ),
            "source": np.concatenate(
                [
                    np.where(email_out, b"unsubscribe_link", b"checkout"),
                    np.full(phones, b"checkout"),
                ]
            ),
            "at": np.concatenate(
                [cx.ts(np.where(email_out, email_out_t, c["join"])), created[has_phone]]
            ),
        },
    }


def _carts(cx: _Ctx, c, number, o, lines, subtotal, currency) -> Frame:
    """Abandoned carts while a customer is around, and the converted carts
    behind one in three orders (linked to their order)."""
    rng, cat, n, T = cx.rng, CATALOG, c["n"], cx.T
    # Abandoned: about one per two months of a customer's active life.
    end = np.minimum(np.where(np.isfinite(c["died"]), c["died"] + 45, T), T)
    life = np.maximum(end - c["join"], 0.0)
    per_customer = rng.poisson(life / 60 + np.where(c["buyer"], 0.2, 0.8))
    a_cust = np.repeat(np.arange(n), per_customer)
    na = len(a_cust)
    a_t = c["join"][a_cust] + rng.random(na) * life[a_cust]
    item_cart = np.repeat(np.arange(na), 1 + rng.binomial(2, 0.3, na))
    ni = len(item_cart)
    family = np.where(
        rng.random(ni) < 0.7,
        c["fam1"][a_cust[item_cart]],
        rng.choice(len(FAMILIES), ni, p=cat.popularity),
    )
    product = cat.pick(rng, family, rng.random(ni) < 0.15)
    quantity = rng.choice([1, 2], ni, p=[0.85, 0.15])
    a_total = np.bincount(item_cart, weights=cat.price[product] * quantity, minlength=na)
    a_items = group_join(cat.items_json(product, quantity), item_cart, na)
    abandoned_at = a_t + CART_ABANDON_MINUTES / 1440
    abandoned = abandoned_at <= T  # younger carts are still active
    # Converted: a cart shortly before the order, with the order's lines.
    conv = np.flatnonzero(~o["cancelled"] & (rng.random(len(o["cust"])) < 0.33))
    nc = len(conv)
    in_conv = np.isin(lines["order"], conv)
    c_items = group_join(
        cat.items_json(lines["product"][in_conv], lines["quantity"][in_conv]),
        np.searchsorted(conv, lines["order"][in_conv]),
        nc,
    )
    c_t = o["t"][conv] - (2 + rng.random(nc) * 38) / 1440
    ext = np.concatenate(
        [
            _cat(b"ck-", _s(number[a_cust]), b"-", _s(_within(a_cust))),
            _cat(b"ck-", _s(number[o["cust"][conv]]), b"-o", _s(o["k"][conv])),
        ]
    )
    return {
        "customer_id": np.concatenate([a_cust, o["cust"][conv]]),
        "source": np.full(na + nc, b"storefront"),
        "external_id": ext,
        "status": np.concatenate(
            [np.where(abandoned, b"abandoned", b"active"), np.full(nc, b"converted")]
        ),
        "currency": np.full(na + nc, currency),
        "total": np.concatenate([a_total.astype(np.int64), subtotal[conv]]),
        "items": np.concatenate([a_items, c_items]),
        "recovery_url": _cat(b"https://demo.example/cart/", ext),
        "updated_at": cx.ts(np.concatenate([a_t, c_t])),
        "abandoned_at": cx.ts(
            np.concatenate([np.where(abandoned, abandoned_at, np.nan), np.full(nc, np.nan)])
        ),
        "order_id": np.concatenate([np.full(na, -1), conv]),
    }


def _touchpoints(cx: _Ctx, c, o, ful, ext) -> Frame:
    """Onboarding milestones, support tickets around late parcels and returns,
    and fortnightly newsletters that active customers open far more often than
    lapsed ones."""
    rng, n, T = cx.rng, c["n"], cx.T
    parts: list[tuple[np.ndarray, int, np.ndarray, np.ndarray]] = []  # customer, kind, t, props

    def add(cust, kind, t, props):
        keep = np.isfinite(t) & (t <= T)
        parts.append((cust[keep], kind, t[keep], np.broadcast_to(props, t.shape)[keep]))

    rows = np.arange(n)
    add(rows, 0, c["onboard_t"], np.array(b'{"steps": 5}'))
    # Features adopted after onboarding, each at most once.
    adopted = np.minimum(rng.poisson(_sigmoid(c["engagement"]) * 2.0), len(FEATURES))
    f_cust = np.repeat(rows, np.where(c["onboarded"], adopted, 0))
    feature = (rng.integers(0, len(FEATURES), n)[f_cust] + _within(f_cust)) % len(FEATURES)
    add(
        f_cust,
        1,
        c["onboard_t"][f_cust] + rng.exponential(12, len(f_cust)),
        _cat(b'{"feature": "', _b(FEATURES)[feature], b'"}'),
    )
    # First value: the first parcel that arrived.
    delivered = ful["order_delivered"]
    got = np.flatnonzero(np.isfinite(delivered))
    first = got[np.r_[True, o["cust"][got][1:] != o["cust"][got][:-1]]] if len(got) else got
    props = _cat(b'{"milestone": "first_delivery", "order": "', ext[first], b'"}')
    add(o["cust"][first], 2, delivered[first], props)
    # Support tickets about late parcels, returns, or a product question.
    tk = np.flatnonzero(o["ticket"])
    after = np.where(np.isfinite(delivered[tk]), delivered[tk], o["t"][tk] + 4)
    opened = np.where(
        o["delayed"][tk], o["t"][tk] + 4 + rng.random(len(tk)), after + 1 + rng.random(len(tk)) * 12
    )
    topic = np.where(o["returned"][tk], b"return", b"product")
    topic = np.where(o["delayed"][tk], b"delivery", topic)
    ticket = _cat(b'{"ticket": "T', ext[tk], b'"')
    add(o["cust"][tk], 3, opened, _cat(ticket, b', "topic": "', topic, b'"}'))
    seconds = np.round(o["resp"][tk]).astype(np.int64)
    answer = _cat(ticket, b', "response_seconds": ', _s(seconds), b"}")
    add(o["cust"][tk], 4, opened + seconds / 86_400, answer)
    # Newsletters to three in ten of the customers opted in at the time.
    send_days = np.arange(3 + 0.375, T, CAMPAIGN_EVERY_DAYS)  # 09:00 on the day
    first_campaign = np.searchsorted(send_days, c["join"])
    s_cust = np.repeat(rows, np.maximum(len(send_days) - first_campaign, 0))
    s_camp = first_campaign[s_cust] + _within(s_cust)
    s_t = send_days[s_camp]
    keep = (rng.random(len(s_cust)) < 0.3) & (s_t < c["email_out_t"][s_cust])
    s_cust, s_camp, s_t = s_cust[keep], s_camp[keep], s_t[keep]
    active = s_t < c["died"][s_cust] + 21
    e = c["engagement"][s_cust]
    opened = rng.random(len(s_cust)) < np.where(
        active, _sigmoid(-0.9 + 0.8 * e), _sigmoid(-2.8 + 0.5 * e)
    )
    clicked = opened & (rng.random(len(s_cust)) < np.where(active, 0.3, 0.08))
    opened_t = s_t + rng.exponential(0.25, len(s_cust))
    clicked_t = opened_t + rng.exponential(0.01, len(s_cust))
    campaign = _cat(
        b'{"campaign": "newsletter-', _s(np.arange(len(send_days)) + 1), b'", "channel": "email"}'
    )
    add(s_cust, 5, s_t, campaign[s_camp])
    add(s_cust[opened], 6, opened_t[opened], campaign[s_camp[opened]])
    add(s_cust[clicked], 7, clicked_t[clicked], campaign[s_camp[clicked]])

    cust = np.concatenate([p[0] for p in parts])
    kind = np.concatenate([np.full(len(p[0]), p[1]) for p in parts])
    t = np.concatenate([p[2] for p in parts])
    props = np.concatenate([p[3] for p in parts])
    perm = np.lexsort((cust, t))  # in time order, as a timeline arrives
    when = cx.ts(t[perm])
    kind = kind[perm]
    return {
        "customer_id": cust[perm],
        "category": _b(k[0] for k in TOUCH_KINDS)[kind],
        "kind": _b(k[1] for k in TOUCH_KINDS)[kind],
        "source": _b(k[2] for k in TOUCH_KINDS)[kind],
        "occurred_at": when,
        "properties": props[perm],
        "created_at": when,
    }
