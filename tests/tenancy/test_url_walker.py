"""The URL walker: every URL the project resolves, called by every role of
tenant A with tenant B's ids, answers 404 (or 403/401/405, or a redirect to the
login) and never shows B's data.

Tenants A (``alpha``) and B (``bravo``) each own rows of every tenant-owned
model, built once for the package the way the demo builds a store (the
management commands), plus the few models the demo leaves empty
(``tests/tenancy/world.py``). Every text field of B's rows carries
``zzB-MARKER``; no response to A may contain it. Writes that name B's ids
(API bodies, admin bulk actions, change forms) are covered in
``test_cross_tenant_writes.py``.

``URL_TABLE`` says how to fill each URL pattern's parameters with B's ids; the
admin's per-model patterns (changelist, add, change, delete, history and the
bare ``<object_id>/`` redirect) are filled by one rule from the model the URL
belongs to. A URL pattern the walker does not know fails
``test_walker_knows_every_url_pattern`` until an entry is added here.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from django.apps import apps
from django.contrib import admin
from django.contrib.contenttypes.models import ContentType
from django.db import models
from django.urls import URLPattern, URLResolver, get_resolver

from commerce.models import (
    Customer,
    Order,
)
from commerce.tokens import ORDER_PURPOSE, PREFERENCES_PURPOSE, make_token
from experiments.models import Experiment
from feedback.models import Callback, SurveyInvitation
from feedback.tokens import survey_token
from insights.models import WeeklySummary
from journeys.models import (
    Enrollment,
    Journey,
    JourneyStep,
    JourneyVersion,
)
from messaging.models import Message, Template
from retention.models import AuditEntry
from segments.models import Segment
from tests.tenancy.world import (
    MARK,
    ROLES,
    SEARCH,
    Req,
    World,
    _admin_row,
    _body,
    _count,
    _customer_b,
    _in_app_b,
    problems,
)

pytestmark = pytest.mark.django_db

# --- the URL table -----------------------------------------------------------------------------


def _get(path: str, **kw: Any) -> Req:
    return Req("GET", path, **kw)


def _post(path: str, data: dict | None = None, **kw: Any) -> Req:
    return Req("POST", path, data=data or {}, **kw)


def _version_b(w: World) -> JourneyVersion:
    return w.rows_b[JourneyVersion]


def _step_b(w: World) -> JourneyStep:
    return w.rows_b[JourneyStep]


def _step_a(w: World) -> JourneyStep:
    return w.rows_a[JourneyStep]


def _week_b(w: World) -> str:
    return w.rows_b[WeeklySummary].week_start.isoformat()


Filler = Callable[[World], list[Req]]

URL_TABLE: dict[str, Filler] = {
    # health and the tenant switcher
    "healthz": lambda w: [_get("/healthz", b_ids=False)],
    "readyz": lambda w: [_get("/readyz", b_ids=False)],
    "tenant-switch": lambda w: [_post("/tenant/switch/", {"tenant": w.b.pk})],
    # REST API (router and hand-written routes)
    "audit-log-list": lambda w: [
        _get("/api/v1/audit-log/", b_ids=False),
    ],
    "audit-log-detail": lambda w: [
        _get(f"/api/v1/audit-log/{w.rows_b[AuditEntry].pk}/"),
    ],
    "current-tenant": lambda w: [
        _get("/api/v1/tenant/", b_ids=False),
    ],
    "customer-list": lambda w: [
        _get("/api/v1/customers/", b_ids=False),
        _get(f"/api/v1/customers/?email={_customer_b(w).email}", b_ids=False),
    ],
    "customer-detail": lambda w: [
        _get(f"/api/v1/customers/{_customer_b(w).pk}/"),
        Req(
            "PATCH",
            f"/api/v1/customers/{_customer_b(w).pk}/",
            data={"first_name": "from A"},
            json=True,
            watch=(_customer_b(w),),
        ),
        Req("DELETE", f"/api/v1/customers/{_customer_b(w).pk}/", watch=(_customer_b(w),)),
    ],
    "customer-timeline": lambda w: [
        _get(f"/api/v1/customers/{_customer_b(w).pk}/timeline/"),
    ],
    "customer-export": lambda w: [
        _get(f"/api/v1/customers/{_customer_b(w).pk}/export/"),
    ],
    "customer-erase": lambda w: [
        _post(f"/api/v1/customers/{_customer_b(w).pk}/erase/", watch=(_customer_b(w),)),
    ],
    "order-list": lambda w: [
        _get("/api/v1/orders/", b_ids=False),
        _get(f"/api/v1/orders/?customer={_customer_b(w).pk}", b_ids=False),
    ],
    "order-detail": lambda w: [
        _get(f"/api/v1/orders/{w.rows_b[Order].pk}/"),
    ],
    "event-list": lambda w: [
        _get("/api/v1/events/", b_ids=False),
    ],
    "segment-list": lambda w: [
        _get("/api/v1/segments/", b_ids=False),
    ],
    "segment-detail": lambda w: [
        _get(f"/api/v1/segments/{w.rows_b[Segment].pk}/"),
    ],
    "segment-members": lambda w: [
        _get(f"/api/v1/segments/{w.rows_b[Segment].pk}/members/"),
    ],
    "customer-segments": lambda w: [_get(f"/api/v1/customers/{_customer_b(w).pk}/segments/")],
    "customer-inbox": lambda w: [
        _get(f"/api/v1/customers/{_in_app_b(w).customer_id}/inbox/"),
    ],
    "customer-inbox-read": lambda w: [
        _post(
            f"/api/v1/customers/{_in_app_b(w).customer_id}/inbox/{_in_app_b(w).pk}/read/",
            watch=(_in_app_b(w),),
        ),
        # A's customer with B's message.
        _post(
            f"/api/v1/customers/{w.rows_a[Customer].pk}/inbox/{_in_app_b(w).pk}/read/",
            watch=(_in_app_b(w),),
        ),
    ],
    "schema": lambda w: [_get("/api/v1/schema/", b_ids=False)],
    "docs": lambda w: [_get("/api/v1/docs/", b_ids=False)],
    # webhooks and provider callbacks: unsigned calls are refused whoever is logged in
    "hooks-sendgrid-events": lambda w: [
        _get("/hooks/sendgrid/events/"),
        Req("POST", "/hooks/sendgrid/events/", data="[]", json=True),
    ],
    "hooks-twilio-status": lambda w: [
        _get("/hooks/twilio/status/"),
        _post("/hooks/twilio/status/", {"MessageSid": "SM1", "MessageStatus": "delivered"}),
    ],
    "hooks-twilio-inbound": lambda w: [
        _get("/hooks/twilio/inbound/"),
        _post("/hooks/twilio/inbound/", {"From": "+4915100000000", "Body": "STOP"}),
    ],
    "hooks-standard": lambda w: [
        _get(f"/hooks/{w.b.slug}/"),
        Req("POST", f"/hooks/{w.b.slug}/", data='{"type": "order.created"}', json=True),
    ],
    "hooks-shopify": lambda w: [
        _get(f"/hooks/{w.b.slug}/shopify/"),
        Req("POST", f"/hooks/{w.b.slug}/shopify/", data="{}", json=True),
    ],
    # hosted pages: the token is the shopper's credential, so the walker sends
    # tokens that pair A's tenant with B's objects (a real B token is B's to show).
    "order-page": lambda w: [
        _get(f"/o/{make_token(ORDER_PURPOSE, t=w.a.pk, o=w.rows_b[Order].pk)}/"),
    ],
    "order-checkout-feedback": lambda w: [
        _post(
            f"/o/{make_token(ORDER_PURPOSE, t=w.a.pk, o=w.rows_b[Order].pk)}/checkout-feedback/",
            {"rating": "happy"},
        ),
    ],
    "preferences-page": lambda w: [
        _get(f"/u/{make_token(PREFERENCES_PURPOSE, t=w.a.pk, c=_customer_b(w).pk)}/"),
        _post(
            f"/u/{make_token(PREFERENCES_PURPOSE, t=w.a.pk, c=_customer_b(w).pk)}/",
            {"email": "off"},
        ),
    ],
    "survey-page": lambda w: [
        _get(f"/s/{survey_token(tenant_id=w.a.pk, invitation_id=w.rows_b[SurveyInvitation].pk)}/"),
        _post(
            f"/s/{survey_token(tenant_id=w.a.pk, invitation_id=w.rows_b[SurveyInvitation].pk)}/",
            {"score": "2"},
            watch=(w.rows_b[SurveyInvitation],),
        ),
    ],
    "survey-thanks": lambda w: [
        _get(
            f"/s/{survey_token(tenant_id=w.a.pk, invitation_id=w.rows_b[SurveyInvitation].pk)}"
            "/thanks/"
        ),
    ],
    # the agent's callback queue
    "agent-callbacks": lambda w: [_get("/agent/callbacks/", b_ids=False)],
    "agent-callback": lambda w: [_get(f"/agent/callbacks/{w.rows_b[Callback].pk}/")],
    "agent-callback-action": lambda w: [
        _post(
            f"/agent/callbacks/{w.rows_b[Callback].pk}/{action}/",
            {"outcome": "resolved", "notes": "from A", "agent": w.b_user.pk},
            watch=(w.rows_b[Callback],),
        )
        for action in ("claim", "release", "reassign", "contact", "follow-up", "resolve")
    ],
    # the dashboard
    "dashboard": lambda w: [
        _get("/dashboard/", b_ids=False),
        _get(f"/dashboard/?store={w.b.slug}&segment={w.rows_b[Segment].pk}", b_ids=False),
    ],
    "dashboard-csv": lambda w: (
        [
            _get(f"/dashboard/csv/{chart}/", b_ids=False)
            for chart in (
                "retention",
                "kpi-journeys",
                "kpi-steps",
                "kpi-segments",
                "kpi-channels",
                "families",
            )
        ]
        + [
            _get(f"/dashboard/csv/retention/?segment={w.rows_b[Segment].pk}", b_ids=False),
        ]
    ),
    # The week is a date, not B's id: A's own summary of that week is A's to
    # see (made on first view); B's store named in the query is not.
    "dashboard-summary": lambda w: [
        _get("/dashboard/summary/", b_ids=False),
        _get(f"/dashboard/summary/?store={w.b.slug}"),
    ],
    "dashboard-summary-week": lambda w: [
        _get(f"/dashboard/summary/{_week_b(w)}/", b_ids=False),
        _get(f"/dashboard/summary/{_week_b(w)}/?store={w.b.slug}"),
    ],
    # the admin site's own pages
    "admin:index": lambda w: [_get("/admin/", b_ids=False)],
    "admin:login": lambda w: [_get("/admin/login/", b_ids=False)],
    "admin:logout": lambda w: [_post("/admin/logout/", b_ids=False, fresh=True)],
    "admin:password_change": lambda w: [_get("/admin/password_change/", b_ids=False)],
    "admin:password_change_done": lambda w: [_get("/admin/password_change/done/", b_ids=False)],
    "admin:jsi18n": lambda w: [_get("/admin/jsi18n/", b_ids=False)],
    "admin:autocomplete": lambda w: _autocomplete(w),
    "admin:view_on_site": lambda w: [
        _get(f"/admin/r/{ContentType.objects.get_for_model(m).pk}/{w.rows_b[m].pk}/")
        for m in (Customer, Order, Segment, Journey, Template)
    ],
    "admin:app_list": lambda w: [
        _get(f"/admin/{label}/", b_ids=False)
        for label in sorted({m._meta.app_label for m in admin.site._registry})
    ],
    "admin:auth_user_password_change": lambda w: [
        _get(f"/admin/retention/user/{w.b_user.pk}/password/"),
        _post(
            f"/admin/retention/user/{w.b_user.pk}/password/",
            {"password1": "Changed-by-A-123", "password2": "Changed-by-A-123"},
            watch=(),
        ),
    ],
    "admin/(?P<url>.*)$": lambda w: [_get("/admin/no/such/page/")],
    # the admin's own screens beyond the standard five
    "admin:segments_segment_add_list": lambda w: [
        _get("/admin/segments/segment/add-list/", b_ids=False),
        _get(f"/admin/segments/segment/add-list/?customers={_customer_b(w).pk}", b_ids=False),
    ],
    "admin:segments_segment_preview_add": lambda w: [
        _get("/admin/segments/segment/add/preview/?conditions=[]", b_ids=False),
    ],
    "admin:segments_segment_preview": lambda w: [
        _get(f"/admin/segments/segment/{w.rows_b[Segment].pk}/preview/"),
    ],
    "admin:segments_risinginterestalert_email_me": lambda w: [
        _get("/admin/segments/risinginterestalert/email-me/", b_ids=False),
    ],
    "admin:insights_summarysubscription_email_me": lambda w: [
        _get("/admin/insights/summarysubscription/email-me/", b_ids=False),
    ],
    "admin:journeys_journey_edit": lambda w: [
        _get(f"/admin/journeys/journey/{w.rows_b[Journey].pk}/edit/"),
        _post(f"/admin/journeys/journey/{w.rows_b[Journey].pk}/edit/", watch=(w.rows_b[Journey],)),
    ],
    "admin:journeys_journey_status": lambda w: [
        _post(
            f"/admin/journeys/journey/{w.rows_b[Journey].pk}/status/{status}/",
            {"confirm": "yes"},
            watch=(w.rows_b[Journey],),
        )
        for status in ("live", "paused", "archived", "draft")
    ],
    "admin:journeys_journey_migrate": lambda w: [
        _get(
            f"/admin/journeys/journey/{_version_b(w).journey_id}/versions/"
            f"{_version_b(w).pk}/migrate/"
        ),
        _post(
            f"/admin/journeys/journey/{_version_b(w).journey_id}/versions/"
            f"{_version_b(w).pk}/migrate/",
            {"confirm": "yes"},
            watch=(_version_b(w), _count(w, Enrollment)),
        ),
        # A's journey with B's version.
        _post(
            f"/admin/journeys/journey/{w.rows_a[Journey].pk}/versions/{_version_b(w).pk}/migrate/",
            {"confirm": "yes"},
            watch=(_version_b(w), _count(w, Enrollment)),
        ),
    ],
    "admin:journeys_journey_step_preview": lambda w: [
        _get(
            f"/admin/journeys/journey/{_step_b(w).version.journey_id}/steps/{_step_b(w).pk}/preview/"
        ),
        # A's journey with B's step.
        _get(f"/admin/journeys/journey/{w.rows_a[Journey].pk}/steps/{_step_b(w).pk}/preview/"),
        # A's step previewed for B's customer.
        _get(
            f"/admin/journeys/journey/{_step_a(w).version.journey_id}/steps/{_step_a(w).pk}"
            f"/preview/?customer={_customer_b(w).pk}",
            b_ids=False,
        ),
        _get(
            f"/admin/journeys/journey/{_step_a(w).version.journey_id}/steps/{_step_a(w).pk}"
            f"/preview/?customer={_customer_b(w).email}",
            b_ids=False,
        ),
    ],
    "admin:journeys_journey_test": lambda w: [
        _get(f"/admin/journeys/journey/{w.rows_b[Journey].pk}/test/"),
        _post(
            f"/admin/journeys/journey/{w.rows_b[Journey].pk}/test/",
            {"customer": _customer_b(w).pk, "confirm": "yes"},
            watch=(_count(w, Enrollment),),
        ),
        # A's journey tested on B's customer, by id and by email.
        *[
            _post(
                f"/admin/journeys/journey/{w.rows_a[Journey].pk}/test/",
                {"customer": lookup, "confirm": "yes"},
                b_ids=False,
                watch=(_count(w, Enrollment),),
            )
            for lookup in (_customer_b(w).pk, _customer_b(w).email)
        ],
        _get(
            f"/admin/journeys/journey/{w.rows_a[Journey].pk}/test/?customer={_customer_b(w).email}",
            b_ids=False,
        ),
    ],
    "admin:journeys_enrollment_stop": lambda w: [
        _get(f"/admin/journeys/enrollment/{w.rows_b[Enrollment].pk}/stop/"),
        _post(
            f"/admin/journeys/enrollment/{w.rows_b[Enrollment].pk}/stop/",
            {"confirm": "yes"},
            watch=(w.rows_b[Enrollment],),
        ),
    ],
    "admin:messaging_template_preview": lambda w: [
        _get(f"/admin/messaging/template/{w.rows_b[Template].pk}/preview/"),
        _post(
            f"/admin/messaging/template/{w.rows_b[Template].pk}/preview/",
            {"customer": _customer_b(w).pk},
            watch=(_count(w, Message),),
        ),
        # A's template previewed for, and test-sent to, B's customer.
        *[
            _get(
                f"/admin/messaging/template/{w.rows_a[Template].pk}/preview/?customer={lookup}",
                b_ids=False,
            )
            for lookup in (_customer_b(w).pk, _customer_b(w).email)
        ],
        _post(
            f"/admin/messaging/template/{w.rows_a[Template].pk}/preview/",
            {"customer": _customer_b(w).email},
            b_ids=False,
            watch=(_count(w, Message),),
        ),
    ],
    **{
        f"admin:experiments_experiment_{verb}": (
            lambda w, verb=verb: [
                _get(f"/admin/experiments/experiment/{w.rows_b[Experiment].pk}/{verb}/"),
                _post(
                    f"/admin/experiments/experiment/{w.rows_b[Experiment].pk}/{verb}/",
                    {"confirm": "yes", "decision": "ship", "note": "from A"},
                    watch=(w.rows_b[Experiment],),
                ),
            ]
        )
        for verb in ("results", "launch", "stop", "conclude")
    },
}
ADMIN_STANDARD = re.compile(
    r"^admin:(?P<app>[a-z_]+?)_(?P<model>[a-z]+)_(?P<view>changelist|add|history|delete|change)$"
)


def _admin_standard(w: World, model: type[models.Model], view: str) -> list[Req]:
    base = f"/admin/{model._meta.app_label}/{model._meta.model_name}/"
    if view == "changelist":
        # Search for a prefix of the marker, so the page echoing the search box
        # is no match, and any of B's rows in the results is.
        return [_get(base, b_ids=False), _get(f"{base}?q={SEARCH}", b_ids=False)]
    if view == "add":
        return [_get(f"{base}add/", b_ids=False)]
    row = _admin_row(w, model)
    assert row is not None, f"the walker has no row of {model._meta.label} to use in its URLs"
    url = f"{base}{row.pk}/"
    watch = (row,) if model in w.rows_b else ()
    if view == "change":
        return [_get(f"{url}change/"), _post(f"{url}change/", watch=watch)]
    if view == "delete":
        return [_get(f"{url}delete/"), _post(f"{url}delete/", {"post": "yes"}, watch=watch)]
    if view == "history":
        return [_get(f"{url}history/")]
    return [_get(url)]  # the bare <object_id>/ redirect


def _autocomplete(w: World) -> list[Req]:
    """Every autocomplete field of every registered admin, searching for B's marker."""
    out = []
    for model, model_admin in admin.site._registry.items():
        for name in model_admin.autocomplete_fields:
            out.append(
                _get(
                    "/admin/autocomplete/"
                    f"?app_label={model._meta.app_label}&model_name={model._meta.model_name}"
                    f"&field_name={name}&term={SEARCH}",
                    b_ids=False,
                )
            )
    return out


