"""The page script words SLA countdowns exactly as the server does, so a
countdown does not jump when the script takes over (run with Node.js when it
is installed)."""

from __future__ import annotations

import json
import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from feedback.views_agent import countdown

SCRIPT = Path(__file__).resolve().parents[2] / "feedback" / "static" / "feedback" / "agent.js"
NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
OFFSETS = [420, 479, 59, 30, 0, -1, -59, -60, -61, -180, 3599, 3600, 7500, 10800, 177000, -86400]

# Pull the two pure functions out of the script and word each offset.
NODE = """
const src = require("fs").readFileSync(process.argv[1], "utf8");
const code = src.slice(src.indexOf("function span"), src.indexOf("function tick"));
const wording = new Function(code + "; return wording;")();
const now = Date.parse(process.argv[2]);
const offsets = JSON.parse(process.argv[3]);
console.log(JSON.stringify(offsets.map((s) => wording(now + s * 1000, now))));
"""


@pytest.mark.skipif(shutil.which("node") is None, reason="Node.js is not installed")
def test_the_script_words_countdowns_like_the_server():
    result = subprocess.run(
        ["node", "-e", NODE, str(SCRIPT), NOW.isoformat(), json.dumps(OFFSETS)],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )

    from_script = [(w["text"], w["late"]) for w in json.loads(result.stdout)]
    from_server = [countdown(NOW + timedelta(seconds=s), NOW) for s in OFFSETS]
    assert from_script == from_server


def test_the_script_is_small_plain_and_loads_nothing_from_elsewhere():
    source = SCRIPT.read_text()

    assert "http://" not in source and "https://" not in source
    assert "import " not in source and "require(" not in source
    assert len(source) < 8000
