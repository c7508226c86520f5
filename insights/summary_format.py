"""The weekly summary's data (``WeeklySummary.data``) worded for people: the
same context serves the email (text and HTML) and the printable page, so the
three say the same. Pure: no database.
"""

from __future__ import annotations

from datetime import date

from insights.models import LOWER_IS_BETTER

DASH = "\u2013"  # en dash
MINUS = "\u2212"
NONE = DASH  # a rate over nothing
RAG_WORDS = {"green": "on target", "amber": "near target", "red": "off target", "": ""}


def pct(value: float | None, places: int = 1) -> str:
    if value is None:
        return NONE
    return f"{value * 100:.{places}f}%"


def short_pct(value: float | None) -> str:
    """25% rather than 25.0%, 0.5% stays 0.5% (target ranges)."""
    if value is None:
        return NONE
    return f"{round(value * 100, 2):g}%"


def pct_range(low: float | None, high: float | None) -> str:
    """25-40% (with an en dash); "" without a range."""
    if low is None or high is None:
        return ""
    return f"{round(low * 100, 2):g}{DASH}{round(high * 100, 2):g}%"


def points(change: float | None) -> str:
    """A change of a rate in percentage points: "+2.1 pts", "-0.4 pts" (with a
    true minus sign)."""
    if change is None:
        return ""
    if round(change * 100, 1) == 0:
        return "±0.0 pts"
    return f"{change * 100:+.1f} pts".replace("-", MINUS)


def direction(change: float | None) -> str:
    if change is None or round(change * 100, 1) == 0:
        return "flat"
    return "up" if change > 0 else "down"


def week_label(start: date, end: date) -> str:
    """1-7 June 2026, 29 June - 5 July 2026, 28 December 2026 - 3 January 2027
    (with en dashes)."""
    if start.year != end.year:
        return f"{start.day} {start:%B} {start.year} {DASH} {end.day} {end:%B} {end.year}"
    if start.month != end.month:
        return f"{start.day} {start:%B} {DASH} {end.day} {end:%B} {end.year}"
    return f"{start.day}{DASH}{end.day} {end:%B} {end.year}"


def _day(iso: str) -> str:
    day = date.fromisoformat(iso)
    return f"{day:%a} {day.day} {day:%b}"


def tone(change: float | None, kpi: str = "") -> str:
    """Whether a change is good news ("good", "bad", "" when flat): a rise
    is, except for unsubscribes."""
    moved = direction(change)
    if moved == "flat":
        return ""
    better = "down" if kpi in LOWER_IS_BETTER else "up"
    return "good" if moved == better else "bad"


def _rate_row(row: dict, value_key: str = "value") -> dict:
    change = row.get("change")
    return row | {
        "value_text": pct(row.get(value_key)),
        "previous_text": pct(row.get("previous")),
        "change_text": points(change),
        "direction": direction(change),
        "tone": tone(change, row.get("kpi", "")),
        "target_text": pct_range(row.get("low"), row.get("high")),
        "rag_text": RAG_WORDS.get(row.get("rag", ""), ""),
    }


def summary_context(data: dict) -> dict:
    """Template context for a summary's data."""
    start, end = date.fromisoformat(data["week"]["start"]), date.fromisoformat(data["week"]["end"])
    label = week_label(start, end)
    retention = data["retention"]
    previous = retention["previous"]
    retention_ctx = retention | {
        "rate_text": pct(retention["rate"]),
        "previous_text": pct(previous["rate"]),
        "change_text": points(retention["change"]),
        "direction": direction(retention["change"]),
        "tone": tone(retention["change"]),
        "target_text": short_pct(retention["target"]),
        "rag_text": RAG_WORDS.get(retention["rag"], ""),
        "cohort_text": week_label(
            date.fromisoformat(retention["cohort_start"]),
            date.fromisoformat(retention["cohort_end"]),
        ),
    }
    callbacks = data["callbacks"]
    journeys = data["journeys"]
    subject = f"{data['store']}: weekly summary {label}, retention {retention_ctx['rate_text']}"
    if retention["target"] is not None:
        subject += f" (target {retention_ctx['target_text']})"
    return {
        "data": data,
        "store": data["store"],
        "week_start": start,
        "week_end": end,
        "week_text": label,
        "subject": subject,
        "retention": retention_ctx,
        "kpis": [_rate_row(row) for row in data["kpis"]],
        "moved": [_rate_row(row) for row in data["moved"]],
        "top": [_journey_row(row) for row in journeys["top"]],
        "bottom": [_journey_row(row) for row in journeys["bottom"]],
        "min_sent": journeys["min_sent"],
        "callbacks": callbacks | {"met_rate_text": pct(callbacks["met_rate"])},
        "alerts": [
            a
            | {
                "day_text": _day(a["day"]),
                "rise_text": "new activity" if a["new"] else f"+{a['rise_pct']:.0f}%",
            }
            for a in data["alerts"]
        ],
        "experiments": data["experiments"],
        "timezone": data["timezone"],
    }


def _journey_row(row: dict) -> dict:
    return row | {
        "rate_text": pct(row["conversion_rate"]),
        "rag_text": RAG_WORDS.get(row.get("rag", ""), ""),
    }
