"""The customer page's survey panel: the signals from the latest answer (class,
what they would like next) and every answer, newest first.

commerce must not import feedback, so the panel hangs on commerce's extension
point (``commerce.admin.CUSTOMER_PANELS``); importing this module registers it
once. ``feedback.admin_surveys`` imports it, so the admin's autodiscovery loads it.
"""

from __future__ import annotations

from datetime import datetime

from django.utils import formats, timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from commerce.admin import CUSTOMER_PANELS, CustomerPanel
from commerce.models import Customer
from feedback.models import Highlight, SurveyResponse, Want

EMPTY = "—"
RESPONSES_SHOWN = 20
HIGHLIGHT_LABELS = dict(Highlight.choices)


def _when(at: datetime | None) -> str:
    return formats.localize(timezone.template_localtime(at)) if at else EMPTY


def _table(headers: list[str], rows: list[tuple]) -> SafeString:
    head = format_html_join("", "<th>{}</th>", ((h,) for h in headers))
    body = format_html_join(
        "",
        "<tr>{}</tr>",
        ((format_html_join("", "<td>{}</td>", ((cell,) for cell in row)),) for row in rows),
    )
    return format_html("<table><thead><tr>{}</tr></thead><tbody>{}</tbody></table>", head, body)


def render_surveys(customer: Customer) -> SafeString:
    """The latest answer's signals, then the answers (newest first)."""
    responses = list(
        SurveyResponse.objects.for_tenant(customer.tenant_id)
        .filter(customer_id=customer.pk)
        .order_by("-answered_at", "-id")[:RESPONSES_SHOWN]
    )
    if not responses:
        return format_html("<p>{}</p>", "No survey answers yet.")
    latest = responses[0]
    wish = (
        latest.get_wants_display()
        if latest.wants and latest.wants != Want.NOTHING
        else "nothing in particular"
    )
    signals = format_html(
        "<p>Latest answer: <strong>{}</strong> ({} of 5, {}); would like: <strong>{}</strong>.</p>",
        latest.get_classification_display(),
        latest.rating,
        _when(latest.answered_at),
        wish,
    )
    rows = [
        (
            _when(r.answered_at),
            r.rating,
            r.get_classification_display(),
            ", ".join(HIGHLIGHT_LABELS.get(h, h) for h in r.highlights or []) or EMPTY,
            r.highlight_text or EMPTY,
            r.get_wants_display() if r.wants else EMPTY,
            r.comment or EMPTY,
            r.get_channel_display(),
        )
        for r in responses
    ]
    table = _table(
        [
            "answered",
            "rating",
            "class",
            "stood out",
            "in their words",
            "would like",
            "comment",
            "via",
        ],
        rows,
    )
    return format_html("{}{}", signals, table)


PANELS = [CustomerPanel(title="Survey answers", render=render_surveys)]


def register() -> None:
    """Add the panel to the customer page once (a re-import replaces it)."""
    for panel in PANELS:
        titles = [p.title for p in CUSTOMER_PANELS]
        if panel.title in titles:
            CUSTOMER_PANELS[titles.index(panel.title)] = panel
        else:
            CUSTOMER_PANELS.append(panel)


register()
