"""Rule-segment conditions: a registry of safe fields, compiled to the ORM.

A rule segment is ``match`` (``all`` or ``any``) over a list of conditions:

    {"field": "days_since_last_order", "op": "gte", "value": 30}
    {"field": "family_bought", "op": "eq", "value": "coffee", "within_days": 90}
    {"field": "consent", "op": "eq", "value": {"channel": "email", "status": "opted_in"}}
    {"field": "touchpoint", "op": "has",
     "value": {"kind": "message.clicked", "within_days": 14, "min_count": 2}}

Marketers never write SQL. Each field names the operators it allows and how its
value is checked, and compiles to a condition on the customer row (a
tenant-scoped ``Exists`` or correlated count), so a condition can only read the
tenant's own rows, values reach the database as parameters, and a customer
appears at most once in a segment's member query.

Conventions, so that segments agree with what the customer page shows:

- "days since last order" is whole elapsed days, ``(now - last_order_at).days``,
  read against :func:`retention.clock.now`; customers with no counted order
  have no value and match no recency condition.
- ``orders_total``, ``frequency`` and ``monetary`` are 0 for a customer with no
  counted order (no RFM row), so ``orders_total eq 0`` finds non-buyers.
- "within N days" means ``now - N days < at <= now``.

Other apps add fields with :func:`register_condition`, e.g. scoring's churn band:

    register_condition(
        "churn_band", label="Churn risk band", ops=("in",), value_type="choices",
        choices=[("low", "Low"), ("high", "High")],
        compile=lambda cond, ctx: Q(Exists(ChurnScore.objects.for_tenant(ctx.tenant_id)
                                           .filter(customer=OuterRef("pk"),
                                                   band__in=cond["value"]))),
    )
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from functools import cached_property
from typing import Any

from django.db.models import Count, Exists, IntegerField, OuterRef, Q, QuerySet, Subquery
from django.db.models.functions import Coalesce
from django.db.models.lookups import GreaterThanOrEqual

from commerce.models import (
    Channel,
    ChannelConsent,
    ConsentStatus,
    Customer,
    PriceTier,
    ProductFamily,
    Touchpoint,
)
from retention import clock
from retention.errors import InvalidInput
from segments.models import CustomerFamily, CustomerRFM, Match, Tier

MAX_CONDITIONS = 50
MAX_DAYS = 36500
MAX_COUNT = 1_000_000
MAX_MONEY = Decimal("999999999999.99")
CENT = Decimal("0.01")
KIND_RE = re.compile(r"^[A-Za-z0-9_.:\-]{1,100}$")
INT_RE = re.compile(r"^-?[0-9]+$")

OP_LABELS = {
    "eq": "is",
    "in": "is one of",
    "gte": "at least",
    "lte": "at most",
    "between": "between",
    "has": "had",
    "has_not": "did not have",
}

# Touchpoint kinds offered as suggestions in the builder (any kind may be typed).
COMMON_TOUCHPOINT_KINDS = (
    "order.placed",
    "message.opened",
    "message.clicked",
    "onboarding.completed",
    "feature.activated",
    "first_value.reached",
    "ticket.opened",
    "ticket.answered",
    "checkout.feedback",
    "page.viewed",
)


class ConditionError(ValueError):
    """A bad value in one condition; ``key`` is its path inside the condition
    (``value``, ``value.channel``, ``within_days``)."""

    def __init__(self, message: str, key: str = "value"):
        super().__init__(message)
        self.message = message
        self.key = key


@dataclass(frozen=True)
class CompileContext:
    tenant_id: int
    now: datetime


Compiler = Callable[[dict, CompileContext], Q]
Parser = Callable[[str, Any], Any]
Resolver = Callable[[int, dict], dict]
Evaluator = Callable[[dict, "CustomerFacts"], bool]
Choices = Sequence[tuple[str, str]] | Callable[[int], Sequence[tuple[Any, str]]]


@dataclass(frozen=True)
class ConditionField:
    """One field a marketer may filter on."""

    name: str
    label: str
    ops: tuple[str, ...]
    value_type: str  # integer, decimal, choice, choices, family, consent, touchpoint
    compile: Compiler
    parse: Parser
    choices: Choices = ()
    extras: dict[str, Callable[[Any], Any]] = field(default_factory=dict)
    resolve: Resolver | None = None
    evaluate: Evaluator | None = None
    help_text: str = ""

    def choices_for(self, tenant_id: int) -> list[tuple[Any, str]]:
        return list(self.choices(tenant_id) if callable(self.choices) else self.choices)


REGISTRY: dict[str, ConditionField] = {}


# --- value parsers (pure: no database) ------------------------------------------------


def parse_int(raw: Any, *, minimum: int = 0, maximum: int = MAX_COUNT, key: str = "value") -> int:
    """A whole number; JSON numbers and digit strings (from HTML inputs) are accepted."""
    value: int | None = None
    if isinstance(raw, int) and not isinstance(raw, bool):
        value = raw
    elif isinstance(raw, float) and raw.is_integer():
        value = int(raw)
    elif isinstance(raw, str) and INT_RE.match(raw.strip()):
        value = int(raw.strip())
    if value is None or not minimum <= value <= maximum:
        raise ConditionError(f"Enter a whole number from {minimum} to {maximum}.", key)
    return value


def parse_money(raw: Any, *, key: str = "value") -> Decimal:
    try:
        if isinstance(raw, bool) or not isinstance(raw, int | float | str | Decimal):
            raise InvalidOperation
        value = Decimal(str(raw).strip())
    except InvalidOperation:
        raise ConditionError("Enter an amount such as 250 or 99.90.", key) from None
    if not value.is_finite() or not Decimal(0) <= value <= MAX_MONEY:
        raise ConditionError(f"Enter an amount from 0 to {MAX_MONEY}.", key)
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def _pair(raw: Any, parse_one: Callable[[Any], Any]) -> list:
    if not isinstance(raw, list | tuple) or len(raw) != 2:
        raise ConditionError("Give two values, [low, high].")
    low, high = parse_one(raw[0]), parse_one(raw[1])
    if low > high:
        raise ConditionError("The low value must not be above the high value.")
    return [low, high]


def integer_parser(minimum: int = 0, maximum: int = MAX_COUNT) -> Parser:
    def parse_one(raw: Any) -> int:
        return parse_int(raw, minimum=minimum, maximum=maximum)

    def parse(op: str, raw: Any) -> int | list[int]:
        return _pair(raw, parse_one) if op == "between" else parse_one(raw)

    return parse


def money_parser(op: str, raw: Any) -> str | list[str]:
    """Amounts are kept as strings in JSON ("250.00"), so no float rounding."""
    if op == "between":
        return [str(v) for v in _pair(raw, parse_money)]
    return str(parse_money(raw))


def _choice_values(choices: Iterable[tuple[Any, str]]) -> list:
    return [value for value, _ in choices]


def choice_parser(choices: Sequence[tuple[str, str]], noun: str) -> Parser:
    allowed = _choice_values(choices)

    def parse_one(raw: Any) -> str:
        if raw not in allowed:
            raise ConditionError(f"Unknown {noun} {raw!r}; choose one of {', '.join(allowed)}.")
        return raw

    def parse(op: str, raw: Any) -> str | list[str]:
        if op != "in":
            return parse_one(raw)
        values = raw if isinstance(raw, list | tuple) else [raw]
        if not values:
            raise ConditionError(f"Choose at least one {noun}.")
        return list(dict.fromkeys(parse_one(v) for v in values))

    return parse


def _days_extra(raw: Any) -> int | None:
    if raw in (None, ""):
        return None
    return parse_int(raw, minimum=1, maximum=MAX_DAYS, key="within_days")


def _family_ref(raw: Any) -> int | str:
    if isinstance(raw, int) and not isinstance(raw, bool) and raw > 0:
        return raw
    if isinstance(raw, str) and 0 < len(raw.strip()) <= 100:
        return raw.strip()
    raise ConditionError("Choose a product family (its id or slug).")


def family_parser(op: str, raw: Any) -> int | str | list[int | str]:
    if op != "in":
        return _family_ref(raw)
    values = raw if isinstance(raw, list | tuple) else [raw]
    if not values or len(values) > MAX_CONDITIONS:
        raise ConditionError(f"Choose from 1 to {MAX_CONDITIONS} product families.")
    return list(dict.fromkeys(_family_ref(v) for v in values))


def _object(raw: Any, keys: set[str], required: set[str]) -> dict:
    if not isinstance(raw, dict):
        raise ConditionError(f"Give an object with {', '.join(sorted(keys))}.")
    for key in raw:
        if key not in keys:
            raise ConditionError(f"Unknown key {key!r}.", f"value.{key}")
    for key in required:
        if raw.get(key) in (None, ""):
            raise ConditionError("This is required.", f"value.{key}")
    return raw


def consent_parser(op: str, raw: Any) -> dict:
    raw = _object(raw, {"channel", "status"}, {"channel", "status"})
    if raw["channel"] not in Channel.values:
        raise ConditionError(
            f"Unknown channel {raw['channel']!r}; choose one of {', '.join(Channel.values)}.",
            "value.channel",
        )
    if raw["status"] not in ConsentStatus.values:
        raise ConditionError(
            f"Unknown consent status {raw['status']!r}; "
            f"choose one of {', '.join(ConsentStatus.values)}.",
            "value.status",
        )
    return {"channel": raw["channel"], "status": raw["status"]}


def touchpoint_parser(op: str, raw: Any) -> dict:
    raw = _object(raw, {"kind", "within_days", "min_count"}, {"kind", "within_days"})
    kind = raw["kind"].strip() if isinstance(raw["kind"], str) else ""
    if not KIND_RE.match(kind):
        raise ConditionError(
            "Enter a touchpoint kind such as message.opened (letters, digits, . _ : -).",
            "value.kind",
        )
    within = parse_int(raw["within_days"], minimum=1, maximum=MAX_DAYS, key="value.within_days")
    min_count = raw.get("min_count")
    min_count = (
        1
        if min_count in (None, "")
        else parse_int(min_count, minimum=1, maximum=MAX_COUNT, key="value.min_count")
    )
    return {"kind": kind, "within_days": within, "min_count": min_count}


DEFAULT_PARSERS: dict[str, Callable[[Choices, str], Parser]] = {
    "integer": lambda choices, noun: integer_parser(),
    "decimal": lambda choices, noun: money_parser,
    "choice": lambda choices, noun: choice_parser(choices, noun),
    "choices": lambda choices, noun: choice_parser(choices, noun),
}


# --- the registry -----------------------------------------------------------------------


def register_condition(
    name: str,
    *,
    label: str,
    ops: Sequence[str],
    value_type: str,
    compile: Compiler,
    parse: Parser | None = None,
    choices: Choices = (),
    extras: dict[str, Callable[[Any], Any]] | None = None,
    resolve: Resolver | None = None,
    evaluate: Evaluator | None = None,
    help_text: str = "",
    replace: bool = False,
) -> ConditionField:
    """Add a condition field. ``compile(cond, ctx)`` gets the normalised condition
    and a :class:`CompileContext` and returns a ``Q`` on the customer row built
    from tenant-scoped subqueries (``Exists(X.objects.for_tenant(ctx.tenant_id)
    .filter(customer=OuterRef("pk"), ...))``), never a join, so a customer is
    counted once. ``parse(op, value)`` checks and normalises the value without
    the database (raise :class:`ConditionError`); integer, decimal, choice and
    choices fields get one by default. ``resolve(tenant_id, cond)`` may check the
    value against the tenant's rows when a marketer saves or previews.
    ``evaluate(cond, facts)`` is optional: the same test in Python on one
    customer's :class:`CustomerFacts`, for the per-customer refresh after an
    order; without it that refresh asks the database."""
    if name in REGISTRY and not replace:
        raise ValueError(f"Condition field {name!r} is already registered.")
    unknown_ops = set(ops) - set(OP_LABELS)
    if not ops or unknown_ops:
        raise ValueError(f"Unknown operators {sorted(unknown_ops)} for {name!r}.")
    if parse is None:
        if value_type not in DEFAULT_PARSERS or callable(choices):
            raise ValueError(f"Condition field {name!r} needs a parse function.")
        parse = DEFAULT_PARSERS[value_type](choices, label.lower())
    REGISTRY[name] = ConditionField(
        name=name,
        label=label,
        ops=tuple(ops),
        value_type=value_type,
        compile=compile,
        parse=parse,
        choices=choices,
        extras=extras or {},
        resolve=resolve,
        evaluate=evaluate,
        help_text=help_text,
    )
    return REGISTRY[name]


# --- compilers ------------------------------------------------------------------------------


def _rfm(ctx: CompileContext, **lookups: Any) -> Q:
    return Q(
        Exists(
            CustomerRFM.objects.for_tenant(ctx.tenant_id).filter(customer=OuterRef("pk"), **lookups)
        )
    )


def _range_lookups(column: str, op: str, value: Any) -> dict[str, Any]:
    if op == "eq":
        return {column: value}
    if op == "gte":
        return {f"{column}__gte": value}
    if op == "lte":
        return {f"{column}__lte": value}
    low, high = value
    return {f"{column}__gte": low, f"{column}__lte": high}


def _holds_for_zero(op: str, value: Any) -> bool:
    low, high = value if op == "between" else (value, value)
    low, high = Decimal(str(low)), Decimal(str(high))
    return {
        "eq": low == 0,
        "gte": low <= 0,
        "lte": high >= 0,
        "between": low <= 0 <= high,
    }[op]


def rfm_column(column: str, *, zero_without_orders: bool = False, money: bool = False) -> Compiler:
    """A numeric CustomerRFM column; with ``zero_without_orders`` a customer
    without an RFM row counts as 0 (orders and spend, not scores)."""

    def compile(cond: dict, ctx: CompileContext) -> Q:
        value = cond["value"]
        typed = (
            ([Decimal(v) for v in value] if isinstance(value, list) else Decimal(value))
            if money
            else value
        )
        q = _rfm(ctx, **_range_lookups(column, cond["op"], typed))
        if zero_without_orders and _holds_for_zero(cond["op"], value):
            q |= ~_rfm(ctx)
        return q

    return compile


def _days_since_last_order(cond: dict, ctx: CompileContext) -> Q:
    op, value = cond["op"], cond["value"]
    low = value[0] if op == "between" else value if op == "gte" else None
    high = value[1] if op == "between" else value if op == "lte" else None
    lookups = {}
    if low is not None:  # at least `low` whole days have passed
        lookups["last_order_at__lte"] = ctx.now - timedelta(days=low)
    if high is not None:  # fewer than `high + 1` whole days have passed
        lookups["last_order_at__gt"] = ctx.now - timedelta(days=high + 1)
    return _rfm(ctx, **lookups)


def _tier(cond: dict, ctx: CompileContext) -> Q:
    return _rfm(ctx, tier__in=cond["value"])


def _price_tier(cond: dict, ctx: CompileContext) -> Q:
    return _rfm(ctx, price_tier=cond["value"])


def _family_q(value: int | str | list) -> Q:
    values = value if isinstance(value, list) else [value]
    ids = [v for v in values if isinstance(v, int)]
    slugs = [v for v in values if isinstance(v, str)]
    q = Q()
    if ids:
        q |= Q(family_id__in=ids)
    if slugs:  # only from conditions stored before validation resolved them
        q |= Q(family__slug__in=slugs)
    return q


def _family_bought(cond: dict, ctx: CompileContext) -> Q:
    rows = CustomerFamily.objects.for_tenant(ctx.tenant_id).filter(
        _family_q(cond["value"]), customer=OuterRef("pk")
    )
    if cond.get("within_days"):
        rows = rows.filter(
            last_at__gt=ctx.now - timedelta(days=cond["within_days"]), last_at__lte=ctx.now
        )
    return Q(Exists(rows))


def _family_not_bought(cond: dict, ctx: CompileContext) -> Q:
    return ~_family_bought(cond, ctx)


def _consent(cond: dict, ctx: CompileContext) -> Q:
    channel, status = cond["value"]["channel"], cond["value"]["status"]
    rows = ChannelConsent.objects.for_tenant(ctx.tenant_id).filter(
        customer=OuterRef("pk"), channel=channel
    )
    if status == ConsentStatus.UNKNOWN:
        # No consent row for the channel means we do not know either.
        return ~Q(Exists(rows.exclude(status=ConsentStatus.UNKNOWN)))
    return Q(Exists(rows.filter(status=status)))


def _touchpoint(cond: dict, ctx: CompileContext) -> Q:
    value = cond["value"]
    recent = Touchpoint.objects.for_tenant(ctx.tenant_id).filter(
        customer=OuterRef("pk"),
        kind=value["kind"],
        occurred_at__gt=ctx.now - timedelta(days=value["within_days"]),
        occurred_at__lte=ctx.now,
    )
    if value["min_count"] == 1:
        q = Q(Exists(recent))
    else:
        counted = recent.order_by().values("customer").annotate(n=Count("pk")).values("n")
        count = Coalesce(Subquery(counted, output_field=IntegerField()), 0)
        q = Q(GreaterThanOrEqual(count, value["min_count"]))
    return q if cond["op"] == "has" else ~q


# --- the same tests in Python, for one customer ------------------------------------------


class CustomerFacts:
    """One customer's data the rules read, each kind loaded on first use with
    one indexed query, so the per-customer refresh after an order tests every
    segment in a few queries instead of compiling one large one. Each field's
    evaluator must agree with its compiler (a property test holds them to it)."""

    def __init__(self, tenant_id: int, customer_id: int, now: datetime):
        self.tenant_id, self.customer_id, self.now = tenant_id, customer_id, now
        self._touch_counts: dict[tuple[str, int], int] = {}

    @cached_property
    def is_live(self) -> bool:
        """The customer exists in the tenant and is not a merged tombstone."""
        return (
            Customer.objects.for_tenant(self.tenant_id)
            .filter(pk=self.customer_id, merged_into__isnull=True)
            .exists()
        )

    @cached_property
    def rfm(self) -> CustomerRFM | None:
        return (
            CustomerRFM.objects.for_tenant(self.tenant_id)
            .filter(customer_id=self.customer_id)
            .first()
        )

    @cached_property
    def families(self) -> dict[int | str, datetime]:
        """When each family was last bought, by family id and by slug."""
        rows = (
            CustomerFamily.objects.for_tenant(self.tenant_id)
            .filter(customer_id=self.customer_id)
            .values_list("family_id", "family__slug", "last_at")
        )
        found: dict[int | str, datetime] = {}
        for family_id, slug, last_at in rows:
            found[family_id] = found[slug] = last_at
        return found

    @cached_property
    def consents(self) -> dict[str, str]:
        return dict(
            ChannelConsent.objects.for_tenant(self.tenant_id)
            .filter(customer_id=self.customer_id)
            .values_list("channel", "status")
        )

    def touchpoints(self, kind: str, within_days: int) -> int:
        key = (kind, within_days)
        if key not in self._touch_counts:
            self._touch_counts[key] = (
                Touchpoint.objects.for_tenant(self.tenant_id)
                .filter(
                    customer_id=self.customer_id,
                    kind=kind,
                    occurred_at__gt=self.now - timedelta(days=within_days),
                    occurred_at__lte=self.now,
                )
                .count()
            )
        return self._touch_counts[key]


def _compare(op: str, actual: Any, value: Any) -> bool:
    if op == "eq":
        return actual == value
    if op == "gte":
        return actual >= value
    if op == "lte":
        return actual <= value
    low, high = value
    return low <= actual <= high


def rfm_value(column: str, *, zero_without_orders: bool = False, money: bool = False) -> Evaluator:
    """The evaluator that matches :func:`rfm_column`."""

    def evaluate(cond: dict, facts: CustomerFacts) -> bool:
        value = cond["value"]
        if money:
            value = [Decimal(v) for v in value] if isinstance(value, list) else Decimal(value)
        if facts.rfm is None:
            return zero_without_orders and _compare(cond["op"], 0, value)
        return _compare(cond["op"], getattr(facts.rfm, column), value)

    return evaluate


def _days_since_last_order_value(cond: dict, facts: CustomerFacts) -> bool:
    if facts.rfm is None:
        return False
    op, value, last = cond["op"], cond["value"], facts.rfm.last_order_at
    low = value[0] if op == "between" else value if op == "gte" else None
    high = value[1] if op == "between" else value if op == "lte" else None
    return (low is None or last <= facts.now - timedelta(days=low)) and (
        high is None or last > facts.now - timedelta(days=high + 1)
    )


def _tier_value(cond: dict, facts: CustomerFacts) -> bool:
    return facts.rfm is not None and facts.rfm.tier in cond["value"]


def _price_tier_value(cond: dict, facts: CustomerFacts) -> bool:
    return facts.rfm is not None and facts.rfm.price_tier == cond["value"]


def _family_bought_value(cond: dict, facts: CustomerFacts) -> bool:
    refs = cond["value"] if isinstance(cond["value"], list) else [cond["value"]]
    days = cond.get("within_days")
    since = facts.now - timedelta(days=days) if days else None
    for ref in refs:
        last_at = facts.families.get(ref)
        if last_at is not None and (since is None or since < last_at <= facts.now):
            return True
    return False


def _family_not_bought_value(cond: dict, facts: CustomerFacts) -> bool:
    return not _family_bought_value(cond, facts)


def _consent_value(cond: dict, facts: CustomerFacts) -> bool:
    status = facts.consents.get(cond["value"]["channel"])
    if cond["value"]["status"] == ConsentStatus.UNKNOWN:
        return status not in (ConsentStatus.OPTED_IN, ConsentStatus.OPTED_OUT)
    return status == cond["value"]["status"]


def _touchpoint_value(cond: dict, facts: CustomerFacts) -> bool:
    value = cond["value"]
    enough = facts.touchpoints(value["kind"], value["within_days"]) >= value["min_count"]
    return enough if cond["op"] == "has" else not enough


# --- resolvers (database checks when a marketer saves or previews) -------------------


def _resolve_families(tenant_id: int, cond: dict) -> dict:
    """Family ids or slugs of this tenant become ids; anything else is an error."""
    value = cond["value"]
    refs = value if isinstance(value, list) else [value]
    maybe_ids = {int(r) for r in refs if isinstance(r, int) or r.isdigit()}
    slugs = {r for r in refs if isinstance(r, str)}
    found = ProductFamily.objects.for_tenant(tenant_id).filter(
        Q(pk__in=maybe_ids) | Q(slug__in=slugs)
    )
    by_slug = dict(found.values_list("slug", "pk"))
    ids = set(by_slug.values())
    resolved = []
    for ref in refs:
        if isinstance(ref, str) and ref in by_slug:
            resolved.append(by_slug[ref])
        elif (isinstance(ref, int) or ref.isdigit()) and int(ref) in ids:
            resolved.append(int(ref))
        else:
            raise ConditionError(f"Unknown product family '{ref}'.")
    resolved = list(dict.fromkeys(resolved))
    return {**cond, "value": resolved if isinstance(value, list) else resolved[0]}


def family_choices(tenant_id: int) -> list[tuple[int, str]]:
    return list(
        ProductFamily.objects.for_tenant(tenant_id).order_by("name").values_list("pk", "name")
    )


# --- built-in fields --------------------------------------------------------------------------

SCORE_OPS = ("eq", "gte", "lte", "between")
COUNT_OPS = ("gte", "lte", "eq", "between")
RANGE_OPS = ("gte", "lte", "between")
FAMILY_EXTRAS = {"within_days": _days_extra}


def _register_builtins() -> None:
    register_condition(
        "tier",
        label="Tier",
        ops=("in",),
        value_type="choices",
        choices=Tier.choices,
        compile=_tier,
        evaluate=_tier_value,
        help_text="The customer's RFM tier.",
    )
    for letter, name in (("r", "Recency"), ("f", "Frequency"), ("m", "Monetary")):
        register_condition(
            f"{letter}_score",
            label=f"{name} score",
            ops=SCORE_OPS,
            value_type="integer",
            parse=integer_parser(1, 5),
            compile=rfm_column(f"{letter}_score"),
            evaluate=rfm_value(f"{letter}_score"),
            help_text="1 (lowest fifth of the store's buyers) to 5 (highest).",
        )
    register_condition(
        "days_since_last_order",
        label="Days since last order",
        ops=RANGE_OPS,
        value_type="integer",
        parse=integer_parser(0, MAX_DAYS),
        compile=_days_since_last_order,
        evaluate=_days_since_last_order_value,
        help_text="Whole days since the last counted order; no order means no match.",
    )
    register_condition(
        "orders_total",
        label="Orders (all time)",
        ops=COUNT_OPS,
        value_type="integer",
        compile=rfm_column("orders_total", zero_without_orders=True),
        evaluate=rfm_value("orders_total", zero_without_orders=True),
        help_text="Counted orders ever (not cancelled or refunded).",
    )
    register_condition(
        "frequency",
        label="Orders in the RFM window",
        ops=COUNT_OPS,
        value_type="integer",
        compile=rfm_column("frequency", zero_without_orders=True),
        evaluate=rfm_value("frequency", zero_without_orders=True),
        help_text="Counted orders in the store's RFM window (segment settings).",
    )
    register_condition(
        "monetary",
        label="Spend in the RFM window",
        ops=RANGE_OPS,
        value_type="decimal",
        compile=rfm_column("monetary", zero_without_orders=True, money=True),
        evaluate=rfm_value("monetary", zero_without_orders=True, money=True),
        help_text="Spend in the store's RFM window, in the store's currency.",
    )
    for name, label, compile, evaluate in (
        ("family_bought", "Bought product family", _family_bought, _family_bought_value),
        (
            "family_not_bought",
            "Did not buy product family",
            _family_not_bought,
            _family_not_bought_value,
        ),
    ):
        register_condition(
            name,
            label=label,
            ops=("eq", "in"),
            value_type="family",
            parse=family_parser,
            choices=family_choices,
            extras=FAMILY_EXTRAS,
            resolve=_resolve_families,
            compile=compile,
            evaluate=evaluate,
            help_text="Optionally only purchases within the last N days.",
        )
    register_condition(
        "price_tier",
        label="Price tier",
        ops=("eq",),
        value_type="choice",
        choices=PriceTier.choices,
        compile=_price_tier,
        evaluate=_price_tier_value,
        help_text="The price tier that carries most of the customer's spend.",
    )
    register_condition(
        "consent",
        label="Channel consent",
        ops=("eq",),
        value_type="consent",
        parse=consent_parser,
        compile=_consent,
        evaluate=_consent_value,
        help_text="No consent recorded for a channel counts as unknown.",
    )
    register_condition(
        "touchpoint",
        label="Touchpoint",
        ops=("has", "has_not"),
        value_type="touchpoint",
        parse=touchpoint_parser,
        compile=_touchpoint,
        evaluate=_touchpoint_value,
        help_text="At least N touchpoints of a kind in the last N days.",
    )


_register_builtins()


# --- validation and compilation -----------------------------------------------------------


def _normalise_one(raw: Any) -> dict:
    """Check one condition's shape and value without the database."""
    if not isinstance(raw, dict):
        raise ConditionError('Give an object with "field", "op" and "value".', "")
    name = raw.get("field")
    spec = REGISTRY.get(name) if isinstance(name, str) else None
    if name in (None, ""):
        raise ConditionError("Choose a field.", "field")
    if spec is None:
        raise ConditionError(
            f"Unknown field {name!r}; choose one of {', '.join(REGISTRY)}.", "field"
        )
    op = raw.get("op")
    if op in (None, "") and len(spec.ops) == 1:
        op = spec.ops[0]
    if op not in spec.ops:
        raise ConditionError(
            f"Operator {op!r} does not apply to {name}; use one of {', '.join(spec.ops)}.", "op"
        )
    for key in raw:
        if key not in {"field", "op", "value", *spec.extras}:
            raise ConditionError(f"Unknown key {key!r} for {name}.", key)
    if raw.get("value") is None:
        raise ConditionError("A value is required.")
    cond = {"field": name, "op": op, "value": spec.parse(op, raw["value"])}
    for key, parse_extra in spec.extras.items():
        extra = parse_extra(raw.get(key))
        if extra is not None:
            cond[key] = extra
    return cond


