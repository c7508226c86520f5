"""Two dispatch workers and two beat processes at once (a second beat started
by mistake, a deploy that overlaps the old one): every due journey step is
acted on once and every message reaches the provider once (ARCHITECTURE.md
rule 3).

Both beats run the project's scheduler (django-celery-beat's
DatabaseScheduler, on the same schedule table) with the journeys tick and the
messaging sweep every couple of seconds, so each due step and each lost send
is offered to the workers several times over, by both beats."""

from __future__ import annotations

import re
from datetime import timedelta

from django.db import transaction
from django.db.models import Count

from commerce.models import Customer
from journeys.models import LIVE_STATUSES, Enrollment, EnrollmentStatus, StepRun
from journeys.services.definitions import journey_create
from messaging.models import Message, Status, Template
from messaging.services.outbox import messages_enqueue_many, messaging_settings
from retention import clock
from retention.celery import app as celery_app
from tests.faults.conftest import beat_process, wait_quiet, wait_until, worker_log, worker_process
from tests.faults.sends import shipped_messages
from tests.workers import worker_env

ENROLLMENTS = 600
STEPS = 2
BACKLOG = 200  # due messages whose send tasks were lost: only the sweeper finds them
INTERVAL = "2"  # seconds between beat's journeys ticks and messaging sweeps
ADVANCED = re.compile(r"Task journeys\.tick_tenant\[[0-9a-f-]+\] succeeded in [^:]+: (\{.*\})")
TICKED = re.compile(r"Task journeys\.tick\[[0-9a-f-]+\] succeeded in [^:]+: (\d+)")
SENT_TICK = "Sending due task journeys-tick"
SENT_SWEEP = "Sending due task messaging-sweep"


def _statuses(tenant) -> dict[str, int]:
    rows = Message.objects.for_tenant(tenant).values("status").annotate(n=Count("id"))
    return {r["status"]: r["n"] for r in rows}


def _advanced(log: str) -> list[int]:
    """What each journeys tick of this worker acted on ("advanced" steps)."""
    return [int(re.search(r"'advanced': (\d+)", m).group(1)) for m in ADVANCED.findall(log)]


def _full_log(proc) -> str:
    with open(proc.log_path) as f:
        return f.read()


