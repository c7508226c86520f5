"""Simulated customers answering the survey after delivery: some answer a few
hours after the invitation, most rate 4 or 5, a few ask for something next or
for a call. Deterministic for a seed: each invitation's fate is drawn from the
seed and its delivery's storefront ids, never from database ids."""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta

from feedback.models import SurveyChannel, SurveyInvitation, Want
from retention import clock
from retention.errors import DomainError
from retention.models import Tenant

ANSWER_SHARE = 0.4
# Ratings as shoppers give them: mostly happy, a tail of unhappy ones.
RATINGS = [5] * 45 + [4] * 25 + [3] * 12 + [2] * 10 + [1] * 8
WANTS = [Want.TIP] * 15 + [Want.PROMOTION] * 10 + [Want.DEMO] * 5 + [""] * 70


@dataclass(frozen=True)
class Answer:
    invitation: SurveyInvitation
    at: datetime
    rating: int
    wants: str


class Respondents:
    """Decides once per invitation whether and how it is answered, and answers
    the ones whose time has come."""

    def __init__(self, tenant: Tenant, *, seed: int) -> None:
        self.tenant, self.seed = tenant, seed
        self.decided: dict[int, Answer | None] = {}

    def answer_due(self, activity: Counter) -> None:
        from feedback.services import survey_answer

        now = clock.now()
        fresh = (
            SurveyInvitation.objects.for_tenant(self.tenant)
            .filter(responses__isnull=True, expires_at__gt=now, message__isnull=False)
            .exclude(pk__in=list(self.decided))
            .select_related("order", "fulfillment")
        )
        for invitation in fresh:
            self.decided[invitation.pk] = self._decide(invitation)
        for pk, answer in list(self.decided.items()):
            if answer is None or answer.at > now:
                continue
            self.decided[pk] = None
            sms = answer.invitation.channel == SurveyChannel.SMS
            try:
                survey_answer(
                    invitation=answer.invitation,
                    rating=answer.rating,
                    wants=answer.wants,
                    channel="sms" if sms else "web",
                    sms_body=f"{answer.rating}" if sms else "",
                )
            except DomainError:  # answered or closed meanwhile
                continue
            activity["survey answers"] += 1

    def _decide(self, invitation: SurveyInvitation) -> Answer | None:
        order = invitation.order.external_id if invitation.order_id else ""
        parcel = invitation.fulfillment.external_id if invitation.fulfillment_id else ""
        rng = random.Random(f"{self.seed}:survey:{order}:{parcel}")  # noqa: S311
        if rng.random() >= ANSWER_SHARE:
            return None
        rating = rng.choice(RATINGS)
        wants = Want.CALLBACK if rating <= 2 and rng.random() < 0.4 else rng.choice(WANTS)
        at = invitation.created_at + timedelta(hours=rng.randint(1, 30))
        return Answer(invitation, at, rating, wants)
