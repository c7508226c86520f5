"""Forms for editing a journey in the admin: the version's settings, its steps
(a formset, one block per step) and the A/B variants (a flat formset that names
each variant's step by number), plus turning them into the plain-data
definition ``journeys.services.definitions`` takes and its errors back onto
the fields.

The forms only shape input: every rule about what makes a valid journey lives
in the definitions service, whose ``InvalidInput`` field keys
(``trigger``, ``steps.2.delay``, ``steps.2.variants.1.weight``) are mapped back
to the form, formset row and field they are about.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django import forms
from django.db.models import Model

from commerce.models import Channel, FulfillmentStatus
from journeys.models import Journey, JourneyStep, JourneyVersion, StepVariant
from journeys.services.definitions import (
    STEP_FIELDS,
    TEMPLATE_FIELDS,
    VARIANT_FIELDS,
    VERSION_FIELDS,
)
from messaging.models import Template
from segments.models import Segment, Tier

# The form edits exactly what the definitions service takes (the note is per save).
VERSION_FORM_FIELDS = [f for f in VERSION_FIELDS if f != "note"]
STEP_FORM_FIELDS = list(STEP_FIELDS)
VARIANT_FORM_FIELDS = list(VARIANT_FIELDS)
FULFILLMENT_CHOICES = [("", "—")] + [
    (s.value, s.label) for s in FulfillmentStatus if s not in ("pending",)
]
CHANNEL_CHOICES = [("", "—"), *Channel.choices]
VALUE_HELP = (
    "By trigger: the touchpoint kind of a tracked event (e.g. onboarding.completed, or the "
    "churn scorer's next_action.winback and next_action.nudge); the churn risk band entered "
    "(medium or high, announced by the nightly scorer as churn_risk.entered); or the survey "
    "class (promoter, neutral or detractor)."
)


def _scope(form: forms.BaseForm, tenant_id: int) -> None:
    """Offer only the store's segments, and templates of the field's channel."""
    for name, bound in form.fields.items():
        if name in TEMPLATE_FIELDS:
            bound.queryset = Template.objects.for_tenant(tenant_id).filter(
                channel=TEMPLATE_FIELDS[name]
            )
        elif isinstance(bound, forms.ModelChoiceField) and bound.queryset.model is Segment:
            bound.queryset = Segment.objects.for_tenant(tenant_id)


class JourneyNameForm(forms.ModelForm):
    """A journey's name and description (the add page, and renaming)."""

    #: set by JourneyAdmin.get_form: the store the journey belongs to
    tenant_id: int | None = None

    class Meta:
        model = Journey
        fields = ["name", "description"]
        widgets = {"description": forms.Textarea(attrs={"rows": 3, "cols": 80})}

    def clean_name(self) -> str:
        name = self.cleaned_data["name"].strip()
        tenant_id = self.tenant_id or getattr(self.cleaned_data.get("tenant"), "pk", None)
        if tenant_id is not None:
            taken = Journey.objects.for_tenant(tenant_id).filter(name=name)
            if self.instance.pk:
                taken = taken.exclude(pk=self.instance.pk)
            if taken.exists():
                raise forms.ValidationError(f"A journey called {name!r} exists already.")
        return name


class VersionForm(forms.ModelForm):
    """The version's trigger, entry filters, re-entry, exits and holdout."""

    fulfillment_status = forms.ChoiceField(choices=FULFILLMENT_CHOICES, required=False)
    entry_requires_consent = forms.ChoiceField(choices=CHANNEL_CHOICES, required=False)
    category = forms.ChoiceField(
        choices=[("marketing", "Marketing"), ("transactional", "Transactional")],
        initial="marketing",
        help_text="How the outbox treats the sends (transactional: e.g. delivery updates); "
        "the step templates must be of the same category.",
    )
    note = forms.CharField(
        max_length=300, required=False, help_text="What changed, for the version history."
    )

    class Meta:
        model = JourneyVersion
        fields = VERSION_FORM_FIELDS
        help_texts = {"value": VALUE_HELP}

    def __init__(self, *args, tenant_id: int, **kwargs):
        super().__init__(*args, **kwargs)
        _scope(self, tenant_id)

    def _post_clean(self) -> None:
        # The definitions service checks the whole definition; the model
        # instance behind this form is never saved.
        pass


def _condition_choices(tenant_id: int, current: str) -> list:
    segments = list(Segment.objects.for_tenant(tenant_id).values_list("pk", "name"))
    choices: list = [
        ("", "—"),
        ("Segments", [(str(pk), name) for pk, name in segments]),
        ("Tiers", list(Tier.choices)),
        ("Channels", list(Channel.choices)),
    ]
    known = {str(pk) for pk, _ in segments} | set(Tier.values) | set(Channel.values)
    if current and current not in known:
        choices.append((current, current))
    return choices


class StepForm(forms.ModelForm):
    """One step. ``position`` orders the steps and is what "go to step N" names."""

    position = forms.IntegerField(min_value=1, required=False, help_text="Steps run in this order.")
    condition_value = forms.ChoiceField(
        required=False, help_text="The segment, tier or channel the condition is about."
    )
    webhook_url = forms.URLField(
        required=False,
        max_length=500,
        assume_scheme="https",
        widget=forms.URLInput(attrs={"size": 50}),
        help_text="For “post to an outbound webhook”.",
    )

    class Meta:
        model = JourneyStep
        fields = ["position", *STEP_FORM_FIELDS]
        widgets = {
            "window_start": forms.TimeInput(attrs={"type": "time"}, format="%H:%M"),
            "window_end": forms.TimeInput(attrs={"type": "time"}, format="%H:%M"),
        }

    def __init__(self, *args, tenant_id: int, **kwargs):
        super().__init__(*args, **kwargs)
        _scope(self, tenant_id)
        current = str(self.initial.get("condition_value") or "")
        if self.is_bound:
            current = str(self.data.get(self.add_prefix("condition_value")) or "")
        self.fields["condition_value"].choices = _condition_choices(tenant_id, current)

    def _post_clean(self) -> None:
        pass


