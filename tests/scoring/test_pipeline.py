"""The scoring pipeline end to end on small stores: every customer of a store
too small for a classifier is still scored (by the buy-till-you-die model, and
the version says why), and scoring one store writes nothing for another."""

from __future__ import annotations

import re
import warnings
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from commerce.models import Customer, Touchpoint
from feedback.models import Callback
from retention import clock
from scoring.btyd import DEFAULT_PARAMS
from scoring.model import btyd_model
from scoring.models import (
    ChosenAction,
    ChurnScore,
    ChurnScoreHistory,
    ModelKind,
    ModelVersion,
    RiskBand,
    ScoringChunk,
    ScoringRun,
)
from scoring.services.runs import churn_score
from scoring.services.setup import scoring_settings
from tests.factories import CustomerFactory, make_order

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
pytestmark = pytest.mark.usefixtures("one_thread")
SCORE_TABLES = (ChurnScore, ChurnScoreHistory, ChosenAction, ModelVersion, ScoringRun, ScoringChunk)


def customer_ids(tenant) -> set[int]:
    return set(Customer.objects.for_tenant(tenant).values_list("pk", flat=True))


def test_a_small_store_gets_a_score_for_every_customer_from_the_btyd_model(tenant, seeded):
    seeded(tenant, at=NOW, customers=50)

    run = churn_score(tenant.pk)

    everyone = customer_ids(tenant)
    assert len(everyone) == 50
    assert run.status == "done"
    assert run.scored == 50
    assert set(ChurnScore.objects.for_tenant(tenant).values_list("customer_id", flat=True)) == (
        everyone
    )
    history = ChurnScoreHistory.objects.for_tenant(tenant)
    assert sorted(history.values_list("customer_id", flat=True)) == sorted(everyone)
    assert set(history.values_list("as_of", flat=True)) == {NOW}

    version = run.model_version
    assert version.kind == ModelKind.BTYD
    assert version.is_active
    match = re.fullmatch(
        r"Buy-till-you-die model alone: (\d+) buyers before (\d{4}-\d\d-\d\d) "
        r"\(a model needs 300\)\.",
        version.notes,
    )
    assert match, version.notes
    assert 0 < int(match[1]) <= 50
    assert match[2] == f"{NOW - timedelta(days=90):%Y-%m-%d}"

    settings = scoring_settings(tenant)
    for score in ChurnScore.objects.for_tenant(tenant):
        assert 0.0 <= score.p_churn <= 1.0
        assert score.expected_orders >= 0.0
        expected_band = (
            RiskBand.HIGH
            if score.p_churn >= settings.high_from
            else RiskBand.MEDIUM
            if score.p_churn >= settings.medium_from
            else RiskBand.LOW
        )
        assert score.band == expected_band
        assert score.model_version_id == version.pk
        assert score.as_of == score.band_since == NOW
        assert len(score.reasons) <= 3
    # A store's first run is the starting picture: it announces nothing.
    assert not Touchpoint.objects.for_tenant(tenant).filter(source="scoring").exists()
    assert not Callback.objects.for_tenant(tenant).filter(source="scoring").exists()


def test_the_btyd_models_contributions_and_importances_are_finite():
    X = pd.DataFrame(
        {
            "order_days": [3.0, 1.0, 0.0],
            "recency_days": [200.0, 5.0, np.nan],
            "first_order_days": [300.0, 5.0, np.nan],
            "tenure_days": [320.0, 6.0, 40.0],
        },
        index=pd.Index([1, 2, 3], name="customer_id"),
    )

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # see the values, not the warning
        model = btyd_model(X, DEFAULT_PARAMS, 90, note="test")

    assert np.isfinite(list(model.importances.values())).all(), model.importances
    assert np.isfinite(model.contributions(X)).all()


