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

from segments.rules.builtins import (
    COUNT_OPS,
    FAMILY_EXTRAS,
    RANGE_OPS,
    SCORE_OPS,
    _register_builtins,
)
from segments.rules.facts import (
    CustomerFacts,
    evaluate_rule,
    rfm_value,
)
from segments.rules.registry import (
    CENT,
    COMMON_TOUCHPOINT_KINDS,
    DEFAULT_PARSERS,
    INT_RE,
    KIND_RE,
    MAX_CONDITIONS,
    MAX_COUNT,
    MAX_DAYS,
    MAX_MONEY,
    OP_LABELS,
    REGISTRY,
    Choices,
    CompileContext,
    Compiler,
    ConditionError,
    ConditionField,
    Evaluator,
    Parser,
    Resolver,
    choice_parser,
    consent_parser,
    family_parser,
    integer_parser,
    money_parser,
    parse_int,
    parse_money,
    register_condition,
    touchpoint_parser,
)
from segments.rules.sql import (
    conditions_q,
    members_queryset,
    rfm_column,
)
from segments.rules.validate import (
    describe_conditions,
    family_choices,
    field_catalogue,
    validate_conditions,
    validate_match,
)

__all__ = [
    "CENT",
    "COMMON_TOUCHPOINT_KINDS",
    "COUNT_OPS",
    "DEFAULT_PARSERS",
    "FAMILY_EXTRAS",
    "INT_RE",
    "KIND_RE",
    "MAX_CONDITIONS",
    "MAX_COUNT",
    "MAX_DAYS",
    "MAX_MONEY",
    "OP_LABELS",
    "RANGE_OPS",
    "REGISTRY",
    "SCORE_OPS",
    "Choices",
    "CompileContext",
    "Compiler",
    "ConditionError",
    "ConditionField",
    "CustomerFacts",
    "Evaluator",
    "Parser",
    "Resolver",
    "choice_parser",
    "conditions_q",
    "consent_parser",
    "describe_conditions",
    "evaluate_rule",
    "family_choices",
    "family_parser",
    "field_catalogue",
    "integer_parser",
    "members_queryset",
    "money_parser",
    "parse_int",
    "parse_money",
    "register_condition",
    "rfm_column",
    "rfm_value",
    "touchpoint_parser",
    "validate_conditions",
    "validate_match",
]

_register_builtins()
