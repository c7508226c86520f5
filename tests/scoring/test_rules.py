"""Churn scores in rule segments (``churn_band``, ``churn_probability``): the
same answer in SQL and in Python for one customer, never another store's
scores, clear errors for bad values, the admin builder's fields and live count,
and the refresh after a scoring run."""

from __future__ import annotations

import itertools
import json
import shutil
from datetime import UTC, datetime

import pytest
from django.urls import reverse

from commerce.models import Customer
from commerce.services.customers import customer_facts_changed
from retention import clock
from retention.errors import InvalidInput
from scoring.models import ChurnScore
from scoring.rules import SCORE_CAUSE, churn_segments_refresh
from segments import rules
from segments.models import Segment, SegmentMembership, SegmentTransition
from segments.services.memberships import segment_save, segments_refresh_customer
from tests.factories import CustomerFactory
from tests.scoring.score_rows import score
from tests.segments.test_builder_script import read_back

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
_slugs = itertools.count(1)


@pytest.fixture(autouse=True)
def _fixed_clock():
    clock.set_now(NOW)


def band(*values: str) -> dict:
    return {"field": "churn_band", "op": "in", "value": list(values)}


def probability(op: str, value) -> dict:
    return {"field": "churn_probability", "op": op, "value": value}


def scored(tenant, p_churn: float | None, band: str = "low") -> Customer:
    """A customer with a current score (none when ``p_churn`` is None)."""
    customer = CustomerFactory(tenant=tenant)
    if p_churn is not None:
        score(customer, p_churn, band=band)
    return customer


def members(tenant, *conditions, match="all") -> set[int]:
    return set(rules.members_queryset(tenant, match, list(conditions)).values_list("pk", flat=True))


def in_python(tenant, customers, *conditions, match="all") -> set[int]:
    out = set()
    for customer in customers:
        facts = rules.CustomerFacts(tenant.pk, customer.pk, NOW)
        hit = rules.evaluate_rule(facts, match, list(conditions))
        assert hit is not None  # tested in Python, not handed to the database
        if hit:
            out.add(customer.pk)
    return out


def rule_segment(tenant, *conditions, status: str = "active") -> Segment:
    return segment_save(
        tenant=tenant,
        data={
            "name": f"Churn {next(_slugs)}",
            "match": "all",
            "status": status,
            "conditions": list(conditions),
        },
    )


def member_ids(segment: Segment) -> set[int]:
    return set(
        SegmentMembership.objects.for_tenant(segment.tenant_id)
        .filter(segment=segment)
        .values_list("customer_id", flat=True)
    )


def rescore(customer: Customer, p_churn: float, band: str) -> None:
    ChurnScore.objects.for_tenant(customer.tenant_id).filter(customer_id=customer.pk).update(
        p_churn=p_churn, band=band
    )


# --- the fields ---------------------------------------------------------------------------


def test_a_high_band_segment_holds_exactly_this_stores_high_band_customers(
    tenant, other_tenant, eager_tasks, django_capture_on_commit_callbacks
):
    ann, bob = scored(tenant, 0.91, "high"), scored(tenant, 0.8, "high")
    scored(tenant, 0.6, "medium")
    scored(tenant, 0.1, "low")
    unscored = scored(tenant, None)
    theirs = scored(other_tenant, 0.95, "high")
    # A score row of the other store naming our customer is the other store's data.
    score(unscored, 0.99, band="high", tenant_id=other_tenant.pk)

    with django_capture_on_commit_callbacks(execute=True):
        at_risk = rule_segment(tenant, band("high"))
        their_segment = rule_segment(other_tenant, band("high"))

    assert member_ids(at_risk) == {ann.pk, bob.pk}
    assert member_ids(their_segment) == {theirs.pk}
    assert members(tenant, band("high")) == {ann.pk, bob.pk}


