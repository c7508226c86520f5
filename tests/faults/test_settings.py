"""Pins the Celery settings the exactly-once design rests on (ARCHITECTURE.md
rule 3): late acknowledgement, re-queue on a lost worker, a broker visibility
timeout, and no task waiting in the broker longer than a few minutes (Redis
redelivers a task held past its visibility timeout and runs it twice)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from django.conf import settings

from retention.celery import app as celery_app

ROOT = Path(__file__).resolve().parents[2]
APPS = (
    "commerce",
    "experiments",
    "feedback",
    "insights",
    "journeys",
    "messaging",
    "retention",
    "scoring",
    "segments",
)
# Keyword arguments of apply_async/retry that hold a task in the broker.
DELAYS = ("countdown", "eta")
# Names used as a countdown or eta that are bounded by construction, with why.
# An entry names "<path>:<expression>"; add one only with its reason.
BOUNDED_NAMES: dict[str, str] = {
    "commerce/tasks.py:min(trail, settings.CELERY_MAX_COUNTDOWN)": "clamped to the limit",
}


def _python_files() -> list[Path]:
    files = [p for app in APPS for p in (ROOT / app).rglob("*.py") if "migrations" not in p.parts]
    assert len(files) > 50, files  # the walk really saw the project
    return sorted(files)


def _delay_keywords() -> list[tuple[str, int, str, ast.expr]]:
    """Every countdown/eta keyword in calls of ``apply_async``, ``retry`` or
    ``send_task``: (path, line, keyword, value)."""
    found = []
    for path in _python_files():
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if name not in ("apply_async", "retry", "send_task", "signature"):
                continue
            for kw in node.keywords:
                if kw.arg in DELAYS:
                    found.append((str(path.relative_to(ROOT)), node.lineno, kw.arg, kw.value))
                if kw.arg is None:  # **options: cannot be checked, so not allowed
                    found.append((str(path.relative_to(ROOT)), node.lineno, "**", kw.value))
    return found


def test_tasks_are_acknowledged_late_and_requeued_when_the_worker_is_lost():
    assert settings.CELERY_TASK_ACKS_LATE is True
    assert settings.CELERY_TASK_REJECT_ON_WORKER_LOST is True
    assert celery_app.conf.task_acks_late is True
    assert celery_app.conf.task_reject_on_worker_lost is True
    # One task reserved at a time per process: a dead worker strands few.
    assert celery_app.conf.worker_prefetch_multiplier == 1


def test_every_registered_task_of_ours_keeps_late_acknowledgement():
    celery_app.loader.import_default_modules()
    ours = {name: task for name, task in celery_app.tasks.items() if not name.startswith("celery.")}
    assert len(ours) >= 20, sorted(ours)
    lax = sorted(
        name
        for name, task in ours.items()
        if task.acks_late is not True or task.reject_on_worker_lost is not True
    )
    assert lax == []


def test_broker_visibility_timeout_is_set_on_the_transport():
    timeout = settings.CELERY_BROKER_VISIBILITY_TIMEOUT
    assert timeout == 3600
    assert settings.CELERY_BROKER_TRANSPORT_OPTIONS["visibility_timeout"] == timeout
    assert celery_app.conf.broker_transport_options["visibility_timeout"] == timeout
    # The longest a task may wait in the broker is well inside the timeout.
    assert 0 < settings.CELERY_MAX_COUNTDOWN <= 300 < timeout


def test_no_task_is_scheduled_with_a_countdown_beyond_the_limit():
    too_long = []
    for path, line, keyword, value in _delay_keywords():
        where = f"{path}:{line} {keyword}={ast.unparse(value)}"
        if keyword == "countdown" and isinstance(value, ast.Constant):
            if not (
                isinstance(value.value, int | float)
                and value.value <= settings.CELERY_MAX_COUNTDOWN
            ):
                too_long.append(where)
        elif f"{path}:{ast.unparse(value)}" not in BOUNDED_NAMES:
            too_long.append(where)  # an eta, or a name nobody has shown to be bounded
    assert too_long == []


def test_automatic_retries_back_off_within_the_countdown_limit():
    celery_app.loader.import_default_modules()
    ours = [t for name, t in celery_app.tasks.items() if not name.startswith("celery.")]
    beyond = []
    for task in ours:
        if not getattr(task, "autoretry_for", ()):
            continue
        # Backoff grows up to retry_backoff_max (Celery's default 600 s).
        backoff = getattr(task, "retry_backoff", False)
        longest = getattr(task, "retry_backoff_max", 600) if backoff else task.default_retry_delay
        if longest > settings.CELERY_MAX_COUNTDOWN:
            beyond.append((task.name, longest))
    assert beyond == []


def test_the_countdown_check_sees_a_long_countdown(tmp_path, monkeypatch):
    """The walker itself: a file with a long countdown is reported."""
    app = tmp_path / "commerce"
    app.mkdir()
    (app / "bad.py").write_text("t.apply_async((1,), countdown=86400)\nt.retry(eta=when)\n")
    for i in range(60):
        (app / f"ok{i}.py").write_text("t.apply_async((1,), countdown=30)\n")
    monkeypatch.setattr(f"{__name__}.ROOT", tmp_path)
    found = {(p, kw, ast.unparse(v)) for p, _, kw, v in _delay_keywords()}
    assert ("commerce/bad.py", "countdown", "86400") in found
    assert ("commerce/bad.py", "eta", "when") in found


@pytest.mark.parametrize("entry", sorted(settings.CELERY_BEAT_SCHEDULE))
def test_every_beat_entry_names_a_registered_task(entry):
    celery_app.loader.import_default_modules()
    task = settings.CELERY_BEAT_SCHEDULE[entry]["task"]
    assert task in celery_app.tasks, f"beat entry {entry!r} names unknown task {task!r}"
    assert celery_app.conf.beat_schedule[entry]["task"] == task
