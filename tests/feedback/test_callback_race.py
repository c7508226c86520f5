"""Two agents claiming one callback at the same moment, on real PostgreSQL
connections from two threads: exactly one wins, the other is told who."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import pytest
from django.db import connection, connections

from feedback.models import Callback, CallbackStatus
from feedback.services.callbacks import callback_claim
from retention import clock
from retention.errors import Conflict
from retention.models import AuditEntry, Role
from tests.feedback.callback_factories import person, queue

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
ROUNDS = 5


def _race(targets):
    """Run each (callable) in its own thread, all released together; returns
    what each returned or raised, in order."""
    barrier = threading.Barrier(len(targets))
    results: list = [None] * len(targets)

    def run(i, target):
        try:
            barrier.wait()
            results[i] = target()
        except Exception as exc:  # the loser's Conflict is a result here
            results[i] = exc
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(i, t)) for i, t in enumerate(targets)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return results


@pytest.mark.django_db(transaction=True)
def test_two_agents_claiming_at_once_one_wins_and_the_other_is_told_who(tenant):
    if connection.vendor != "postgresql":
        pytest.skip("row locks need PostgreSQL")
    clock.set_now(NOW)
    agents = {
        "Ann Agent": person(tenant, Role.AGENT, "Ann Agent"),
        "Bob Agent": person(tenant, Role.AGENT, "Bob Agent"),
    }
    for _ in range(ROUNDS):
        callback = queue(tenant)

        results = _race(
            [lambda a=a, c=callback: callback_claim(callback=c, agent=a) for a in agents.values()]
        )

        winners = [r for r in results if isinstance(r, Callback)]
        losers = [r for r in results if isinstance(r, Conflict)]
        assert (len(winners), len(losers)) == (1, 1), results
        row = Callback.objects.for_tenant(tenant).get(pk=callback.pk)
        assert row.status == CallbackStatus.CLAIMED
        assert row.claimed_by_id == winners[0].claimed_by_id
        winner_name = next(n for n, u in agents.items() if u.pk == row.claimed_by_id)
        assert losers[0].message == f"Already claimed by {winner_name}."
        claims = AuditEntry.objects.for_tenant(tenant).filter(
            object_id=str(callback.pk), changes__event="callback.claimed"
        )
        assert claims.count() == 1
