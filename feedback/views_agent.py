"""The support agents' screens at ``/agent/callbacks/``: the queue and one
callback with its customer panel and actions.

Signed-in people (Django session, the admin's login) of the current store
(``request.tenant``) with the WORK_CALLBACKS capability: agents, marketers and
owners; anyone else gets 403, and a callback of another store is a 404.

Every action is a plain POST form: without JavaScript it redirects back with a
flash message (POST-redirect-GET). ``feedback/static/feedback/agent.js`` sends
the same form with ``fetch`` and the header ``X-Requested-With: fetch``; the
answer is then the HTML fragment of the part of the page that changed (a
queue row or the callback's work panel, with the message in it), which the
script swaps in. A refused action answers its 4xx status with the same
fragment, so the message shows in place.
"""

from __future__ import annotations

import functools
import math
import zoneinfo
from collections.abc import Callable
from datetime import datetime

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_POST

from feedback.models import Callback, CallbackStatus, ContactOutcome, Highlight, Want
from feedback.selectors import (
    QUEUE_LIMIT,
    QUEUE_SHOWS,
    callback_agents,
    callback_contacts,
    callback_deadline,
    callback_get,
    callback_queue,
    callback_queue_counts,
    callback_upcoming,
    customer_panel,
)
from feedback.services.callbacks import (
    agent_label,
    callback_claim,
    callback_log_contact,
    callback_reassign,
    callback_release,
    callback_resolve,
    callback_schedule_follow_up,
)
from retention import clock
from retention.admin_base import member_can
from retention.errors import DomainError, InvalidInput
from retention.models import Capability, User

FRAGMENT_HEADER = "fetch"  # X-Requested-With value agent.js sends
HIGHLIGHT_LABELS = dict(Highlight.choices)
WANT_LABELS = dict(Want.choices)


# --- access ---------------------------------------------------------------------------------


