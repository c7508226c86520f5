"""Callback priority: from the rating, the customer's value and (when scoring
lands) churn risk; deterministic; computed by callback_create unless given."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from feedback.sla import callback_priority
from retention import clock
from tests.factories import CustomerFactory
from tests.feedback.callback_factories import answer, queue, rfm

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _fixed_clock():
    clock.set_now(NOW)


@pytest.mark.parametrize(
    ("inputs", "expected"),
    [
        ({"rating": 1}, 60),
        ({"rating": 2}, 45),
        ({"rating": 3}, 30),
        ({"rating": 4}, 15),
        ({"rating": 5}, 0),
        ({}, 30),  # no rating: a journey step, as urgent as a 3
        ({"rating": 9}, 30),  # out of range counts as no rating
        ({"rating": 3, "tier": "high_value_repeat", "monetary_score": 5}, 58),
        ({"rating": 3, "tier": "mid_value_repeat", "monetary_score": 3}, 44),
        ({"rating": 3, "tier": "one_time", "monetary_score": 1}, 30),
        ({"rating": 3, "monetary_score": 9}, 38),  # clamped to 5
        ({"rating": 2, "churn_probability": 0.5}, 60),
        ({"rating": 2, "churn_probability": 1.7}, 75),  # clamped to 1
        ({"rating": 5, "asked_for_call": True}, 5),
        (
            {
                "rating": 1,
                "tier": "high_value_repeat",
                "monetary_score": 5,
                "churn_probability": 1.0,
                "asked_for_call": True,
            },
            123,
        ),
    ],
)
def test_priority_adds_up_the_documented_points(inputs, expected):
    assert callback_priority(**inputs) == expected


def test_a_lower_rating_comes_first_unless_the_customer_is_worth_much_more():
    one_star_new = callback_priority(rating=1, tier="one_time", monetary_score=1)
    two_star_mid = callback_priority(rating=2, tier="mid_value_repeat", monetary_score=3)
    three_star_top = callback_priority(rating=3, tier="high_value_repeat", monetary_score=5)
    two_star_top = callback_priority(rating=2, tier="high_value_repeat", monetary_score=5)

    assert one_star_new > two_star_mid > three_star_top
    assert two_star_top > one_star_new


def test_churn_risk_only_counts_once_scored():
    assert callback_priority(rating=3, churn_probability=None) == callback_priority(rating=3)
    assert callback_priority(rating=3, churn_probability=0.9) > callback_priority(rating=3)


# --- computed when queueing ----------------------------------------------------------------


def test_callback_create_computes_the_priority_from_the_answer_and_tier(tenant):
    ann = CustomerFactory(tenant=tenant)
    rfm(ann, "high_value_repeat", m_score=4)
    response = answer(ann, 1)

    callback = queue(tenant, ann, survey_response=response, asked_for_call=True)

    assert callback.priority == 60 + 20 + 6 + 5


def test_callback_create_without_answer_or_rfm_gets_the_middle_priority(tenant):
    assert queue(tenant, source="journey").priority == 30


def test_a_given_priority_is_kept(tenant):
    ann = CustomerFactory(tenant=tenant)
    rfm(ann, "high_value_repeat", m_score=5)

    assert queue(tenant, ann, survey_response=answer(ann, 1), priority=-3).priority == -3


def test_another_tenants_rfm_does_not_count(tenant, other_tenant):
    ours = CustomerFactory(tenant=tenant)
    theirs = CustomerFactory(tenant=other_tenant)
    rfm(theirs, "high_value_repeat", m_score=5)

    assert queue(tenant, ours, survey_response=answer(ours, 2)).priority == 45
