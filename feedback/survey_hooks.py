"""Where surveys listen to the rest of the platform (wired in ``apps.ready``):
SMS replies to a survey invitation, and the segment conditions on survey
answers. (A customer merge moves survey rows in ``callback_hooks``.)

**Reading an SMS reply.** The rating comes first; whatever follows is the
customer's own words (stored as the answer's ``highlight_text``):

- a digit 1-5 not followed by another digit or a decimal: ``4``, ``5!``,
  ``4 fast delivery``, `` 3 - slow shipping``, ``4/5``, ``4 out of 5 stars``;
- a number word one-five, when it stands alone or is followed by punctuation,
  "stars" or "out of 5": ``four``, ``Five!``, ``four - great``; not ``one item
  was missing`` (a sentence that happens to start with a number word);
- ``0``, ``6``-``10``, ``4.5``, or a rating anywhere but at the start (``I'd
  say 4``) is not read: the sender gets one friendly prompt to try again, and a
  second unreadable reply is left to the other reply parsers.

Asking to be called (``call me``, ``call back``, ``callback``, ``ring me``,
``phone me``, ``give me a call``), unless negated (``don't call``, ``no need to
call``), sets the answer's wish to a call back. STOP, HELP and other keywords
never reach here (messaging handles them first).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from feedback.models import SurveyClass, SurveyResponse, Want

if TYPE_CHECKING:
    from messaging.services.callbacks import InboundSms

logger = logging.getLogger(__name__)

NUMBER_WORDS = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5}
_SCALE = r"(?:\s*/\s*(?:5|five)|\s+(?:out\s+)?of\s+(?:5|five))(?![0-9a-z])"
_RATING = re.compile(
    rf"""^[\s"'\u201c\u201d\u2018\u2019(\[*#]*
        (?:
            (?P<digit>[1-5])(?![0-9])(?![.,][0-9])
          | (?P<word>one|two|three|four|five)
            (?=\s*$|\s*[-\u2013\u2014:;,.!?)/]|{_SCALE}|\s+stars?\b)
        )
        (?:{_SCALE})?
        (?:\s*stars?\b)?
        (?P<rest>.*)$""",
    re.IGNORECASE | re.DOTALL | re.VERBOSE,
)
_LEADING_NOISE = re.compile(r"^[\s\-\u2013\u2014:;,.!?)\]/*#\"'\u201d\u2019]+")
_CALL = re.compile(
    r"\b(?:call(?:\s*back)?|callback|ring\s+me|phone\s+me|give\s+me\s+a\s+(?:call|ring))\b",
    re.IGNORECASE,
)
# "don't call", "please do not call", "no need to call", "no call back": the
# negation right before the call words (a few fillers allowed), so "not happy
# at all, call me" still asks.
_NEGATED = re.compile(
    r"\b(?:don[\u2019']?t|do\s+not|never|not|no(?:\s+need\s+(?:to|for))?)\s+"
    r"(?:(?:please|pls|ever|to|a|me)\s+)*$",
    re.IGNORECASE,
)
TEXT_MAX = SurveyResponse._meta.get_field("highlight_text").max_length


@dataclass(frozen=True)
class SmsAnswer:
    rating: int
    text: str  # what followed the rating, tidied; "" when nothing did
    wants_call: bool


def parse_sms_answer(body: str) -> SmsAnswer | None:
    """The rating, the words after it and whether they ask for a call, or None
    when the reply does not start with a rating (see the module docstring).
    Pure, and never raises."""
    if not isinstance(body, str):
        return None
    match = _RATING.match(body)
    if match is None:
        return None
    digit, word = match.group("digit"), match.group("word")
    rating = int(digit) if digit else NUMBER_WORDS[word.lower()]
    text = " ".join(_LEADING_NOISE.sub("", match.group("rest")).split())
    if len(text) > TEXT_MAX:
        text = text[: TEXT_MAX - 1] + "…"
    return SmsAnswer(rating=rating, text=text, wants_call=asks_for_call(text))


def asks_for_call(text: str) -> bool:
    """Whether the words ask for a call (and do not say not to)."""
    return any(not _NEGATED.search(text[: m.start()]) for m in _CALL.finditer(text))


RETRY_PROMPT = (
    "Sorry, we could not read that. Please reply with a number from 1 (poor) to 5 "
    "(great), e.g. 4 or 4 fast delivery. Add CALL ME if you would like a call."
)


def thank_you_text(*, store_name: str, classification: str, will_call: bool, asked: bool) -> str:
    """The short answer to a recorded SMS reply."""
    if will_call:
        who = f"Someone from {store_name}" if store_name else "Someone"
        if asked:
            return f"Thank you! {who} will call you soon."
        return f"Thank you, and sorry it was not better. {who} will be in touch soon."
    if classification == SurveyClass.PROMOTER:
        return "Thank you! We are so glad it went well."
    if classification == SurveyClass.DETRACTOR:
        return "Thank you, and sorry it was not better. Your answer helps us improve."
    return "Thank you for your answer!"


# --- hooks ----------------------------------------------------------------------------------


def survey_sms_reply(sms: InboundSms) -> str | None:
    """An ``INBOUND_SMS_HOOKS`` parser: a reply to the sender's latest open SMS
    survey is recorded and thanked; an unreadable one gets one retry prompt;
    anything else is not ours (None)."""
    from feedback.services.surveys import (
        SurveyAnswered,
        SurveyExpired,
        survey_answer,
        survey_callback_queued,
        survey_open_sms_invitation,
        survey_retry_prompt_claim,
    )

    invitation = survey_open_sms_invitation(tenant_id=sms.tenant_id, customer_ids=sms.customer_ids)
    if invitation is None:
        return None
    parsed = parse_sms_answer(sms.body)
    if parsed is None:
        if survey_retry_prompt_claim(invitation=invitation):
            logger.info(
                "feedback.survey_sms_retry_prompted tenant_id=%s invitation_id=%s",
                sms.tenant_id,
                invitation.pk,
            )
            return RETRY_PROMPT
        return None
    try:
        response = survey_answer(
            invitation=invitation,
            rating=parsed.rating,
            highlight_text=parsed.text,
            wants=Want.CALLBACK if parsed.wants_call else "",
            channel="sms",
            sms_body=sms.body[:1600],
        )
    except (SurveyAnswered, SurveyExpired):
        return None  # answered or closed since we looked: not ours any more
    return thank_you_text(
        store_name=invitation.tenant.name,
        classification=response.classification,
        will_call=survey_callback_queued(response),
        asked=parsed.wants_call,
    )


def register() -> None:
    """Add the survey hooks to the other apps' hook lists (idempotent)."""
    from feedback import rules
    from messaging.services.callbacks import INBOUND_SMS_HOOKS
    from segments.hooks import refresh_fields_on

    if survey_sms_reply not in INBOUND_SMS_HOOKS:
        INBOUND_SMS_HOOKS.append(survey_sms_reply)
    rules.register()
    # A survey answer is a touchpoint: segments on these fields follow it at once.
    refresh_fields_on("touchpoint", {"survey_class", "survey_wants"})