def test_two_dispatchers_and_two_beats_act_on_every_due_step_once(
    transactional_db, tenant, fake_provider, broker
):
    # given an active two-step journey with ENROLLMENTS enrollments due now
    ms = messaging_settings(tenant)
    ms.from_email, ms.quiet_hours_enabled = "shop@alpha.example", False
    ms.save()
    templates = [
        Template.objects.create(
            tenant=tenant,
            name=f"step {n}",
            channel="email",
            category="transactional",
            subject=f"Step {n}",
            text=f"Hello {n}",
            html=f"<p>Hello {n}</p>",
        )
        for n in range(1, STEPS + 1)
    ]
    journey = journey_create(
        tenant=tenant,
        name="Two dispatchers",
        status="active",
        version={"trigger": "touchpoint", "value": "signed.up", "category": "transactional"},
        steps=[
            {"name": f"Step {n}", "delay": 0, "email_template": t}
            for n, t in enumerate(templates, 1)
        ],
    )
    customers = Customer.objects.bulk_create(
        Customer(tenant=tenant, email=f"buyer{i}@shop.example") for i in range(ENROLLMENTS)
    )
    now = clock.now()
    Enrollment.objects.bulk_create(
        Enrollment(
            tenant=tenant,
            journey=journey,
            version=journey.current_version,
            customer=c,
            trigger_key=f"signup:{c.pk}",
            trigger_at=now,
            next_run_at=now,
        )
        for c in customers
    )
    enrollments = Enrollment.objects.for_tenant(tenant).filter(journey=journey)
    # and BACKLOG due messages whose tasks were lost on the way
    before = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = False
    try:
        with transaction.atomic():
            backlog = messages_enqueue_many(
                tenant=tenant,
                items=shipped_messages(customers, BACKLOG),
            )
        broker.delete("dispatch")
        Message.objects.for_tenant(tenant).filter(pk__in=backlog.ids.values()).update(
            updated_at=now - timedelta(minutes=5)
        )
        expected_messages = ENROLLMENTS * STEPS + BACKLOG

        # when two workers on the dispatch queue and two beats run at once
        # (the assertions read the workers' and beats' INFO lines)
        base = {**worker_env(), "LOG_LEVEL": "INFO"}
        beat_env = {
            **base,
            "BEAT_JOURNEYS_TICK_SECONDS": INTERVAL,
            "BEAT_MESSAGING_SWEEP_SECONDS": INTERVAL,
        }

        def state() -> tuple:
            return (
                fake_provider.total,
                _statuses(tenant),
                StepRun.objects.for_tenant(tenant).count(),
                enrollments.filter(status__in=LIVE_STATUSES).count(),
            )

        with (
            worker_process("dispatch", concurrency=2, loglevel="INFO", env=base) as one,
            worker_process("dispatch", concurrency=2, loglevel="INFO", env=base) as two,
            beat_process(env=beat_env) as beat_one,
            beat_process(env=beat_env) as beat_two,
        ):
            logs = lambda: [worker_log(p) for p in (one, two, beat_one, beat_two)]  # noqa: E731
            # then every enrollment finishes and every message goes out
            wait_until(
                lambda: (
                    fake_provider.total >= expected_messages
                    and not enrollments.filter(status__in=LIVE_STATUSES).exists()
                ),
                seconds=40,
                what=lambda: (state(), logs()),
            )
            # and the beats' further ticks and sweeps (several, from both) add nothing
            ticks = [_full_log(b).count(SENT_TICK) for b in (beat_one, beat_two)]
            wait_until(
                lambda: all(
                    _full_log(b).count(SENT_TICK) >= n + 1
                    for b, n in zip((beat_one, beat_two), ticks, strict=True)
                ),
                seconds=15,
                what=logs,
            )
            wait_quiet(state, quiet=2.5, seconds=15)
            for proc in (one, two, beat_one, beat_two):
                assert proc.poll() is None, worker_log(proc)
            worker_logs = [_full_log(p) for p in (one, two)]
            beat_logs = [_full_log(b) for b in (beat_one, beat_two)]
    finally:
        celery_app.conf.task_always_eager = before

    # Both beats scheduled the tick and the sweep, over and over.
    for log in beat_logs:
        assert log.count(SENT_TICK) >= 2 and log.count(SENT_SWEEP) >= 2, log[-3000:]
    # Each tick fanned out to the one tenant (not once per active journey: the
    # tenant has the default journeys too).
    fanned = [int(n) for log in worker_logs for n in TICKED.findall(log)]
    assert fanned and set(fanned) == {1}, fanned
    # Every due step was acted on once: one run and one message per enrollment
    # and step, and the dispatchers' counts add up to exactly that.
    advanced = [_advanced(log) for log in worker_logs]
    assert sum(map(sum, advanced)) == ENROLLMENTS * STEPS, advanced
    runs = StepRun.objects.for_tenant(tenant).filter(enrollment__journey=journey)
    per_step = runs.values("enrollment_id", "step_id").annotate(n=Count("id"))
    assert len(per_step) == ENROLLMENTS * STEPS
    assert {r["n"] for r in per_step} == {1}
    assert set(runs.values_list("outcome", flat=True)) == {"queued"}
    journey_messages = Message.objects.for_tenant(tenant).filter(source="journey")
    assert journey_messages.count() == ENROLLMENTS * STEPS
    keys = set(journey_messages.values_list("idempotency_key", flat=True))
    assert keys == {
        f"journey:{e}:{journey.current_version_id}:{s}"
        for e in enrollments.values_list("pk", flat=True)
        for s in journey.current_version.steps.values_list("pk", flat=True)
    }
    assert set(runs.values_list("message_id", flat=True)) == set(
        journey_messages.values_list("pk", flat=True)
    )
    # No enrollment is stuck: all finished their two steps.
    assert enrollments.filter(status=EnrollmentStatus.COMPLETED).count() == ENROLLMENTS
    assert not Enrollment.objects.for_tenant(tenant).filter(status__in=LIVE_STATUSES).exists()
    # The provider saw every message, the journeys' and the backlog's, exactly once.
    ids = list(Message.objects.for_tenant(tenant).values_list("pk", flat=True))
    assert len(ids) == expected_messages
    assert _statuses(tenant) == {Status.SENT: expected_messages}
    assert fake_provider.total == expected_messages
    assert [pk for pk in ids if fake_provider.counts[str(pk)] != 1] == []
    print(
        f"ticks sent by the beats {[log.count(SENT_TICK) for log in beat_logs]}, "
        f"sweeps {[log.count(SENT_SWEEP) for log in beat_logs]}; "
        f"steps advanced per tick, per worker: {advanced}; tick tasks run {len(fanned)}"
    )
