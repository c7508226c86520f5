"""How the dashboard writes its numbers: shares as percentages, target
ranges, durations; ``—`` where there is no value."""

from __future__ import annotations

from django import template

register = template.Library()

NONE = "—"


@register.filter
def pct(value: float | None, places: int = 1) -> str:
    if value is None or value == "":
        return NONE
    return f"{float(value) * 100:.{int(places)}f}%"


@register.filter
def pct_range(cell: dict) -> str:
    """A KPI cell's target range, e.g. ``25-40%``."""
    low, high = cell.get("low"), cell.get("high")
    if low is None or high is None:
        return ""
    return f"{_short(low * 100)}-{_short(high * 100)}%"


def _short(number: float) -> str:
    return f"{number:.2f}".rstrip("0").rstrip(".")


@register.filter
def duration(seconds: float | None) -> str:
    if seconds is None:
        return NONE
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 86400 * 2:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


@register.filter
def signed_pp(value: float | None) -> str:
    """A change of a share in percentage points, with its sign."""
    if value is None:
        return NONE
    return f"{value * 100:+.1f} pp"


@register.filter
def shade(value: float | None, scale: float | None = 1.0) -> str:
    """A heatmap cell's background: deeper blue for a larger share, full at
    ``scale`` (the table's largest share after the first month)."""
    if value is None:
        return ""
    top = float(scale) if scale else 1.0
    alpha = 0.08 + 0.85 * max(0.0, min(1.0, float(value) / top))
    return f"background-color: rgba(37, 99, 235, {alpha:.2f});" + (
        " color: #fff;" if alpha > 0.5 else ""
    )
