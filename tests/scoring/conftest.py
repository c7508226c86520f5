"""Fixtures of the scoring pipeline tests: a demo history written by seed_demo,
and model training kept to one OpenMP thread."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime
from io import StringIO

import pytest
from django.core.management import call_command
from threadpoolctl import threadpool_limits

from retention import clock
from retention.models import Tenant


def demo_seed(tenant: Tenant, *, at: datetime, customers: int, days: int = 365, seed: int = 3):
    """``seed_demo`` as an operator runs it, with history up to ``at``; the clock
    is left at ``at``."""
    clock.set_now(at)
    call_command(
        "seed_demo",
        tenant=tenant.slug,
        customers=customers,
        days=days,
        seed=seed,
        stdout=StringIO(),
    )


@pytest.fixture(scope="session")
def seeded() -> Callable[..., None]:
    return demo_seed


@pytest.fixture(scope="module")
def one_thread() -> Iterator[None]:
    """scikit-learn's gradient boosting spins OpenMP threads; on a small machine
    shared with other test processes their busy-waiting makes a fit of a few
    hundred rows take ten seconds instead of a third of one. One thread gives
    the same models."""
    import sklearn.ensemble  # noqa: F401  (limits apply to libraries already loaded)

    with threadpool_limits(limits=1, user_api="openmp"):
        yield
