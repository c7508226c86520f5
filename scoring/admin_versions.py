"""Model versions in the admin: metrics, calibration, importances and rollback."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from retention.admin_base import TenantAdmin, member_can
from retention.errors import DomainError
from retention.models import Capability
from scoring.admin_render import (
    EMPTY,
    as_number,
    choice_label,
    fixed_text,
    html_table,
    pct_text,
    when_text,
)
from scoring.models import (
    ModelKind,
    ModelVersion,
)
from scoring.services.versions import version_activate

IMPORTANCES_SHOWN = 20
ACTIVATE_LABEL = "Make this version active (roll back)"


# --- model versions -----------------------------------------------------------------------

BACKTEST_SOURCES = [
    ("model", "This model"),
    ("recency", "Recency baseline"),
    ("btyd", "Buy-till-you-die baseline"),
]
# key, label, format, which way is better (+1 higher, -1 lower, 0 neither)
BACKTEST_METRICS = [
    ("roc_auc", "ROC AUC", fixed_text, 1),
    ("pr_auc", "PR AUC", fixed_text, 1),
    ("brier", "Brier score", fixed_text, -1),
    ("log_loss", "Log loss", fixed_text, -1),
    ("top_decile_lift", "Top-decile lift", lambda v: fixed_text(v, 2), 1),
    ("predicted_orders", "Predicted orders", lambda v: fixed_text(v, 1), 0),
    ("actual_orders", "Actual orders", lambda v: fixed_text(v, 0), 0),
]


def _dict(value: Any) -> dict:
    return value if isinstance(value, dict) else {}


def _backtest(version: ModelVersion) -> dict:
    return _dict(_dict(version.metrics).get("backtest"))


def _backtest_model(version: ModelVersion, key: str) -> Any:
    return _dict(_backtest(version).get("model")).get(key)


def render_backtest(version: ModelVersion) -> SafeString:
    """The backtest's metrics, the model against the baselines; the best value
    of each metric in bold."""
    backtest = _backtest(version)
    sources = [
        (key, label) for key, label in BACKTEST_SOURCES if isinstance(backtest.get(key), dict)
    ]
    if not sources:
        return format_html("<p>{}</p>", "No backtest recorded for this version.")
    rows = []
    for key, label, fmt, better in BACKTEST_METRICS:
        values = [as_number(backtest[source].get(key)) for source, _ in sources]
        if all(v is None for v in values):
            continue
        known = [v for v in values if v is not None]
        best = (max(known) if better > 0 else min(known)) if better and len(known) > 1 else None
        cells = [
            format_html("<strong>{}</strong>", fmt(v)) if best is not None and v == best else fmt(v)
            for v in values
        ]
        rows.append((label, *cells))
    n = backtest.get("n")
    horizon = backtest.get("horizon_days")
    intro = format_html(
        "<p>Scored as of {} and judged on the {} days after it{}.</p>",
        when_text(backtest.get("as_of")),
        horizon if horizon is not None else EMPTY,
        format_html(", {} customers", n) if n is not None else "",
    )
    return format_html("{}{}", intro, html_table(["", *(label for _, label in sources)], rows))


def render_calibration(version: ModelVersion) -> SafeString:
    """Per decile of predicted risk: the predicted churn rate against the actual."""
    backtest = _backtest(version)
    tables = []
    for key, label in BACKTEST_SOURCES:
        deciles = _dict(backtest.get(key)).get("calibration")
        if not isinstance(deciles, list) or not deciles:
            continue
        rows = [
            (
                row.get("decile", EMPTY),
                row.get("n", EMPTY),
                pct_text(row.get("predicted")),
                pct_text(row.get("actual")),
            )
            for row in deciles
            if isinstance(row, dict)
        ]
        tables.append(html_table(["decile", "customers", "predicted", "actual"], rows, label))
    if not tables:
        return format_html("<p>{}</p>", "No calibration recorded for this version.")
    return format_html_join("", "{}", ((t,) for t in tables))


def render_selection(version: ModelVersion) -> SafeString:
    """The candidates training compared on its validation set, and the one it chose."""
    selection = _dict(_dict(version.metrics).get("selection"))
    chosen = selection.get("chosen")
    candidates = [(k, v) for k, v in selection.items() if isinstance(v, dict)]
    if not candidates:
        return format_html("<p>{}</p>", "No model selection recorded for this version.")
    rows = [
        (
            choice_label(ModelKind, kind),
            fixed_text(scores.get("log_loss")),
            fixed_text(scores.get("roc_auc")),
            "chosen" if kind == chosen else "",
        )
        for kind, scores in candidates
    ]
    return html_table(["candidate", "log loss", "ROC AUC", ""], rows)


def render_importances(version: ModelVersion) -> SafeString:
    """The features that weigh most, largest first, with their share of the total."""
    weights = [
        (name, float(value))
        for name, value in _dict(version.importances).items()
        if as_number(value) is not None
    ]
    if not weights:
        return format_html("<p>{}</p>", "No feature importances recorded for this version.")
    weights.sort(key=lambda item: (-abs(item[1]), item[0]))
    total = sum(abs(value) for _, value in weights)
    rows = [
        (name, fixed_text(value, 4), pct_text(abs(value) / total) if total else EMPTY)
        for name, value in weights[:IMPORTANCES_SHOWN]
    ]
    note = (
        format_html("<p>The top {} of {} features.</p>", IMPORTANCES_SHOWN, len(weights))
        if len(weights) > IMPORTANCES_SHOWN
        else ""
    )
    return format_html("{}{}", html_table(["feature", "importance", "share"], rows), note)


@admin.register(ModelVersion)
class ModelVersionAdmin(TenantAdmin):
    """What each training made, read-only. The fitted artifact is never loaded
    or shown."""

    list_display = [
        "version_label",
        "kind",
        "is_active",
        "trained_at",
        "window",
        "n_train",
        "backtest_roc_auc",
        "backtest_log_loss",
    ]
    list_filter = ["kind", "is_active"]
    ordering = ["-version"]
    actions = ["activate_selected"]
    fieldsets = [
        (
            None,
            {
                "fields": [
                    "version",
                    "kind",
                    "activation",
                    "trained_at",
                    "train_as_of",
                    "label_end",
                    "history_start",
                    "horizon_days",
                    "n_train",
                    "n_buyers",
                    "base_rate_pct",
                ]
            },
        ),
        ("Backtest: this model against the baselines", {"fields": ["backtest"]}),
        ("Calibration", {"fields": ["calibration"]}),
        ("Model selection", {"fields": ["selection"]}),
        (f"Feature importances (top {IMPORTANCES_SHOWN})", {"fields": ["feature_importances"]}),
        ("Notes", {"fields": ["notes"]}),
    ]
    readonly_fields = [
        "version",
        "kind",
        "is_active",
        "activation",
        "activation_note",
        "trained_at",
        "train_as_of",
        "label_end",
        "history_start",
        "horizon_days",
        "n_train",
        "n_buyers",
        "base_rate_pct",
        "backtest",
        "calibration",
        "selection",
        "feature_importances",
        "notes",
    ]

    def get_queryset(self, request):
        return super().get_queryset(request).defer("artifact")

    # --- columns and read-only fields ----------------------------------------------------
    @admin.display(description="version", ordering="version")
    def version_label(self, obj: ModelVersion) -> str:
        return f"v{obj.version}"

    @admin.display(description="training window")
    def window(self, obj: ModelVersion) -> str:
        return f"{when_text(obj.train_as_of)} → {when_text(obj.label_end)}"

    @admin.display(description="backtest ROC AUC")
    def backtest_roc_auc(self, obj: ModelVersion) -> str:
        return fixed_text(_backtest_model(obj, "roc_auc"))

    @admin.display(description="backtest log loss")
    def backtest_log_loss(self, obj: ModelVersion) -> str:
        return fixed_text(_backtest_model(obj, "log_loss"))

    @admin.display(description="share churned in training")
    def base_rate_pct(self, obj: ModelVersion) -> str:
        return pct_text(obj.base_rate)

    @admin.display(description="backtest")
    def backtest(self, obj: ModelVersion) -> str:
        return render_backtest(obj)

    @admin.display(description="calibration")
    def calibration(self, obj: ModelVersion) -> str:
        return render_calibration(obj)

    @admin.display(description="candidates")
    def selection(self, obj: ModelVersion) -> str:
        return render_selection(obj)

    @admin.display(description="importances")
    def feature_importances(self, obj: ModelVersion) -> str:
        return render_importances(obj)

    @admin.display(description="in use")
    def activation_note(self, obj: ModelVersion) -> str:
        if obj.is_active:
            return "Yes: this version scores the store's customers."
        return "No."

    @admin.display(description="in use")
    def activation(self, obj: ModelVersion) -> str:
        if obj.is_active:
            return self.activation_note(obj)
        # The page's own form posts it (the change view handles it), so the
        # click carries the form's CSRF token.
        return format_html(
            'No. <button type="submit" name="_activate" value="{}" class="button">{}</button> '
            "Customers are rescored with it at the next scoring run.",
            obj.pk,
            ACTIVATE_LABEL,
        )

    def get_fieldsets(self, request, obj=None):
        # Only those who may activate get the button.
        shown = "activation" if self.has_activate_permission(request) else "activation_note"
        return [
            (
                name,
                {
                    **options,
                    "fields": [shown if f == "activation" else f for f in options["fields"]],
                },
            )
            for name, options in self.fieldsets
        ]

    # --- making a version active -------------------------------------------------------------
    def has_activate_permission(self, request) -> bool:
        return member_can(request, Capability.CONFIGURE)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        if request.method == "POST" and "_activate" in request.POST:
            return self._activate(request, object_id)
        return super().change_view(request, object_id, form_url, extra_context)

    def _activate(self, request: HttpRequest, object_id: str) -> HttpResponse:
        version = self.get_object(request, unquote(object_id))
        if version is None:
            raise Http404("No such model version.")  # another store's, or missing
        if not self.has_activate_permission(request):
            raise PermissionDenied
        self._activate_one(request, version)
        return HttpResponseRedirect(reverse("admin:scoring_modelversion_change", args=[version.pk]))

    def _activate_one(self, request: HttpRequest, version: ModelVersion) -> None:
        try:
            done = version_activate(
                tenant_id=version.tenant_id, version_id=version.pk, actor=request.user
            )
        except DomainError as exc:
            self.message_user(request, exc.message, messages.ERROR)
            return
        self.message_user(
            request,
            f"Version {done.version} ({done.get_kind_display()}) is now the active version; "
            "customers are rescored with it at the next scoring run.",
            messages.SUCCESS,
        )

    @admin.action(description=ACTIVATE_LABEL, permissions=["activate"])
    def activate_selected(self, request, queryset):
        chosen = list(queryset[:2])
        if len(chosen) != 1:
            self.message_user(request, "Choose exactly one version to make active.", messages.ERROR)
            return
        self._activate_one(request, chosen[0])

    # --- roles: versions come from training; the active one stays -------------------------
    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        deletable = obj is None or not obj.is_active
        return deletable and member_can(request, self.edit_capability) and self._owns(request, obj)
