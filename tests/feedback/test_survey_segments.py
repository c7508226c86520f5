"""Survey answers in segments (``survey_class``, ``survey_wants``: the latest
answer, optionally within N days) and on the customer's admin page."""

from __future__ import annotations

import itertools
from datetime import timedelta

import pytest
from django.urls import reverse

from commerce.models import Customer
from feedback.models import SurveyInvitation, SurveyResponse
from feedback.services import survey_answer
from retention import clock
from retention.errors import InvalidInput
from segments import rules
from segments.models import Segment, SegmentKind, SegmentMembership
from segments.services.memberships import segment_refresh, segments_refresh_customer
from tests.factories import CustomerFactory
from tests.feedback.test_survey_support import NOW, invite

_keys = itertools.count(1)


@pytest.fixture(autouse=True)
def _fixed_clock():
    clock.set_now(NOW)


def answered(
    customer: Customer,
    classification: str,
    *,
    wants: str = "",
    ago: timedelta = timedelta(0),
    rating: int | None = None,
) -> SurveyResponse:
    """An answer written straight to the table, ``ago`` before now."""
    at = NOW - ago
    invitation = SurveyInvitation.objects.create(
        tenant_id=customer.tenant_id,
        customer=customer,
        channel="email",
        created_at=at,
        expires_at=at + timedelta(days=30),
    )
    ratings = {"promoter": 5, "neutral": 4, "detractor": 2}
    return SurveyResponse.objects.create(
        tenant_id=customer.tenant_id,
        invitation=invitation,
        customer=customer,
        rating=rating or ratings[classification],
        classification=classification,
        wants=wants,
        channel="web",
        answered_at=at,
    )


def members(tenant, *conditions, match="all") -> set[int]:
    return set(rules.members_queryset(tenant, match, list(conditions)).values_list("pk", flat=True))


def in_python(tenant, customers, *conditions) -> set[int]:
    return {
        c.pk
        for c in customers
        if rules.evaluate_rule(rules.CustomerFacts(tenant.pk, c.pk, NOW), "all", list(conditions))
    }


def cls(*values, **extra) -> dict:
    return {"field": "survey_class", "op": "in", "value": list(values), **extra}


def wants(*values, **extra) -> dict:
    return {"field": "survey_wants", "op": "in", "value": list(values), **extra}


def test_survey_class_reads_the_latest_answer(tenant):
    ann, bob, cid, dan = (CustomerFactory(tenant=tenant) for _ in range(4))
    answered(ann, "promoter", ago=timedelta(days=40))
    answered(ann, "detractor", ago=timedelta(days=2))  # ann is now a detractor
    answered(bob, "detractor", ago=timedelta(days=40))
    answered(bob, "promoter", ago=timedelta(days=1))
    answered(cid, "neutral", ago=timedelta(days=3))
    # dan never answered

    assert members(tenant, cls("detractor")) == {ann.pk}
    assert members(tenant, cls("promoter")) == {bob.pk}
    assert members(tenant, cls("neutral", "detractor")) == {ann.pk, cid.pk}
    assert dan.pk not in members(tenant, cls("promoter", "neutral", "detractor"))


def test_within_days_asks_that_the_latest_answer_is_that_recent(tenant):
    ann, bob = CustomerFactory(tenant=tenant), CustomerFactory(tenant=tenant)
    answered(ann, "detractor", ago=timedelta(days=7) - timedelta(microseconds=1))
    answered(bob, "detractor", ago=timedelta(days=7))  # exactly 7 days: outside "last 7 days"

    assert members(tenant, cls("detractor", within_days=7)) == {ann.pk}
    assert members(tenant, cls("detractor", within_days=8)) == {ann.pk, bob.pk}
    assert members(tenant, cls("detractor")) == {ann.pk, bob.pk}


def test_an_older_answer_in_the_window_does_not_count_when_a_newer_one_differs(tenant):
    ann = CustomerFactory(tenant=tenant)
    answered(ann, "detractor", ago=timedelta(days=3))
    answered(ann, "promoter", ago=timedelta(days=1))

    assert members(tenant, cls("detractor", within_days=30)) == set()