def _path(index: int, key: str) -> str:
    return f"conditions[{index}]" + (f".{key}" if key else "")


def _each(conditions: Any, check: Callable[[int, Any], dict]) -> list[dict]:
    if not isinstance(conditions, list | tuple):
        raise InvalidInput(
            "Conditions must be a list of {field, op, value} objects.",
            fields={"conditions": "Give a list of conditions."},
        )
    if len(conditions) > MAX_CONDITIONS:
        raise InvalidInput(
            f"A segment has at most {MAX_CONDITIONS} conditions.",
            fields={"conditions": f"At most {MAX_CONDITIONS} conditions."},
        )
    normalised, errors = [], {}
    for index, raw in enumerate(conditions):
        try:
            normalised.append(check(index, raw))
        except ConditionError as exc:
            errors[_path(index, exc.key)] = exc.message
    if errors:
        first = next(iter(errors.items()))
        raise InvalidInput(f"Check the segment's conditions: {first[0]}: {first[1]}", fields=errors)
    return normalised


def validate_conditions(tenant: Any, conditions: Any) -> list[dict]:
    """The normalised conditions, or InvalidInput with one error per bad part,
    keyed like ``conditions[1].value``. Product families are checked against
    the tenant and stored by id."""
    tenant_id = getattr(tenant, "pk", tenant)

    def check(index: int, raw: Any) -> dict:
        cond = _normalise_one(raw)
        resolve = REGISTRY[cond["field"]].resolve
        return resolve(tenant_id, cond) if resolve else cond

    return _each(conditions, check)


