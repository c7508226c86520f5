"""Churn scoring at scale: feature building, training, scoring and write-back of
one tenant, each timed on its own, plus the nightly fan-out over worker processes.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/retention_seedbench \\
        .venv/bin/python bench/scoring.py [--customers 1000000] [--tenant big] [--workers 2]

Creates and migrates the database if missing and seeds the tenant with
``seed_demo`` (365 days, about 3.5 orders per customer) unless it has
customers (about 6 minutes per million). Then, single process:

1. training: load and build features as of one horizon ago (``load_features``),
   fit the candidates and calibration (``train``); the version is stored active;
2. scoring the whole tenant as of now in one range: load and build features,
   predict, reasons (``churn_score_frame``);
3. write-back of every score (COPY into a temporary table, then one upsert for
   the current rows, one insert for history, one for chosen actions).

Then the same scoring as the nightly run does it: chunks of 125,000 customer
ids scored by ``--workers`` processes in parallel (wall time of the run).
Goals (issue 8): score and write 1,000,000 customers in under 60 s; train in
under 2 minutes.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import ensure_database, manage  # noqa: E402 (after the path)

DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/retention_seedbench"


def _setup_django() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "retention.settings")
    import django

    django.setup()


def _score_chunk(chunk_id: int) -> dict:
    """In a worker process: what the Celery task ``scoring.score_chunk`` runs."""
    _setup_django()
    from django.db import connection

    from scoring.services.runs import chunk_score

    try:
        return chunk_score(chunk_id)
    finally:
        connection.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--tenant", default="big")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--workers", type=int, default=2)
    opts = parser.parse_args()

    url = os.environ.setdefault("DATABASE_URL", DEFAULT_URL)
    os.environ.pop("REDIS_URL", None)  # tasks in-process: nothing queued behind our back
    os.environ.setdefault("OMP_NUM_THREADS", "2")
    ensure_database(url)
    manage("migrate", "--noinput", "-v0")
    _setup_django()

    from django.db import connection

    from commerce.models import Customer
    from retention import clock
    from retention.models import Tenant
    from scoring.models import ChosenAction, ChurnScore, ChurnScoreHistory, ScoringRun
    from scoring.services.runs import run_start
    from scoring.services.score import churn_score_frame, scores_write
    from scoring.services.setup import scoring_settings
    from scoring.services.train import churn_fit, version_save

    if not Tenant.objects.filter(slug=opts.tenant).exists():
        manage("create_tenant", opts.tenant)
    tenant = Tenant.objects.get(slug=opts.tenant)
    if not Customer.objects.for_tenant(tenant).exists():
        print(f"Seeding {opts.customers:,} customers (about 6 min per million) ...", flush=True)
        manage(
            "seed_demo", "--tenant", opts.tenant, "--customers", str(opts.customers),
            "--seed", str(opts.seed),
        )  # fmt: skip
    with connection.cursor() as cur:
        cur.execute("ANALYZE")
    customers = Customer.objects.for_tenant(tenant).count()
    print(f"Tenant {tenant.slug}: {customers:,} customers")
    # Start clean: earlier runs' scores would turn this run's writes into updates
    # of everything (that is measured too, as the second write below).
    for model in (ChurnScore, ChurnScoreHistory, ChosenAction, ScoringRun):
        model.objects.for_tenant(tenant).delete()

    settings = scoring_settings(tenant)
    now = clock.now()
    horizon = settings.horizon_days

    started = time.perf_counter()
    trained = churn_fit(
        tenant.pk, label_end=now, horizon_days=horizon, min_buyers=settings.min_buyers_for_model
    )
    train_wall = time.perf_counter() - started
    version = version_save(tenant.pk, trained, activate=True)
    sel = {k: v for k, v in trained.model.selection.items() if isinstance(v, dict)}
    print(
        f"\nTraining ({len(trained.features.frame):,} customers as of "
        f"{trained.train_as_of:%Y-%m-%d}, model {trained.model.kind}):\n"
        f"  load + features   {trained.seconds['load_features']:7.1f} s\n"
        f"  fit + calibrate   {trained.seconds['train']:7.1f} s\n"
        f"  total             {train_wall:7.1f} s   (goal: under 120 s)\n"
        "  holdout: "
        + ", ".join(
            f"{k} log loss {v['log_loss']:.4f} AUC {v['roc_auc']:.4f}" for k, v in sel.items()
        )
    )

    started = time.perf_counter()
    scored = churn_score_frame(tenant.pk, version, now, settings=settings)
    score_wall = time.perf_counter() - started
    frame = scored.frame
    step = time.perf_counter()
    first = scores_write(
        tenant.pk, version, now, frame, lo=None, hi=None, announce=False, horizon_days=horizon
    )
    write_first = time.perf_counter() - step
    later = now + timedelta(seconds=1)
    step = time.perf_counter()
    again = scores_write(
        tenant.pk, version, later, frame, lo=None, hi=None, announce=False, horizon_days=horizon
    )
    write_again = time.perf_counter() - step

    def parts(written) -> str:
        return ", ".join(f"{k} {v:.1f}" for k, v in written.seconds.items())

    total = score_wall + write_first
    print(
        f"\nScoring {len(frame):,} customers as of now, one process:\n"
        f"  load + features   {scored.seconds['load_features']:7.1f} s\n"
        f"  predict           {scored.seconds['predict']:7.1f} s\n"
        f"  reasons           {scored.seconds['reasons']:7.1f} s\n"
        f"  write-back        {write_first:7.1f} s   (first: every row inserted; {parts(first)})\n"
        f"  write-back again  {write_again:7.1f} s   (every row updated; {parts(again)})\n"
        f"  score + write     {total:7.1f} s   (one core; the goal is for the nightly run)"
    )

    # The nightly path: a run of chunks, scored by worker processes in parallel.
    as_of = now + timedelta(minutes=1)
    run = run_start(tenant.pk, as_of=as_of)
    chunk_ids = list(run.chunk_rows.values_list("pk", flat=True))
    connection.close()
    started = time.perf_counter()
    with ProcessPoolExecutor(max_workers=opts.workers) as pool:
        results = list(pool.map(_score_chunk, chunk_ids))
    wall = time.perf_counter() - started
    run.refresh_from_db()
    print(
        f"\nNightly fan-out: {len(chunk_ids)} chunks over {opts.workers} processes: "
        f"{sum(r.get('scored', 0) for r in results):,} scored in {wall:.1f} s "
        f"(run {run.status}; goal: under 60 s)"
    )
    print(
        "\nReproduce: DATABASE_URL=" + url + " .venv/bin/python bench/scoring.py "
        f"--customers {opts.customers} --tenant {opts.tenant} --workers {opts.workers}"
    )


if __name__ == "__main__":
    main()
