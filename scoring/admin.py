"""Admin screens for churn scoring, for a store's marketers.

- Scoring settings: the store's one row (horizon, band thresholds, run times),
  changed only; the list goes straight to it.
- Model versions: what each training made and how its backtest went against
  the two baselines (recency, buy-till-you-die), its calibration and feature
  importances, read-only; a button makes an earlier version active again
  (``scoring.services.versions.version_activate``). Versions come from
  training, so none is added here, and the active one cannot be deleted.
- Next-best-action rules: the policy table, one action per (band, tier, recent
  contact) cell, edited in the list; above it, how each action turned out.
- Churn scores and chosen actions: read-only lists.

Every screen is tenant-scoped through TenantAdmin; another store's id is a 404.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.db.models import Case, IntegerField, Value, When
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.utils import formats, timezone
from django.utils.dateparse import parse_datetime
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from retention import clock
from retention.admin_base import TenantAdmin, member_can
from retention.errors import DomainError
from retention.models import Capability
from scoring import customer_admin, selectors  # customer_admin adds the customer page's panel
from scoring.models import (
    ActionPolicy,
    ChosenAction,
    ChurnScore,
    ModelKind,
    ModelVersion,
    PolicyTier,
    RiskBand,
    ScoringSettings,
)
from scoring.services.setup import scoring_settings
from scoring.services.versions import version_activate

EMPTY = "—"
IMPORTANCES_SHOWN = 20
ACTIVATE_LABEL = "Make this version active (roll back)"


# --- small renderers ----------------------------------------------------------------------


def _table(headers: list[str], rows: list[tuple], caption: str = "") -> SafeString:
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


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _fixed(value: Any, places: int = 3) -> str:
    number = _number(value)
    return EMPTY if number is None else f"{number:.{places}f}"


def _pct(value: Any, places: int = 1) -> str:
    number = _number(value)
    return EMPTY if number is None else f"{number * 100:.{places}f}%"


def _when(at: Any) -> str:
    if isinstance(at, str):
        at = parse_datetime(at) or at
    if isinstance(at, str):
        return at or EMPTY
    return formats.localize(timezone.template_localtime(at)) if at else EMPTY


def _label(choices, value: str) -> str:
    try:
        return choices(value).label
    except ValueError:
        return value or EMPTY


def _customer_link(obj: ChurnScore | ChosenAction) -> str:
    url = reverse("admin:commerce_customer_change", args=[obj.customer_id])
    return format_html('<a href="{}">{}</a>', url, obj.customer)


# --- settings -----------------------------------------------------------------------------

_BANDS_ORDERED = next(
    c for c in ScoringSettings._meta.constraints if c.name == "scoringsettings_bands_ordered"
)


class ScoringSettingsForm(forms.ModelForm):
    class Meta:
        model = ScoringSettings
        fields = [
            "horizon_days",
            "medium_from",
            "high_from",
            "recent_contact_days",
            "nightly_hour",
            "train_weekday",
            "min_buyers_for_model",
        ]

    def clean(self):
        data = super().clean()
        medium, high = data.get("medium_from"), data.get("high_from")
        if medium is not None and high is not None and not medium < high:
            # The table's check constraint, said on the field it concerns.
            self.add_error("high_from", _BANDS_ORDERED.violation_error_message)
        return data


@admin.register(ScoringSettings)
class ScoringSettingsAdmin(TenantAdmin):
    """The store's one scoring settings row, created with the store: owners and
    marketers change it; the list goes straight to it."""

    form = ScoringSettingsForm
    list_display = ["store", "horizon_days", "medium_from", "high_from", "last_scored_at"]
    list_select_related = ["tenant"]
    readonly_fields = ["last_nightly_at", "last_trained_at", "last_scored_at", "updated_at"]
    fieldsets = [
        ("Churn", {"fields": ["horizon_days"]}),
        (
            "Risk bands",
            {
                "fields": ["medium_from", "high_from"],
                "description": "Churn probabilities from 0 to 1: below the medium threshold a "
                "customer is in the low band, from the high threshold in the high band.",
            },
        ),
        ("Next best action", {"fields": ["recent_contact_days"]}),
        (
            "Runs",
            {
                "fields": [
                    "nightly_hour",
                    "train_weekday",
                    "min_buyers_for_model",
                    "last_nightly_at",
                    "last_trained_at",
                    "last_scored_at",
                    "updated_at",
                ]
            },
        ),
    ]

    @admin.display(description="store")
    def store(self, obj: ScoringSettings) -> str:
        return obj.tenant.name

    def changelist_view(self, request, extra_context=None):
        if request.tenant is not None and self.has_view_permission(request):
            row = scoring_settings(request.tenant)
            url = reverse("admin:scoring_scoringsettings_change", args=[row.pk])
            return HttpResponseRedirect(url)
        return super().changelist_view(request, extra_context)

    def save_model(self, request, obj, form, change):
        obj.updated_at = clock.now()
        super().save_model(request, obj, form, change)

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


# --- model versions -----------------------------------------------------------------------

BACKTEST_SOURCES = [
    ("model", "This model"),
    ("recency", "Recency baseline"),
    ("btyd", "Buy-till-you-die baseline"),
]
# key, label, format, which way is better (+1 higher, -1 lower, 0 neither)
BACKTEST_METRICS = [
    ("roc_auc", "ROC AUC", _fixed, 1),
    ("pr_auc", "PR AUC", _fixed, 1),
    ("brier", "Brier score", _fixed, -1),
    ("log_loss", "Log loss", _fixed, -1),
    ("top_decile_lift", "Top-decile lift", lambda v: _fixed(v, 2), 1),
    ("predicted_orders", "Predicted orders", lambda v: _fixed(v, 1), 0),
    ("actual_orders", "Actual orders", lambda v: _fixed(v, 0), 0),
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
        values = [_number(backtest[source].get(key)) for source, _ in sources]
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
        _when(backtest.get("as_of")),
        horizon if horizon is not None else EMPTY,
        format_html(", {} customers", n) if n is not None else "",
    )
    return format_html("{}{}", intro, _table(["", *(label for _, label in sources)], rows))


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
                _pct(row.get("predicted")),
                _pct(row.get("actual")),
            )
            for row in deciles
            if isinstance(row, dict)
        ]
        tables.append(_table(["decile", "customers", "predicted", "actual"], rows, label))
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
            _label(ModelKind, kind),
            _fixed(scores.get("log_loss")),
            _fixed(scores.get("roc_auc")),
            "chosen" if kind == chosen else "",
        )
        for kind, scores in candidates
    ]
    return _table(["candidate", "log loss", "ROC AUC", ""], rows)


def render_importances(version: ModelVersion) -> SafeString:
    """The features that weigh most, largest first, with their share of the total."""
    weights = [
        (name, float(value))
        for name, value in _dict(version.importances).items()
        if _number(value) is not None
    ]
    if not weights:
        return format_html("<p>{}</p>", "No feature importances recorded for this version.")
    weights.sort(key=lambda item: (-abs(item[1]), item[0]))
    total = sum(abs(value) for _, value in weights)
    rows = [
        (name, _fixed(value, 4), _pct(abs(value) / total) if total else EMPTY)
        for name, value in weights[:IMPORTANCES_SHOWN]
    ]
    note = (
        format_html("<p>The top {} of {} features.</p>", IMPORTANCES_SHOWN, len(weights))
        if len(weights) > IMPORTANCES_SHOWN
        else ""
    )
    return format_html("{}{}", _table(["feature", "importance", "share"], rows), note)


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
        return f"{_when(obj.train_as_of)} → {_when(obj.label_end)}"

    @admin.display(description="backtest ROC AUC")
    def backtest_roc_auc(self, obj: ModelVersion) -> str:
        return _fixed(_backtest_model(obj, "roc_auc"))

    @admin.display(description="backtest log loss")
    def backtest_log_loss(self, obj: ModelVersion) -> str:
        return _fixed(_backtest_model(obj, "log_loss"))

    @admin.display(description="share churned in training")
    def base_rate_pct(self, obj: ModelVersion) -> str:
        return _pct(obj.base_rate)

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


# --- the action policy --------------------------------------------------------------------

_BAND_RANK = Case(
    When(band=RiskBand.HIGH, then=Value(0)),
    When(band=RiskBand.MEDIUM, then=Value(1)),
    default=Value(2),
    output_field=IntegerField(),
)
_TIER_RANK = Case(
    *(When(tier=tier, then=Value(rank)) for rank, tier in enumerate(PolicyTier.values)),
    default=Value(len(PolicyTier.values)),
    output_field=IntegerField(),
)


class ActionPolicyForm(forms.ModelForm):
    """One cell of the policy. The cell (band, tier, recent contact) is unique
    per store; a taken cell is a form error, not a database error."""

    #: set by ActionPolicyAdmin.get_form: the store the rule belongs to
    tenant_id: int | None = None

    class Meta:
        model = ActionPolicy
        fields = ["band", "tier", "recently_contacted", "action"]

    def clean(self):
        data = super().clean()
        tenant = self.tenant_id or getattr(data.get("tenant"), "pk", None)
        cell = {key: data.get(key) for key in ("band", "tier", "recently_contacted")}
        if tenant is None or None in cell.values() or not self._cell_changes(cell):
            return data
        taken = ActionPolicy.objects.for_tenant(tenant).filter(**cell)
        if self.instance.pk:
            taken = taken.exclude(pk=self.instance.pk)
        if taken.exists():
            contact = "recently contacted" if cell["recently_contacted"] else "not contacted"
            self.add_error(
                None,
                f"There is already a rule for {_label(RiskBand, cell['band']).lower()} risk, "
                f"{_label(PolicyTier, cell['tier']).lower()}, {contact}: change its action "
                "in the list instead.",
            )
        return data

    def _cell_changes(self, cell: dict) -> bool:
        return not self.instance.pk or any(
            getattr(self.instance, key) != value for key, value in cell.items()
        )


def render_outcomes(rows: list[dict]) -> SafeString:
    if not rows:
        return format_html(
            "<p>{}</p>", "No actions chosen yet: results show here after the first scoring run."
        )
    table = _table(
        ["action", "risk band", "chosen", "horizon passed", "ordered", "ordered rate"],
        [
            (
                row["action_label"],
                row["band_label"],
                row["chosen"],
                row["judged"],
                row["ordered"],
                _pct(row["ordered_rate"]) if row["ordered_rate"] is not None else "not yet known",
            )
            for row in rows
        ],
    )
    return format_html(
        "{}<p>{}</p>",
        table,
        "An action is judged once its horizon has passed: did the customer order within it? "
        "These are observed rates, not the effect of the action; compare actions with an "
        "experiment.",
    )


@admin.register(ActionPolicy)
class ActionPolicyAdmin(TenantAdmin):
    """The next-best-action policy: an action per risk band, value tier and
    recent contact. The nightly run reads it; a cell left out falls back to
    the default."""

    form = ActionPolicyForm
    change_list_template = "admin/scoring/actionpolicy/change_list.html"
    list_display = ["band", "tier", "contact", "action", "updated_at"]
    list_editable = ["action"]
    list_filter = ["band", "tier", "recently_contacted"]
    ordering = [_BAND_RANK.asc(), _TIER_RANK.asc(), "recently_contacted"]

    @admin.display(description="recent contact", ordering="recently_contacted")
    def contact(self, obj: ActionPolicy) -> str:
        return "recently contacted" if obj.recently_contacted else "not contacted"

    def get_fields(self, request, obj=None):
        operator_add = obj is None and self._is_operator_view(request)
        return (["tenant"] if operator_add else []) + ActionPolicyForm.Meta.fields

    def get_form(self, request, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change=change, **kwargs)
        form.tenant_id = obj.tenant_id if obj is not None else getattr(request.tenant, "pk", None)
        return form

    def save_model(self, request, obj, form, change):
        obj.updated_at = clock.now()
        super().save_model(request, obj, form, change)

    def changelist_view(self, request, extra_context=None):
        summary = None
        if request.tenant is not None and self.has_view_permission(request):
            summary = render_outcomes(selectors.policy_outcomes(request.tenant.pk))
        return super().changelist_view(
            request, {**(extra_context or {}), "policy_outcomes": summary}
        )


# --- scores and chosen actions ------------------------------------------------------------


class ReadOnlyAdmin(TenantAdmin):
    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(ChurnScore)
class ChurnScoreAdmin(ReadOnlyAdmin):
    """Every customer's current score, riskiest first; written by the nightly run."""

    list_display = [
        "customer_link",
        "p_churn_pct",
        "band",
        "tier",
        "next_action",
        "reasons_text",
        "as_of",
    ]
    list_filter = ["band", "next_action", "tier"]
    search_fields = ["customer__email"]
    list_select_related = ["customer"]
    ordering = ["-p_churn"]
    show_full_result_count = False
    fields = [
        "customer",
        "p_churn_pct",
        "expected_orders",
        "band",
        "band_since",
        "tier",
        "next_action",
        "reasons_list",
        "version_link",
        "as_of",
        "scored_at",
    ]
    readonly_fields = fields

    @admin.display(description="customer", ordering="customer_id")
    def customer_link(self, obj) -> str:
        return _customer_link(obj)

    @admin.display(description="churn probability", ordering="p_churn")
    def p_churn_pct(self, obj: ChurnScore) -> str:
        return _pct(obj.p_churn, 0)

    @admin.display(description="reasons")
    def reasons_text(self, obj: ChurnScore) -> str:
        return "; ".join(str(r) for r in obj.reasons or []) or EMPTY

    @admin.display(description="reasons")
    def reasons_list(self, obj: ChurnScore) -> str:
        return customer_admin.reasons_html(obj.reasons)

    @admin.display(description="model version")
    def version_link(self, obj: ChurnScore) -> str:
        return customer_admin.version_link(obj.tenant_id, obj.model_version_id)


