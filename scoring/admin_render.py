"""Small HTML renderers the scoring admin pages share."""

from __future__ import annotations

from typing import Any

from django.urls import reverse
from django.utils import formats, timezone
from django.utils.dateparse import parse_datetime
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from scoring.models import (
    ChosenAction,
    ChurnScore,
)

EMPTY = "—"


# --- small renderers ----------------------------------------------------------------------


def html_table(headers: list[str], rows: list[tuple], caption: str = "") -> SafeString:
    head = format_html_join("", "<th>{}</th>", ((h,) for h in headers))
    body = format_html_join(
        "",
        "<tr>{}</tr>",
        ((format_html_join("", "<td>{}</td>", ((cell,) for cell in row)),) for row in rows),
    )
    caption_html = format_html("<caption>{}</caption>", caption) if caption else ""
    return format_html(
        "<table>{}<thead><tr>{}</tr></thead><tbody>{}</tbody></table>", caption_html, head, body
    )


def as_number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def fixed_text(value: Any, places: int = 3) -> str:
    number = as_number(value)
    return EMPTY if number is None else f"{number:.{places}f}"


def pct_text(value: Any, places: int = 1) -> str:
    number = as_number(value)
    return EMPTY if number is None else f"{number * 100:.{places}f}%"


def when_text(at: Any) -> str:
    if isinstance(at, str):
        at = parse_datetime(at) or at
    if isinstance(at, str):
        return at or EMPTY
    return formats.localize(timezone.template_localtime(at)) if at else EMPTY


def choice_label(choices, value: str) -> str:
    try:
        return choices(value).label
    except ValueError:
        return value or EMPTY


def customer_link(obj: ChurnScore | ChosenAction) -> str:
    url = reverse("admin:commerce_customer_change", args=[obj.customer_id])
    return format_html('<a href="{}">{}</a>', url, obj.customer)