def test_scores_rank_lapsed_buyers_above_regular_ones(tenant):
    """On a store this small the model is BG/NBD: a buyer who kept a steady
    monthly rhythm until last week is safer than one silent for half a year."""
    clock.set_now(NOW)
    regular = CustomerFactory(tenant=tenant, created_at=NOW - timedelta(days=400))
    lapsed = CustomerFactory(tenant=tenant, created_at=NOW - timedelta(days=400))
    for month in range(12):
        make_order(regular, NOW - timedelta(days=7 + 30 * month))
        make_order(lapsed, NOW - timedelta(days=180 + 15 * month))

    churn_score(tenant.pk)

    scores = dict(ChurnScore.objects.for_tenant(tenant).values_list("customer_id", "p_churn"))
    assert scores[lapsed.pk] > scores[regular.pk]


def test_rescoring_a_past_date_records_history_and_keeps_the_current_scores(tenant):
    clock.set_now(NOW)
    for i in range(6):
        customer = CustomerFactory(tenant=tenant, created_at=NOW - timedelta(days=400))
        for month in range(i + 1):
            make_order(customer, NOW - timedelta(days=10 + 20 * month + i))
    churn_score(tenant.pk)
    current = sorted(ChurnScore.objects.for_tenant(tenant).values_list("customer_id", "p_churn"))

    churn_score(tenant.pk, as_of=NOW - timedelta(days=7))

    history = ChurnScoreHistory.objects.for_tenant(tenant)
    assert sorted(set(history.values_list("as_of", flat=True))) == [NOW - timedelta(days=7), NOW]
    assert set(ChurnScore.objects.for_tenant(tenant).values_list("as_of", flat=True)) == {NOW}
    assert (
        sorted(ChurnScore.objects.for_tenant(tenant).values_list("customer_id", "p_churn"))
        == current
    )


@pytest.fixture
def interleaved(tenant, other_tenant) -> tuple[list[int], list[int]]:
    """Two stores whose customer ids alternate, so any id range of one store
    also spans the other's customers."""
    clock.set_now(NOW)
    ours, theirs = [], []
    for i in range(30):
        for store, ids in ((tenant, ours), (other_tenant, theirs)):
            customer = CustomerFactory(tenant=store, created_at=NOW - timedelta(days=300))
            for k in range(i % 4):
                make_order(customer, NOW - timedelta(days=20 + 40 * k + i))
            ids.append(customer.pk)
    return ours, theirs


def snapshot(store) -> dict:
    return {
        **{
            model.__name__: sorted(
                map(repr, model.objects.for_tenant(store).values_list(flat=False))
            )
            for model in SCORE_TABLES
        },
        "touchpoints": Touchpoint.objects.for_tenant(store).count(),
        "callbacks": Callback.objects.for_tenant(store).count(),
    }


def test_scoring_one_store_writes_nothing_for_another(tenant, other_tenant, interleaved):
    ours, theirs = interleaved
    churn_score(other_tenant.pk)  # the other store has scores of its own
    clock.set_now(NOW + timedelta(days=1))
    before = snapshot(other_tenant)

    run = churn_score(tenant.pk, chunk_size=7)
    # A second run the next day announces band entries (the first does not).
    clock.set_now(NOW + timedelta(days=2))
    churn_score(tenant.pk, chunk_size=7)

    assert snapshot(other_tenant) == before
    assert run.chunks == 5
    assert set(ChurnScore.objects.for_tenant(tenant).values_list("customer_id", flat=True)) == set(
        ours
    )
    for model in (ChurnScore, ChurnScoreHistory, ChosenAction):
        assert not model.objects.for_tenant(tenant).filter(customer_id__in=theirs).exists()
        assert not model.objects.for_tenant(other_tenant).filter(customer_id__in=ours).exists()
    for chunk in ScoringChunk.objects.for_tenant(tenant):
        # The id range spans the other store's customers; only ours were scored.
        assert any(chunk.lo < pk < chunk.hi for pk in theirs) or chunk.lo == chunk.hi
        assert chunk.scored == sum(chunk.lo <= pk <= chunk.hi for pk in ours)
