"""The journeys every store starts with, active and editable, and their copy.

- Welcome series for first-time buyers: day 0, 3, 7 and 14.
- Delivery updates: packed, shipped, out for delivery, delivered, delayed.
- Reorder, upsell and replenishment at each product family's windows (the
  expensive tier's own, longer windows), ending when the customer orders.
- Abandoned-cart reminders at 1 and 23 hours.
- Follow-ups for each tier: high-value repeat, mid-value repeat, one-time.
- A 90-day plan in three waves that asks about use and goals.
- The survey 4 hours after delivery, and the follow-ups for promoters (thanks and
  cross-sell) and neutrals (tips and a light incentive).
- The churn scorer's next best actions: a win-back with an incentive (day 0, 4
  and 10, ending when the customer orders) and a content nudge.

Marketing steps are snapped to 09:00-20:00 in the customer's timezone; consent,
quiet hours and the frequency cap are the outbox's business. One-time buyers'
follow-ups start at day 10, after the welcome series has said its piece.
Installed by ``journeys.services.setup.journeys_install_defaults``.
"""

from __future__ import annotations

from commerce.models import FulfillmentStatus
from journeys.defaults.base import DAYTIME, ShippedJourney, ShippedTemplate
from journeys.defaults.copy_feedback import AFTER_ANSWER, SURVEY
from journeys.defaults.copy_lifecycle import PLAN, WELCOME
from journeys.defaults.copy_offers import FAMILY, SEGMENTS
from journeys.defaults.copy_orders import CART, DELIVERY, DELIVERY_TEMPLATES
from journeys.defaults.copy_winback import NUDGE, WINBACK
from journeys.models import (
    Action,
    DelayFrom,
    DelayUnit,
    FamilyWindow,
    OrderNth,
    Reentry,
    TriggerKind,
)
from segments.models import Tier

TEMPLATES: dict[str, ShippedTemplate] = {
    t.key: t
    for t in (
        *WELCOME,
        *PLAN,
        *DELIVERY_TEMPLATES,
        *CART,
        *FAMILY,
        *SEGMENTS,
        *SURVEY,
        *AFTER_ANSWER,
        *WINBACK,
        *NUDGE,
    )
}


def _step(name: str, delay: int, unit: str = DelayUnit.DAYS, **fields) -> dict:
    return {"name": name, "delay": delay, "delay_unit": unit, **fields}


def _email(name: str, delay: int, template: str, **fields) -> dict:
    return _step(name, delay, action=Action.EMAIL, email_template=template, **DAYTIME, **fields)


def _on_preferred(prefix: str) -> dict:
    """A send on the customer's preferred channel, from the templates
    ``<prefix>-email``, ``-sms`` and ``-in-app`` that exist."""
    templates = {
        f"{channel}_template": f"{prefix}-{suffix}"
        for channel, suffix in (("email", "email"), ("sms", "sms"), ("in_app", "in-app"))
        if f"{prefix}-{suffix}" in TEMPLATES
    }
    return {"action": Action.PREFERRED, **templates}


def _preferred(name: str, delay: int, prefix: str, **fields) -> dict:
    return _step(name, delay, **_on_preferred(prefix), **fields)


WELCOME_SERIES = ShippedJourney(
    key="welcome-series",
    name="Welcome series for first-time buyers",
    description=(
        "First-time buyers: thanks and what happens next (day 0), tips and care (day 3), "
        "returns, delivery and help (day 7), loyalty points and an offer (day 14)."
    ),
    version={
        "trigger": TriggerKind.ORDER_PLACED,
        "order_nth": OrderNth.FIRST,
        "reentry": Reentry.ONCE,
        "exit_on_unsubscribe": True,
    },
    steps=[
        _email("Day 0: thanks and what happens next", 0, "welcome-0"),
        _email("Day 3: tips and care", 3, "welcome-3"),
        _email("Day 7: returns, delivery and help", 7, "welcome-7"),
        _email("Day 14: loyalty points and an offer", 14, "welcome-14"),
    ],
)

DELIVERY_UPDATES = tuple(
    ShippedJourney(
        key=f"delivery-{status.replace('_', '-')}",
        name=f"Delivery update: {label}",
        description=(
            "The delay message with the backup plan: a replacement or a refund."
            if status == "delayed"
            else f"Tells the customer their parcel is {label}, on their preferred channel."
        ),
        version={
            "trigger": TriggerKind.FULFILLMENT,
            "fulfillment_status": status,
            "reentry": Reentry.EVERY,
            "category": "transactional",
            # A delivery update is owed even to someone who opted out of marketing.
            "exit_on_unsubscribe": False,
        },
        steps=[
            _preferred(
                f"{label[0].upper()}{label[1:]}",
                0,
                f"delivery-{status}",
                delay_unit=DelayUnit.MINUTES,
            )
        ],
    )
    for status, label in ((s, FulfillmentStatus(s).label.lower()) for s in DELIVERY)
)


