"""The post-delivery survey: inviting a customer (one invitation per delivery),
its link, and recording the answers (from the page ``/s/<token>/`` or an SMS
reply) with their class, touchpoints, next-purchase signals and, for an unhappy
customer or one who asked, a callback.

What an answer writes, in one transaction (a second answer to the same
invitation is refused and writes nothing):

- the ``SurveyResponse`` with its class by the tenant's thresholds;
- touchpoints ``survey.answered`` and ``survey.<promoter|neutral|detractor>``
  (journeys trigger on the latter), and ``signal.wants_<tip|promotion|demo>``
  when the customer asked for one;
- a callback (``callback_create``, key ``survey:<response id>``) for a
  detractor or anyone who asked for a call; a detractor who has unsubscribed
  (see :func:`customer_has_unsubscribed`) is called only if they asked.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from django.db import transaction
from django.db.models import Exists, OuterRef, Q
from django.urls import reverse

from commerce.models import (
    Channel,
    ConsentStatus,
    Customer,
    Fulfillment,
    Order,
    TouchpointCategory,
)
from commerce.selectors import consents_for, customer_survivor
from commerce.services.touchpoints import TouchpointIn, touchpoints_record_many
from commerce.tokens import public_url
from feedback.models import (
    Callback,
    Highlight,
    ResponseChannel,
    SurveyChannel,
    SurveyClass,
    SurveyInvitation,
    SurveyResponse,
    Want,
)
from feedback.services.callbacks import callback_create
from feedback.services.settings import feedback_settings
from feedback.tokens import survey_token, survey_token_read
from messaging.models import Suppression, SuppressionReason
from messaging.services.outbox import address_for
from retention import clock
from retention.errors import Conflict, DomainError, InvalidInput
from retention.models import Tenant

logger = logging.getLogger(__name__)

TOUCHPOINT_SOURCE = "survey"
RATINGS = range(1, 6)
HIGHLIGHT_TEXT_MAX = SurveyResponse._meta.get_field("highlight_text").max_length
COMMENT_MAX = 2000
SMS_BODY_MAX = SurveyResponse._meta.get_field("sms_body").max_length
SOURCE_MAX = SurveyInvitation._meta.get_field("source").max_length
# Wishes that become a next-purchase signal (a call back becomes a callback).
SIGNAL_WANTS = (Want.TIP, Want.PROMOTION, Want.DEMO)
# Suppressions the customer asked for themselves (not a bounce or staff's block).
OWN_CHOICE_SUPPRESSIONS = (
    SuppressionReason.UNSUBSCRIBE,
    SuppressionReason.SPAM_REPORT,
    SuppressionReason.SMS_STOP,
)


class SurveyExpired(DomainError):
    """The invitation's link has expired (the page answers 410 Gone)."""

    status = 410
    code = "survey_expired"


class SurveyAnswered(Conflict):
    """The invitation has its answers already: a link answers once."""

    code = "survey_answered"


# --- classes and thresholds (pure) ---------------------------------------------------------


def feedback_thresholds_validate(*, promoter_min_rating: Any, neutral_min_rating: Any) -> None:
    """Raise InvalidInput (per field) unless both are ratings 1-5 and the
    neutral threshold is not above the promoter one. Equal thresholds are
    allowed: then nobody is neutral."""
    errors: dict[str, str] = {}
    for name, value in (
        ("promoter_min_rating", promoter_min_rating),
        ("neutral_min_rating", neutral_min_rating),
    ):
        if isinstance(value, bool) or not isinstance(value, int) or value not in RATINGS:
            errors[name] = "Give a rating from 1 to 5."
    if not errors and neutral_min_rating > promoter_min_rating:
        errors["neutral_min_rating"] = (
            f"Must not be above the promoter rating ({promoter_min_rating})."
        )
    if errors:
        first_key, first_error = next(iter(errors.items()))
        raise InvalidInput(f"{first_key}: {first_error}", fields=errors)


def survey_classify(*, rating: int, promoter_min_rating: int, neutral_min_rating: int) -> str:
    """promoter at or above the promoter rating, neutral at or above the neutral
    rating, detractor below it (defaults: 5, 4, 1-3)."""
    if rating >= promoter_min_rating:
        return SurveyClass.PROMOTER
    if rating >= neutral_min_rating:
        return SurveyClass.NEUTRAL
    return SurveyClass.DETRACTOR


# --- invitations and their links -----------------------------------------------------------


