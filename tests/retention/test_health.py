"""/healthz answers while the process is up; /readyz only when its dependencies do."""

import json
import os
import subprocess
import sys
from pathlib import Path

from django.test import Client

ROOT = Path(__file__).resolve().parents[2]

PROBE = """
import json, django
django.setup()
from django.test import Client
r = Client().get('/readyz')
print(json.dumps({'status': r.status_code, 'body': r.json()}))
"""


def _probe(**env_overrides) -> dict:
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "retention.settings", **env_overrides}
    out = subprocess.run(
        [sys.executable, "-c", PROBE],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_healthz_ok_without_touching_dependencies():
    resp = Client().get("/healthz")
    assert resp.status_code == 200
    assert resp.json() == {"status": "ok"}


def test_readyz_ok_when_database_and_broker_answer(db):
    resp = Client().get("/readyz")
    assert resp.status_code == 200
    assert resp.json()["status"] == "ok"


def test_readyz_503_when_database_unreachable():
    # Port 9 (discard) has nothing listening on this machine.
    result = _probe(DATABASE_URL="postgres://postgres@127.0.0.1:9/nothing")
    assert result["status"] == 503
    assert result["body"]["failed"] == ["database"]


def test_readyz_503_when_broker_unreachable(db):
    from django.db import connection

    db_conf = connection.settings_dict
    test_db = f"postgres://{db_conf['USER']}@{db_conf['HOST']}:{db_conf['PORT']}/{db_conf['NAME']}"
    result = _probe(DATABASE_URL=test_db, REDIS_URL="redis://127.0.0.1:9/0")
    assert result["status"] == 503
    assert result["body"]["failed"] == ["broker"]