class VariantForm(forms.ModelForm):
    """An A/B variant of a send step, named by the step's number."""

    step = forms.IntegerField(min_value=1, help_text="The step's number.")

    class Meta:
        model = StepVariant
        fields = ["step", *VARIANT_FORM_FIELDS]

    def __init__(self, *args, tenant_id: int, **kwargs):
        super().__init__(*args, **kwargs)
        _scope(self, tenant_id)

    def _post_clean(self) -> None:
        pass


StepFormSet = forms.formset_factory(StepForm, extra=1, can_delete=True)
VariantFormSet = forms.formset_factory(VariantForm, extra=2, can_delete=True)


def _pk(value: Any) -> Any:
    return value.pk if isinstance(value, Model) else value


def initial_from_spec(version: dict, steps: list[dict]) -> tuple[dict, list[dict], list[dict]]:
    """Form initial data from ``version_as_spec``: version, steps, variants."""
    version_initial = {k: _pk(v) for k, v in version.items() if k != "note"}
    step_rows, variant_rows = [], []
    for position, step in enumerate(steps, start=1):
        row = {k: _pk(v) for k, v in step.items() if k != "variants"}
        row["position"] = position
        step_rows.append(row)
        for variant in step.get("variants", []):
            variant_rows.append({"step": position, **{k: _pk(v) for k, v in variant.items()}})
    return version_initial, step_rows, variant_rows


@dataclass
class Definition:
    """The edit forms read as the service's input, with the way back from its
    error keys to the forms they are about."""

    version: dict
    steps: list[dict]
    note: str = ""
    step_forms: list[StepForm] = field(default_factory=list)  # by the service's index - 1
    variant_forms: dict[tuple[int, int], VariantForm] = field(default_factory=dict)


def _filled(form: forms.BaseForm) -> bool:
    data = getattr(form, "cleaned_data", None)
    return bool(data) and not data.get("DELETE")


def definition_from_forms(
    version_form: VersionForm, steps: Any, variants: Any
) -> Definition | None:
    """The service's input from valid forms, steps in their ``position`` order
    with "go to step N" renumbered to match; None (with errors added to the
    forms) when a step number does not lead anywhere."""
    version = {k: v for k, v in version_form.cleaned_data.items() if k != "note"}
    for name in ("fulfillment_status", "entry_requires_consent"):
        version[name] = version.get(name) or ""
    filled = [f for f in steps.forms if _filled(f)]
    last = max((f.cleaned_data.get("position") or 0 for f in filled), default=0)
    numbered = []
    for order, form in enumerate(filled):
        position = form.cleaned_data.get("position")
        if position is None:
            last += 1
            position = last
        numbered.append((position, order, form))
    numbered.sort(key=lambda item: (item[0], item[1]))
    new_index = {}
    for index, (position, _, _) in enumerate(numbered, start=1):
        new_index.setdefault(position, index)

    ok = True
    definition = Definition(version=version, steps=[], note=version_form.cleaned_data["note"])
    for _, _, form in numbered:
        data = {k: form.cleaned_data.get(k) for k in STEP_FORM_FIELDS}
        data["condition_value"] = data["condition_value"] or ""
        goto = data.get("goto_position")
        if goto is not None and data.get("otherwise") == "goto":
            if goto not in new_index:
                form.add_error("goto_position", f"There is no step {goto}.")
                ok = False
            else:
                data["goto_position"] = new_index[goto]
        data["variants"] = []
        definition.steps.append(data)
        definition.step_forms.append(form)
    for form in variants.forms:
        if not _filled(form):
            continue
        position = form.cleaned_data["step"]
        if position not in new_index:
            form.add_error("step", f"There is no step {position}.")
            ok = False
            continue
        index = new_index[position]
        own = definition.steps[index - 1]["variants"]
        own.append({k: form.cleaned_data.get(k) for k in VARIANT_FORM_FIELDS})
        definition.variant_forms[(index, len(own))] = form
    return definition if ok else None


def add_service_errors(
    fields: dict[str, list[str]] | dict[str, str],
    *,
    definition: Definition,
    version_form: VersionForm,
) -> list[str]:
    """Put the service's field errors on the fields they name; returns those
    that belong to no field, for the top of the page."""
    loose: list[str] = []
    for key, raw in fields.items():
        messages = [raw] if isinstance(raw, str) else list(raw)
        parts = key.split(".")
        target: forms.BaseForm | None = None
        name: str | None = None
        if parts[0] == "steps" and len(parts) >= 2 and parts[1].isdigit():
            index = int(parts[1])
            if len(parts) >= 4 and parts[2] == "variants" and parts[3].isdigit():
                target = definition.variant_forms.get((index, int(parts[3])))
                name = parts[4] if len(parts) > 4 else None
            elif 1 <= index <= len(definition.step_forms):
                target = definition.step_forms[index - 1]
                name = parts[2] if len(parts) > 2 else None
        elif key in version_form.fields:
            target, name = version_form, key
        if target is None:
            loose.extend(messages)
            continue
        if name not in target.fields:
            name = None
        for message in messages:
            target.add_error(name, message)
    return loose
