"""Real Celery worker processes for tests whose behaviour depends on them."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from django.conf import settings
from django.db import connection

ROOT = Path(__file__).resolve().parents[1]


def worker_env() -> dict[str, str]:
    """The environment of a worker process: this one's, on the test database,
    with tasks going through the broker."""
    db = connection.settings_dict
    return {
        **os.environ,
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "CELERY_TASK_ALWAYS_EAGER": "false",
    }


def worker_command(
    queues: str, *, concurrency: int = 2, loglevel: str = "WARNING", extra: tuple = ()
) -> list[str]:
    return [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "retention",
        "worker",
        "-Q",
        queues,
        "-c",
        str(concurrency),
        "--pool",
        "prefork",
        "--without-gossip",
        "--without-mingle",
        *extra,
        "--loglevel",
        loglevel,
    ]


@contextlib.contextmanager
def celery_worker(queues: str, *, concurrency: int = 2) -> Iterator[subprocess.Popen]:
    """`celery worker -Q <queues>` on the test database and the suite's Redis,
    with the queues emptied first (nothing left over from other runs)."""
    if not settings.REDIS_URL:
        pytest.fail("This test needs Redis: set REDIS_URL (make test does).")
    client = redis.Redis.from_url(settings.REDIS_URL)
    for queue in queues.split(","):
        client.delete(queue)
    for key in client.scan_iter("retention:inbox-kick:*"):
        client.delete(key)
    proc = subprocess.Popen(
        worker_command(queues, concurrency=concurrency),
        cwd=ROOT,
        env=worker_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