def validate_match(match: Any) -> str:
    if match not in Match.values:
        raise InvalidInput(
            f"Match must be one of {', '.join(Match.values)}.",
            fields={"match": "Choose all or any."},
        )
    return match


def conditions_q(
    tenant: Any, match: str, conditions: Any, *, now: datetime | None = None
) -> Q | None:
    """The segment's test on a customer row, or None when it matches nobody
    (no conditions). Checks shape and values without the database; stored
    conditions were resolved by :func:`validate_conditions` when saved."""
    validate_match(match)
    normalised = _each(conditions, lambda index, raw: _normalise_one(raw))
    if not normalised:
        return None
    ctx = CompileContext(tenant_id=getattr(tenant, "pk", tenant), now=now or clock.now())
    parts = [REGISTRY[c["field"]].compile(c, ctx) for c in normalised]
    combined = parts[0]
    for part in parts[1:]:
        combined = combined & part if match == Match.ALL else combined | part
    return combined


def members_queryset(
    tenant: Any, match: str, conditions: Any, *, now: datetime | None = None
) -> QuerySet:
    """The tenant's customers (never merged tombstones) matching the rule;
    an empty list of conditions matches nobody."""
    customers = Customer.objects.for_tenant(tenant).filter(merged_into__isnull=True)
    q = conditions_q(tenant, match, conditions, now=now)
    return customers.none() if q is None else customers.filter(q)


