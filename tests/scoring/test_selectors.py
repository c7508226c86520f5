"""Scoring's reads (a customer's score and history, the active version, the
policy's outcomes) and making a version active: scoped to one store, merged
customers followed to their survivor."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from commerce.models import Customer
from retention import clock
from retention.errors import InvalidInput, NotFound
from retention.models import AuditEntry
from scoring import selectors
from scoring.models import ModelVersion, NextAction, RiskBand
from scoring.services.versions import version_activate
from tests.factories import CustomerFactory
from tests.scoring.score_rows import chosen, history, score, version

NOW = datetime(2026, 6, 1, 3, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _fixed_clock():
    clock.set_now(NOW)


def _merge(merged: Customer, survivor: Customer) -> None:
    Customer.objects.for_tenant(merged.tenant_id).filter(pk=merged.pk).update(merged_into=survivor)


# --- one customer ---------------------------------------------------------------------------


def test_customer_score_comes_with_its_version_and_reasons(tenant):
    customer = CustomerFactory(tenant=tenant)
    v3 = version(tenant, 3, active=True, artifact=b"big")
    score(customer, 0.82, reasons=["No order for 140 days"], model_version=v3)

    found = selectors.customer_score(tenant.pk, customer.pk)

    assert (found.p_churn, found.reasons) == (0.82, ["No order for 140 days"])
    assert found.model_version.version == 3
    assert "artifact" in found.model_version.get_deferred_fields()


def test_another_stores_customer_has_no_score_here(tenant, other_tenant):
    theirs = CustomerFactory(tenant=other_tenant)
    score(theirs, 0.9)

    assert selectors.customer_score(tenant.pk, theirs.pk) is None
    assert selectors.churn_probability(tenant.pk, theirs.pk) is None
    assert selectors.customer_score_history(tenant.pk, theirs.pk) == []


def test_a_merged_away_customer_leads_to_the_survivors_score(tenant):
    survivor = CustomerFactory(tenant=tenant)
    merged = CustomerFactory(tenant=tenant)
    _merge(merged, survivor)
    score(survivor, 0.61, band=RiskBand.MEDIUM)
    history(survivor, NOW - timedelta(days=1), 0.6)

    assert selectors.customer_score(tenant.pk, merged.pk).p_churn == 0.61
    assert selectors.churn_probability(tenant.pk, merged.pk) == 0.61
    assert [h.p_churn for h in selectors.customer_score_history(tenant.pk, merged.pk)] == [0.6]


def test_an_unscored_customer_has_no_probability(tenant):
    customer = CustomerFactory(tenant=tenant)

    assert selectors.customer_score(tenant.pk, customer.pk) is None
    assert selectors.churn_probability(tenant.pk, customer.pk) is None


def test_churn_probability_is_one_query_for_a_scored_customer(tenant, django_assert_num_queries):
    customer = CustomerFactory(tenant=tenant)
    score(customer, 0.33)

    with django_assert_num_queries(1):
        assert selectors.churn_probability(tenant.pk, customer.pk) == 0.33


def test_history_is_newest_first_and_limited(tenant):
    customer = CustomerFactory(tenant=tenant)
    for days, p in ((3, 0.3), (1, 0.5), (2, 0.4)):
        history(customer, NOW - timedelta(days=days), p)

    rows = selectors.customer_score_history(tenant.pk, customer.pk, limit=2)

    assert [r.p_churn for r in rows] == [0.5, 0.4]


# --- versions -------------------------------------------------------------------------------


def test_active_version_is_the_stores_own(tenant, other_tenant):
    assert selectors.active_version(tenant.pk) is None
    version(other_tenant, 1, active=True)
    version(tenant, 1)
    mine = version(tenant, 2, active=True)

    assert selectors.active_version(tenant.pk) == mine


def test_activating_an_older_version_deactivates_the_current_one(tenant, owner_client):
    v1 = version(tenant, 1)
    v2 = version(tenant, 2, active=True)

    done = version_activate(tenant_id=tenant.pk, version_id=v1.pk, actor=owner_client.user)

    assert done.pk == v1.pk and done.is_active
    active = ModelVersion.objects.for_tenant(tenant).filter(is_active=True)
    assert list(active.values_list("version", flat=True)) == [1]
    entry = AuditEntry.objects.for_tenant(tenant).get(object_type="scoring.modelversion")
    assert entry.changes == {"event": "model_version.activated", "deactivated": [v2.pk]}


def test_activating_the_active_version_changes_nothing(tenant):
    v1 = version(tenant, 1, active=True)

    assert version_activate(tenant_id=tenant.pk, version_id=v1.pk).is_active
    assert (
        not AuditEntry.objects.for_tenant(tenant)
        .filter(object_type="scoring.modelversion")
        .exists()
    )


def test_activating_with_no_version_active_yet(tenant):
    v1 = version(tenant, 1)

    version_activate(tenant_id=tenant.pk, version_id=v1.pk)

    assert selectors.active_version(tenant.pk) == v1


def test_another_stores_version_is_not_found_and_nothing_changes(tenant, other_tenant):
    mine = version(tenant, 1, active=True)
    theirs = version(other_tenant, 1)

    with pytest.raises(NotFound):
        version_activate(tenant_id=tenant.pk, version_id=theirs.pk)

    assert ModelVersion.objects.for_tenant(tenant).get(pk=mine.pk).is_active
    assert not ModelVersion.objects.for_tenant(other_tenant).get(pk=theirs.pk).is_active


@pytest.mark.parametrize("bad", ["abc", "", None, -1, 2**70])
def test_a_malformed_version_id_is_invalid_input(tenant, bad):
    with pytest.raises(InvalidInput) as caught:
        version_activate(tenant_id=tenant.pk, version_id=bad)

    assert caught.value.fields == {"version_id": "Not a valid id."}


# --- policy outcomes ------------------------------------------------------------------------


def test_policy_outcomes_count_chosen_judged_and_ordered_in_one_query(
    tenant, other_tenant, django_assert_num_queries
):
    customers = [CustomerFactory(tenant=tenant) for _ in range(5)]
    day = NOW - timedelta(days=100)
    chosen(customers[0], day, ordered=True)
    chosen(customers[1], day, ordered=False)
    chosen(customers[2], day, ordered=None)
    chosen(customers[3], day, ordered=True)
    chosen(customers[4], day, action=NextAction.NUDGE, band=RiskBand.MEDIUM, ordered=None)
    chosen(customers[0], day + timedelta(days=1), action=NextAction.WINBACK, ordered=False)
    chosen(CustomerFactory(tenant=other_tenant), day, ordered=True)

    with django_assert_num_queries(1):
        rows = selectors.policy_outcomes(tenant.pk)

    assert [(r["action"], r["band"], r["chosen"], r["judged"], r["ordered"]) for r in rows] == [
        ("call", "high", 4, 3, 2),
        ("winback", "high", 1, 1, 0),
        ("nudge", "medium", 1, 0, 0),
    ]
    assert rows[0]["ordered_rate"] == pytest.approx(2 / 3)
    assert rows[1]["ordered_rate"] == 0.0
    assert rows[2]["ordered_rate"] is None
    assert rows[0]["action_label"] == "Personal check-in call"
    assert rows[0]["band_label"] == "High"


def test_policy_outcomes_since_leaves_out_older_choices(tenant):
    customer = CustomerFactory(tenant=tenant)
    chosen(customer, NOW - timedelta(days=200), ordered=True)
    chosen(customer, NOW - timedelta(days=10))

    rows = selectors.policy_outcomes(tenant.pk, since=NOW - timedelta(days=30))

    assert [(r["chosen"], r["judged"]) for r in rows] == [(1, 0)]
