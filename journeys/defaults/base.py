"""The shapes of what the platform ships to every store: a message template
(copy in the template language of ``messaging.template_language``) and a
journey (a version and its steps, in the form ``journey_create`` takes, with
templates and tier segments named by key until a tenant's rows are known).

Pure data: no database. ``journeys.services.setup`` installs it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import time
from typing import Any

from commerce.models import Channel
from messaging.models import Category

EMAIL, SMS, IN_APP = Channel.EMAIL, Channel.SMS, Channel.IN_APP
MARKETING, TRANSACTIONAL = Category.MARKETING, Category.TRANSACTIONAL

# Marketing steps wait for the customer's daytime: nobody wants tips at 3 am.
DAYTIME = {"window_start": time(9, 0), "window_end": time(20, 0)}

HI = 'Hi {{ customer.first_name|default:"there" }},'
SIGN_OFF = "The {{ store.name }} team"
# Every marketing email says why it came and how to stop it (the outbox also
# sets List-Unsubscribe); SMS says how to opt out.
MARKETING_FOOTER = (
    "\n\n--\nYou're getting this because you shop with {{ store.name }}.\n"
    "Choose what we send you, or unsubscribe: {{ links.unsubscribe }}"
)
ORDER_FOOTER = "\n\n--\nQuestions about your order? Just reply to this email."
SMS_STOP = " Reply STOP to opt out"


@dataclass(frozen=True)
class ShippedTemplate:
    """One template a store starts with. ``key`` ties it to journey steps;
    ``name`` is what the marketer sees (unique in a store)."""

    key: str
    name: str
    channel: str
    category: str
    subject: str = ""
    text: str = ""
    html: str = ""

    def fields(self) -> dict[str, str]:
        return {
            "name": self.name,
            "channel": self.channel,
            "category": self.category,
            "subject": self.subject,
            "html": self.html,
            "text": self.text,
        }


def email(key: str, name: str, category: str, subject: str, body: str) -> ShippedTemplate:
    """A plain-text email with the footer its category needs."""
    footer = MARKETING_FOOTER if category == MARKETING else ORDER_FOOTER
    return ShippedTemplate(
        key=key,
        name=f"{name} (email)",
        channel=EMAIL,
        category=category,
        subject=subject,
        text=f"{HI}\n\n{body.strip()}\n\n{SIGN_OFF}{footer}",
    )


def sms(key: str, name: str, category: str, text: str) -> ShippedTemplate:
    """An SMS that names the store first (a bare number means nothing to people)."""
    stop = SMS_STOP if category == MARKETING else ""
    return ShippedTemplate(
        key=key,
        name=f"{name} (SMS)",
        channel=SMS,
        category=category,
        text=f"{{{{ store.name }}}}: {text.strip()}{stop}",
    )


def in_app(key: str, name: str, category: str, title: str, text: str) -> ShippedTemplate:
    return ShippedTemplate(
        key=key,
        name=f"{name} (in-app)",
        channel=IN_APP,
        category=category,
        subject=title,
        text=text.strip(),
    )


@dataclass(frozen=True)
class ShippedJourney:
    """A journey every store gets, installed once by ``key``.

    ``version`` and ``steps`` use ``journey_create``'s field names, except that
    ``segment`` / ``entry_segment`` / ``exit_segment`` hold a tier
    (``segments.models.Tier``) and ``*_template`` hold a ShippedTemplate key;
    the installer swaps in the tenant's rows.
    """

    key: str
    name: str
    description: str
    version: dict[str, Any]
    steps: list[dict[str, Any]] = field(default_factory=list)

    def template_keys(self) -> list[str]:
        return [
            step[f]
            for step in self.steps
            for f in ("email_template", "sms_template", "in_app_template")
            if step.get(f)
        ]
