"""Two agents pressing Claim on the same row at the same moment, through the
page, on real PostgreSQL connections: one wins, the other is told who."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import pytest
from django.db import connection, connections
from django.urls import reverse

from feedback.models import Callback
from retention import clock
from retention.models import Role
from tests.conftest import login_as
from tests.feedback.callback_factories import queue

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


@pytest.mark.django_db(transaction=True)
def test_double_claim_through_the_page_has_one_winner_and_the_loser_sees_who(tenant):
    if connection.vendor != "postgresql":
        pytest.skip("row locks need PostgreSQL")
    clock.set_now(NOW)
    clients = {}
    for name in ("Ann", "Bob"):
        client = login_as(tenant, Role.AGENT, email=f"{name.lower()}@alpha.example")
        client.user.first_name, client.user.last_name = name, "Agent"
        client.user.save()
        clients[name] = client
    callback = queue(tenant)
    url = reverse("agent-callback-action", args=[callback.pk, "claim"])
    barrier = threading.Barrier(2)
    answers: dict[str, tuple[int, str]] = {}

    def press(name: str) -> None:
        try:
            barrier.wait()
            response = clients[name].post(url, {"fragment": "row"}, HTTP_X_REQUESTED_WITH="fetch")
            answers[name] = (response.status_code, response.content.decode())
        finally:
            connections.close_all()

    threads = [threading.Thread(target=press, args=(n,)) for n in clients]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)

    holder = Callback.objects.for_tenant(tenant).get(pk=callback.pk).claimed_by_id
    winner = next(n for n, c in clients.items() if c.user.pk == holder)
    loser = next(n for n in clients if n != winner)
    assert answers[winner][0] == 200
    assert "Claimed: it is yours now." in answers[winner][1]
    assert answers[loser][0] == 409
    assert f"Already claimed by {winner} Agent." in answers[loser][1]