def survey_invite(
    *,
    tenant: Tenant | int,
    customer: Customer,
    fulfillment: Fulfillment | None = None,
    order: Order | None = None,
    channel: str,
    source: str = "journey",
) -> tuple[SurveyInvitation, bool]:
    """The invitation for this delivery, made on first call; returns
    (invitation, created). One per fulfillment: a second call (a retried step,
    two workers at once) returns the first one unchanged. Without a
    fulfillment, every call makes a new invitation. It expires the tenant's
    ``survey_valid_days`` from now."""
    tenant_id = getattr(tenant, "pk", tenant)
    errors: dict[str, str] = {}
    if customer.tenant_id != tenant_id:
        errors["customer"] = "Not found."
    if fulfillment is not None and fulfillment.tenant_id != tenant_id:
        errors["fulfillment"] = "Not found."
    if order is not None and order.tenant_id != tenant_id:
        errors["order"] = "Not found."
    elif order is not None and fulfillment is not None and fulfillment.order_id != order.pk:
        errors["order"] = "The fulfillment belongs to another order."
    if channel not in SurveyChannel.values:
        errors["channel"] = f"Choose one of {', '.join(SurveyChannel.values)}."
    source = source.strip() if isinstance(source, str) else ""
    if len(source) > SOURCE_MAX:
        errors["source"] = f"At most {SOURCE_MAX} characters."
    if errors:
        first_key, first_error = next(iter(errors.items()))
        raise InvalidInput(f"{first_key}: {first_error}", fields=errors)
    order_id = order.pk if order is not None else getattr(fulfillment, "order_id", None)
    now = clock.now()
    days = feedback_settings(tenant_id).survey_valid_days
    values = {
        "customer_id": customer.merged_into_id or customer.pk,
        "order_id": order_id,
        "channel": channel,
        "source": source,
        "created_at": now,
        "expires_at": now + timedelta(days=days),
    }
    if fulfillment is None:
        return SurveyInvitation.objects.create(tenant_id=tenant_id, **values), True
    # get_or_create inserts in a savepoint and, losing a race for the delivery's
    # unique constraint, reads the winner's row.
    invitation, created = SurveyInvitation.objects.for_tenant(tenant_id).get_or_create(
        tenant_id=tenant_id, fulfillment_id=fulfillment.pk, defaults=values
    )
    if created:
        logger.info(
            "feedback.survey_invited tenant_id=%s invitation_id=%s customer_id=%s channel=%s",
            tenant_id,
            invitation.pk,
            invitation.customer_id,
            channel,
        )
    return invitation, created


def survey_invitation_message_set(*, invitation: SurveyInvitation, message_id: int) -> bool:
    """Remember the message that carried the invitation (the first one wins).
    Returns True if it was recorded now."""
    return bool(
        SurveyInvitation.objects.for_tenant(invitation.tenant_id)
        .filter(pk=invitation.pk, message__isnull=True)
        .update(message_id=message_id)
    )


def survey_url(invitation: SurveyInvitation) -> str:
    """The absolute link to the survey page, the same every time (for an email,
    and short enough for an SMS)."""
    token = survey_token(tenant_id=invitation.tenant_id, invitation_id=invitation.pk)
    return public_url(reverse("survey-page", args=[token]))


def survey_invitation_for_token(token: str) -> SurveyInvitation | None:
    """The invitation a link names, loaded in the token's tenant with its
    tenant and customer, or None for a tampered or unknown token (or a store
    that is no longer active). Expired and answered ones are returned: the page
    says so."""
    ids = survey_token_read(token)
    if ids is None:
        return None
    tenant_id, invitation_id = ids
    invitation = (
        SurveyInvitation.objects.for_tenant(tenant_id)
        .select_related("tenant", "customer")
        .filter(pk=invitation_id)
        .first()
    )
    if invitation is None or not invitation.tenant.is_active:
        return None
    return invitation


def survey_response_of(invitation: SurveyInvitation) -> SurveyResponse | None:
    return (
        SurveyResponse.objects.for_tenant(invitation.tenant_id)
        .filter(invitation=invitation)
        .first()
    )


def survey_callback_queued(response: SurveyResponse) -> bool:
    """Whether the answer put the customer in the callback queue."""
    return Callback.objects.for_tenant(response.tenant_id).filter(survey_response=response).exists()


def survey_open_sms_invitation(
    *, tenant_id: int, customer_ids: Iterable[int], now: datetime | None = None
) -> SurveyInvitation | None:
    """The latest unexpired, unanswered SMS invitation of these customers (or of
    customers merged into them), or None."""
    ids = list(customer_ids)
    if not ids:
        return None
    return (
        SurveyInvitation.objects.for_tenant(tenant_id)
        .filter(Q(customer_id__in=ids) | Q(customer__merged_into_id__in=ids))
        .filter(channel=SurveyChannel.SMS, expires_at__gt=now or clock.now())
        .filter(
            ~Exists(SurveyResponse.objects.for_tenant(tenant_id).filter(invitation=OuterRef("pk")))
        )
        .select_related("tenant", "customer")
        .order_by("-created_at", "-id")
        .first()
    )