def test_band_and_probability_agree_in_sql_and_in_python(tenant, other_tenant):
    """Thresholds at 50% and 75% as the default bands; edges on both sides."""
    unscored = scored(tenant, None)
    by_p = {
        p_churn: scored(tenant, p_churn, risk)
        for p_churn, risk in (
            (0.0, "low"),
            (0.49, "low"),
            (0.5, "medium"),
            (0.74, "medium"),
            (0.75, "high"),
            (0.76, "high"),
            (0.83, "high"),
            (1.0, "high"),
        )
    }
    customers = [unscored, *by_p.values()]
    scored(other_tenant, 0.9, "high")

    for conditions, expected in (
        ([band("high")], {0.75, 0.76, 0.83, 1.0}),
        ([band("low", "medium")], {0.0, 0.49, 0.5, 0.74}),
        ([probability("gte", 75)], {0.75, 0.76, 0.83, 1.0}),
        ([probability("lte", 75)], {0.0, 0.49, 0.5, 0.74, 0.75}),
        ([probability("gte", 0)], {0.0, 0.49, 0.5, 0.74, 0.75, 0.76, 0.83, 1.0}),
        ([probability("lte", 0)], {0.0}),
        ([probability("gte", 100)], {1.0}),
        ([probability("gte", 50), probability("lte", 80)], {0.5, 0.74, 0.75, 0.76}),
        ([band("medium"), probability("gte", 60)], {0.74}),
    ):
        wanted = {by_p[p_churn].pk for p_churn in expected}
        assert members(tenant, *conditions) == wanted, conditions
        assert in_python(tenant, customers, *conditions) == wanted, conditions
    # Not scored yet: no churn condition matches, whatever the operator.
    everything = [band("low", "medium", "high"), probability("lte", 100)]
    assert unscored.pk not in members(tenant, *everything, match="any")
    assert in_python(tenant, [unscored], *everything, match="any") == set()


def test_a_customers_refresh_follows_a_new_score(tenant):
    ann = scored(tenant, 0.4, "low")
    at_risk = rule_segment(tenant, band("high"))
    likely = rule_segment(tenant, probability("gte", 80))

    rescore(ann, 0.85, "high")
    moves = segments_refresh_customer(tenant, ann.pk, cause=SCORE_CAUSE)

    assert sorted((m.segment_id, m.kind, m.cause) for m in moves) == [
        (at_risk.pk, "entered", "scoring"),
        (likely.pk, "entered", "scoring"),
    ]
    rescore(ann, 0.2, "low")
    moves = segments_refresh_customer(tenant, ann.pk, cause=SCORE_CAUSE)
    assert sorted((m.segment_id, m.kind) for m in moves) == [
        (at_risk.pk, "left"),
        (likely.pk, "left"),
    ]


def test_a_score_change_for_a_few_customers_retests_their_churn_segments(
    tenant, eager_tasks, django_capture_on_commit_callbacks
):
    ann = scored(tenant, 0.3, "low")
    at_risk = rule_segment(tenant, band("high"))

    rescore(ann, 0.9, "high")
    with django_capture_on_commit_callbacks(execute=True):
        customer_facts_changed(tenant.pk, [ann.pk], SCORE_CAUSE)

    assert member_ids(at_risk) == {ann.pk}


# --- bad values ---------------------------------------------------------------------------

PERCENT = "Enter the churn probability as a whole percentage from 0 to 100 (75 for 75%)."


def test_the_probability_is_a_whole_percentage_with_a_clear_error_otherwise(tenant):
    with pytest.raises(InvalidInput) as err:
        rules.validate_conditions(
            tenant,
            [
                probability("gte", 0.75),
                probability("lte", "0.3"),
                probability("gte", 101),
                probability("lte", -5),
                probability("gte", "lots"),
                probability("gte", 12.5),
                probability("between", [10, 20]),
                band("critical"),
                band(),
            ],
        )

    assert err.value.fields == {
        "conditions[0].value": "Enter the churn probability as a whole percentage from 0 to "
        "100, not a fraction: 75 rather than 0.75.",
        "conditions[1].value": "Enter the churn probability as a whole percentage from 0 to "
        "100, not a fraction: 30 rather than 0.3.",
        "conditions[2].value": PERCENT,
        "conditions[3].value": PERCENT,
        "conditions[4].value": PERCENT,
        "conditions[5].value": PERCENT,
        "conditions[6].op": "Operator 'between' does not apply to churn_probability; "
        "use one of gte, lte.",
        "conditions[7].value": "Unknown churn risk band 'critical'; choose one of low, "
        "medium, high.",
        "conditions[8].value": "Choose at least one churn risk band.",
    }
    assert rules.validate_conditions(
        tenant, [probability("gte", "75"), probability("lte", "40%"), band("high", "high")]
    ) == [probability("gte", 75), probability("lte", 40), band("high")]


# --- the admin builder ----------------------------------------------------------------------


