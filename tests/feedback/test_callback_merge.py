"""Merging customers: the merged customer's callbacks, survey invitations and
responses become the survivor's."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from commerce.models import CustomerMerge
from commerce.services.customers import CUSTOMER_MERGE_HOOKS, customer_merge
from feedback.callback_hooks import on_customer_merged, register
from feedback.models import Callback, SurveyInvitation, SurveyResponse
from retention import clock
from tests.factories import CustomerFactory
from tests.feedback.callback_factories import answer, queue

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _fixed_clock():
    clock.set_now(NOW)


def test_the_hook_is_registered_once():
    register()
    register()

    assert CUSTOMER_MERGE_HOOKS.count(on_customer_merged) == 1


def test_a_merge_moves_callbacks_invitations_and_responses_to_the_survivor(tenant, other_tenant):
    survivor = CustomerFactory(tenant=tenant)
    merged = CustomerFactory(tenant=tenant)
    bystander = CustomerFactory(tenant=tenant)
    response = answer(merged, 2)
    callback = queue(tenant, merged, survey_response=response)
    kept = queue(tenant, survivor)
    untouched = queue(tenant, bystander)
    theirs = CustomerFactory(tenant=other_tenant)
    their_callback = queue(other_tenant, theirs)

    record = customer_merge(survivor=survivor, merged=merged, reason="same email")

    callbacks = Callback.objects.for_tenant(tenant)
    assert set(callbacks.filter(customer=survivor).values_list("pk", flat=True)) == {
        callback.pk,
        kept.pk,
    }
    assert callbacks.get(pk=untouched.pk).customer_id == bystander.pk
    assert SurveyResponse.objects.for_tenant(tenant).get(pk=response.pk).customer_id == survivor.pk
    assert (
        SurveyInvitation.objects.for_tenant(tenant).get(pk=response.invitation_id).customer_id
        == survivor.pk
    )
    assert Callback.objects.for_tenant(other_tenant).get(pk=their_callback.pk).customer_id == (
        theirs.pk
    )
    stored = CustomerMerge.objects.for_tenant(tenant).get(pk=record.pk)
    assert (
        stored.moved["callbacks"],
        stored.moved["survey_invitations"],
        stored.moved["survey_responses"],
    ) == (1, 1, 1)