def survey_retry_prompt_claim(*, invitation: SurveyInvitation) -> bool:
    """Mark that an unreadable SMS reply got its one retry prompt. True only
    the first time (a conditional update, so two replies at once prompt once)."""
    return bool(
        SurveyInvitation.objects.for_tenant(invitation.tenant_id)
        .filter(pk=invitation.pk, retry_prompted_at__isnull=True)
        .update(retry_prompted_at=clock.now())
    )


# --- unsubscribed customers -------------------------------------------------------------------


def customer_has_unsubscribed(customer: Customer) -> bool:
    """Whether the customer has told the store to stop marketing to them: they
    opted out of (or had their address suppressed at their own request:
    unsubscribe, spam report, SMS STOP) at least one channel, and are opted in
    on none. A bounce or a staff block is not the customer's choice and does
    not count."""
    tenant_id = customer.tenant_id
    consents = consents_for(tenant_id=tenant_id, customer_ids=[customer.pk])
    said = {channel: consents.get((customer.pk, channel)) for channel in Channel.values}
    if ConsentStatus.OPTED_IN in said.values():
        return False
    if ConsentStatus.OPTED_OUT in said.values():
        return True
    addresses = Q()
    for channel in (Channel.EMAIL, Channel.SMS):
        address = address_for(customer, channel)
        if address:
            addresses |= Q(channel=channel, address=address)
    if not addresses:
        return False
    # A read of messaging's suppression list (it has no selector for one
    # customer); the same read the preferences page makes.
    return (
        Suppression.objects.for_tenant(tenant_id)
        .filter(addresses, reason__in=OWN_CHOICE_SUPPRESSIONS)
        .exists()
    )


# --- answering --------------------------------------------------------------------------------


def _clean_answer(
    rating: Any,
    highlights: Any,
    highlight_text: Any,
    wants: Any,
    comment: Any,
    channel: Any,
    sms_body: Any,
) -> dict[str, Any]:
    errors: dict[str, str] = {}
    value: int | None = None
    if isinstance(rating, int) and not isinstance(rating, bool):
        value = rating
    elif isinstance(rating, str):
        digits = rating.strip()
        # Short, ASCII digits only: int() of a 5,000-digit string raises.
        if 0 < len(digits) <= 2 and digits.isascii() and digits.isdigit():
            value = int(digits)
    if value not in RATINGS:
        errors["rating"] = "Choose how it went, from 1 to 5."
    chosen: list[str] = []
    if isinstance(highlights, str) or not isinstance(highlights, Iterable):
        errors["highlights"] = "Give a list of choices."
    else:
        given = list(highlights)
        unknown = [h for h in given if h not in Highlight.values]
        if unknown:
            errors["highlights"] = f"Unknown choice {unknown[0]!r}."
        # Stored in the order of the question, each once.
        chosen = [h for h in Highlight.values if h in given]
    texts: dict[str, str] = {}
    for name, raw, limit in (
        ("highlight_text", highlight_text, HIGHLIGHT_TEXT_MAX),
        ("comment", comment, COMMENT_MAX),
        ("sms_body", sms_body, SMS_BODY_MAX),
    ):
        if not isinstance(raw, str):
            errors[name] = "Give text."
        elif "\x00" in raw:  # PostgreSQL text cannot hold it: a 500 if let through
            errors[name] = "Remove the NUL character (\\x00) from the text."
        elif len(raw.strip()) > limit:
            errors[name] = f"Please keep it to {limit} characters."
        else:
            texts[name] = raw.strip()
    if wants not in ("", *Want.values):
        errors["wants"] = "Choose one of the options."
    if channel not in ResponseChannel.values:
        errors["channel"] = f"Choose one of {', '.join(ResponseChannel.values)}."
    if errors:
        first_key, first_error = next(iter(errors.items()))
        raise InvalidInput(f"{first_key}: {first_error}", fields=errors)
    return {"rating": value, "highlights": chosen, "wants": wants, "channel": channel, **texts}


def _callback_reason(rating: int, detractor: bool, asked: bool) -> str:
    if asked and detractor:
        return f"Rated the delivery {rating} of 5 and asked for a call back"
    if asked:
        return "Asked for a call back"
    return f"Rated the delivery {rating} of 5"