def _family(window: str, name: str, step_name: str, description: str, send: dict):
    return ShippedJourney(
        key=str(window),
        name=name,
        description=description,
        version={
            "trigger": TriggerKind.FAMILY_WINDOW,
            "family_window": window,
            "reentry": Reentry.AFTER_EXIT,
            "exit_on_order": True,
        },
        steps=[
            {
                **send,
                "name": step_name,
                "delay": 0,
                "delay_unit": DelayUnit.DAYS,
                "delay_from": DelayFrom.FAMILY_WINDOW,
                "family_window": window,
                **DAYTIME,
            }
        ],
    )


FAMILY_WINDOWS = (
    _family(
        FamilyWindow.REORDER,
        "Reorder reminder",
        "Reorder reminder",
        "At the family's reorder window (7 days by default; the expensive tier's own "
        "window), until the customer orders again.",
        _on_preferred("reorder"),
    ),
    _family(
        FamilyWindow.UPSELL,
        "Upsell of related families",
        "Goes well with",
        "At the family's upsell window (14 days by default): related families to try.",
        {"action": Action.EMAIL, "email_template": "upsell-email"},
    ),
    _family(
        FamilyWindow.REPLENISHMENT,
        "Replenishment reminder",
        "Time to restock",
        "At the family's replenishment window (28 days by default), before the customer runs out.",
        _on_preferred("replenishment"),
    ),
)
ABANDONED_CART = ShippedJourney(
    key="abandoned-cart",
    name="Abandoned cart reminder",
    description="Two reminders within a day of abandoning a cart: after 1 hour and 23 hours.",
    version={
        "trigger": TriggerKind.CART_ABANDONED,
        "reentry": Reentry.COOLDOWN,
        "reentry_cooldown_days": 7,
        "exit_on_order": True,
    },
    steps=[
        _step("1 hour: you left something", 1, DelayUnit.HOURS, action=Action.EMAIL,
              email_template="cart-1"),
        _step("23 hours: still thinking it over?", 23, DelayUnit.HOURS, action=Action.EMAIL,
              email_template="cart-2"),
    ],
)  # fmt: skip


def _tier(tier: str, key: str, name: str, description: str, steps: list[dict]):
    return ShippedJourney(
        key=key,
        name=name,
        description=description,
        version={
            "trigger": TriggerKind.SEGMENT_ENTERED,
            "segment": tier,
            "reentry": Reentry.COOLDOWN,
            "reentry_cooldown_days": 90,
            "exit_on_order": True,
        },
        steps=steps,
    )


SEGMENT_FOLLOW_UPS = (
    _tier(
        Tier.HIGH_VALUE_REPEAT,
        "high-value-repeat-follow-up",
        "High-value repeat buyers",
        "After the purchase that makes them high-value repeat buyers: a personal offer, "
        "then cross-category recommendations.",
        [
            _email("Day 1: a personal thank-you offer", 1, "high-value-1"),
            _email("Day 8: picked for you", 8, "high-value-2"),
        ],
    ),
    _tier(
        Tier.MID_VALUE_REPEAT,
        "mid-value-repeat-follow-up",
        "Mid-value repeat buyers",
        "Repeat buyers below the high-value line: a content bundle, then a limited-time discount.",
        [
            _email("Day 1: our best guides", 1, "mid-value-1"),
            _email("Day 7: a limited-time discount", 7, "mid-value-2"),
        ],
    ),
    _tier(
        Tier.ONE_TIME,
        "one-time-follow-up",
        "One-time buyers",
        "Buyers of one order: a practical guide once the welcome series is over, then a "
        "soft nudge.",
        [
            _email("Day 10: a practical guide", 10, "one-time-1"),
            _email("Day 24: a soft nudge", 24, "one-time-2"),
        ],
    ),
)