def test_answers_at_the_same_moment_are_ordered_by_id(tenant):
    ann = CustomerFactory(tenant=tenant)
    answered(ann, "promoter")
    answered(ann, "detractor")  # same time, recorded later

    assert members(tenant, cls("detractor")) == {ann.pk}
    assert in_python(tenant, [ann], cls("detractor")) == {ann.pk}


def test_an_answer_after_now_is_not_yet_counted(tenant):
    ann = CustomerFactory(tenant=tenant)
    answered(ann, "neutral", ago=timedelta(days=1))
    answered(ann, "detractor", ago=-timedelta(hours=1))

    assert members(tenant, cls("neutral")) == {ann.pk}
    assert in_python(tenant, [ann], cls("neutral")) == {ann.pk}


def test_survey_wants_reads_the_latest_answers_wish(tenant):
    ann, bob, cid = (CustomerFactory(tenant=tenant) for _ in range(3))
    answered(ann, "promoter", wants="demo", ago=timedelta(days=5))
    answered(bob, "neutral", wants="promotion", ago=timedelta(days=50))
    answered(bob, "neutral", wants="nothing", ago=timedelta(days=1))  # no longer wants it
    answered(cid, "detractor", wants="callback", ago=timedelta(days=1))

    assert members(tenant, wants("demo")) == {ann.pk}
    assert members(tenant, wants("promotion")) == set()
    assert members(tenant, wants("demo", "promotion", "callback")) == {ann.pk, cid.pk}
    assert members(tenant, wants("demo", within_days=3)) == set()
    assert members(tenant, cls("promoter"), wants("demo")) == {ann.pk}


EDGES = [
    *(cls(c) for c in ("promoter", "neutral", "detractor")),
    *(cls("detractor", within_days=d) for d in (1, 2, 3)),
    cls("promoter", "neutral", within_days=2),
    *(wants(w) for w in ("tip", "promotion", "demo", "callback")),
    *(wants("tip", "demo", within_days=d) for d in (1, 2, 3)),
]


def test_python_and_sql_agree_on_every_edge(tenant):
    customers = [CustomerFactory(tenant=tenant)]  # never answered
    classes = ["promoter", "neutral", "detractor"]
    wishes = ["", "tip", "promotion", "demo", "callback", "nothing"]
    for days in range(4):
        for tick in (-1, 0, 1):
            ago = timedelta(days=days, microseconds=tick)
            for classification in classes:
                customer = CustomerFactory(tenant=tenant)
                n = len(customers)
                if n % 2:  # an older answer of another class and wish first
                    older = ago + timedelta(days=1)
                    answered(customer, classes[n % 3], wants=wishes[(n + 3) % 6], ago=older)
                answered(customer, classification, wants=wishes[n % 6], ago=ago)
                customers.append(customer)

    for condition in EDGES:
        in_sql = members(tenant, condition)
        assert in_python(tenant, customers, condition) == in_sql, condition
        assert 0 < len(in_sql) < len(customers), condition  # the edge is inside the data


def test_conditions_are_checked_when_saved(tenant):
    with pytest.raises(InvalidInput) as err:
        rules.validate_conditions(
            tenant,
            [cls("grumpy"), wants("nothing"), cls("promoter", within_days=0)],
        )

    assert set(err.value.fields) == {
        "conditions[0].value",
        "conditions[1].value",
        "conditions[2].within_days",
    }
    assert rules.validate_conditions(tenant, [cls("detractor", within_days="30")]) == [
        cls("detractor", within_days=30)
    ]


def test_the_builder_offers_both_fields_with_their_choices(tenant):
    catalogue = {f["name"]: f for f in rules.field_catalogue(tenant)}

    assert catalogue["survey_class"]["choices"] == [
        ["promoter", "Promoter"],
        ["neutral", "Neutral"],
        ["detractor", "Detractor"],
    ]
    assert [v for v, _ in catalogue["survey_wants"]["choices"]] == [
        "tip",
        "promotion",
        "demo",
        "callback",
    ]
    assert catalogue["survey_class"]["extras"] == ["within_days"]
    assert rules.describe_conditions(tenant, "all", [cls("detractor", within_days=30)]) == [
        "Latest survey class is one of Detractor in the last 30 days"
    ]


# --- rule segments ----------------------------------------------------------------------------


def rule_segment(tenant, conditions) -> Segment:
    return Segment.objects.create(
        tenant=tenant,
        kind=SegmentKind.RULE,
        name="Unhappy lately",
        slug=f"unhappy-{next(_keys)}",
        match="all",
        conditions=conditions,
    )


