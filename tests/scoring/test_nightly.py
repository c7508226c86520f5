"""The nightly scoring run: fanned out in chunks, every customer scored exactly
once per night whatever is run again, scheduled by each store's own night,
and band entries announced once from the second night on.

One demo store of 3,000 customers is seeded and its weekly model trained once
for the module, inside a transaction that is rolled back at the end; each test
runs in a savepoint of it (pytest-django's ``db``)."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from django.db import transaction
from django.db.models import Count

from commerce.models import Customer, Touchpoint
from feedback.models import Callback
from retention import clock
from retention.models import Tenant
from retention.services import tenant_create
from scoring.models import (
    ChosenAction,
    ChurnScore,
    ChurnScoreHistory,
    ModelVersion,
    NextAction,
    RiskBand,
    RunStatus,
    ScoringChunk,
    ScoringRun,
    ScoringSettings,
)
from scoring.services import runs
from scoring.services.train import churn_train
from scoring.tasks import nightly, schedule_nightly, score_chunk, sweep
from segments.services.rfm import rfm_recompute
from tests.factories import make_order

SEEDED = datetime(2026, 6, 1, 0, 0, tzinfo=UTC)  # the demo history ends here (a Monday)
# Nights at 03:00 in Berlin (the default hour), Tuesday and Wednesday: no retraining.
NIGHT_1 = datetime.fromisoformat("2026-06-02T03:00:00+02:00")
NIGHT_2 = datetime.fromisoformat("2026-06-03T03:00:00+02:00")
CUSTOMERS = 3000
CHUNK = 700  # five chunks

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def store(django_db_setup, django_db_blocker, one_thread, seeded) -> Iterator[Tenant]:
    with django_db_blocker.unblock():
        outer = transaction.atomic()
        outer.__enter__()
        try:
            tenant = tenant_create(
                slug="nightly", name="Nightly", timezone="Europe/Berlin", currency="EUR"
            ).tenant
            seeded(tenant, at=SEEDED, customers=CUSTOMERS, seed=5)
            rfm_recompute(tenant)  # value tiers, which the action policy reads
            churn_train(tenant.pk, as_of=SEEDED)  # the week's model, before the first night
            clock.set_now(None)
            yield tenant
        finally:
            transaction.set_rollback(True)
            outer.__exit__(None, None, None)


@pytest.fixture
def small_chunks(monkeypatch):
    """Five chunks of 700. The nightly task passes no chunk size, and
    ``run_start``'s default was bound to ``CHUNK_SIZE`` when it was defined, so
    patching the constant would not reach it."""
    monkeypatch.setitem(runs.run_start.__kwdefaults__, "chunk_size", CHUNK)


@pytest.fixture
def night(db, store, small_chunks, eager_tasks, django_capture_on_commit_callbacks):
    """Run the nightly task of ``store`` for a night, ten minutes after it
    started, with the chunk tasks it queues on commit (eagerly)."""

    def run(due: datetime, *, fan_out: bool = True) -> dict:
        clock.set_now(due + timedelta(minutes=10))
        with django_capture_on_commit_callbacks(execute=fan_out):
            return nightly(store.pk, due.isoformat())

    return run


def customer_ids(store) -> set[int]:
    return set(Customer.objects.for_tenant(store).values_list("pk", flat=True))


def snapshot(store) -> dict:
    return {
        "history": sorted(
            ChurnScoreHistory.objects.for_tenant(store).values_list(
                "customer_id", "as_of", "p_churn", "band", "model_version_id"
            )
        ),
        "scores": sorted(
            ChurnScore.objects.for_tenant(store).values_list(
                "customer_id", "p_churn", "band", "band_since", "as_of", "scored_at", "reasons"
            )
        ),
        "actions": sorted(
            ChosenAction.objects.for_tenant(store).values_list("customer_id", "as_of", "action")
        ),
        "touchpoints": sorted(
            Touchpoint.objects.for_tenant(store)
            .filter(source="scoring")
            .values_list("customer_id", "kind", "occurred_at")
        ),
        "callbacks": sorted(
            Callback.objects.for_tenant(store).values_list("customer_id", "idempotency_key")
        ),
        "runs": sorted(
            ScoringRun.objects.for_tenant(store).values_list("as_of", "status", "scored")
        ),
    }


def bands_at(store, as_of: datetime) -> dict[int, str]:
    return dict(
        ChurnScoreHistory.objects.for_tenant(store)
        .filter(as_of=as_of)
        .values_list("customer_id", "band")
    )


def test_a_night_scores_every_customer_once_in_disjoint_chunks(store, night):
    result = night(NIGHT_1)

    run = ScoringRun.objects.for_tenant(store).get()
    assert result == {"run": run.pk, "chunks": 5, "trained": None}
    assert (run.as_of, run.status, run.chunks, run.scored) == (
        NIGHT_1, RunStatus.DONE, 5, CUSTOMERS
    )  # fmt: skip
    assert run.model_version == ModelVersion.objects.for_tenant(store).get(is_active=True)
    assert not run.announce  # the store's first scoring announces nothing

    everyone = customer_ids(store)
    chunks = list(ScoringChunk.objects.for_tenant(store).order_by("lo"))
    assert all(c.done and c.attempts == 1 for c in chunks)
    assert chunks[0].lo == min(everyone) and chunks[-1].hi == max(everyone)
    for before, after in itertools.pairwise(chunks):
        assert before.lo <= before.hi < after.lo
    in_chunk = [{pk for pk in everyone if c.lo <= pk <= c.hi} for c in chunks]
    assert [len(ids) for ids in in_chunk] == [CHUNK] * 4 + [CUSTOMERS - 4 * CHUNK]
    assert [c.scored for c in chunks] == [len(ids) for ids in in_chunk]

    history = ChurnScoreHistory.objects.for_tenant(store)
    assert history.count() == CUSTOMERS
    assert set(history.values_list("customer_id", flat=True)) == everyone
    assert set(history.values_list("as_of", flat=True)) == {NIGHT_1}
    scores = ChurnScore.objects.for_tenant(store)
    assert scores.count() == CUSTOMERS
    assert set(scores.values_list("customer_id", flat=True)) == everyone
    settings = ScoringSettings.objects.for_tenant(store).get()
    assert settings.last_scored_at == NIGHT_1
    assert settings.last_nightly_at == NIGHT_1 + timedelta(minutes=10)


def test_running_a_night_or_its_chunks_again_changes_nothing(store, night):
    night(NIGHT_1)
    before = snapshot(store)
    chunk_ids = list(ScoringChunk.objects.for_tenant(store).values_list("pk", flat=True))

    clock.advance(minutes=30)
    again = [score_chunk(pk) for pk in chunk_ids]
    second = night(NIGHT_1)

    assert again == [{"chunk": pk, "skipped": True} for pk in chunk_ids]
    assert second == {"skipped": "already ran tonight"}
    assert snapshot(store) == before
    assert ScoringChunk.objects.for_tenant(store).filter(attempts=1).count() == 5


def test_a_chunk_scored_twice_still_leaves_one_row_per_customer(store, night):
    night(NIGHT_1)
    chunk = ScoringChunk.objects.for_tenant(store).order_by("lo")[2]
    ScoringChunk.objects.for_tenant(store).filter(pk=chunk.pk).update(done=False)

    result = score_chunk(chunk.pk)

    # Band entries are judged against the scores before this night, so the
    # re-run counts the same entries again; what they write is unique per
    # (customer, night) and is not written twice.
    assert result == {"chunk": chunk.pk, "scored": CHUNK, "entered": chunk.entered}
    history = ChurnScoreHistory.objects.for_tenant(store)
    assert history.count() == CUSTOMERS
    assert not history.values("customer_id").annotate(n=Count("id")).filter(n__gt=1).exists()
    assert ChurnScore.objects.for_tenant(store).count() == CUSTOMERS
    assert ChosenAction.objects.for_tenant(store).count() == CUSTOMERS


def test_a_lost_fan_out_is_picked_up_by_the_sweeper(store, night):
    result = night(NIGHT_1, fan_out=False)  # the chunk messages never arrived
    run = ScoringRun.objects.for_tenant(store).get(pk=result["run"])
    assert run.status == RunStatus.RUNNING

    assert sweep() == 0  # not stale yet
    clock.advance(minutes=11)
    swept = sweep()

    run.refresh_from_db()
    assert swept == 5
    assert (run.status, run.scored) == (RunStatus.DONE, CUSTOMERS)
    assert ChurnScoreHistory.objects.for_tenant(store).count() == CUSTOMERS
    assert sweep() == 0


def test_the_second_night_announces_entries_into_medium_and_high_once(store, night):
    night(NIGHT_1)
    assert not Touchpoint.objects.for_tenant(store).filter(source="scoring").exists()
    assert not Callback.objects.for_tenant(store).filter(source="scoring").exists()
    # Three of the riskiest order again during the day: their risk falls.
    riskiest = ChurnScore.objects.for_tenant(store).order_by("-p_churn", "customer_id")[:3]
    back = Customer.objects.for_tenant(store).filter(pk__in=[s.customer_id for s in riskiest])
    for customer in back:
        make_order(customer, NIGHT_1 + timedelta(hours=8), "80.00")

    night(NIGHT_2)

    run = ScoringRun.objects.for_tenant(store).get(as_of=NIGHT_2)
    assert run.announce
    first, second = bands_at(store, NIGHT_1), bands_at(store, NIGHT_2)
    assert set(first) == set(second) == customer_ids(store)
    entered = {pk for pk in second if second[pk] != first[pk]}
    into_risk = {pk for pk in entered if second[pk] in (RiskBand.MEDIUM, RiskBand.HIGH)}
    assert run.entered == len(entered) > 0
    assert into_risk
    came_back = {c.pk for c in back}
    history = ChurnScoreHistory.objects.for_tenant(store).filter(customer_id__in=came_back)
    before = dict(history.filter(as_of=NIGHT_1).values_list("customer_id", "p_churn"))
    after = dict(history.filter(as_of=NIGHT_2).values_list("customer_id", "p_churn"))
    assert all(after[pk] < before[pk] for pk in came_back)  # an order lowers their risk

    touches = Touchpoint.objects.for_tenant(store).filter(source="scoring")
    risk = touches.filter(kind="churn_risk.entered")
    assert sorted(risk.values_list("customer_id", flat=True)) == sorted(into_risk)
    assert {t.occurred_at for t in risk} == {NIGHT_2}
    assert all(t.properties["band"] == second[t.customer_id] for t in risk)

    actions = dict(
        ChosenAction.objects.for_tenant(store)
        .filter(as_of=NIGHT_2)
        .values_list("customer_id", "action")
    )
    assert set(actions) == entered
    journeys = {pk: a for pk, a in actions.items() if a in (NextAction.WINBACK, NextAction.NUDGE)}
    assert sorted(
        touches.filter(kind__startswith="next_action.").values_list("customer_id", "kind")
    ) == sorted((pk, f"next_action.{a}") for pk, a in journeys.items())

    calls = Callback.objects.for_tenant(store).filter(source="scoring")
    called = {pk for pk, a in actions.items() if a == NextAction.CALL}
    assert called, "no entry chose a call: the check below would prove nothing"
    assert sorted(calls.values_list("customer_id", flat=True)) == sorted(called)
    assert {c.idempotency_key for c in calls} == {f"churn:2026-06-03:{pk}" for pk in called}

    # The chunks run again from the same starting point (the first night's
    # bands): every entry is found again, and nothing is announced twice.
    announced = snapshot(store)
    ScoringChunk.objects.for_tenant(store).filter(run=run).update(done=False)
    for band in RiskBand:
        ChurnScore.objects.for_tenant(store).filter(
            customer_id__in=[pk for pk, b in first.items() if b == band]
        ).update(band=band)
    rerun = [score_chunk(pk) for pk in run.chunk_rows.values_list("pk", flat=True)]

    assert sum(r["entered"] for r in rerun) == len(entered)
    after = snapshot(store)
    for key in ("history", "actions", "touchpoints", "callbacks"):
        assert after[key] == announced[key], key


def test_the_training_night_retrains_and_scores_with_the_new_model(store, night):
    sunday = datetime.fromisoformat("2026-06-07T03:00:00+02:00")

    result = night(sunday)

    assert result["trained"] == 2
    fresh = ModelVersion.objects.for_tenant(store).get(is_active=True)
    assert (fresh.version, fresh.label_end) == (2, sunday)
    run = ScoringRun.objects.for_tenant(store).get()
    assert (run.model_version, run.status, run.scored) == (fresh, RunStatus.DONE, CUSTOMERS)


def test_schedule_nightly_queues_a_store_once_its_own_night_has_started(
    store, tenant, other_tenant, eager_tasks
):
    Tenant.objects.filter(pk=other_tenant.pk).update(timezone="America/New_York")
    last = {
        tenant.pk: datetime(2026, 6, 1, 1, 5, tzinfo=UTC),  # 03:05 in Berlin on Monday
        other_tenant.pk: datetime(2026, 6, 1, 7, 5, tzinfo=UTC),  # 03:05 in New York
        store.pk: datetime(2026, 6, 2, 1, 0, tzinfo=UTC),  # already ran tonight
    }
    for pk, at in last.items():
        ScoringSettings.objects.for_tenant(pk).update(last_nightly_at=at)

    clock.set_now(datetime(2026, 6, 2, 0, 59, tzinfo=UTC))  # 02:59 in Berlin
    assert schedule_nightly() == []

    clock.set_now(datetime(2026, 6, 2, 1, 0, tzinfo=UTC))  # 03:00 in Berlin, 21:00 in NY
    assert schedule_nightly() == [tenant.pk]
    berlin = ScoringRun.objects.for_tenant(tenant).get()
    assert berlin.as_of == NIGHT_1
    assert schedule_nightly() == []  # claimed: not queued twice

    clock.set_now(datetime(2026, 6, 2, 7, 0, tzinfo=UTC))  # 03:00 in New York
    assert schedule_nightly() == [other_tenant.pk]
    ny = ScoringRun.objects.for_tenant(other_tenant).get()
    assert ny.as_of == datetime.fromisoformat("2026-06-02T03:00:00-04:00")
    assert not ScoringRun.objects.for_tenant(store).exists()
    assert ScoringSettings.objects.for_tenant(store).get().last_nightly_at == last[store.pk]