def survey_answer(
    *,
    invitation: SurveyInvitation,
    rating: int | str,
    highlights: Iterable[str] = (),
    highlight_text: str = "",
    wants: str = "",
    comment: str = "",
    channel: str,
    sms_body: str = "",
) -> SurveyResponse:
    """Record the answers to an invitation and act on them (see the module
    docstring). Raises InvalidInput (per field), SurveyAnswered when the
    invitation has its answers already, SurveyExpired when its link has expired."""
    answer = _clean_answer(rating, highlights, highlight_text, wants, comment, channel, sms_body)
    tenant_id = invitation.tenant_id
    with transaction.atomic():
        # The lock makes two answers at once queue up: the second sees the first.
        locked = (
            SurveyInvitation.objects.for_tenant(tenant_id)
            .select_for_update()
            .filter(pk=invitation.pk)
            .first()
        )
        if locked is None:
            raise InvalidInput("No such survey.", fields={"invitation": "Not found."})
        if SurveyResponse.objects.for_tenant(tenant_id).filter(invitation=locked).exists():
            raise SurveyAnswered("This survey has been answered already.")
        now = clock.now()
        if locked.is_expired(now):
            raise SurveyExpired("This survey has closed.")
        settings_row = feedback_settings(tenant_id)
        classification = survey_classify(
            rating=answer["rating"],
            promoter_min_rating=settings_row.promoter_min_rating,
            neutral_min_rating=settings_row.neutral_min_rating,
        )
        customer = customer_survivor(
            Customer.objects.for_tenant(tenant_id).get(pk=locked.customer_id)
        )
        response = SurveyResponse.objects.create(
            tenant_id=tenant_id,
            invitation=locked,
            customer=customer,
            classification=classification,
            answered_at=now,
            **answer,
        )
        _touch(response, locked, now)
        callback_id = _maybe_callback(response, locked, customer)
    logger.info(
        "feedback.survey_answered tenant_id=%s response_id=%s invitation_id=%s rating=%s "
        "class=%s channel=%s callback_id=%s",
        tenant_id,
        response.pk,
        locked.pk,
        response.rating,
        classification,
        response.channel,
        callback_id,
    )
    return response


def _touch(response: SurveyResponse, invitation: SurveyInvitation, at: datetime) -> None:
    base = {
        "response_id": response.pk,
        "invitation_id": invitation.pk,
        "rating": response.rating,
        "fulfillment_id": invitation.fulfillment_id,
        "order_id": invitation.order_id,
    }
    base = {k: v for k, v in base.items() if v is not None}
    key = f"survey:{response.pk}"
    items = [
        TouchpointIn(
            customer_id=response.customer_id,
            category=TouchpointCategory.SUPPORT,
            kind="survey.answered",
            occurred_at=at,
            properties={
                **base,
                "classification": response.classification,
                "channel": response.channel,
            },
            external_id=f"{key}:answered",
        ),
        TouchpointIn(
            customer_id=response.customer_id,
            category=TouchpointCategory.SUPPORT,
            kind=f"survey.{response.classification}",
            occurred_at=at,
            properties=base,
            external_id=f"{key}:class",
        ),
    ]
    if response.wants in SIGNAL_WANTS:
        items.append(
            TouchpointIn(
                customer_id=response.customer_id,
                category=TouchpointCategory.MARKETING,
                kind=f"signal.wants_{response.wants}",
                occurred_at=at,
                properties=base,
                external_id=f"{key}:wants",
            )
        )
    touchpoints_record_many(tenant_id=response.tenant_id, source=TOUCHPOINT_SOURCE, items=items)


def _maybe_callback(
    response: SurveyResponse, invitation: SurveyInvitation, customer: Customer
) -> int | None:
    asked = response.wants == Want.CALLBACK
    detractor = response.classification == SurveyClass.DETRACTOR
    if not asked and not (detractor and not customer_has_unsubscribed(customer)):
        return None
    context = {
        "survey_response_id": response.pk,
        "invitation_id": invitation.pk,
        "rating": response.rating,
        "classification": response.classification,
        "order_id": invitation.order_id,
        "fulfillment_id": invitation.fulfillment_id,
    }
    callback, _ = callback_create(
        tenant=response.tenant_id,
        customer=customer,
        reason=_callback_reason(response.rating, detractor, asked),
        source="survey",
        idempotency_key=f"survey:{response.pk}",
        context={k: v for k, v in context.items() if v is not None},
        survey_response=response,
        asked_for_call=asked,
    )
    return callback.pk
