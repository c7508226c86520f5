"""The scoring commands: train_churn, score_churn and backtest_churn run the
services and print what they did; a bad tenant or a too recent backtest date
is a CommandError with a clear message and writes nothing."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from scoring.models import ChurnScore, ChurnScoreHistory, ModelVersion, RiskBand, ScoringRun
from scoring.services.setup import scoring_settings

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)  # 14:00 in Berlin, the store's timezone

pytestmark = pytest.mark.usefixtures("one_thread")


def run(*args: str) -> str:
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


@pytest.fixture
def store(tenant, seeded):
    """400 demo customers; a classifier from 50 buyers on (the lowest setting),
    so the commands train the full model in a few seconds."""
    seeded(tenant, at=NOW, customers=400)
    settings = scoring_settings(tenant)
    settings.min_buyers_for_model = 50
    settings.save()
    return tenant


def test_train_churn_trains_and_activates_a_version_and_says_what_it_learned(store):
    out = run("train_churn", "--tenant", "alpha")

    version = ModelVersion.objects.for_tenant(store).get()
    assert version.is_active
    assert version.kind in ("gbm", "logit")
    lines = out.splitlines()
    assert lines[0] == f"Model v1 for alpha: {version.get_kind_display()} (active)"
    assert lines[1] == (
        "  trained as of 2026-03-03 12:00, labels to 2026-06-01 12:00 (90-day horizon)"
    )
    assert lines[2] == (
        f"  {version.n_train:,} customers, {version.n_buyers:,} buyers, churn rate "
        f"{version.base_rate:.1%}"
    )
    assert re.fullmatch(r"  load and features \d+\.\d s, training \d+\.\d s", lines[3])
    assert lines[4] == f"  {version.notes}"
    assert lines[4].startswith(f"  Chosen by holdout log loss: {version.kind}.")
    assert [line.split()[1] for line in lines[5:7]] == ["gbm", "logit"]
    assert lines[7].startswith("  top features: ")
    assert len(lines) == 8


def test_train_churn_inactive_keeps_the_active_version(store):
    run("train_churn", "--tenant", "alpha")
    out = run("train_churn", "--tenant", "alpha", "--as-of", "2026-05-01", "--inactive")

    assert out.startswith("Model v2 for alpha: ")
    assert "(active)" not in out.splitlines()[0]
    # --as-of is midnight in the store's timezone.
    assert "  trained as of 2026-01-31 00:00, labels to 2026-05-01 00:00 (90-day horizon)" in out
    active = ModelVersion.objects.for_tenant(store).filter(is_active=True)
    assert list(active.values_list("version", flat=True)) == [1]


def test_score_churn_scores_every_customer_and_prints_the_bands(store):
    out = run("score_churn", "--tenant", "alpha")

    version = ModelVersion.objects.for_tenant(store).get()  # trained on the way
    lines = out.splitlines()
    assert re.fullmatch(
        rf"Scored 400 customers of alpha as of 2026-06-01 12:00 with model v1 "
        rf"\({re.escape(version.get_kind_display())}\) in \d+\.\d s; 400 entered a band",
        lines[0],
    ), lines[0]
    counts = {
        band: ChurnScoreHistory.objects.for_tenant(store).filter(band=band).count()
        for band in RiskBand
    }
    assert lines[1:] == [f"  {band.label:<8} {counts[band]:>12,}" for band in RiskBand]
    assert sum(counts.values()) == ChurnScore.objects.for_tenant(store).count() == 400


def test_backtest_churn_prints_the_figures_as_json_and_stores_an_inactive_version(store):
    out = run("backtest_churn", "--tenant", "alpha", "--as-of", "2026-02-01", "--json")

    report = json.loads(out)
    assert report["as_of"] == "2026-02-01T00:00:00+01:00"
    assert report["train_as_of"] == "2025-11-03T00:00:00+01:00"
    assert report["horizon_days"] == 90
    assert set(report) >= {"model", "recency", "btyd", "kind", "n", "train_n", "model_version"}
    for column in ("model", "recency", "btyd"):
        assert 0.5 < report[column]["roc_auc"] <= 1.0
        assert len(report[column]["calibration"]) == 10
    version = ModelVersion.objects.for_tenant(store).get()
    assert version.version == report["model_version"] == 1
    assert not version.is_active
    assert version.metrics["backtest"] == {k: v for k, v in report.items() if k != "model_version"}


def test_backtest_churn_prints_a_table(store):
    out = run("backtest_churn", "--tenant", "alpha", "--as-of", "2026-02-01", "--no-save")

    lines = out.splitlines()
    assert lines[0].startswith("Backtest of alpha as of 2026-02-01 (90-day horizon): ")
    assert lines[1].split() == ["model", "recency", "alone", "BTYD", "alone"]
    assert [line[:18].strip() for line in lines[2:10]] == [
        "ROC AUC", "PR AUC", "Brier score", "log loss", "top-decile lift", "predicted orders",
        "actual orders", "orders error %",
    ]  # fmt: skip
    assert lines[10] == "Calibration of the model by decile of predicted risk:"
    assert len(lines) == 12 + 10  # ten deciles, nothing stored
    assert not ModelVersion.objects.for_tenant(store).exists()


@pytest.mark.parametrize(
    "args",
    [
        ("train_churn",),
        ("score_churn",),
        ("backtest_churn", "--as-of", "2026-01-01"),
        ("export_scores", "-"),
    ],
)
def test_an_unknown_tenant_is_a_clear_error(tenant, args):
    with pytest.raises(CommandError) as caught:
        run(*args, "--tenant", "nope")

    assert str(caught.value) == "No tenant with slug 'nope'."
    assert not ModelVersion.objects.for_tenant(tenant).exists()


def test_a_backtest_whose_horizon_has_not_passed_is_refused(store):
    with pytest.raises(CommandError) as caught:
        run("backtest_churn", "--tenant", "alpha", "--as-of", "2026-04-01")

    assert str(caught.value) == (
        "The horizon after 2026-04-01 has not passed yet: pick an as-of date at least 90 days ago."
    )
    assert not ModelVersion.objects.for_tenant(store).exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--as-of", "1st of May"), "--as-of '1st of May' is not a date (use YYYY-MM-DD)."),
        (
            ("--as-of", "2026-01-01", "--horizon-days", "0"),
            "--horizon-days must be between 1 and 730.",
        ),
    ],
)
def test_bad_options_are_clear_errors(tenant, args, message):
    with pytest.raises(CommandError) as caught:
        run("backtest_churn", "--tenant", "alpha", *args)

    assert str(caught.value) == message
    assert not ScoringRun.objects.for_tenant(tenant).exists()
