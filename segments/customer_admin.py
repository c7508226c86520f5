"""The customer page's segment panels: RFM, current segments and segment history.

commerce must not import segments, so these hang on commerce's extension point
(``commerce.admin.CUSTOMER_PANELS``); importing this module registers them once.
Import it from ``segments/admin.py`` so the admin's autodiscovery loads it.
"""

from __future__ import annotations

from datetime import datetime

from django.utils import formats, timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from commerce.admin import CUSTOMER_PANELS, CustomerPanel
from commerce.models import Customer
from segments import selectors
from segments.models import SegmentKind, Tier, TransitionKind

EMPTY = "—"


def _table(headers: list[str], rows: list[tuple]) -> SafeString:
    head = format_html_join("", "<th>{}</th>", ((h,) for h in headers))
    body = format_html_join(
        "",
        "<tr>{}</tr>",
        ((format_html_join("", "<td>{}</td>", ((cell,) for cell in row)),) for row in rows),
    )
    return format_html("<table><thead><tr>{}</tr></thead><tbody>{}</tbody></table>", head, body)


def _when(at: datetime | None) -> str:
    return formats.localize(timezone.template_localtime(at)) if at else EMPTY


def _label(choices, value: str) -> str:
    try:
        return choices(value).label
    except ValueError:
        return value or EMPTY


def render_rfm(customer: Customer) -> SafeString:
    """Scores, tier, recency, frequency, monetary, category flags and the
    segments the customer is in now."""
    tenant_id = customer.tenant_id
    rfm = selectors.customer_rfm(tenant_id, customer.pk)
    segments = selectors.customer_segments(tenant_id, customer.pk)
    if rfm is None:
        summary = format_html("<p>{}</p>", "No counted order yet, so no RFM.")
    else:
        families = ", ".join(family.name for family in rfm.families) or EMPTY
        summary = _table(
            [
                "R / F / M scores",
                "tier",
                "recency (days)",
                "frequency",
                "monetary",
                "top families",
                "price tier",
                "computed",
            ],
            [
                (
                    f"{rfm.r_score} / {rfm.f_score} / {rfm.m_score}",
                    _label(Tier, rfm.tier),
                    selectors.recency_days(rfm),
                    rfm.frequency,
                    rfm.monetary,
                    families,
                    rfm.price_tier or EMPTY,
                    _when(rfm.computed_at),
                )
            ],
        )
    if segments:
        current = _table(
            ["segment", "kind", "since"],
            [(s.name, _label(SegmentKind, s.kind), _when(s.since)) for s in segments],
        )
    else:
        current = format_html("<p>{}</p>", "In no segment.")
    return format_html("{}<h4>Current segments</h4>{}", summary, current)


def render_history(customer: Customer) -> SafeString:
    """The customer's segment entries and exits, newest first."""
    transitions = selectors.customer_transitions(customer.tenant_id, customer.pk)
    if not transitions:
        return format_html("<p>{}</p>", "No segment entries or exits yet.")
    return _table(
        ["at", "segment", "kind", "entered / left", "cause"],
        [
            (
                _when(t.at),
                t.segment.name,
                _label(SegmentKind, t.segment.kind),
                _label(TransitionKind, t.kind),
                t.cause or EMPTY,
            )
            for t in transitions
        ],
    )


PANELS = [
    CustomerPanel(title="RFM and segments", render=render_rfm),
    CustomerPanel(
        title=f"Segment history (last {selectors.TRANSITIONS_SHOWN})", render=render_history
    ),
]


def register() -> None:
    """Add the panels to the customer page once (a re-import replaces them)."""
    for panel in PANELS:
        titles = [p.title for p in CUSTOMER_PANELS]
        if panel.title in titles:
            CUSTOMER_PANELS[titles.index(panel.title)] = panel
        else:
            CUSTOMER_PANELS.append(panel)


register()
