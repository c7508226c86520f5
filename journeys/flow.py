"""A journey version in words, for the admin's flow picture and the list.

Pure presentation: takes a version and its loaded steps (``journeys.selectors.
version_steps``) and returns the sentences a marketer reads, e.g. "3 days after
the trigger, between 09:00 and 18:00 local" or "no: go to step 4". No queries
beyond what the caller loaded, except for segment names, which the caller
passes in (``selectors.segment_names``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import time

from commerce.models import Channel, FulfillmentStatus
from journeys.models import (
    PREFERRED_ACTIONS,
    SEND_ACTIONS,
    Action,
    Condition,
    DelayFrom,
    FamilyWindow,
    JourneyStep,
    JourneyVersion,
    OrderNth,
    Otherwise,
    Reentry,
    TriggerKind,
)
from segments.models import Tier

CHANNEL_FIELDS = (
    (Channel.EMAIL, "email_template"),
    (Channel.SMS, "sms_template"),
    (Channel.IN_APP, "in_app_template"),
)
NOUNS = {Action.EMAIL: "email", Action.SMS: "SMS", Action.IN_APP: "in-app message"}
ACTION_ICONS = {
    Action.EMAIL: "✉",
    Action.SMS: "💬",
    Action.IN_APP: "🔔",
    Action.PREFERRED: "✉",
    Action.SURVEY: "★",
    Action.CALLBACK: "☎",
    Action.SEGMENT_ADD: "+",
    Action.SEGMENT_REMOVE: "-",
    Action.WEBHOOK: "⇢",
}


@dataclass
class SendOption:
    """One template a step may send: per channel, per variant."""

    channel: str
    channel_label: str
    template: object  # messaging.models.Template
    variant: str = ""
    weight: int = 0
    percent: int = 0


@dataclass
class FlowStep:
    step: JourneyStep
    position: int
    name: str
    delay: str
    condition: str = ""
    no: str = ""
    no_target: int | None = None
    action: str = ""
    icon: str = ""
    sends: list[SendOption] = field(default_factory=list)
    variants: list[dict] = field(default_factory=list)


@dataclass
class Flow:
    trigger: str
    entry: list[str]
    reentry: str
    holdout: str
    exits: list[str]
    exits_sentence: str
    steps: list[FlowStep]


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def _quoted(name: str) -> str:
    return f"“{name}”"


def _label(choices, value: str) -> str:
    try:
        return str(choices(value).label)
    except ValueError:
        return value


def _segment(segment, names: dict[str, str], segment_id: object = None) -> str:
    if segment is not None:
        return _quoted(segment.name)
    name = names.get(str(segment_id)) if segment_id not in (None, "") else None
    return _quoted(name) if name else "(a segment that no longer exists)"


def trigger_text(version: JourneyVersion | None) -> str:
    """The trigger as a phrase: "First order placed", "Delivery status reached:
    Shipped", "Entered segment “VIP”". Reads ``version.segment`` (select it)."""
    if version is None:
        return "No definition yet"
    kind = version.trigger
    if kind == TriggerKind.ORDER_PLACED:
        if version.order_nth == OrderNth.FIRST:
            return "First order placed"
        if version.order_nth == OrderNth.NTH:
            return f"{_ordinal(version.order_n)} order placed"
        return "Any order placed"
    if kind == TriggerKind.FULFILLMENT:
        status = _label(FulfillmentStatus, version.fulfillment_status)
        return f"Delivery status reached: {status}"
    if kind == TriggerKind.CART_ABANDONED:
        return "Cart abandoned"
    if kind in (TriggerKind.SEGMENT_ENTERED, TriggerKind.SEGMENT_LEFT):
        verb = "Entered" if kind == TriggerKind.SEGMENT_ENTERED else "Left"
        return f"{verb} segment {_segment(version.segment, {}, version.segment_id)}"
    if kind == TriggerKind.FAMILY_WINDOW:
        window = _label(FamilyWindow, version.family_window).lower()
        return f"Product family's {window} window reached after a purchase"
    if kind == TriggerKind.CHURN_BAND:
        return f"Churn risk band entered: {version.value}"
    if kind == TriggerKind.SURVEY_CLASS:
        return f"Survey answer classified: {version.value}"
    if kind == TriggerKind.TOUCHPOINT:
        return f"Tracked event: {version.value}"
    return _label(TriggerKind, kind)


def _entry_lines(version: JourneyVersion) -> list[str]:
    lines = []
    if version.entry_segment_id:
        lines.append(f"only customers in segment {_segment(version.entry_segment, {})}")
    if version.entry_requires_consent:
        channel = _label(Channel, version.entry_requires_consent)
        lines.append(f"only customers with consent for {channel}")
    return lines


def _reentry_text(version: JourneyVersion) -> str:
    if version.reentry == Reentry.ONCE:
        return "once per customer, ever"
    if version.reentry == Reentry.COOLDOWN:
        days = version.reentry_cooldown_days
        return f"again {days} day{'s' if days != 1 else ''} after their last entry"
    if version.reentry == Reentry.EVERY:
        return "on every trigger, even while a run is under way"
    return "again once their previous run has finished"


def _exit_lines(version: JourneyVersion) -> list[str]:
    lines = []
    if version.exit_on_order:
        lines.append("orders again")
    if version.exit_on_unsubscribe:
        lines.append("unsubscribes")
    if version.exit_segment_id:
        verb = "enters" if version.exit_segment_on == "entered" else "leaves"
        lines.append(f"{verb} segment {_segment(version.exit_segment, {})}")
    return lines


def _exits_sentence(lines: list[str]) -> str:
    if not lines:
        return "Runs to the end unless stopped by hand."
    listed = lines[0] if len(lines) == 1 else f"{', '.join(lines[:-1])} or {lines[-1]}"
    return f"Leaves early when the customer {listed}, or when stopped by hand."


