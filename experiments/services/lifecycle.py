"""An experiment's life: draft → running → stopped → concluded.

``experiment_check`` says everything wrong with a design at once (the admin
form shows it per field); launching checks it again against the journey as it
is then. Concluding records the decision and, when asked, promotes the
winner in its journey: a step experiment's winning variant becomes the step's
only content (a new journey version), a holdout won by the control pauses the
journey, one won by the treatment leaves the journey running for everyone.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta

from django.db import transaction

from experiments.models import (
    CHECKIN_MAX_HOURS,
    MILESTONES,
    Decision,
    Experiment,
    ExperimentKind,
    ExperimentStatus,
    Variant,
)
from journeys.models import (
    SEND_ACTIONS,
    Action,
    DelayFrom,
    Journey,
    JourneyStatus,
    JourneyStep,
    TriggerKind,
)
from retention import clock
from retention.errors import Conflict, InvalidInput
from retention.models import AuditAction
from retention.services import audit_record

logger = logging.getLogger(__name__)

ACTING = (*SEND_ACTIONS, Action.CALLBACK)
MAX_VARIANTS = 10


@dataclass(frozen=True)
class Arm:
    key: str
    weight: int
    is_control: bool = False
    name: str = ""


def _delay_hours(step: JourneyStep) -> float:
    per = {"minutes": 1 / 60, "hours": 1, "days": 24}[step.delay_unit]
    return step.delay * per


def experiment_check(
    *,
    tenant_id: int,
    kind: str,
    journey: Journey | None,
    step_position: int | None,
    arms: list[Arm],
) -> dict[str, list[str]]:
    """Field → problems with this design (empty when it can run)."""
    errors: dict[str, list[str]] = {}

    def add(field: str, message: str) -> None:
        errors.setdefault(field, []).append(message)

    keys = [a.key for a in arms]
    if len(arms) < 2:
        add("variants", "An experiment needs a control and at least one other variant.")
    if len(arms) > MAX_VARIANTS:
        add("variants", f"At most {MAX_VARIANTS} variants.")
    if len(set(keys)) != len(keys):
        add("variants", "Each variant needs its own key.")
    if sum(a.is_control for a in arms) != 1:
        add("variants", "Mark exactly one variant as the control.")
    if any(not 1 <= a.weight <= 1000 for a in arms):
        add("variants", "A weight is a whole number from 1 to 1000.")
    if kind not in ExperimentKind.values:
        add("kind", "Unknown kind.")
        return errors
    if journey is None or journey.tenant_id != tenant_id:
        add("journey", "Choose one of this store's journeys.")
        return errors
    version = journey.current_version
    if version is None:
        add("journey", "The journey has no definition yet.")
        return errors
    steps = {s.position: s for s in version.steps.all().prefetch_related("variants")}
    if kind in (ExperimentKind.HOLDOUT, ExperimentKind.CHECKIN) and len(arms) != 2:
        add("variants", "A holdout has two variants: the control (no journey) and the treatment.")
    if kind == ExperimentKind.STEP:
        step = steps.get(step_position or 0)
        if step is None:
            add("step_position", "Give the number of one of the journey's steps.")
        elif step.action not in SEND_ACTIONS:
            add("step_position", "Step variants are tested on a send step.")
        else:
            own = {v.key for v in step.variants.all()}
            missing = sorted(set(keys) - own)
            if not own:
                add("step_position", "That step has no variants: add them to the journey first.")
            elif missing:
                add(
                    "variants",
                    f"The step's variants are {', '.join(sorted(own))}; "
                    f"{', '.join(missing)} is not one of them.",
                )
    elif step_position:
        add("step_position", "Only a step-variant experiment names a step.")
    if kind == ExperimentKind.CHECKIN:
        if version.trigger != TriggerKind.TOUCHPOINT or version.value not in MILESTONES:
            add(
                "journey",
                "A check-in journey starts from a milestone ("
                + ", ".join(MILESTONES)
                + "): set its trigger to that tracked event.",
            )
        first = next((s for _, s in sorted(steps.items()) if s.action in ACTING), None)
        if first is None:
            add("journey", "The check-in journey has no message or callback step.")
        elif first.delay_from != DelayFrom.TRIGGER or _delay_hours(first) > CHECKIN_MAX_HOURS:
            add(
                "journey",
                f"The check-in (step {first.position}) must come within {CHECKIN_MAX_HOURS} "
                "hours of the milestone.",
            )
    return errors


def _arms(experiment: Experiment) -> list[Arm]:
    return [
        Arm(v.key, v.weight, v.is_control, v.name)
        for v in Variant.objects.for_tenant(experiment.tenant_id).filter(experiment=experiment)
    ]


def _raise(errors: dict[str, list[str]]) -> None:
    if errors:
        first = next(iter(errors.values()))[0]
        raise InvalidInput(first, fields=errors)


@transaction.atomic
def experiment_create(
    *,
    tenant,
    name: str,
    kind: str,
    journey: Journey,
    hypothesis: str,
    arms: list[Arm],
    actor=None,
    **fields,
) -> Experiment:
    """A draft experiment with its variants (the admin's form does the same
    through the model form; the simulator and tests come here)."""
    name = (name or "").strip()
    errors = experiment_check(
        tenant_id=tenant.pk,
        kind=kind,
        journey=journey,
        step_position=fields.get("step_position"),
        arms=arms,
    )
    if not name:
        errors.setdefault("name", []).append("An experiment needs a name.")
    elif Experiment.objects.for_tenant(tenant).filter(name=name).exists():
        errors.setdefault("name", []).append(f"An experiment called {name!r} exists already.")
    if not (hypothesis or "").strip():
        errors.setdefault("hypothesis", []).append("Write down what you expect and why.")
    _raise(errors)
    experiment = Experiment.objects.create(
        tenant=tenant, name=name, kind=kind, journey=journey, hypothesis=hypothesis, **fields
    )
    Variant.objects.bulk_create(
        [
            Variant(
                tenant=tenant,
                experiment=experiment,
                key=a.key,
                name=a.name,
                weight=a.weight,
                is_control=a.is_control,
            )
            for a in arms
        ]
    )
    audit_record(tenant=tenant, action=AuditAction.CREATE, obj=experiment, user=actor)
    return experiment


def _locked(experiment: Experiment) -> Experiment:
    return (
        Experiment.objects.for_tenant(experiment.tenant_id)
        .select_for_update(of=("self",))
        .select_related("journey__current_version")
        .get(pk=experiment.pk)
    )


def _move(experiment: Experiment, allowed: tuple[str, ...], to: str) -> None:
    if experiment.status not in allowed:
        raise Conflict(
            f"A {experiment.status} experiment cannot become {to}.",
            fields={"status": [f"It is {experiment.status}."]},
        )


@transaction.atomic
def experiment_launch(*, experiment: Experiment, actor=None) -> Experiment:
    """Start taking customers in. The journey must be active, and no other
    experiment may already split it (or the same step)."""
    experiment = _locked(experiment)
    _move(experiment, (ExperimentStatus.DRAFT,), ExperimentStatus.RUNNING)
    errors = experiment_check(
        tenant_id=experiment.tenant_id,
        kind=experiment.kind,
        journey=experiment.journey,
        step_position=experiment.step_position,
        arms=_arms(experiment),
    )
    if experiment.journey.status != JourneyStatus.ACTIVE:
        errors.setdefault("journey", []).append(
            "Activate the journey first: a paused or draft journey exposes nobody."
        )
    others = Experiment.objects.for_tenant(experiment.tenant_id).filter(
        journey=experiment.journey, status=ExperimentStatus.RUNNING
    )
    if experiment.kind == ExperimentKind.STEP:
        others = others.filter(kind=ExperimentKind.STEP, step_position=experiment.step_position)
    else:
        others = others.exclude(kind=ExperimentKind.STEP)
    clash = others.first()
    if clash is not None:
        errors.setdefault("journey", []).append(
            f"{clash.name!r} is already running there; stop it first."
        )
    _raise(errors)
    experiment.status = ExperimentStatus.RUNNING
    experiment.started_at = clock.now()
    experiment.save(update_fields=["status", "started_at"])
    audit_record(
        tenant=experiment.tenant_id,
        action=AuditAction.ACTION,
        obj=experiment,
        changes={"status": ["draft", "running"]},
        user=actor,
    )
    logger.info(
        "experiments.launched tenant_id=%s experiment_id=%s", experiment.tenant_id, experiment.pk
    )
    return experiment


@transaction.atomic
def experiment_stop(*, experiment: Experiment, actor=None) -> Experiment:
    """Stop taking customers in; those exposed keep maturing and are analysed.
    The journey goes back to treating everyone."""
    experiment = _locked(experiment)
    _move(experiment, (ExperimentStatus.RUNNING,), ExperimentStatus.STOPPED)
    experiment.status = ExperimentStatus.STOPPED
    experiment.stopped_at = clock.now()
    experiment.save(update_fields=["status", "stopped_at"])
    audit_record(
        tenant=experiment.tenant_id,
        action=AuditAction.ACTION,
        obj=experiment,
        changes={"status": ["running", "stopped"]},
        user=actor,
    )
    return experiment


@transaction.atomic
def experiment_conclude(
    *,
    experiment: Experiment,
    decision: str,
    note: str = "",
    winner: Variant | None = None,
    promote: bool = False,
    actor=None,
) -> Experiment:
    """Record the decision (and stop it if it still runs). ``promote`` puts the
    winner into the journey (see the module's docstring)."""
    experiment = _locked(experiment)
    _move(
        experiment,
        (ExperimentStatus.RUNNING, ExperimentStatus.STOPPED),
        ExperimentStatus.CONCLUDED,
    )
    if decision not in Decision.values or not decision:
        raise InvalidInput("Choose a decision.", fields={"decision": ["Choose a decision."]})
    if winner is not None and winner.experiment_id != experiment.pk:
        raise InvalidInput(
            "The winner must be one of this experiment's variants.",
            fields={"winner": ["Not a variant of this experiment."]},
        )
    if decision == Decision.SHIP and winner is None:
        raise InvalidInput(
            "Say which variant ships.", fields={"winner": ["Choose the winning variant."]}
        )
    if decision == Decision.KEEP_CONTROL:
        winner = Variant.objects.for_tenant(experiment.tenant_id).get(
            experiment=experiment, is_control=True
        )
    now = clock.now()
    experiment.status = ExperimentStatus.CONCLUDED
    experiment.stopped_at = experiment.stopped_at or now
    experiment.concluded_at = now
    experiment.decision = decision
    experiment.decision_note = note.strip()
    experiment.winner = winner
    fields = ["status", "stopped_at", "concluded_at", "decision", "decision_note", "winner"]
    if promote and winner is not None:
        _promote(experiment, winner, actor)
        experiment.promoted_at = now
        fields.append("promoted_at")
    experiment.save(update_fields=fields)
    audit_record(
        tenant=experiment.tenant_id,
        action=AuditAction.ACTION,
        obj=experiment,
        changes={
            "decision": [None, decision],
            "winner": [None, winner.key if winner else None],
            "promoted": [None, bool(promote and winner)],
        },
        user=actor,
    )
    return experiment


def _promote(experiment: Experiment, winner: Variant, actor) -> None:
    from journeys.services.definitions import journey_set_status, journey_update, version_as_spec

    journey = experiment.journey
    if experiment.kind != ExperimentKind.STEP:
        if winner.is_control and journey.status == JourneyStatus.ACTIVE:
            journey_set_status(journey=journey, status=JourneyStatus.PAUSED, actor=actor)
        return
    version, steps = version_as_spec(journey.current_version)
    index = (experiment.step_position or 0) - 1
    step = steps[index] if 0 <= index < len(steps) else None
    chosen = next((v for v in (step or {}).get("variants", []) if v["key"] == winner.key), None)
    if step is None or chosen is None:
        raise InvalidInput(
            f"The journey's step {experiment.step_position} no longer has variant "
            f"{winner.key}; promote it by hand."
        )
    for field in ("email_template", "sms_template", "in_app_template"):
        step[field] = chosen.get(field)
    if chosen.get("channel"):
        step["action"] = chosen["channel"]
    if chosen.get("window_start") and chosen.get("window_end"):
        step["window_start"], step["window_end"] = chosen["window_start"], chosen["window_end"]
    step["variants"] = []
    journey_update(
        journey=journey,
        version=version,
        steps=steps,
        actor=actor,
        note=f"Promoted variant {winner.key} of experiment {experiment.name!r}",
    )


def planned_end(experiment: Experiment, window_days: int):
    """When the design says to read the result: the exposure period plus the
    primary metric's window after the launch."""
    if experiment.started_at is None:
        return None
    return experiment.started_at + timedelta(days=experiment.exposure_days + window_days)
