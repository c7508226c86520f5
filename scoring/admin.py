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

from django import forms
from django.contrib import admin
from django.db.models import Case, IntegerField, Value, When
from django.http import HttpResponseRedirect
from django.urls import reverse
from django.utils.html import format_html
from django.utils.safestring import SafeString

from retention import clock
from retention.admin_base import TenantAdmin
from scoring import (  # noqa: F401 (importing registers the customer panel and the versions admin)
    admin_versions,
    customer_admin,
    selectors,
)
from scoring.admin_render import (
    EMPTY,
    choice_label,
    customer_link,
    html_table,
    pct_text,
)
from scoring.models import (
    ActionPolicy,
    ChosenAction,
    ChurnScore,
    PolicyTier,
    RiskBand,
    ScoringSettings,
)
from scoring.services.setup import scoring_settings

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
            "history_days",
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
                    "history_days",
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
                f"There is already a rule for {choice_label(RiskBand, cell['band']).lower()} risk, "
                f"{choice_label(PolicyTier, cell['tier']).lower()}, {contact}: change its action "
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
    table = html_table(
        ["action", "risk band", "chosen", "horizon passed", "ordered", "ordered rate"],
        [
            (
                row["action_label"],
                row["band_label"],
                row["chosen"],
                row["judged"],
                row["ordered"],
                pct_text(row["ordered_rate"])
                if row["ordered_rate"] is not None
                else "not yet known",
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
        return customer_link(obj)

    @admin.display(description="churn probability", ordering="p_churn")
    def p_churn_pct(self, obj: ChurnScore) -> str:
        return pct_text(obj.p_churn, 0)

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
        return customer_link(obj)

    @admin.display(description="churn probability", ordering="p_churn")
    def p_churn_pct(self, obj: ChosenAction) -> str:
        return pct_text(obj.p_churn, 0)

    @admin.display(description="model version")
    def version_link(self, obj: ChosenAction) -> str:
        return customer_admin.version_link(obj.tenant_id, obj.model_version_id)
