"""Condition fields: limits, the field type, the registry and value parsers."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

from django.db.models import Q

from commerce.models import Channel, ConsentStatus

if TYPE_CHECKING:
    from segments.rules.facts import CustomerFacts


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
