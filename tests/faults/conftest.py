"""Fixtures of the fault suite: a hard time limit per case and Celery worker
processes that can be killed outright.

Each case starts real processes against the test database and the suite's
Redis (``REDIS_URL``); the worker runs in its own process group so that
``kill -9`` takes the parent and its prefork children at once, as an OOM kill
or a lost machine would."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator

import pytest
import redis
from django.conf import settings

from tests.workers import ROOT, worker_command, worker_env

CASE_LIMIT_SECONDS = 60


class CaseTimeout(Exception):
    pass


@pytest.fixture(autouse=True)
def _hard_time_limit() -> Iterator[None]:
    """Fail a case that runs past CASE_LIMIT_SECONDS (setup and teardown of the
    fixtures inside it included), rather than hang the suite."""

    def expire(signum: int, frame: object) -> None:
        raise CaseTimeout(f"fault case ran past {CASE_LIMIT_SECONDS} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(CASE_LIMIT_SECONDS)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


@pytest.fixture
def broker() -> Iterator[redis.Redis]:
    """The suite's Redis, with Celery's queues and unacknowledged deliveries
    emptied before and after (a killed worker leaves deliveries in ``unacked``
    that Redis would hand out again an hour later)."""
    if not settings.REDIS_URL:
        pytest.fail("The fault suite needs Redis: set REDIS_URL (make test does).")
    client = redis.Redis.from_url(settings.REDIS_URL)
    _empty(client)
    yield client
    with contextlib.suppress(redis.RedisError):
        _empty(client)


def _empty(client: redis.Redis) -> None:
    client.delete(*settings.CELERY_TASK_QUEUES_NAMES, "unacked", "unacked_index")
    for key in client.scan_iter("retention:inbox-kick:*"):
        client.delete(key)


@contextlib.contextmanager
def worker_process(
    queues: str,
    *,
    concurrency: int = 2,
    loglevel: str = "WARNING",
    env: dict[str, str] | None = None,
) -> Iterator[subprocess.Popen]:
    """`celery worker -Q <queues>` on the test database, in its own process group
    (``env``: the process's environment instead of ``worker_env()``)."""
    log = tempfile.NamedTemporaryFile(  # noqa: SIM115 (handed to the process, closed below)
        prefix="fault-worker-", suffix=".log", delete=False
    )
    proc = subprocess.Popen(
        worker_command(
            queues, concurrency=concurrency, loglevel=loglevel, extra=("--without-heartbeat",)
        ),
        cwd=ROOT,
        env=worker_env() if env is None else env,
        stdout=subprocess.DEVNULL,
        stderr=log,
        start_new_session=True,
    )
    log.close()
    proc.log_path = log.name  # type: ignore[attr-defined]
    try:
        yield proc
    finally:
        stop(proc)


@contextlib.contextmanager
def beat_process(
    *, env: dict[str, str] | None = None, loglevel: str = "INFO"
) -> Iterator[subprocess.Popen]:
    """`celery beat` (the project's scheduler, django-celery-beat's
    DatabaseScheduler) on the test database, in its own process group."""
    log = tempfile.NamedTemporaryFile(  # noqa: SIM115 (handed to the process, closed below)
        prefix="fault-beat-", suffix=".log", delete=False
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "retention", "beat", "--loglevel", loglevel],
        cwd=ROOT,
        env=worker_env() if env is None else env,
        stdout=subprocess.DEVNULL,
        stderr=log,
        start_new_session=True,
    )
    log.close()
    proc.log_path = log.name  # type: ignore[attr-defined]
    try:
        yield proc
    finally:
        stop(proc)


def children(proc: subprocess.Popen) -> list[int]:
    """The worker's pool processes (its direct children)."""
    path = f"/proc/{proc.pid}/task/{proc.pid}/children"
    with open(path) as f:
        return [int(pid) for pid in f.read().split()]


def kill_hard(proc: subprocess.Popen) -> None:
    """kill -9 the worker and its children (its whole process group)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            kill_hard(proc)
    # Children outlive a parent killed alone; the group goes with it.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)


def worker_log(proc: subprocess.Popen) -> str:
    """The end of what the worker wrote to stderr (for assertion messages)."""
    with open(proc.log_path) as f:  # type: ignore[attr-defined]
        return f.read()[-3000:]


def wait_until(
    done: Callable[[], bool], *, seconds: float, what: Callable[[], object] = lambda: None
) -> None:
    deadline = time.monotonic() + seconds
    while not done():
        assert time.monotonic() < deadline, what()
        time.sleep(0.2)


def wait_quiet(sample: Callable[[], object], *, quiet: float = 2.0, seconds: float = 20.0) -> None:
    """Wait until ``sample()`` has not changed for ``quiet`` seconds (workers idle)."""
    deadline = time.monotonic() + seconds
    last, since = sample(), time.monotonic()
    while time.monotonic() - since < quiet:
        assert time.monotonic() < deadline, f"still changing: {last}"
        time.sleep(0.2)
        now = sample()
        if now != last:
            last, since = now, time.monotonic()