def _clock(value: time) -> str:
    return value.strftime("%H:%M")


def delay_text(step: JourneyStep) -> str:
    """When the step runs: "3 days after the trigger, between 09:00 and 18:00 local"."""
    amount, unit = step.delay, step.delay_unit
    if amount == 1:
        unit = unit.removesuffix("s")
    window = _label(FamilyWindow, step.family_window).lower()
    if step.delay_from == DelayFrom.FAMILY_WINDOW:
        opening = f"the product family's {window} window opens"
        text = f"When {opening}" if not amount else f"{amount} {unit} after {opening}"
    else:
        anchor = "the trigger" if step.delay_from == DelayFrom.TRIGGER else "the previous step"
        text = f"Right after {anchor}" if not amount else f"{amount} {unit} after {anchor}"
    if step.window_start and step.window_end:
        text += f", between {_clock(step.window_start)} and {_clock(step.window_end)} local"
    return text


def condition_text(step: JourneyStep, names: dict[str, str]) -> str:
    """The condition, to read after "If the customer": "opened the previous
    message", "is in segment “VIP”", "prefers SMS"."""
    value = step.condition_value
    if step.condition == Condition.IN_SEGMENT:
        return f"is in segment {_segment(None, names, value)}"
    if step.condition == Condition.TIER:
        return f"is in the tier {_label(Tier, value)}"
    if step.condition == Condition.HAS_CONSENT:
        return f"has consent for {_label(Channel, value)}"
    if step.condition == Condition.PREFERRED_CHANNEL:
        return f"prefers {_label(Channel, value)}"
    if not step.condition:
        return ""
    label = _label(Condition, step.condition)
    return label[:1].lower() + label[1:]


def _no_branch(step: JourneyStep, steps_by_position: dict[int, JourneyStep]) -> str:
    if step.otherwise == Otherwise.EXIT:
        return "leave the journey"
    if step.otherwise == Otherwise.GOTO and step.goto_position:
        target = steps_by_position.get(step.goto_position)
        name = f" ({target.name})" if target is not None else ""
        return f"go to step {step.goto_position}{name}"
    return "skip this step"


def step_sends(step: JourneyStep) -> tuple[list[SendOption], list[dict]]:
    variants = list(step.variants.all())
    total = sum(v.weight for v in variants) or 1
    sends: list[SendOption] = []
    rows: list[dict] = []
    holders = [(v.key, v.weight, v) for v in variants] or [("", 0, step)]
    for key, weight, holder in holders:
        percent = round(100 * weight / total) if key else 0
        names = []
        for channel, attr in CHANNEL_FIELDS:
            template = getattr(holder, attr)
            if template is None:
                continue
            if step.action != channel and step.action not in PREFERRED_ACTIONS:
                continue
            label = _label(Channel, channel)
            sends.append(SendOption(channel, label, template, key, weight, percent))
            names.append(f"{label} {_quoted(template.name)}")
        if key:
            rows.append({"key": key, "weight": weight, "percent": percent, "sends": names})
    return sends, rows


def action_text(step: JourneyStep, sends: list[SendOption]) -> str:
    """What the step does: "Send email “Welcome”", "Send on the customer's
    preferred channel: Email “…”, SMS “…”", "Add to segment “VIP”"."""
    action = step.action
    if action in SEND_ACTIONS:
        preferred = action in PREFERRED_ACTIONS
        verb = (
            "Send the delivery survey on the customer's preferred channel"
            if action == Action.SURVEY
            else "Send on the customer's preferred channel"
            if preferred
            else f"Send {NOUNS[action]}"
        )
        if any(s.variant for s in sends):
            return f"{verb}, A/B test"
        names = ", ".join(
            f"{s.channel_label} {_quoted(s.template.name)}"
            if preferred
            else _quoted(s.template.name)
            for s in sends
        )
        if not names:
            return f"{verb} (no template chosen)"
        return f"{verb}: {names}" if preferred else f"{verb} {names}"
    if action == Action.CALLBACK:
        return f"Create a callback for support: {step.callback_reason or step.name}"
    if action in (Action.SEGMENT_ADD, Action.SEGMENT_REMOVE):
        verb = "Add to" if action == Action.SEGMENT_ADD else "Remove from"
        return f"{verb} segment {_segment(step.action_segment, {}, step.action_segment_id)}"
    if action == Action.WEBHOOK:
        return f"Post to {step.webhook_url}"
    return _label(Action, action)


def flow_of(version: JourneyVersion, steps: list[JourneyStep], names: dict[str, str]) -> Flow:
    """Everything the flow picture says about a version, in order."""
    by_position = {s.position: s for s in steps}
    drawn = []
    for step in steps:
        sends, variants = step_sends(step)
        item = FlowStep(
            step=step,
            position=step.position,
            name=step.name,
            delay=delay_text(step),
            action=action_text(step, sends),
            icon=ACTION_ICONS.get(step.action, "•"),
            sends=sends,
            variants=variants,
        )
        if step.condition:
            item.condition = condition_text(step, names)
            item.no = _no_branch(step, by_position)
            if step.otherwise == Otherwise.GOTO:
                item.no_target = step.goto_position
        drawn.append(item)
    holdout = (
        f"{version.holdout_percent}% of entrants are held out at random (recorded, sent nothing)"
        if version.holdout_percent
        else ""
    )
    exits = _exit_lines(version)
    return Flow(
        trigger=trigger_text(version),
        entry=_entry_lines(version),
        reentry=_reentry_text(version),
        holdout=holdout,
        exits=exits,
        exits_sentence=_exits_sentence(exits),
        steps=drawn,
    )
