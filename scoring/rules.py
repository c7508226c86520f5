"""Segment conditions on churn scores (registered with segments'
``register_condition`` from ``scoring.apps``):

    {"field": "churn_band", "op": "in", "value": ["medium", "high"]}
    {"field": "churn_probability", "op": "gte", "value": 75}

Both read the customer's current score (``ChurnScore``, one row per customer,
replaced by every nightly run). ``churn_probability`` is a whole percentage
from 0 to 100, so ``gte 75`` means ``p_churn >= 0.75``: the builder's
whole-number box takes it as marketers say it, and a 0-1 value such as 0.75
is refused with an error that says so. A customer not scored yet has no
band and no probability and matches neither condition (like a non-buyer and
"days since last order").

Compiled to one tenant-scoped ``Exists`` per condition, and tested the same way
in Python on one customer's ``CustomerFacts`` (one query for both fields).

Segments on these fields change when scores change, which is not an order or a
tracked event: after a scoring run the scorer calls :func:`churn_segments_refresh`
(set-based, only the segments that read a churn field). For a handful of
customers rescored outside the nightly run, ``customer_facts_changed(tenant_id,
ids, SCORE_CAUSE)`` re-tests just those customers.
"""

from __future__ import annotations

import logging
from typing import Any

from django.db.models import Exists, OuterRef, Q

from retention.errors import InvalidInput
from scoring.models import ChurnScore, RiskBand
from segments.hooks import refresh_fields_on
from segments.models import SegmentKind, SegmentStatus
from segments.rules import (
    INT_RE,
    CompileContext,
    ConditionError,
    CustomerFacts,
    register_condition,
)
from segments.selectors import segment_list
from segments.services.memberships import segment_refresh

logger = logging.getLogger(__name__)

CHURN_FIELDS = ("churn_band", "churn_probability")
# The cause recorded on segment moves that follow a change of score.
SCORE_CAUSE = "scoring"
PERCENT_OPS = ("gte", "lte")
_CACHE = "_scoring_churn_score"
_PERCENT_HELP = "Enter the churn probability as a whole percentage from 0 to 100 (75 for 75%)."


# --- the value -----------------------------------------------------------------------


def parse_percent(op: str, raw: Any) -> int:
    """A whole percentage 0-100 (JSON numbers and digit strings, as HTML inputs
    send them); a 0-1 fraction gets its own message, it is the likely mistake."""
    value: int | None = None
    text = raw.strip().removesuffix("%").strip() if isinstance(raw, str) else ""
    if isinstance(raw, int) and not isinstance(raw, bool):
        value = raw
    elif isinstance(raw, float) and raw.is_integer():
        value = int(raw)
    elif INT_RE.match(text):
        value = int(text)
    elif isinstance(raw, float | str) and _is_fraction(raw):
        raise ConditionError(
            "Enter the churn probability as a whole percentage from 0 to 100, not a "
            f"fraction: {round(float(raw) * 100)} rather than {raw}."
        )
    if value is None or not 0 <= value <= 100:
        raise ConditionError(_PERCENT_HELP)
    return value


def _is_fraction(raw: float | str) -> bool:
    try:
        number = float(raw)
    except ValueError:
        return False
    return 0 < number < 1


def _threshold(cond: dict) -> float:
    return cond["value"] / 100


# --- compiled to the ORM ---------------------------------------------------------------


def _scores(ctx: CompileContext, **lookups: Any) -> Q:
    return Q(
        Exists(
            ChurnScore.objects.for_tenant(ctx.tenant_id).filter(customer=OuterRef("pk"), **lookups)
        )
    )


def _band(cond: dict, ctx: CompileContext) -> Q:
    return _scores(ctx, band__in=cond["value"])


def _probability(cond: dict, ctx: CompileContext) -> Q:
    return _scores(ctx, **{f"p_churn__{cond['op']}": _threshold(cond)})


# --- the same tests in Python, for one customer --------------------------------------


def _score(facts: CustomerFacts) -> dict | None:
    # One query per customer, shared by both fields.
    if _CACHE not in facts.__dict__:
        facts.__dict__[_CACHE] = (
            ChurnScore.objects.for_tenant(facts.tenant_id)
            .filter(customer_id=facts.customer_id)
            .values("band", "p_churn")
            .first()
        )
    return facts.__dict__[_CACHE]


def _band_value(cond: dict, facts: CustomerFacts) -> bool:
    score = _score(facts)
    return score is not None and score["band"] in cond["value"]


def _probability_value(cond: dict, facts: CustomerFacts) -> bool:
    score = _score(facts)
    if score is None:
        return False
    if cond["op"] == "gte":
        return score["p_churn"] >= _threshold(cond)
    return score["p_churn"] <= _threshold(cond)


# --- registration ----------------------------------------------------------------------


def register_rules() -> None:
    """Add the fields to the segment rules (idempotent), and let a change of
    score re-test the segments that read them."""
    register_condition(
        "churn_band",
        label="Churn risk band",
        ops=("in",),
        value_type="choices",
        choices=RiskBand.choices,
        compile=_band,
        evaluate=_band_value,
        help_text="The customer's risk band from the latest nightly churn score; "
        "customers not scored yet match no churn condition.",
        replace=True,
    )
    register_condition(
        "churn_probability",
        label="Churn probability (%)",
        ops=PERCENT_OPS,
        value_type="integer",
        parse=parse_percent,
        compile=_probability,
        evaluate=_probability_value,
        help_text="The chance of no order within the scoring horizon, as a whole "
        "percentage (75 = 75%), from the latest nightly score; customers not scored "
        "yet match no churn condition.",
        replace=True,
    )
    refresh_fields_on(SCORE_CAUSE, set(CHURN_FIELDS))


# --- after scores change -----------------------------------------------------------------


def reads_churn(conditions: Any) -> bool:
    """Whether a stored rule has a condition on a churn field."""
    return isinstance(conditions, list) and any(
        isinstance(c, dict) and c.get("field") in CHURN_FIELDS for c in conditions
    )


def churn_segments_refresh(
    *, tenant_id: int, cause: str = SCORE_CAUSE
) -> dict[int, tuple[int, int]]:
    """Bring the tenant's active rule segments that read a churn field up to date
    with the current scores, set-based, one segment at a time (the same refresh
    an edit or the nightly segments run does). Returns {segment id: (entered,
    left)}. Moves are recorded with ``cause``: pass segments' ``IMPORT_CAUSE``
    for a run whose band entries are not news (the first scoring of a store),
    so they start no journey."""
    results: dict[int, tuple[int, int]] = {}
    segments = (
        segment_list(tenant=tenant_id, kind=SegmentKind.RULE)
        .filter(status=SegmentStatus.ACTIVE)
        .order_by("pk")
    )
    for segment in segments:
        if not reads_churn(segment.conditions):
            continue
        try:
            results[segment.pk] = segment_refresh(segment, cause=cause)
        except InvalidInput as exc:
            logger.error(
                "scoring.segment_refresh_failed tenant_id=%s segment_id=%s error=%s",
                tenant_id,
                segment.pk,
                exc.message,
            )
    return results