NINETY_DAY_PLAN = ShippedJourney(
    key="ninety-day-plan",
    name="90-day post-sale plan",
    description=(
        "Three waves after the first order, each asking 2-3 short questions on the "
        "customer's preferred channel: onboarding (day 2), usage (day 30), loyalty (day 75)."
    ),
    version={
        "trigger": TriggerKind.ORDER_PLACED,
        "order_nth": OrderNth.FIRST,
        "reentry": Reentry.ONCE,
    },
    steps=[
        _preferred("Wave 1 (day 2): onboarding", 2, "plan-1", **DAYTIME),
        _preferred("Wave 2 (day 30): usage", 30, "plan-2", **DAYTIME),
        _preferred("Wave 3 (day 75): loyalty", 75, "plan-3", **DAYTIME),
    ],
)

POST_DELIVERY_SURVEY = ShippedJourney(
    key="post-delivery-survey",
    name="Survey after delivery",
    description=(
        "4 hours after a parcel is delivered (in the customer's daytime), three quick "
        "questions on the customer's preferred channel (once per delivery; SMS replies "
        "count). Detractors and anyone who asks for a call go to the callback queue."
    ),
    version={
        "trigger": TriggerKind.FULFILLMENT,
        "fulfillment_status": FulfillmentStatus.DELIVERED,
        "reentry": Reentry.EVERY,
    },
    steps=[
        _step(
            "4 hours after delivery: how did we do?",
            4,
            DelayUnit.HOURS,
            **{**_on_preferred("survey"), "action": Action.SURVEY},
            **DAYTIME,
        )
    ],
)

SURVEY_FOLLOW_UPS = tuple(
    ShippedJourney(
        key=f"survey-{cls}",
        name=name,
        description=description,
        version={
            "trigger": TriggerKind.SURVEY_CLASS,
            "value": cls,
            "reentry": Reentry.COOLDOWN,
            "reentry_cooldown_days": 90,
        },
        steps=[_email(step, 1, template)],
    )
    for cls, name, description, step, template in (
        (
            "promoter",
            "Survey promoters: thanks and cross-sell",
            "The day after a promoter's answer (5 stars by default): thanks, an invitation "
            "to recommend the store, and what goes well with the order.",
            "Day 1: thank you, and picked for you",
            "promoter-1",
        ),
        (
            "neutral",
            "Survey neutrals: tips and a light incentive",
            "The day after a neutral answer (4 stars by default): care and service tips, "
            "and a small thank-you for telling us what would make it a 5.",
            "Day 1: tips and a little something",
            "neutral-1",
        ),
    )
)

# The nightly scorer writes these touchpoints when its policy picks the action
# for a customer (a "call" goes to the callback queue instead).
WINBACK_KIND = "next_action.winback"
NUDGE_KIND = "next_action.nudge"

WINBACK_JOURNEY = ShippedJourney(
    key="winback-incentive",
    name="Win-back with an incentive",
    description=(
        "When the churn scorer picks a win-back: 15% off (day 0), a reminder on the "
        "customer's preferred channel (day 4) and a last chance (day 10); ends when the "
        "customer orders. At most once every 90 days."
    ),
    version={
        "trigger": TriggerKind.TOUCHPOINT,
        "value": WINBACK_KIND,
        "reentry": Reentry.COOLDOWN,
        "reentry_cooldown_days": 90,
        "exit_on_order": True,
        "exit_on_unsubscribe": True,
    },
    steps=[
        _email("Day 0: we miss you, 15% off", 0, "winback-1"),
        _preferred("Day 4: your 15% is waiting", 4, "winback-reminder", **DAYTIME),
        _email("Day 10: last chance", 10, "winback-last"),
    ],
)

CONTENT_NUDGE = ShippedJourney(
    key="content-nudge",
    name="Content nudge",
    description=(
        "When the churn scorer picks a nudge: one helpful note with tips and no offer, on "
        "the customer's preferred channel. At most once every 30 days."
    ),
    version={
        "trigger": TriggerKind.TOUCHPOINT,
        "value": NUDGE_KIND,
        "reentry": Reentry.COOLDOWN,
        "reentry_cooldown_days": 30,
        "exit_on_order": True,
        "exit_on_unsubscribe": True,
    },
    steps=[_preferred("Day 0: tips from our regulars", 0, "nudge", **DAYTIME)],
)

JOURNEYS: tuple[ShippedJourney, ...] = (
    WELCOME_SERIES,
    *DELIVERY_UPDATES,
    *FAMILY_WINDOWS,
    ABANDONED_CART,
    *SEGMENT_FOLLOW_UPS,
    NINETY_DAY_PLAN,
    POST_DELIVERY_SURVEY,
    *SURVEY_FOLLOW_UPS,
    WINBACK_JOURNEY,
    CONTENT_NUDGE,
)

__all__ = ["JOURNEYS", "TEMPLATES", "ShippedJourney", "ShippedTemplate"]