# --- enumerating the project's URL patterns ----------------------------------------------------


@dataclass(frozen=True)
class Pattern:
    name: str | None
    route: str
    key: str


def url_patterns() -> list[Pattern]:
    out: list[Pattern] = []

    def walk(patterns, prefix: str, namespace: str | None) -> None:
        for p in patterns:
            if isinstance(p, URLResolver):
                ns = namespace
                if p.namespace:
                    ns = f"{namespace}:{p.namespace}" if namespace else p.namespace
                walk(p.url_patterns, prefix + str(p.pattern), ns)
            elif isinstance(p, URLPattern):
                name = f"{namespace}:{p.name}" if namespace and p.name else p.name
                route = prefix + str(p.pattern)
                out.append(Pattern(name=name, route=route, key=name or route))

    walk(get_resolver().url_patterns, "", None)
    return out


def _admin_model(app: str, model: str) -> type[models.Model] | None:
    try:
        return apps.get_model(app, model)
    except LookupError:
        return None


ADMIN_REDIRECT = re.compile(r"^admin/(?P<app>[a-z_]+)/(?P<model>[a-z]+)/<path:object_id>/$")


def requests_for(w: World, pattern: Pattern) -> list[Req] | None:
    """The requests that exercise one pattern, or None when the walker does not know it."""
    if pattern.key in URL_TABLE:
        return URL_TABLE[pattern.key](w)
    if pattern.name and (match := ADMIN_STANDARD.match(pattern.name)):
        model = _admin_model(match["app"], match["model"])
        if model is not None and model in admin.site._registry:
            return _admin_standard(w, model, match["view"])
    if pattern.name is None and (match := ADMIN_REDIRECT.match(pattern.route)):
        model = _admin_model(match["app"], match["model"])
        if model is not None and model in admin.site._registry:
            return _admin_standard(w, model, "redirect")
    return None


