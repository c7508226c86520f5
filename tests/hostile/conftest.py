"""Helpers for the hostile-input suite: what a good answer to bad input looks
like, and row counts to prove nothing half-written stayed behind."""

from __future__ import annotations

import json

import pytest
from django.apps import apps
from django.db import connection
from django.http import HttpResponse
from hypothesis import HealthCheck, settings

# Modest example counts: the whole directory runs in about a minute and a half.
HYPOTHESIS = settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.filter_too_much,
    ],
    derandomize=False,
    database=None,
)
# For a test that draws its target too (one test over several endpoints).
HYPOTHESIS_WIDE = settings(HYPOTHESIS, max_examples=60)

# Models written by webhooks, the API and the pages: none may gain a row when
# a request is refused.
COUNTED = (
    "commerce.Customer",
    "commerce.CustomerIdentity",
    "commerce.ChannelConsent",
    "commerce.CustomerMerge",
    "commerce.Order",
    "commerce.OrderLine",
    "commerce.Product",
    "commerce.ProductFamily",
    "commerce.Fulfillment",
    "commerce.DeliveryEvent",
    "commerce.Cart",
    "commerce.Return",
    "commerce.Touchpoint",
    "commerce.InboxEntry",
    "messaging.ProviderEvent",
    "messaging.Suppression",
    "messaging.Message",
    "feedback.SurveyResponse",
    "feedback.Callback",
    "feedback.CallbackContact",
    "retention.AuditEntry",
)


def counts() -> dict[str, int]:
    """Rows of every counted model, across tenants (a refusal writes nowhere),
    in one query: the suite counts before and after thousands of requests."""
    tables = [apps.get_model(label)._meta.db_table for label in COUNTED]
    sql = "SELECT " + ", ".join(f"(SELECT COUNT(*) FROM {table})" for table in tables)  # noqa: S608 - names from _meta
    with connection.cursor() as cursor:
        cursor.execute(sql)
        row = cursor.fetchone()
    return dict(zip(COUNTED, row, strict=True))


def assert_json_error(response: HttpResponse, *statuses: int) -> dict:
    """A 4xx with the one JSON error shape; returns the error."""
    assert 400 <= response.status_code < 500, (response.status_code, response.content[:500])
    if statuses:
        assert response.status_code in statuses, (response.status_code, response.content[:500])
    assert response["Content-Type"].startswith("application/json"), response["Content-Type"]
    body = json.loads(response.content)
    assert set(body) == {"error"}, body
    error = body["error"]
    assert isinstance(error["code"], str) and error["code"], error
    assert isinstance(error["message"], str) and error["message"], error
    assert isinstance(error["fields"], dict), error
    return error


def assert_no_5xx(response: HttpResponse) -> None:
    assert response.status_code < 500, (response.status_code, response.content[:500])


@pytest.fixture(autouse=True)
def _no_rate_limits(settings):
    """Hypothesis sends hundreds of requests from one address in one test."""
    settings.RATELIMIT_ENABLED = False
