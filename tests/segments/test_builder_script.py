"""The condition builder's editors keep every part of a condition they show:
editing a saved row must not drop its `within_days` (run with Node.js when it
is installed, on a minimal stand-in for the DOM)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

SCRIPT = (
    Path(__file__).resolve().parents[2]
    / "segments"
    / "static"
    / "segments"
    / "condition_builder.js"
)

NODE = """
const src = require("fs").readFileSync(process.argv[1], "utf8");
const code = src.slice(src.indexOf("function el("), src.indexOf("// --- the builder"));
function node(tag) {
  return {
    tag, value: "", options: [], selected: false,
    setAttribute(k, v) {
      if (k === "value") this.value = String(v);
      if (k === "selected") this.selected = true;
    },
    append(child) { if (child && child.tag === "option") this.options.push(child); },
  };
}
global.document = { createElement: node };
const EDITORS = new Function(code + "; return EDITORS;")();
const [spec, op, cond] = JSON.parse(process.argv[2]);
console.log(JSON.stringify(EDITORS[spec.type](spec, op, cond).read()));
"""


def read_back(spec: dict, op: str, cond: dict) -> dict:
    result = subprocess.run(
        ["node", "-e", NODE, str(SCRIPT), json.dumps([spec, op, cond])],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    return json.loads(result.stdout)


SURVEY_CLASS = {
    "name": "survey_class",
    "type": "choices",
    "choices": [["promoter", "Promoter"], ["neutral", "Neutral"], ["detractor", "Detractor"]],
    "extras": ["within_days"],
}


@pytest.mark.skipif(shutil.which("node") is None, reason="Node.js is not installed")
def test_a_choice_field_with_within_days_keeps_it():
    cond = {"field": "survey_class", "op": "in", "value": ["detractor"], "within_days": 30}
    assert read_back(SURVEY_CLASS, "in", cond) == {"value": ["detractor"], "within_days": 30}


@pytest.mark.skipif(shutil.which("node") is None, reason="Node.js is not installed")
def test_a_choice_field_without_the_extra_shows_no_days():
    spec = {**SURVEY_CLASS, "extras": []}
    cond = {"field": "survey_class", "op": "in", "value": ["promoter"]}
    assert read_back(spec, "in", cond) == {"value": ["promoter"]}