def test_the_builder_offers_both_fields(tenant):
    catalogue = {f["name"]: f for f in rules.field_catalogue(tenant)}

    assert catalogue["churn_band"]["label"] == "Churn risk band"
    assert catalogue["churn_band"]["type"] == "choices"
    assert catalogue["churn_band"]["ops"] == [["in", "is one of"]]
    assert catalogue["churn_band"]["choices"] == [
        ["low", "Low"],
        ["medium", "Medium"],
        ["high", "High"],
    ]
    assert catalogue["churn_probability"]["type"] == "integer"
    assert catalogue["churn_probability"]["ops"] == [["gte", "at least"], ["lte", "at most"]]
    assert rules.describe_conditions(
        tenant, "all", [band("medium", "high"), probability("gte", 75)]
    ) == [
        "Churn risk band is one of Medium, High",
        "Churn probability (%) at least 75",
    ]


@pytest.mark.skipif(shutil.which("node") is None, reason="Node.js is not installed")
def test_the_builder_script_edits_both_fields(tenant):
    catalogue = {f["name"]: f for f in rules.field_catalogue(tenant)}

    assert read_back(catalogue["churn_band"], "in", band("high")) == {"value": ["high"]}
    assert read_back(catalogue["churn_probability"], "gte", probability("gte", 75)) == {"value": 75}


def preview(client, conditions) -> dict:
    response = client.get(
        reverse("admin:segments_segment_preview_add"),
        {"match": "all", "conditions": json.dumps(conditions)},
    )
    return {"status": response.status_code, **response.json()}


def test_the_live_count_reads_this_stores_scores(marketer_client, tenant, other_tenant):
    ann = scored(tenant, 0.9, "high")
    ann.email, ann.first_name, ann.last_name = "ann@alpha.example", "Ann", ""
    ann.save(update_fields=["email", "first_name", "last_name"])
    scored(tenant, 0.55, "medium")
    scored(other_tenant, 0.97, "high")

    body = preview(marketer_client, [band("high")])

    assert (body["status"], body["count"]) == (200, 1)
    assert [(m["email"], m["name"]) for m in body["sample"]] == [("ann@alpha.example", "Ann")]
    assert preview(marketer_client, [probability("gte", 50)])["count"] == 2

    bad = preview(marketer_client, [probability("gte", 0.5)])
    assert bad["status"] == 422
    assert bad["error"]["fields"] == {
        "conditions[0].value": "Enter the churn probability as a whole percentage from 0 to "
        "100, not a fraction: 50 rather than 0.5."
    }


def test_the_add_page_lists_the_churn_fields(marketer_client):
    response = marketer_client.get(reverse("admin:segments_segment_add"))

    body = response.content.decode()
    assert response.status_code == 200
    assert '"name": "churn_band"' in body
    assert '"name": "churn_probability"' in body


# --- after a scoring run ----------------------------------------------------------------------


def test_after_scoring_only_the_churn_segments_are_refreshed(tenant, other_tenant):
    ann, bob = scored(tenant, 0.3, "low"), scored(tenant, 0.9, "high")
    at_risk = rule_segment(tenant, band("high"))
    likely = rule_segment(tenant, probability("gte", 80))
    everyone = rule_segment(tenant, {"field": "orders_total", "op": "gte", "value": 0})
    paused = rule_segment(tenant, band("high"), status="archived")
    theirs = rule_segment(other_tenant, band("high"))
    churn_segments_refresh(tenant_id=tenant.pk)
    churn_segments_refresh(tenant_id=other_tenant.pk)
    before = SegmentTransition.objects.for_tenant(tenant).count()

    rescore(ann, 0.88, "high")
    rescore(bob, 0.45, "low")
    result = churn_segments_refresh(tenant_id=tenant.pk)

    assert result == {at_risk.pk: (1, 1), likely.pk: (1, 1)}
    assert member_ids(at_risk) == member_ids(likely) == {ann.pk}
    assert member_ids(everyone) == set() and member_ids(paused) == set()
    assert member_ids(theirs) == set()
    moves = SegmentTransition.objects.for_tenant(tenant).order_by("id")[before:]
    assert {(m.segment_id, m.customer_id, m.kind, m.cause) for m in moves} == {
        (at_risk.pk, ann.pk, "entered", "scoring"),
        (at_risk.pk, bob.pk, "left", "scoring"),
        (likely.pk, ann.pk, "entered", "scoring"),
        (likely.pk, bob.pk, "left", "scoring"),
    }