def evaluate_rule(facts: CustomerFacts, match: str, conditions: Any) -> bool | None:
    """Whether one customer meets a stored rule, tested in Python; None when a
    condition's field has no evaluator (ask the database instead). Stops at the
    first condition that decides, so data the rest would need is not loaded."""
    validate_match(match)
    normalised = _each(conditions, lambda index, raw: _normalise_one(raw))
    if any(REGISTRY[c["field"]].evaluate is None for c in normalised):
        return None
    if not normalised or not facts.is_live:
        return False
    tests = (REGISTRY[c["field"]].evaluate(c, facts) for c in normalised)
    return all(tests) if match == Match.ALL else any(tests)


# --- for people: the builder's catalogue and plain-language definitions -------------


def field_catalogue(tenant: Any) -> list[dict]:
    """Every field with its operators, value type and this tenant's choices, for
    the admin's condition builder."""
    tenant_id = getattr(tenant, "pk", tenant)
    catalogue = []
    for spec in REGISTRY.values():
        entry = {
            "name": spec.name,
            "label": spec.label,
            "ops": [[op, OP_LABELS[op]] for op in spec.ops],
            "type": spec.value_type,
            "choices": [[value, str(label)] for value, label in spec.choices_for(tenant_id)],
            "extras": list(spec.extras),
            "help": spec.help_text,
        }
        if spec.value_type == "consent":
            entry["channels"] = [[v, str(label)] for v, label in Channel.choices]
            entry["statuses"] = [[v, str(label)] for v, label in ConsentStatus.choices]
        if spec.value_type == "touchpoint":
            entry["kinds"] = list(COMMON_TOUCHPOINT_KINDS)
        catalogue.append(entry)
    return catalogue


