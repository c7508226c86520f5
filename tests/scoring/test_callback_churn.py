"""Churn scores in the callback queue: a scored customer's callback gets the
churn points of its priority, and the agent's page shows the probability and
the reasons."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.urls import reverse

from commerce.models import Customer
from feedback.services.callbacks import callback_priority_for
from feedback.sla import callback_priority
from retention import clock
from tests.factories import CustomerFactory
from tests.feedback.callback_factories import answer, queue
from tests.scoring.score_rows import score

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)  # Monday 14:00 in Berlin


@pytest.fixture(autouse=True)
def _fixed_clock():
    clock.set_now(NOW)


def test_a_churn_score_raises_the_callback_priority(tenant):
    calm, slipping = CustomerFactory(tenant=tenant), CustomerFactory(tenant=tenant)
    score(slipping, 0.9)

    calm_call = queue(tenant, calm, survey_response=answer(calm, 2))
    slipping_call = queue(tenant, slipping, survey_response=answer(slipping, 2))

    assert calm_call.priority == callback_priority(rating=2) == 45
    assert slipping_call.priority == callback_priority(rating=2, churn_probability=0.9) == 72


def test_a_merged_away_customers_call_counts_the_survivors_score(tenant):
    survivor, merged = CustomerFactory(tenant=tenant), CustomerFactory(tenant=tenant)
    Customer.objects.for_tenant(tenant).filter(pk=merged.pk).update(merged_into=survivor)
    score(survivor, 0.5)

    assert callback_priority_for(tenant_id=tenant.pk, customer_id=merged.pk) == 30 + 15


def test_another_stores_score_does_not_count(tenant, other_tenant):
    customer = CustomerFactory(tenant=tenant)
    # A row of the other store that names this customer's id: never read here.
    score(customer, 1.0, tenant_id=other_tenant.pk)

    assert callback_priority_for(tenant_id=tenant.pk, customer_id=customer.pk) == 30


def test_the_agent_page_shows_the_churn_risk_and_its_reasons(tenant, agent_client):
    customer = CustomerFactory(tenant=tenant, first_name="Zoe")
    score(customer, 0.82, reasons=["No order for 140 days", "Rated the last delivery 2 of 5"])
    callback = queue(tenant, customer)

    page = agent_client.get(reverse("agent-callback", args=[callback.pk])).content.decode()

    assert "82% chance of no next order" in page
    assert "<li>No order for 140 days</li>" in page
    assert "<li>Rated the last delivery 2 of 5</li>" in page


def test_the_agent_page_says_when_a_customer_is_not_scored(tenant, agent_client):
    callback = queue(tenant, CustomerFactory(tenant=tenant))

    page = agent_client.get(reverse("agent-callback", args=[callback.pk])).content.decode()

    assert "not scored yet" in page
    assert "chance of no next order" not in page