# --- tests -------------------------------------------------------------------------------------


def test_every_tenant_owned_model_has_rows_in_both_tenants(world: World):
    empty = [
        f"{m._meta.label} has no row in {side}"
        for side, rows in (("A", world.rows_a), ("B", world.rows_b))
        for m, row in rows.items()
        if row is None
    ]
    assert empty == [], "\n".join(empty)


def test_b_sees_its_own_markers_so_the_walk_would_catch_a_leak(world: World):
    """The control: the same URLs, called by B itself, answer 200 with the markers."""
    w = world
    customer = _customer_b(w)
    by_owner = [
        "/admin/commerce/customer/",
        f"/admin/commerce/customer/{customer.pk}/change/",
        f"/admin/feedback/callback/{w.rows_b[Callback].pk}/change/",
        f"/admin/messaging/template/{w.rows_b[Template].pk}/change/",
        f"/admin/journeys/journey/{w.rows_b[Journey].pk}/change/",
        f"/admin/commerce/customer/?q={SEARCH}",
        f"/agent/callbacks/{w.rows_b[Callback].pk}/",
    ]
    by_key = [
        f"/api/v1/customers/{customer.pk}/",
        f"/api/v1/customers/?email={customer.email}",
        "/api/v1/segments/",
    ]
    seen = []
    for client, paths in ((w.extra["b:owner"], by_owner), (w.extra["b:api"], by_key)):
        for path in paths:
            response = client.get(path)
            shown = MARK.lower().encode() in _body(response).lower()
            seen.append((path, response.status_code, shown))
    missed = [s for s in seen if s[1:] != (200, True)]
    assert missed == [], missed


def test_walker_knows_every_url_pattern(world: World):
    unknown = [p for p in url_patterns() if requests_for(world, p) is None]
    assert unknown == [], (
        "URL patterns the tenancy walker does not know; add each to URL_TABLE in "
        "tests/tenancy/test_url_walker.py with B's ids filled in:\n"
        + "\n".join(f"  {p.name or '(no name)'}  {p.route}" for p in unknown)
    )


@pytest.mark.parametrize("who", [*ROLES, "api"])
def test_no_url_shows_or_changes_b_data_to_a(world: World, who: str):
    client = world.clients[who]
    found: list[str] = []
    seen: set[str] = set()
    for pattern in url_patterns():
        if pattern.key in seen:  # a router's format-suffix twin shares its name
            continue
        seen.add(pattern.key)
        for req in requests_for(world, pattern) or []:
            found.extend(problems(client, req))
    if who != "api":  # the walk must not have lost its session on the way
        assert client.session.get("_auth_user_id") == str(client.user.pk)
    assert found == [], f"as {who} of A:\n" + "\n".join(found)
