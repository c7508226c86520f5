"""The customer page's churn panel: the current score (chance of no order in the
horizon, band, expected orders, the reasons, the next action, the model version
and as-of date) and the latest scores.

commerce must not import scoring, so the panel hangs on commerce's extension
point (``commerce.admin.CUSTOMER_PANELS``); importing this module registers it
once. ``scoring/admin.py`` imports it, so the admin's autodiscovery loads it.
"""

from __future__ import annotations

from datetime import datetime

from django.urls import reverse
from django.utils import formats, timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from commerce.admin import CUSTOMER_PANELS, CustomerPanel
from commerce.models import Customer
from scoring import selectors
from scoring.models import ModelVersion, NextAction, RiskBand

EMPTY = "—"
HISTORY_SHOWN = 10


def _when(at: datetime | None) -> str:
    return formats.localize(timezone.template_localtime(at)) if at else EMPTY


def _label(choices, value: str) -> str:
    try:
        return choices(value).label
    except ValueError:
        return value or EMPTY


def _table(headers: list[str], rows: list[tuple]) -> SafeString:
    head = format_html_join("", "<th>{}</th>", ((h,) for h in headers))
    body = format_html_join(
        "",
        "<tr>{}</tr>",
        ((format_html_join("", "<td>{}</td>", ((cell,) for cell in row)),) for row in rows),
    )
    return format_html("<table><thead><tr>{}</tr></thead><tbody>{}</tbody></table>", head, body)


def _version_html(version: ModelVersion | None) -> str:
    if version is None:
        return EMPTY
    url = reverse("admin:scoring_modelversion_change", args=[version.pk])
    return format_html('<a href="{}">{}</a>', url, version)


def reasons_html(reasons: object) -> str:
    """A score's reasons as a list ("—" when there are none)."""
    if not isinstance(reasons, list) or not reasons:
        return EMPTY
    items = format_html_join("", "<li>{}</li>", ((reason,) for reason in reasons))
    return format_html("<ul>{}</ul>", items)


def version_link(tenant_id: int, version_id: int | None) -> str:
    """A link to the store's model version with this id ("—" when gone)."""
    if version_id is None:
        return EMPTY
    version = (
        ModelVersion.objects.for_tenant(tenant_id)
        .filter(pk=version_id)
        .only("pk", "version", "kind")
        .first()
    )
    return _version_html(version)


def render_churn(customer: Customer) -> SafeString:
    """The current score and the latest scores, newest first."""
    score = selectors.customer_score(customer.tenant_id, customer.pk)
    if score is None:
        return format_html("<p>{}</p>", "Not scored yet: scores come from the nightly run.")
    version = score.model_version
    horizon = version.horizon_days if version is not None else None
    within = f" in the next {horizon} days" if horizon else ""
    current = _table(
        [
            "chance of no order" + within,
            "band",
            "expected orders" + within,
            "reasons",
            "next action",
            "model",
            "as of",
        ],
        [
            (
                f"{score.p_churn:.0%}",
                format_html("{} (since {})", _label(RiskBand, score.band), _when(score.band_since)),
                f"{score.expected_orders:.2f}",
                reasons_html(score.reasons),
                _label(NextAction, score.next_action),
                _version_html(version),
                _when(score.as_of),
            )
        ],
    )
    history = selectors.customer_score_history(customer.tenant_id, customer.pk, HISTORY_SHOWN)
    if not history:
        return current
    past = _table(
        ["as of", "chance of no order", "band", "expected orders", "model"],
        [
            (
                _when(row.as_of),
                f"{row.p_churn:.0%}",
                _label(RiskBand, row.band),
                f"{row.expected_orders:.2f}",
                _version_html(row.model_version),
            )
            for row in history
        ],
    )
    return format_html("{}<h4>Latest scores (last {})</h4>{}", current, HISTORY_SHOWN, past)


PANELS = [CustomerPanel(title="Churn risk", render=render_churn)]


def register() -> None:
    """Add the panel to the customer page once (a re-import replaces it)."""
    for panel in PANELS:
        titles = [p.title for p in CUSTOMER_PANELS]
        if panel.title in titles:
            CUSTOMER_PANELS[titles.index(panel.title)] = panel
        else:
            CUSTOMER_PANELS.append(panel)


register()
