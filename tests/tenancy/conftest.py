"""The tenancy suite's fixture: one world of tenants A and B for the whole package."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.db import transaction

from tests.tenancy.world import World, build_world


@pytest.fixture(scope="package")
def world(django_db_setup, django_db_blocker) -> Iterator[World]:
    """Built once for the package inside a transaction that is rolled back at
    the end, so the rest of the suite never sees these tenants."""
    with django_db_blocker.unblock():
        atomic = transaction.atomic()
        atomic.__enter__()
        try:
            yield build_world()
        finally:
            transaction.set_rollback(True)
            atomic.__exit__(None, None, None)