def member_ids(segment: Segment) -> set[int]:
    return set(
        SegmentMembership.objects.for_tenant(segment.tenant_id)
        .filter(segment=segment)
        .values_list("customer_id", flat=True)
    )


def test_a_rule_segment_on_survey_answers_fills_with_this_tenants_customers(tenant, other_tenant):
    ours, theirs = invite(tenant), invite(other_tenant)
    survey_answer(invitation=ours, rating=1, channel="web")
    survey_answer(invitation=theirs, rating=1, channel="web")
    happy = invite(tenant)
    survey_answer(invitation=happy, rating=5, channel="web", wants="demo")
    unhappy = rule_segment(tenant, [cls("detractor", within_days=30)])
    demo = rule_segment(tenant, [wants("demo")])
    their_segment = rule_segment(other_tenant, [cls("detractor")])

    assert segment_refresh(unhappy) == (1, 0)
    assert segment_refresh(demo) == (1, 0)
    assert segment_refresh(their_segment) == (1, 0)

    assert member_ids(unhappy) == {ours.customer_id}
    assert member_ids(demo) == {happy.customer_id}
    assert member_ids(their_segment) == {theirs.customer_id}


def test_a_customer_leaves_when_a_newer_answer_changes_the_class(tenant):
    ann = CustomerFactory(tenant=tenant)
    answered(ann, "detractor", ago=timedelta(days=10))
    unhappy = rule_segment(tenant, [cls("detractor")])
    segment_refresh(unhappy)
    assert member_ids(unhappy) == {ann.pk}

    answered(ann, "promoter")
    moves = segments_refresh_customer(tenant, ann.pk, cause="touchpoint")

    assert [(m.segment_id, m.kind) for m in moves] == [(unhappy.pk, "left")]
    assert member_ids(unhappy) == set()


def test_the_window_lets_a_customer_go_as_time_passes(tenant):
    ann = CustomerFactory(tenant=tenant)
    answered(ann, "detractor")
    recent = rule_segment(tenant, [cls("detractor", within_days=30)])
    segment_refresh(recent)
    assert member_ids(recent) == {ann.pk}

    clock.advance(days=30)

    assert segment_refresh(recent) == (0, 1)


# --- the customer page ------------------------------------------------------------------------


def test_the_customer_page_shows_survey_answers_and_signals(tenant, other_tenant, viewer_client):
    invitation = invite(tenant)
    ann = invitation.customer
    survey_answer(
        invitation=invitation,
        rating=2,
        channel="web",
        highlights=["slow_delivery", "damaged_or_wrong"],
        highlight_text="Box <crushed>",
        wants="promotion",
        comment="Please fix",
    )
    neighbour = invite(tenant)
    survey_answer(invitation=neighbour, rating=5, channel="web", comment="Another customer's")
    theirs = invite(other_tenant)
    survey_answer(invitation=theirs, rating=5, channel="web", comment="Their secret comment")

    response = viewer_client.get(reverse("admin:commerce_customer_change", args=[ann.pk]))

    assert response.status_code == 200
    body = response.content.decode()
    assert "Survey answers" in body
    assert "Latest answer: <strong>Detractor</strong> (2 of 5," in body
    assert "would like: <strong>A promotion</strong>" in body
    assert "Slow delivery, Damaged or wrong item" in body
    assert "Box &lt;crushed&gt;" in body  # escaped
    assert "Please fix" in body
    assert "Their secret comment" not in body
    assert "Another customer" not in body


def test_a_customer_without_answers_says_so(tenant, viewer_client):
    ann = CustomerFactory(tenant=tenant)

    response = viewer_client.get(reverse("admin:commerce_customer_change", args=[ann.pk]))

    assert "No survey answers yet." in response.content.decode()


def test_an_answer_moves_the_customer_into_a_survey_segment_at_once(
    tenant, eager_tasks, django_capture_on_commit_callbacks
):
    unhappy = rule_segment(tenant, [cls("detractor")])
    invitation = invite(tenant)

    with django_capture_on_commit_callbacks(execute=True):
        survey_answer(invitation=invitation, rating=2, channel="web")

    assert member_ids(unhappy) == {invitation.customer_id}
