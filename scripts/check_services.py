"""Check that PostgreSQL and Redis answer before the tests run.

Exits non-zero naming what is down and how to start it; never skips silently.
"""

import os
import sys

import psycopg
import redis

HOW = {
    "postgres": (
        "Start it with `docker compose up -d db` (from this folder), or on a Debian machine "
        "`pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start`; "
        "or point DATABASE_URL at a PostgreSQL server you have."
    ),
    "redis": (
        "Start it with `docker compose up -d redis`, or `redis-server --daemonize yes "
        "--bind 127.0.0.1 --port 6379 --save '' --appendonly no`; or point REDIS_URL at one."
    ),
}


def main() -> int:
    db_url = os.environ["DATABASE_URL"]
    redis_url = os.environ["REDIS_URL"]
    problems = []
    try:
        # Connect to the maintenance database: the test database is created by pytest.
        conninfo = psycopg.conninfo.conninfo_to_dict(db_url)
        conninfo["dbname"] = "postgres"
        with psycopg.connect(**conninfo, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except Exception as exc:
        problems.append(("postgres", db_url, exc))
    try:
        redis.Redis.from_url(redis_url, socket_connect_timeout=3).ping()
    except Exception as exc:
        problems.append(("redis", redis_url, exc))
    for name, url, exc in problems:
        print(f"make test: {name} is not reachable at {url}: {exc}", file=sys.stderr)
        print(f"  {HOW[name]}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