def agent_required(view: Callable) -> Callable:
    """Signed in, a current store, and allowed to work its callbacks."""

    @login_required
    @functools.wraps(view)
    def wrapped(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        if request.tenant is None:
            return _forbidden(request, "Choose a store in the admin header first.")
        if not member_can(request, Capability.WORK_CALLBACKS):
            return _forbidden(request, "Your role in this store cannot work the callback queue.")
        return view(request, *args, **kwargs)

    return wrapped


def _forbidden(request: HttpRequest, reason: str) -> HttpResponse:
    return render(request, "feedback/agent/forbidden.html", {"reason": reason}, status=403)


def _callback_or_404(request: HttpRequest, pk: int) -> Callback:
    callback = callback_get(tenant=request.tenant, callback_id=pk)
    if callback is None:
        raise Http404("No such callback.")
    return callback


# --- the SLA countdown ----------------------------------------------------------------------


def _span(minutes: int) -> str:
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h" if hours else f"{days} d"


def countdown(deadline: datetime | None, now: datetime) -> tuple[str, bool]:
    """("due in 7 min" | "overdue by 3 min" | "", late). Rounded towards the
    safe side: what is left is rounded down, what is late is rounded up.
    ``agent.js`` words it the same way each minute."""
    if deadline is None:
        return "", False
    seconds = (deadline - now).total_seconds()
    if seconds >= 0:
        minutes = math.floor(seconds / 60)
        return ("due now" if minutes == 0 else f"due in {_span(minutes)}"), False
    return f"overdue by {_span(math.ceil(-seconds / 60))}", True


def _decorate(callback: Callback, now: datetime) -> Callback:
    """Attach what the templates show: the deadline, its countdown, whether it
    is late and what kind of deadline it is."""
    deadline = getattr(callback, "deadline", None) or callback_deadline(callback)
    if callback.status in (CallbackStatus.DONE, CallbackStatus.CANCELLED):
        deadline = None
    callback.deadline = deadline
    callback.countdown, callback.late = countdown(deadline, now)
    is_follow_up = deadline is not None and deadline == callback.follow_up_at
    callback.deadline_kind = "follow-up" if is_follow_up else "first contact"
    callback.holder = agent_label(callback.claimed_by) if callback.claimed_by_id else ""
    return callback


# --- pages ----------------------------------------------------------------------------------


def _page_context(request: HttpRequest, now: datetime) -> dict:
    return {"tenant_tz": request.tenant.timezone, "server_now": now.isoformat()}


@require_GET
@agent_required
def queue(request: HttpRequest) -> HttpResponse:
    now = clock.now()
    show = request.GET.get("show", "all")
    if show not in QUEUE_SHOWS:
        show = "all"
    overdue = request.GET.get("overdue") == "1"
    rows = callback_queue(
        tenant=request.tenant, agent=request.user, show=show, overdue_only=overdue, now=now
    )
    counts = callback_queue_counts(tenant=request.tenant, agent=request.user, now=now)
    return render(
        request,
        "feedback/agent/queue.html",
        {
            **_page_context(request, now),
            "rows": [_decorate(c, now) for c in rows],
            "counts": counts,
            "limit": QUEUE_LIMIT,
            "show": show,
            "overdue": overdue,
            "filters": [
                ("all", "All", counts["all"]),
                ("mine", "Mine", counts["mine"]),
                ("unclaimed", "Unclaimed", counts["unclaimed"]),
            ],
            "upcoming": callback_upcoming(tenant=request.tenant, agent=request.user, now=now),
            "here": request.get_full_path(),
        },
    )


def _work_context(request: HttpRequest, callback: Callback, now: datetime) -> dict:
    reassign = member_can(request, Capability.CONFIGURE)  # as may_reassign, from the request
    return {
        **_page_context(request, now),
        "callback": _decorate(callback, now),
        "contacts": callback_contacts(callback),
        "outcomes": ContactOutcome.choices,
        "is_mine": callback.claimed_by_id == request.user.pk,
        "is_closed": callback.status in (CallbackStatus.DONE, CallbackStatus.CANCELLED),
        "may_reassign": reassign,
        "agents": callback_agents(tenant=request.tenant) if reassign else [],
        "here": reverse("agent-callback", args=[callback.pk]),
    }


@require_GET
@agent_required
def callback_page(request: HttpRequest, pk: int) -> HttpResponse:
    now = clock.now()
    callback = _callback_or_404(request, pk)
    response = callback.survey_response
    panel = customer_panel(tenant=request.tenant, customer=callback.customer, callback=callback)
    return render(
        request,
        "feedback/agent/callback.html",
        {
            **_work_context(request, callback, now),
            "panel": panel,
            "response": response,
            "highlights": [HIGHLIGHT_LABELS.get(h, h) for h in (response.highlights or [])]
            if response
            else [],
            "wants": WANT_LABELS.get(response.wants, "") if response else "",
            "churn_scored": panel.churn_probability is not None,
        },
    )


# --- actions --------------------------------------------------------------------------------


def _follow_up_from(value: str, tenant_tz: str) -> datetime | None:
    """A ``datetime-local`` value, read in the store's timezone."""
    value = (value or "").strip()
    if not value:
        return None
    try:
        naive = datetime.fromisoformat(value)
    except ValueError as exc:
        raise InvalidInput(
            "Give the follow-up as a date and time.",
            fields={"follow_up_at": "Give a date and time."},
        ) from exc
    if naive.tzinfo is not None:
        return naive
    return naive.replace(tzinfo=zoneinfo.ZoneInfo(tenant_tz))


def _agent_from(value: str) -> User:
    """The person chosen in the reassign form; the service checks that they
    work callbacks in this store (and that the one reassigning may)."""
    value = (value or "").strip()
    is_id = value.isdigit() and len(value) < 19
    found = User.objects.filter(pk=int(value)).first() if is_id else None
    if found is None:
        raise InvalidInput(
            "Choose a member who works callbacks.",
            fields={"to_agent": "Choose a member who works callbacks."},
        )
    return found


def _do(request: HttpRequest, callback: Callback, action: str) -> str:
    """Run one action; returns the message to show."""
    post, user = request.POST, request.user
    tz = request.tenant.timezone
    if action == "claim":
        callback_claim(callback=callback, agent=user)
        return "Claimed: it is yours now."
    if action == "release":
        callback_release(callback=callback, agent=user)
        return "Released back to the queue."
    if action == "reassign":
        target = _agent_from(post.get("to_agent", ""))
        callback_reassign(callback=callback, to_agent=target, by=user)
        return f"Reassigned to {agent_label(target)}."
    if action == "contact":
        follow_up = _follow_up_from(post.get("follow_up_at", ""), tz)
        contact = callback_log_contact(
            callback=callback,
            agent=user,
            outcome=post.get("outcome", ""),
            notes=post.get("notes", ""),
            follow_up_at=follow_up,
        )
        said = f"Logged: {contact.get_outcome_display()}."
        if contact.outcome == ContactOutcome.RESOLVED:
            return f"{said} The callback is resolved."
        return f"{said} Follow-up scheduled." if follow_up else said
    if action == "follow-up":
        at = _follow_up_from(post.get("follow_up_at", ""), tz)
        if at is None:
            raise InvalidInput(
                "Give the follow-up time.", fields={"follow_up_at": "Give a date and time."}
            )
        callback_schedule_follow_up(callback=callback, agent=user, follow_up_at=at)
        return "Follow-up scheduled: it comes back to the queue then."
    if action == "resolve":
        callback_resolve(callback=callback, agent=user, note=post.get("note", ""))
        return "Resolved."
    raise Http404("No such action.")


ACTIONS = ("claim", "release", "reassign", "contact", "follow-up", "resolve")


def _next_url(request: HttpRequest, callback: Callback) -> str:
    wanted = request.POST.get("next", "")
    if wanted and url_has_allowed_host_and_scheme(
        wanted, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return wanted
    return reverse("agent-callback", args=[callback.pk])


@require_POST
@agent_required
def callback_action(request: HttpRequest, pk: int, action: str) -> HttpResponse:
    if action not in ACTIONS:
        raise Http404("No such action.")
    callback = _callback_or_404(request, pk)
    status, ok = 200, True
    try:
        message = _do(request, callback, action)
    except DomainError as exc:
        status, ok, message = exc.status, False, exc.message
    if request.headers.get("X-Requested-With") == FRAGMENT_HEADER:
        return _fragment(request, pk, message, ok, status)
    (messages.success if ok else messages.error)(request, message)
    return HttpResponseRedirect(_next_url(request, callback))


def _fragment(request: HttpRequest, pk: int, message: str, ok: bool, status: int) -> HttpResponse:
    """The changed part of the page, read fresh after the action."""
    now = clock.now()
    callback = _callback_or_404(request, pk)
    flash = {"text": message, "ok": ok}
    if request.POST.get("fragment") == "row":
        return render(
            request,
            "feedback/agent/_row_fragment.html",
            {
                **_page_context(request, now),
                "row": _decorate(callback, now),
                "flash": flash,
                "here": _next_url(request, callback),
            },
            status=status,
        )
    return render(
        request,
        "feedback/agent/_work_fragment.html",
        {**_work_context(request, callback, now), "flash": flash},
        status=status,
    )
