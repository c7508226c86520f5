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


@contextlib.contextmanager
def celery_worker(queues: str, *, concurrency: int = 2) -> Iterator[subprocess.Popen]:
    """`celery worker -Q <queues>` on the test database and the suite's Redis,
    with the queues emptied first (nothing left over from other runs)."""
    if not settings.REDIS_URL:
        pytest.fail("This test needs Redis: set REDIS_URL (make test does).")
    db = connection.settings_dict
    env = {
        **os.environ,
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "CELERY_TASK_ALWAYS_EAGER": "false",
    }
    client = redis.Redis.from_url(settings.REDIS_URL)
    for queue in queues.split(","):
        client.delete(queue)
    for key in client.scan_iter("retention:inbox-kick:*"):
        client.delete(key)
    proc = subprocess.Popen(
        [
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
            "--loglevel",
            "WARNING",
        ],
        cwd=ROOT,
        env=env,
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
