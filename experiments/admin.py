"""Experiments in the admin: design (with the sample size it needs), launch,
stop, conclude (and promote the winner), and the results page.

A draft is edited freely; once launched, the design is frozen (changing arms
or weights mid-way would break the comparison) and only stop and conclude
remain. Launch, stop and conclude happen on a POSTed confirmation page.
"""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join

from experiments import stats
from experiments.models import Decision, Experiment, ExperimentStatus, Exposure, Variant
from experiments.results import experiment_results
from experiments.services import experiment_conclude, experiment_launch, experiment_stop
from experiments.services.lifecycle import Arm, experiment_check
from retention.admin_base import TenantAdmin, TenantInline
from retention.errors import DomainError

DESIGN_FIELDS = (
    "name",
    "kind",
    "hypothesis",
    "journey",
    "step_position",
    "eligibility_segment",
    "primary_metric",
    "conversion_days",
    "horizon_days",
    "exposure_days",
    "baseline_rate",
    "minimum_effect",
    "power",
    "alpha",
)


class VariantFormSet(forms.BaseInlineFormSet):
    """Checks the arms together with the experiment's kind and journey."""

    def clean(self):
        super().clean()
        if any(form.errors for form in self.forms):
            return
        arms = [
            Arm(
                form.cleaned_data["key"],
                form.cleaned_data.get("weight") or 0,
                bool(form.cleaned_data.get("is_control")),
            )
            for form in self.forms
            if form.cleaned_data and not form.cleaned_data.get("DELETE")
        ]
        experiment = self.instance
        if not experiment.kind:
            return  # the experiment's own form says what is missing
        journey = experiment.journey if experiment.journey_id else None
        problems = experiment_check(
            tenant_id=experiment.tenant_id or getattr(journey, "tenant_id", 0),
            kind=experiment.kind,
            journey=journey,
            step_position=experiment.step_position,
            arms=arms,
        )
        messages_ = [m for field_messages in problems.values() for m in field_messages]
        if messages_:
            raise ValidationError(messages_)


class VariantInline(TenantInline):
    model = Variant
    formset = VariantFormSet
    fields = ("key", "name", "weight", "is_control")
    extra = 2
    min_num = 0

    def has_add_permission(self, request, obj=None) -> bool:
        return super().has_add_permission(request, obj) and _draft(obj)

    def has_change_permission(self, request, obj=None) -> bool:
        return super().has_change_permission(request, obj) and _draft(obj)

    def has_delete_permission(self, request, obj=None) -> bool:
        return super().has_delete_permission(request, obj) and _draft(obj)


def _draft(obj) -> bool:
    return obj is None or obj.status == ExperimentStatus.DRAFT


