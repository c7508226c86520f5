"""The hosted preferences page ``/u/<token>/``: see and change what marketing a
shopper gets, unsubscribe from everything in one tap, and RFC 8058 one-click
unsubscribe for mailbox providers (``List-Unsubscribe-Post``).

The view is ``csrf_exempt`` on purpose: the signed token in the URL is the
credential (as on the order page), and a one-click POST comes from the mailbox
provider's server with no cookie or CSRF token at all. A forged cross-site POST
would need the token, and holding the token already grants these changes. GET
never changes anything (mail scanners fetch links), every change is a POST.
"""

from __future__ import annotations

import logging

from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt

from commerce.models import Channel, ConsentStatus
from commerce.pages import link_not_found
from messaging.services.preferences import (
    CHANNEL_LABELS,
    ONE_CLICK_SOURCE,
    PAGE_SOURCE,
    PreferencesLink,
    preference_set,
    preferences_apply,
    preferences_for,
    preferences_link_read,
    preferences_unsubscribe_all,
)
from retention.http import shopper_headers as _headers

logger = logging.getLogger(__name__)

# The URL is a credential: it must never reach another site in a Referer.
SAVED_MESSAGES = {
    "all": "You are unsubscribed from all marketing messages.",
    "out": "You will no longer get marketing {label}.",
    "in": "You are subscribed to marketing {label}.",
}


@csrf_exempt  # the signed token is the credential; see the module docstring
def preferences_page(request: HttpRequest, token: str) -> HttpResponse:
    """``GET`` shows the page; ``POST`` changes a channel, unsubscribes from all,
    or is an RFC 8058 one-click unsubscribe (``List-Unsubscribe=One-Click``)."""
    if request.method not in ("GET", "HEAD", "POST"):
        return _headers(HttpResponseNotAllowed(["GET", "HEAD", "POST"]))
    link = preferences_link_read(token)
    if link is None:
        return link_not_found(request)
    if request.method == "POST":
        if request.POST.get("List-Unsubscribe") == "One-Click":
            return _one_click(link)
        return _change(request, link, token)
    return _page(request, link, saved=_saved_message(request.GET.get("saved", "")))


def _one_click(link: PreferencesLink) -> HttpResponse:
    preferences_apply(
        customer=link.customer,
        choices={Channel.EMAIL: ConsentStatus.OPTED_OUT},
        source=ONE_CLICK_SOURCE,
        message_id=link.message_id,
    )
    response = HttpResponse(
        f"Unsubscribed from marketing email from {link.tenant.name}.\n",
        content_type="text/plain; charset=utf-8",
    )
    return _headers(response)


def _change(request: HttpRequest, link: PreferencesLink, token: str) -> HttpResponse:
    page_url = reverse("preferences-page", args=[token])
    if request.POST.get("action") == "unsubscribe_all":
        preferences_unsubscribe_all(
            customer=link.customer, source=PAGE_SOURCE, message_id=link.message_id
        )
        return _headers(redirect(f"{page_url}?saved=all"))
    channel, status = request.POST.get("channel", ""), request.POST.get("status", "")
    shown = {row.channel for row in preferences_for(customer=link.customer)}
    if channel not in shown or status not in (ConsentStatus.OPTED_IN, ConsentStatus.OPTED_OUT):
        return _page(request, link, error="Please choose one of the buttons below.", status=400)
    preference_set(
        customer=link.customer,
        channel=channel,
        status=status,
        source=PAGE_SOURCE,
        message_id=link.message_id,
    )
    current = {row.channel: row.status for row in preferences_for(customer=link.customer)}
    if current.get(channel) != status:
        # A newer decision is on record (stamped later than now): say so rather
        # than confirm a change that did not happen.
        return _page(
            request,
            link,
            error="A more recent choice for this channel is on record; please try again later.",
            status=409,
        )
    direction = "in" if status == ConsentStatus.OPTED_IN else "out"
    return _headers(redirect(f"{page_url}?saved={direction}-{channel}"))


def _saved_message(value: str) -> str:
    if value == "all":
        return SAVED_MESSAGES["all"]
    direction, _, channel = value.partition("-")
    if direction in ("in", "out") and channel in CHANNEL_LABELS:
        label = CHANNEL_LABELS[channel]
        noun = "in-app messages" if channel == Channel.IN_APP else label.lower()
        return SAVED_MESSAGES[direction].format(label=noun)
    return ""


def _page(
    request: HttpRequest,
    link: PreferencesLink,
    *,
    saved: str = "",
    error: str = "",
    status: int = 200,
) -> HttpResponse:
    rows = preferences_for(customer=link.customer)
    context = {
        "store_name": link.tenant.name,
        "channels": rows,
        "saved": saved,
        "error": error,
        "opted_in": ConsentStatus.OPTED_IN,
        "opted_out": ConsentStatus.OPTED_OUT,
    }
    return _headers(render(request, "messaging/preferences.html", context, status=status))
