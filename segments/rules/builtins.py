"""The built-in condition fields."""

from __future__ import annotations

from commerce.models import PriceTier
from segments.models import Tier
from segments.rules.facts import (
    _consent_value,
    _days_since_last_order_value,
    _family_bought_value,
    _family_not_bought_value,
    _price_tier_value,
    _tier_value,
    _touchpoint_value,
    rfm_value,
)
from segments.rules.registry import (
    MAX_DAYS,
    _days_extra,
    consent_parser,
    family_parser,
    integer_parser,
    register_condition,
    touchpoint_parser,
)
from segments.rules.sql import (
    _consent,
    _days_since_last_order,
    _family_bought,
    _family_not_bought,
    _price_tier,
    _tier,
    _touchpoint,
    rfm_column,
)
from segments.rules.validate import _resolve_families, family_choices

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
