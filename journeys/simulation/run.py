"""Running the simulation: the clock moves hour by hour; events are applied
through ingestion at their own times; every hour the beat's work runs."""

from __future__ import annotations

import heapq
import logging
import random
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo

from django.db.models import Max

from commerce import ingest
from commerce.models import Order, Touchpoint
from commerce.services.orders import carts_mark_abandoned
from journeys.models import Enrollment, EnrollmentStatus
from journeys.simulation.effects import Effects
from journeys.simulation.store import DAY, HOUR, ORDER_PREFIX, Event, Store
from journeys.simulation.surveys import Respondents
from retention import clock
from retention.errors import DomainError
from retention.models import Tenant
from segments.models import SegmentTransition

logger = logging.getLogger(__name__)

SOURCE = "storefront"
LIVE = (EnrollmentStatus.ACTIVE, EnrollmentStatus.HELD_OUT)


@dataclass
class Run:
    start: datetime
    end: datetime
    activity: Counter = field(default_factory=Counter)


def simulated_before(tenant: Tenant) -> bool:
    return Order.objects.for_tenant(tenant).filter(external_id__startswith=ORDER_PREFIX).exists()


def simulation_start(tenant: Tenant) -> datetime:
    """The next full hour after now or the store's latest activity, whichever
    is later (a second simulation continues where the first stopped)."""
    latest = Touchpoint.objects.for_tenant(tenant).aggregate(at=Max("occurred_at"))["at"]
    base = max(clock.now(), latest or clock.now())
    return base.replace(minute=0, second=0, microsecond=0) + HOUR


@contextmanager
def _in_process_tasks() -> Iterator[None]:
    """Tasks run at once in this process, on the simulated clock."""
    from retention.celery import app

    before = app.conf.task_always_eager
    app.conf.task_always_eager = True
    try:
        yield
    finally:
        app.conf.task_always_eager = before


def simulate(
    *,
    tenant: Tenant,
    days: int,
    seed: int = 0,
    progress: Callable[[int, Run], None] | None = None,
    experiment_effects: dict[str, float] | None = None,
) -> Run:
    """Run ``days`` simulated days of the store; the clock stays at the end.
    ``experiment_effects`` maps experiment names to a relative effect on their
    treated customers' repeat orders (``journeys.simulation.effects``)."""
    from journeys.services.engine import journeys_tick
    from scoring.services.runs import churn_score
    from scoring.services.setup import scoring_settings
    from segments.services.setup import segment_settings
    from segments.tasks import recompute_tenant

    start = simulation_start(tenant)
    run = Run(start=start, end=start + days * DAY)
    effects = Effects(tenant, experiment_effects, seed=seed) if experiment_effects else None
    store = Store(tenant, seed=seed, start=start, effects=effects)
    zone = ZoneInfo(tenant.timezone or "UTC")
    nightly_hour = segment_settings(tenant).nightly_hour
    scoring_hour = scoring_settings(tenant).nightly_hour
    queue: list[Event] = []
    ticker = _Ticker(tenant)
    respondents = Respondents(tenant, seed=seed)
    with _in_process_tasks():
        for index in range(1, days + 1):
            day_start = start + (index - 1) * DAY
            rng = random.Random(f"{seed}:{index}:after")  # noqa: S311
            for event in store.day(index, day_start):
                heapq.heappush(queue, event)
            for hour in range(1, 25):
                tick_at = day_start + hour * HOUR
                while queue and queue[0].at < tick_at:
                    event = heapq.heappop(queue)
                    clock.set_now(event.at)
                    _apply(tenant, event, run.activity)
                    for follow in store.after(event, rng):
                        heapq.heappush(queue, follow)
                clock.set_now(tick_at)
                run.activity["carts abandoned"] += carts_mark_abandoned(tenant=tenant)
                if tick_at.astimezone(zone).hour == nightly_hour:
                    recompute_tenant(tenant.pk, True)
                if tick_at.astimezone(zone).hour == scoring_hour:
                    scored = churn_score(tenant.pk, as_of=tick_at)
                    run.activity["churn band entries"] += scored.entered
                if ticker.has_work():
                    journeys_tick(tenant_id=tenant.pk)
                _send_due(tenant)
                respondents.answer_due(run.activity)
            run.activity["new customers"] = store.made
            if progress:
                progress(index, run)
    return run


class _Ticker:
    """Whether a tick could do anything: a tick that finds no new row in either
    trigger feed and no enrollment due changes nothing (the scan and the
    dispatcher would read nothing), so a quiet simulated hour skips it. That
    keeps a small store's simulation fast; a busy store ticks every hour."""

    def __init__(self, tenant: Tenant) -> None:
        self.tenant = tenant
        self.seen: tuple[int, int] | None = None

    def has_work(self) -> bool:
        # The feeds' ends platform-wide, as the scan's own cursor reads them.
        ends = (
            Touchpoint.objects.unscoped().aggregate(top=Max("id"))["top"] or 0,
            SegmentTransition.objects.unscoped().aggregate(top=Max("id"))["top"] or 0,
        )
        fresh, self.seen = ends != self.seen, ends
        return (
            fresh
            or Enrollment.objects.for_tenant(self.tenant)
            .filter(status__in=LIVE, next_run_at__lte=clock.now())
            .exists()
        )


def _apply(tenant: Tenant, event: Event, activity: Counter) -> None:
    try:
        ingest.apply(tenant=tenant, topic=event.topic, data=event.data, source=SOURCE)
    except DomainError as exc:  # NotYetKnown, InvalidInput: the storefront's mistake
        activity["rejected events"] += 1
        logger.warning("journeys.simulate_event_rejected topic=%s error=%s", event.topic, exc)
        return
    label = {
        "order.created": "orders",
        "fulfillment.updated": "delivery updates",
        "cart.updated": "carts",
        "event.tracked": "tracked events",
    }[event.topic]
    activity[label] += 1


def _send_due(tenant: Tenant) -> None:
    """What the messaging sweeper does, for this tenant: hand due messages
    (deferred by quiet hours, retried) to the send path."""
    from messaging.services.send import send_batch
    from messaging.services.sweep import messages_dispatch_due

    def enqueue(tenant_id: int, ids: list[int]) -> None:
        if tenant_id == tenant.pk:
            send_batch(tenant_id=tenant_id, message_ids=ids)

    messages_dispatch_due(enqueue=enqueue)
