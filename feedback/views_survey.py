"""The hosted survey page ``/s/<token>/``: three questions and a comment on one
screen, a plain HTML form (no JavaScript needed), and a thank-you page.

The signed token in the URL (see :mod:`feedback.tokens`) is the shopper's only
credential: it names the tenant, so every read and write is scoped to it. A
tampered or unknown token gets 404, an expired survey 410, an answered one a
"we already have your answers" page (409 when the form is sent again). The
form keeps Django's CSRF protection, so the form page sends
``Referrer-Policy: strict-origin`` (never the path, which holds the token; and
under ``no-referrer`` browsers post ``Origin: null``, which the CSRF check
refuses); every other page sends ``no-referrer``. Nothing is cached or indexed.
"""

from __future__ import annotations

import logging

from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed
from django.shortcuts import redirect, render
from django.urls import reverse

from feedback.models import Highlight, SurveyClass, SurveyInvitation, SurveyResponse, Want
from feedback.services.surveys import (
    COMMENT_MAX,
    HIGHLIGHT_TEXT_MAX,
    SurveyAnswered,
    SurveyExpired,
    survey_answer,
    survey_callback_queued,
    survey_invitation_for_token,
    survey_response_of,
)
from retention.errors import InvalidInput
from retention.http import shopper_headers as _headers

logger = logging.getLogger(__name__)

FORM_REFERRER_POLICY = "strict-origin"
RATING_LABELS = [
    (1, "Very poor"),
    (2, "Poor"),
    (3, "Okay"),
    (4, "Good"),
    (5, "Excellent"),
]
# Question 2 splits its choices into what went well and what did not.
GOOD_HIGHLIGHTS = (
    Highlight.FAST_DELIVERY,
    Highlight.PRODUCT_QUALITY,
    Highlight.EASY_ORDERING,
    Highlight.HELPFUL_SUPPORT,
)
WANT_LABELS = {Want.NOTHING: "Nothing for now, thanks"}
NEXT_STEP = {
    Want.TIP: "a tailored tip",
    Want.PROMOTION: "a promotion",
    Want.DEMO: "a product demo",
}


def _not_found(request: HttpRequest) -> HttpResponse:
    return _headers(render(request, "feedback/survey/not_found.html", status=404))


def _closed(request: HttpRequest, invitation: SurveyInvitation) -> HttpResponse:
    context = {"store_name": invitation.tenant.name}
    return _headers(render(request, "feedback/survey/expired.html", context, status=410))


def _answered(
    request: HttpRequest, invitation: SurveyInvitation, response: SurveyResponse | None, status: int
) -> HttpResponse:
    context = {"store_name": invitation.tenant.name, "response": response}
    return _headers(render(request, "feedback/survey/answered.html", context, status=status))


def survey_page(request: HttpRequest, token: str) -> HttpResponse:
    """``GET`` shows the questions; ``POST`` records the answers and goes on to
    the thank-you page."""
    if request.method not in ("GET", "HEAD", "POST"):
        return _headers(HttpResponseNotAllowed(["GET", "HEAD", "POST"]))
    invitation = survey_invitation_for_token(token)
    if invitation is None:
        return _not_found(request)
    response = survey_response_of(invitation)
    if response is not None:
        return _answered(request, invitation, response, 409 if request.method == "POST" else 200)
    if invitation.is_expired():
        return _closed(request, invitation)
    if request.method != "POST":
        return _form(request, invitation, {}, {})
    post = request.POST
    given = {
        "rating": post.get("rating", ""),
        "highlights": post.getlist("highlights"),
        "highlight_text": post.get("highlight_text", ""),
        "wants": post.get("wants", ""),
        "comment": post.get("comment", ""),
    }
    try:
        survey_answer(invitation=invitation, channel="web", **given)
    except InvalidInput as exc:
        return _form(request, invitation, given, exc.fields, status=422)
    except SurveyAnswered:
        return _answered(request, invitation, survey_response_of(invitation), 409)
    except SurveyExpired:
        return _closed(request, invitation)
    return _headers(redirect(reverse("survey-thanks", args=[token])))


def survey_thanks(request: HttpRequest, token: str) -> HttpResponse:
    """The thank-you page, worded by the answer's class."""
    if request.method not in ("GET", "HEAD"):
        return _headers(HttpResponseNotAllowed(["GET", "HEAD"]))
    invitation = survey_invitation_for_token(token)
    if invitation is None:
        return _not_found(request)
    response = survey_response_of(invitation)
    if response is None:
        return _headers(redirect(reverse("survey-page", args=[token])))
    context = {
        "store_name": invitation.tenant.name,
        "first_name": invitation.customer.first_name,
        "response": response,
        "is_promoter": response.classification == SurveyClass.PROMOTER,
        "is_detractor": response.classification == SurveyClass.DETRACTOR,
        "asked_for_call": response.wants == Want.CALLBACK,
        "will_call": survey_callback_queued(response),
        "next_step": NEXT_STEP.get(response.wants, ""),
    }
    return _headers(render(request, "feedback/survey/thanks.html", context))


def _form(
    request: HttpRequest,
    invitation: SurveyInvitation,
    given: dict,
    errors: dict,
    status: int = 200,
) -> HttpResponse:
    chosen = set(given.get("highlights") or [])
    highlights = [
        {"value": value, "label": label, "checked": value in chosen}
        for value, label in Highlight.choices
    ]
    context = {
        "store_name": invitation.tenant.name,
        "first_name": invitation.customer.first_name,
        "ratings": RATING_LABELS,
        "good_highlights": [h for h in highlights if h["value"] in GOOD_HIGHLIGHTS],
        "bad_highlights": [h for h in highlights if h["value"] not in GOOD_HIGHLIGHTS],
        "wants": [(value, WANT_LABELS.get(value, label)) for value, label in Want.choices],
        "given": {
            "rating": str(given.get("rating", "")),
            "highlight_text": given.get("highlight_text", ""),
            "wants": given.get("wants", ""),
            "comment": given.get("comment", ""),
        },
        "errors": {key: _message(value) for key, value in errors.items()},
        "highlight_text_max": HIGHLIGHT_TEXT_MAX,
        "comment_max": COMMENT_MAX,
    }
    page = render(request, "feedback/survey/page.html", context, status=status)
    return _headers(page, FORM_REFERRER_POLICY)


def _message(value: object) -> str:
    if isinstance(value, list | tuple):
        return " ".join(str(v) for v in value)
    return str(value)
