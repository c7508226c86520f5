"""Production settings pass Django's deployment checks; tasks are configured safely."""

import os
import subprocess
import sys
from pathlib import Path

from django.conf import settings

ROOT = Path(__file__).resolve().parents[2]

PRODUCTION_ENV = {
    "DJANGO_SECRET_KEY": "x9" * 30 + "-production-like-secret",
    "DJANGO_DEBUG": "false",
    "DJANGO_ALLOWED_HOSTS": "retention.example.com",
    "PUBLIC_BASE_URL": "https://retention.example.com",
}


def _manage(*args, env_overrides=None):
    env = {k: v for k, v in os.environ.items() if not k.startswith("DJANGO_")}
    env.update(env_overrides or {})
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_check_deploy_is_clean_with_production_variables():
    result = _manage("check", "--deploy", "--fail-level", "WARNING", env_overrides=PRODUCTION_ENV)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


def test_no_secret_in_production_mode_is_refused():
    result = _manage("check", env_overrides={"DJANGO_DEBUG": "false"})
    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY is not set" in result.stderr


def test_celery_delivery_guarantees_are_pinned():
    assert settings.CELERY_TASK_ACKS_LATE is True
    assert settings.CELERY_TASK_REJECT_ON_WORKER_LOST is True
    assert settings.CELERY_WORKER_PREFETCH_MULTIPLIER == 1
    assert settings.CELERY_BROKER_TRANSPORT_OPTIONS["visibility_timeout"] >= 3600
    assert settings.CELERY_MAX_COUNTDOWN < settings.CELERY_BROKER_VISIBILITY_TIMEOUT
    assert settings.CELERY_DB_REUSE_MAX