class ConcludeForm(forms.Form):
    decision = forms.ChoiceField(choices=[c for c in Decision.choices if c[0]])
    winner = forms.ModelChoiceField(
        queryset=Variant.objects.none(), required=False, help_text="The variant that ships."
    )
    note = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), required=False)
    promote = forms.BooleanField(
        required=False,
        help_text="Put the winner into the journey: a step's winning variant becomes its only "
        "content (a new version); a holdout the control won pauses the journey.",
    )

    def __init__(self, *args, variants, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["winner"].queryset = variants


@admin.register(Experiment)
class ExperimentAdmin(TenantAdmin):
    list_display = ("name", "kind", "journey", "status", "primary_metric", "started_at", "results")
    list_filter = ("status", "kind")
    search_fields = ("name", "hypothesis")
    inlines = [VariantInline]
    readonly_fields = ("sample_size", "state")
    fieldsets = [
        (None, {"fields": ("name", "kind", "hypothesis", "state")}),
        (
            "Where and who",
            {"fields": ("journey", "step_position", "eligibility_segment")},
        ),
        (
            "What is measured",
            {"fields": ("primary_metric", "conversion_days", "horizon_days", "exposure_days")},
        ),
        (
            "Sample size before launch",
            {"fields": ("baseline_rate", "minimum_effect", "power", "alpha", "sample_size")},
        ),
    ]

    def get_readonly_fields(self, request, obj=None):
        if obj is not None and obj.status != ExperimentStatus.DRAFT:
            return (*DESIGN_FIELDS, "sample_size", "state")
        return self.readonly_fields

    @admin.display(description="Customers needed")
    def sample_size(self, obj: Experiment) -> str:
        if obj is None or obj.pk is None:
            return "Save the draft to see how many customers it needs."
        variants = list(obj.variants.all())
        control = next((v for v in variants if v.is_control), None)
        treatments = [v for v in variants if not v.is_control]
        if control is None or not treatments:
            return "Add a control and a treatment."
        ratio = treatments[0].weight / control.weight
        try:
            n = stats.sample_size(
                obj.baseline_rate,
                obj.minimum_effect,
                alpha=obj.alpha,
                power=obj.power,
                ratio=ratio,
            )
        except ValueError as exc:
            return str(exc)
        return (
            f"{n:,} mature customers in the control and {round(n * ratio):,} in each treatment "
            f"detect a {obj.minimum_effect:.1%} relative lift on a {obj.baseline_rate:.1%} "
            f"baseline at {obj.power:.0%} power (alpha {obj.alpha}, two-sided)."
        )

    @admin.display(description="State")
    def state(self, obj: Experiment):
        if obj is None or obj.pk is None:
            return "Draft"
        links = [("Results", "results")]
        if obj.status == ExperimentStatus.DRAFT:
            links.append(("Launch", "launch"))
        if obj.status == ExperimentStatus.RUNNING:
            links.append(("Stop", "stop"))
        if obj.status in (ExperimentStatus.RUNNING, ExperimentStatus.STOPPED):
            links.append(("Conclude", "conclude"))
        exposed = Exposure.objects.for_tenant(obj.tenant_id).filter(experiment=obj).count()
        buttons = format_html_join(
            " ",
            '<a class="button" href="{}">{}</a>',
            (
                (reverse(f"admin:experiments_experiment_{name}", args=[obj.pk]), label)
                for label, name in links
            ),
        )
        decision = f"; decision: {obj.get_decision_display()}" if obj.decision else ""
        return format_html(
            "{} · {} exposed{} &nbsp; {}",
            obj.get_status_display(),
            f"{exposed:,}",
            decision,
            buttons,
        )

    @admin.display(description="Results")
    def results(self, obj: Experiment):
        return format_html(
            '<a href="{}">results</a>',
            reverse("admin:experiments_experiment_results", args=[obj.pk]),
        )

    # --- pages ------------------------------------------------------------------------------
    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [
            path(
                "<path:object_id>/results/",
                wrap(self.results_view),
                name="experiments_experiment_results",
            ),
            path(
                "<path:object_id>/launch/",
                wrap(self.launch_view),
                name="experiments_experiment_launch",
            ),
            path(
                "<path:object_id>/stop/", wrap(self.stop_view), name="experiments_experiment_stop"
            ),
            path(
                "<path:object_id>/conclude/",
                wrap(self.conclude_view),
                name="experiments_experiment_conclude",
            ),
            *super().get_urls(),
        ]

    def _experiment(self, request: HttpRequest, object_id: str, *, change: bool) -> Experiment:
        experiment = self.get_object(request, unquote(object_id))
        if experiment is None:
            raise Http404("No such experiment.")  # another store's, or missing
        allowed = (
            self.has_change_permission(request, experiment)
            if change
            else self.has_view_permission(request, experiment)
        )
        if not allowed:
            raise PermissionDenied
        return experiment

    def _render(self, request, template: str, context: dict, experiment: Experiment):
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "experiment": experiment,
            "page_url": reverse("admin:experiments_experiment_change", args=[experiment.pk]),
            **context,
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(request, f"admin/experiments/experiment/{template}", context)

    def results_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        experiment = self._experiment(request, object_id, change=False)
        report = experiment_results(experiment)
        return self._render(
            request,
            "results.html",
            {"title": f"Results: {experiment.name}", "report": report},
            experiment,
        )

    def _confirm(self, request, object_id: str, verb: str, action, note: str) -> HttpResponse:
        experiment = self._experiment(request, object_id, change=True)
        page = reverse("admin:experiments_experiment_change", args=[experiment.pk])
        if request.method == "POST" and request.POST.get("confirm") == "yes":
            try:
                action(experiment=experiment, actor=request.user)
            except DomainError as exc:
                self.message_user(request, exc.message, messages.ERROR)
            else:
                self.message_user(
                    request, f"“{experiment.name}”: {verb.lower()} done.", messages.SUCCESS
                )
            return HttpResponseRedirect(page)
        return self._render(
            request,
            "confirm.html",
            {"title": f"{verb} “{experiment.name}”?", "verb": verb, "note": note},
            experiment,
        )

    def launch_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        return self._confirm(
            request,
            object_id,
            "Launch",
            experiment_launch,
            "From now on every customer who reaches the point of treatment is assigned to a "
            "variant by weight and recorded as exposed. The design cannot be changed after this.",
        )

    def stop_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        return self._confirm(
            request,
            object_id,
            "Stop",
            experiment_stop,
            "Nobody new is exposed and the journey treats everyone again. Customers exposed so "
            "far keep maturing and stay in the results.",
        )

    def conclude_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        experiment = self._experiment(request, object_id, change=True)
        variants = Variant.objects.for_tenant(experiment.tenant_id).filter(experiment=experiment)
        form = ConcludeForm(request.POST or None, variants=variants)
        if request.method == "POST" and form.is_valid():
            try:
                experiment_conclude(
                    experiment=experiment,
                    decision=form.cleaned_data["decision"],
                    note=form.cleaned_data["note"],
                    winner=form.cleaned_data["winner"],
                    promote=form.cleaned_data["promote"],
                    actor=request.user,
                )
            except DomainError as exc:
                form.add_error(None, exc.message)
            else:
                self.message_user(request, f"“{experiment.name}” is concluded.", messages.SUCCESS)
                return HttpResponseRedirect(
                    reverse("admin:experiments_experiment_results", args=[experiment.pk])
                )
        report = experiment_results(experiment)
        return self._render(
            request,
            "conclude.html",
            {"title": f"Conclude “{experiment.name}”", "form": form, "report": report},
            experiment,
        )
