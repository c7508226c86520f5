"""The nightly score history is kept for the store's ``history_days``: older
rows are deleted after each run, except each customer's latest one."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.urls import reverse

from retention import clock
from scoring.models import ChurnScoreHistory, ScoringSettings
from scoring.services.history import history_prune
from scoring.services.runs import run_finish
from scoring.services.setup import scoring_settings
from tests.conftest import login_as
from tests.factories import CustomerFactory
from tests.scoring.score_rows import history

NOW = datetime(2026, 6, 1, 3, 0, tzinfo=UTC)


def _nights(customer) -> list[int]:
    """The customer's history, as days before NOW."""
    rows = ChurnScoreHistory.objects.for_tenant(customer.tenant_id).filter(customer=customer)
    return sorted((NOW - at).days for at in rows.values_list("as_of", flat=True))


def test_rows_older_than_the_setting_go_but_each_customers_latest_stays(tenant, other_tenant):
    # given a store that keeps 30 days, with a customer scored every 10 days
    # for 60 days, one last scored 50 days ago, and another store's old rows
    ScoringSettings.objects.for_tenant(tenant).update(history_days=30)
    regular, lapsed = CustomerFactory(tenant=tenant), CustomerFactory(tenant=tenant)
    theirs = CustomerFactory(tenant=other_tenant)
    for days in (60, 50, 40, 31, 30, 20, 10, 0):
        history(regular, NOW - timedelta(days=days), 0.2)
    for days in (60, 50):
        history(lapsed, NOW - timedelta(days=days), 0.9)
        history(theirs, NOW - timedelta(days=days + 400), 0.5)
    history(theirs, NOW - timedelta(days=10), 0.5)

    # when the history is pruned
    deleted = history_prune(tenant.pk, now=NOW)

    # then the regular customer keeps the last 30 days, the lapsed one its
    # latest score, and the other store (whose own setting is 400 days) everything
    assert _nights(regular) == [0, 10, 20, 30]
    assert _nights(lapsed) == [50]
    assert deleted == 4 + 1
    assert len(_nights(theirs)) == 3


def test_pruning_again_deletes_nothing_more(tenant):
    ScoringSettings.objects.for_tenant(tenant).update(history_days=30)
    customer = CustomerFactory(tenant=tenant)
    for days in (90, 60, 0):
        history(customer, NOW - timedelta(days=days), 0.3)
    assert history_prune(tenant.pk, now=NOW) == 2
    assert history_prune(tenant.pk, now=NOW) == 0
    assert _nights(customer) == [0]


def test_a_finished_run_prunes_the_history(tenant):
    # given a run whose chunks are all done, and history past the setting
    from scoring.models import RunStatus, ScoringChunk, ScoringRun

    ScoringSettings.objects.for_tenant(tenant).update(history_days=30)
    customer = CustomerFactory(tenant=tenant)
    history(customer, NOW - timedelta(days=45), 0.4)
    history(customer, NOW, 0.4)
    run = ScoringRun.objects.create(tenant=tenant, as_of=NOW, status=RunStatus.RUNNING, chunks=1)
    ScoringChunk.objects.create(tenant=tenant, run=run, lo=0, hi=10**9, done=True)
    clock.set_now(NOW)

    # when the run is closed, then the old row is gone
    assert run_finish(run.pk) is True
    assert _nights(customer) == [0]


@pytest.mark.parametrize(("days", "ok"), [(29, False), (30, True), (3650, True), (3651, False)])
def test_the_admin_edits_the_setting_within_its_bounds(tenant, days, ok):
    row = scoring_settings(tenant)
    client = login_as(tenant, "owner")
    url = reverse("admin:scoring_scoringsettings_change", args=[row.pk])
    form = {
        "horizon_days": row.horizon_days,
        "medium_from": row.medium_from,
        "high_from": row.high_from,
        "recent_contact_days": row.recent_contact_days,
        "nightly_hour": row.nightly_hour,
        "train_weekday": row.train_weekday,
        "min_buyers_for_model": row.min_buyers_for_model,
        "history_days": days,
    }
    resp = client.post(url, form)
    row.refresh_from_db()
    if ok:
        assert resp.status_code == 302, resp.content.decode()[-1500:]
        assert row.history_days == days
    else:
        assert resp.status_code == 200
        assert row.history_days == 400
