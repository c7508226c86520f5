"""Segment conditions on survey answers (registered with segments'
``register_condition`` from ``survey_hooks.register``):

    {"field": "survey_class", "op": "in", "value": ["detractor"], "within_days": 30}
    {"field": "survey_wants", "op": "in", "value": ["promotion", "demo"]}

Both read the customer's *latest* answer (as of the rule's "now"): a promoter
who later answers as a detractor is a detractor. ``within_days`` (optional)
also asks that the latest answer is that recent. Compiled to one tenant-scoped
``Exists`` per condition (the latest answer is the one no later answer of the
same customer follows), and tested the same way in Python for one customer.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from django.db.models import Exists, OuterRef, Q

from feedback.models import SurveyClass, SurveyResponse, Want

if TYPE_CHECKING:
    from segments.rules import CompileContext, CustomerFacts

# Wishes a segment can select on ("nothing" is no wish).
WANT_CHOICES = [(value, label) for value, label in Want.choices if value != Want.NOTHING]
_CACHE = "_feedback_latest_survey_response"


def _within_days(raw: Any) -> int | None:
    from segments.rules import MAX_DAYS, parse_int

    if raw in (None, ""):
        return None
    return parse_int(raw, minimum=1, maximum=MAX_DAYS, key="within_days")


def _latest_compiler(column: str) -> Callable[[dict, CompileContext], Q]:
    def compile(cond: dict, ctx: CompileContext) -> Q:
        responses = SurveyResponse.objects.for_tenant(ctx.tenant_id)
        later = responses.filter(customer=OuterRef("customer"), answered_at__lte=ctx.now).filter(
            Q(answered_at__gt=OuterRef("answered_at"))
            | Q(answered_at=OuterRef("answered_at"), pk__gt=OuterRef("pk"))
        )
        latest = responses.filter(
            customer=OuterRef("pk"), answered_at__lte=ctx.now, **{f"{column}__in": cond["value"]}
        )
        if cond.get("within_days"):
            latest = latest.filter(answered_at__gt=ctx.now - timedelta(days=cond["within_days"]))
        return Q(Exists(latest.filter(~Exists(later))))

    return compile


def _latest_evaluator(column: str) -> Callable[[dict, CustomerFacts], bool]:
    def evaluate(cond: dict, facts: CustomerFacts) -> bool:
        # One query per customer, shared by both fields.
        if _CACHE not in facts.__dict__:
            facts.__dict__[_CACHE] = (
                SurveyResponse.objects.for_tenant(facts.tenant_id)
                .filter(customer_id=facts.customer_id, answered_at__lte=facts.now)
                .order_by("-answered_at", "-id")
                .values("classification", "wants", "answered_at")
                .first()
            )
        latest = facts.__dict__[_CACHE]
        if latest is None:
            return False
        days = cond.get("within_days")
        if days and not latest["answered_at"] > facts.now - timedelta(days=days):
            return False
        return latest[column] in cond["value"]

    return evaluate


def register() -> None:
    """Add the fields to the segment rules (idempotent)."""
    from segments.rules import register_condition

    for name, label, column, choices, help_text in (
        (
            "survey_class",
            "Latest survey class",
            "classification",
            SurveyClass.choices,
            "The class of the customer's latest survey answer (promoter, neutral, "
            "detractor); optionally only if answered in the last N days.",
        ),
        (
            "survey_wants",
            "Latest survey wish",
            "wants",
            WANT_CHOICES,
            "What the customer's latest survey answer asked for (a tip, a promotion, a "
            "demo, a call back); optionally only if answered in the last N days.",
        ),
    ):
        register_condition(
            name,
            label=label,
            ops=("in",),
            value_type="choices",
            choices=choices,
            extras={"within_days": _within_days},
            compile=_latest_compiler(column),
            evaluate=_latest_evaluator(column),
            help_text=help_text,
            replace=True,
        )