def _value_text(spec: ConditionField, cond: dict, labels: dict) -> str:
    value = cond["value"]
    if spec.value_type == "consent":
        return f"{value['channel']} {value['status'].replace('_', ' ')}"
    if spec.value_type == "touchpoint":
        return f"{value['min_count']} x {value['kind']} in the last {value['within_days']} days"
    if cond["op"] == "between":
        return f"{value[0]} and {value[1]}"
    values = value if isinstance(value, list) else [value]
    return ", ".join(str(labels.get(v, v)) for v in values)


def describe_conditions(tenant: Any, match: str, conditions: Any) -> list[str]:
    """Plain-language lines for a stored rule, e.g. "Days since last order at
    least 30", for read-only screens. Unreadable conditions are shown raw."""
    tenant_id = getattr(tenant, "pk", tenant)
    families = dict(family_choices(tenant_id)) if conditions else {}
    lines = []
    for raw in conditions if isinstance(conditions, list) else []:
        try:
            cond = _normalise_one(raw)
        except ConditionError:
            lines.append(f"(unreadable condition: {raw!r})")
            continue
        spec = REGISTRY[cond["field"]]
        labels = families if spec.value_type == "family" else dict(spec.choices_for(tenant_id))
        line = f"{spec.label} {OP_LABELS[cond['op']]} {_value_text(spec, cond, labels)}"
        if cond.get("within_days"):
            line += f" in the last {cond['within_days']} days"
        lines.append(line)
    return lines