@admin.register(ChosenAction)
class ChosenActionAdmin(ReadOnlyAdmin):
    """Every action the policy chose, newest first, and whether the customer
    ordered within the horizon (empty until it has passed)."""

    list_display = [
        "chosen_at",
        "customer_link",
        "action",
        "band",
        "tier",
        "recently_contacted",
        "p_churn_pct",
        "horizon_end",
        "ordered",
    ]
    list_filter = ["action", "band", "ordered", "tier"]
    search_fields = ["customer__email"]
    list_select_related = ["customer"]
    ordering = ["-chosen_at"]
    show_full_result_count = False
    fields = [
        "customer",
        "action",
        "band",
        "tier",
        "recently_contacted",
        "p_churn_pct",
        "expected_orders",
        "version_link",
        "as_of",
        "chosen_at",
        "horizon_end",
        "ordered",
        "judged_at",
    ]
    readonly_fields = fields

    @admin.display(description="customer", ordering="customer_id")
    def customer_link(self, obj) -> str:
        return _customer_link(obj)

    @admin.display(description="churn probability", ordering="p_churn")
    def p_churn_pct(self, obj: ChosenAction) -> str:
        return _pct(obj.p_churn, 0)

    @admin.display(description="model version")
    def version_link(self, obj: ChosenAction) -> str:
        return customer_admin.version_link(obj.tenant_id, obj.model_version_id)
