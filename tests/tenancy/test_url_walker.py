"""The URL walker: every URL the project resolves, called by every role of
tenant A with tenant B's ids, answers 404 (or 403/401/405, or a redirect to the
login) and never shows B's data.

Tenants A (``alpha``) and B (``bravo``) each own rows of every tenant-owned
model, built once for the module the way the demo builds a store (the
management commands), plus the few models the demo leaves empty. Every text
field of B's rows carries ``zzB-MARKER``; no response to A may contain it.

``URL_TABLE`` says how to fill each URL pattern's parameters with B's ids; the
admin's per-model patterns (changelist, add, change, delete, history and the
bare ``<object_id>/`` redirect) are filled by one rule from the model the URL
belongs to. A URL pattern the walker does not know fails
``test_walker_knows_every_url_pattern`` until an entry is added here.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from io import StringIO
from typing import Any
from urllib.parse import parse_qsl, quote, quote_plus, urlsplit

import pytest
from django.apps import apps
from django.contrib import admin
from django.contrib.contenttypes.models import ContentType
from django.core.management import call_command
from django.db import models, transaction
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver
from django.utils.html import escape

from commerce.models import (
    Customer,
    CustomerIdentity,
    CustomerMerge,
    IdentityKind,
    InboxEntry,
    Order,
    Return,
)
from commerce.tokens import ORDER_PURPOSE, PREFERENCES_PURPOSE, make_token
from experiments.models import Experiment
from feedback.models import Callback, CallbackContact, SurveyInvitation, SurveyResponse
from feedback.tokens import survey_token
from insights.models import KpiTarget, SummarySubscription, WeeklySummary
from insights.services.summary import summary_make
from journeys.models import (
    Enrollment,
    Journey,
    JourneySettings,
    JourneyStep,
    JourneyVersion,
    OutboundWebhook,
    StepVariant,
)
from messaging.models import Message, ProviderEvent, Suppression, Template
from retention import clock
from retention.models import AuditEntry, Role, Tenant, User
from retention.tenancy import TenantOwnedModel
from segments.models import AlertSubscription, RisingInterestAlert, Segment
from tests.conftest import _tenant, login_as
from tests.feedback.callback_factories import answer, queue

pytestmark = pytest.mark.django_db

MARK = "zzB-MARKER"
SEARCH = MARK[:-2]
# Platform rows (groups, periodic tasks) belong to no tenant; they carry their own marker.
PLATFORM_MARK = "zzPLATFORM"
ROLES = (Role.OWNER, Role.MARKETER, Role.AGENT, Role.VIEWER)
# Answers that give nothing away. 302 covers the login redirect and the admin's
# "no such object" redirect to its index.
REFUSED = {302, 400, 401, 403, 404, 405, 422}
FINE = REFUSED | {200, 201, 202, 204}

# Text fields that carry meaning to the code (lookups, signatures, codes) keep
# their values; every other free-text field of B's rows gets the marker.
UNMARKED_FIELDS = {
    "slug",
    "key",
    "prefix",
    "hashed",
    "hash",
    "key_hash",
    "secret",
    "webhook_secret",
    "webhook_id",
    "event_id",
    "external_id",
    "sku",
    "currency",
    "timezone",
    "idempotency_key",
    "token",
    "kind",
    "topic",
    "source",
    "provider",
    "provider_id",
    "provider_message_id",
    "code",
    "channel",
    "url",
    "value_normalized",
    "normalized",
}


def scoped(model: type[models.Model], tenant: Tenant) -> models.QuerySet:
    if issubclass(model, TenantOwnedModel):
        return model.objects.for_tenant(tenant)
    return model._default_manager.filter(tenant=tenant)


def tenant_models() -> list[type[models.Model]]:
    return [
        m
        for m in apps.get_models()
        if issubclass(m, TenantOwnedModel) or any(f.name == "tenant" for f in m._meta.fields)
    ]


# --- the two tenants ---------------------------------------------------------------------------


@dataclass
class World:
    a: Tenant
    b: Tenant
    rows_a: dict[type, models.Model]
    rows_b: dict[type, models.Model]
    clients: dict[str, Client]
    b_user: User
    extra: dict[str, Any] = field(default_factory=dict)


def _demo(tenant: Tenant) -> None:
    """A store history the way ``make demo`` builds one, small."""
    steps: list[tuple[str, dict[str, Any]]] = [
        ("seed_demo", {"customers": 20, "days": 120, "seed": 1}),
        ("demo_segments", {}),
        ("demo_messaging", {}),
        ("install_journeys", {}),
        ("score_churn", {}),
        ("demo_experiments", {}),
        ("simulate", {"days": 3, "seed": 1, "once": True}),
        ("refresh_insights", {"ahead": True}),
    ]
    for name, options in steps:
        call_command(name, tenant=tenant.slug, stdout=StringIO(), stderr=StringIO(), **options)


def _fill_missing(tenant: Tenant, user: User) -> None:
    """Rows of the models the demo leaves empty."""
    t = tenant
    now = clock.now()
    customers = list(Customer.objects.for_tenant(t).order_by("pk")[:2])
    segment = Segment.objects.for_tenant(t).order_by("pk").first()
    step = JourneyStep.objects.for_tenant(t).order_by("pk").first()
    if not SurveyResponse.objects.for_tenant(t).exists():
        answer(customers[0], 2)
    callback = Callback.objects.for_tenant(t).order_by("pk").first() or queue(t, customers[0])
    if not CustomerMerge.objects.for_tenant(t).exists():
        CustomerMerge.objects.create(
            tenant=t, survivor=customers[0], merged=customers[1], reason="walker merge note"
        )
    if not InboxEntry.objects.for_tenant(t).exists():
        InboxEntry.objects.create(
            tenant=t,
            channel="standard",
            webhook_id=f"msg_walker_{t.slug}",
            topic="order.created",
            body='{"type": "order.created", "note": "walker inbox body"}',
            status="processed",
        )
    if not RisingInterestAlert.objects.for_tenant(t).exists():
        RisingInterestAlert.objects.create(
            tenant=t,
            segment=segment,
            day=now.date(),
            members=3,
            current_per_member=2.0,
            baseline_per_member=1.0,
            rise_pct=100.0,
        )
    if not AlertSubscription.objects.for_tenant(t).exists():
        AlertSubscription.objects.create(tenant=t, user=user)
    if not StepVariant.objects.for_tenant(t).exists():
        StepVariant.objects.create(tenant=t, step=step, key="b", weight=50)
    if not OutboundWebhook.objects.for_tenant(t).exists():
        OutboundWebhook.objects.create(
            tenant=t,
            url="https://hooks.example/walker",
            event_id=f"evt_walker_{t.slug}",
            payload={"note": "walker"},
            due_at=now,
        )
    if not JourneySettings.objects.for_tenant(t).exists():
        JourneySettings.objects.create(tenant=t, webhook_secret=f"whsec_walker_{t.slug}")
    if not Suppression.objects.for_tenant(t).exists():
        Suppression.objects.create(
            tenant=t, channel="email", address=f"suppressed@{t.slug}.example", reason="bounce"
        )
    if not CallbackContact.objects.for_tenant(t).exists():
        CallbackContact.objects.create(
            tenant=t, callback=callback, agent=user, outcome="no_answer", notes="walker notes"
        )
    try:  # the GDPR erasure's hashed suppression, where that feature is installed
        erased = apps.get_model("commerce", "ErasedContact")
    except LookupError:
        erased = None
    if erased is not None and not erased.objects.for_tenant(t).exists():
        erased.objects.create(tenant=t, kind="email", digest="0" * 63 + str(t.pk % 10))
    order = Order.objects.for_tenant(t).order_by("pk").first()
    if not Return.objects.for_tenant(t).exists():
        Return.objects.create(
            tenant=t, order=order, external_id=f"R-walker-{t.slug}", reason="walker return"
        )
    if not ProviderEvent.objects.filter(tenant=t).exists():
        ProviderEvent.objects.create(
            provider="sendgrid",
            event_id=f"sg_walker_{t.slug}",
            tenant=t,
            message=Message.objects.for_tenant(t).order_by("pk").first(),
            kind="delivered",
            payload={"note": "walker provider event"},
        )
    if not KpiTarget.objects.for_tenant(t).exists():
        KpiTarget.objects.create(tenant=t, kpi="open_rate", low=0.1, high=0.5)
    if not SummarySubscription.objects.for_tenant(t).exists():
        SummarySubscription.objects.create(tenant=t, user=user)
    if not WeeklySummary.objects.for_tenant(t).exists():
        summary_make(tenant=t, week_start=(now - timedelta(days=now.weekday() + 7)).date())


def _mark(tenant: Tenant) -> None:
    """Put the marker in every free-text field of the tenant's rows."""
    for model in tenant_models():
        text_fields = [
            f
            for f in model._meta.concrete_fields
            if isinstance(f, models.CharField | models.TextField)
            and not f.choices
            and not f.primary_key
            and not f.unique
            and f.name not in UNMARKED_FIELDS
            and (f.max_length is None or f.max_length >= 40)
        ]
        if not text_fields:
            continue
        rows = list(scoped(model, tenant))
        label = model._meta.label_lower.replace(".", "-")
        for row in rows:
            for f in text_fields:
                value = f"{MARK}-{label}-{f.name}-{row.pk}"
                if isinstance(f, models.EmailField):
                    value = f"{MARK.lower()}-{row.pk}-{f.name}@{label}.example"
                setattr(row, f.name, value[: f.max_length] if f.max_length else value)
        scoped(model, tenant).bulk_update(rows, [f.name for f in text_fields])


def _email_identities_follow(tenant: Tenant) -> None:
    """Lookups by email go through identities: give each customer's first email
    identity the customer's (marked) email, so a lookup by it finds them."""
    done: set[int] = set()
    identities = CustomerIdentity.objects.for_tenant(tenant).filter(kind=IdentityKind.EMAIL)
    for identity in identities.select_related("customer").order_by("pk"):
        if identity.customer_id in done:
            continue
        done.add(identity.customer_id)
        identity.value = identity.customer.email
        identity.save(update_fields=["value"])


def _rows(tenant: Tenant) -> dict[type, models.Model]:
    return {m: scoped(m, tenant).order_by("pk").first() for m in tenant_models()}


def _build() -> World:
    from retention.celery import app as celery_app

    eager = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = True
    try:
        a = _tenant("alpha", "Alpha Store")
        b = _tenant("bravo", "Bravo Store")
        clients = {role: login_as(a, role) for role in ROLES}
        b_client = login_as(b, Role.OWNER, email=f"{MARK.lower()}-owner@bravo.example")
        b_owner = b_client.user
        for tenant, user in ((a, clients[Role.OWNER].user), (b, b_owner)):
            _demo(tenant)
            _fill_missing(tenant, user)
        _mark(b)
        _email_identities_follow(b)
        b.name = f"{MARK} Bravo Store"
        b.save(update_fields=["name"])
        b_owner.first_name = MARK
        b_owner.save(update_fields=["first_name"])
    finally:
        celery_app.conf.task_always_eager = eager
    clients["api"] = Client(HTTP_AUTHORIZATION=f"Bearer {a.api_key}")
    for client in clients.values():
        client.raise_request_exception = False
    world = World(a=a, b=b, rows_a=_rows(a), rows_b=_rows(b), clients=clients, b_user=b_owner)
    world.extra["b:owner"] = b_client
    world.extra["b:api"] = Client(HTTP_AUTHORIZATION=f"Bearer {b.api_key}")
    _platform_rows(world)
    return world


@pytest.fixture(scope="module")
def world(django_db_setup, django_db_blocker) -> Iterator[World]:
    """Built once for the module inside a transaction that is rolled back at
    the end, so the rest of the suite never sees these tenants."""
    with django_db_blocker.unblock():
        atomic = transaction.atomic()
        atomic.__enter__()
        try:
            yield _build()
        finally:
            transaction.set_rollback(True)
            atomic.__exit__(None, None, None)


# --- requests ----------------------------------------------------------------------------------


@dataclass
class Req:
    method: str
    path: str
    data: dict | str | None = None
    json: bool = False
    # The path names one of B's objects: a 200 is a leak even without a marker.
    b_ids: bool = True
    # Rows of B that must be unchanged afterwards.
    watch: tuple[Any, ...] = ()
    # Logs the client out: use a copy of its session.
    fresh: bool = False


def _snapshot(rows: tuple[Any, ...]) -> list[Any]:
    out: list[Any] = []
    for r in rows:
        if isinstance(r, Count):
            out.append(r.model._default_manager.filter(tenant_id=r.tenant_id).count())
        else:
            manager = type(r)._default_manager
            out.append(manager.filter(pk=r.pk, tenant_id=r.tenant_id).values().first())
    return out


def _body(response) -> bytes:
    if getattr(response, "streaming", False):
        return b"".join(response.streaming_content)
    return response.content


def perform(client: Client, req: Req) -> tuple[int, bytes, bool]:
    """One request inside a savepoint that is rolled back, so a walk never
    changes the world; returns (status, body, whether watched rows changed)."""
    if req.fresh:
        fresh = Client(raise_request_exception=False)
        fresh.cookies = copy.deepcopy(client.cookies)
        fresh.defaults = dict(client.defaults)
        client = fresh
    with transaction.atomic():
        before = _snapshot(req.watch)
        call = getattr(client, req.method.lower())
        if req.json:
            response = call(req.path, data=req.data, content_type="application/json")
        elif req.data is not None:
            response = call(req.path, data=req.data)
        else:
            response = call(req.path)
        body = _body(response)
        changed = _snapshot(req.watch) != before
        transaction.set_rollback(True)
    return response.status_code, body, changed


def _echoes(req: Req) -> list[bytes]:
    """Values the request itself sent that hold a marker (a looked-up email):
    a page may show back what it was given."""
    sent = [v for _, v in parse_qsl(urlsplit(req.path).query)]
    if isinstance(req.data, dict):
        sent += [str(v) for v in req.data.values()]
    out = []
    for value in sent:
        if MARK.lower() in value.lower():
            for form in {value, quote(value), quote_plus(value), escape(value)}:
                out.append(form.encode())
    return sorted(out, key=len, reverse=True)


def problems(client: Client, req: Req) -> list[str]:
    status, body, changed = perform(client, req)
    for echo in _echoes(req):
        body = body.replace(echo, b"")
    allowed = REFUSED if req.b_ids else FINE
    out = []
    if status not in allowed:
        out.append(f"{req.method} {req.path} answered {status}")
    if MARK.encode() in body or MARK.lower().encode() in body:
        at = body.find(MARK.encode())
        at = at if at >= 0 else body.find(MARK.lower().encode())
        out.append(f"{req.method} {req.path} shows B's data: ...{body[at - 80 : at + 60]!r}...")
    if changed:
        out.append(f"{req.method} {req.path} changed B's rows {req.watch}")
    return out


# --- the URL table -----------------------------------------------------------------------------


def _get(path: str, **kw: Any) -> Req:
    return Req("GET", path, **kw)


def _post(path: str, data: dict | None = None, **kw: Any) -> Req:
    return Req("POST", path, data=data or {}, **kw)


def _customer_b(w: World) -> Customer:
    return w.rows_b[Customer]


def _version_b(w: World) -> JourneyVersion:
    return w.rows_b[JourneyVersion]


def _step_b(w: World) -> JourneyStep:
    return w.rows_b[JourneyStep]


def _step_a(w: World) -> JourneyStep:
    return w.rows_a[JourneyStep]


@dataclass(frozen=True)
class Count:
    """Watch the number of B's rows of a model."""

    model: type[models.Model]
    tenant_id: int


def _count(w: World, model: type[models.Model]) -> Count:
    return Count(model, w.b.pk)


def _week_b(w: World) -> str:
    return w.rows_b[WeeklySummary].week_start.isoformat()


def _in_app_b(w: World) -> Message:
    found = (
        Message.objects.for_tenant(w.b).filter(channel="in_app").order_by("pk").first()
        or w.rows_b[Message]
    )
    return found


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
    "tenant-list": lambda w: [
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

# Platform-level models (not tenant-owned): their rows are not B's, but a
# tenant's staff must not reach them either; the walker uses the row below.
PLATFORM_ROWS: dict[str, Callable[[World], models.Model]] = {
    "retention.tenant": lambda w: w.b,
    "retention.user": lambda w: w.b_user,
}

ADMIN_STANDARD = re.compile(
    r"^admin:(?P<app>[a-z_]+?)_(?P<model>[a-z]+)_(?P<view>changelist|add|history|delete|change)$"
)


def _admin_row(w: World, model: type[models.Model]) -> models.Model | None:
    label = model._meta.label_lower
    if label in PLATFORM_ROWS:
        return PLATFORM_ROWS[label](w)
    if model in w.rows_b:
        return w.rows_b[model]
    return w.extra.get(label)


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


def _platform_rows(w: World) -> None:
    """One row of each platform model registered in the admin (celery beat,
    groups), marked, so a tenant's staff seeing them shows up."""
    from django.contrib.auth.models import Group
    from django_celery_beat.models import (
        ClockedSchedule,
        CrontabSchedule,
        IntervalSchedule,
        PeriodicTask,
        SolarSchedule,
    )

    interval = IntervalSchedule.objects.create(every=17, period="minutes")
    rows = {
        "auth.group": Group.objects.create(name=f"{PLATFORM_MARK}-group"),
        "django_celery_beat.intervalschedule": interval,
        "django_celery_beat.clockedschedule": ClockedSchedule.objects.create(
            clocked_time=clock.now()
        ),
        "django_celery_beat.crontabschedule": CrontabSchedule.objects.create(minute="17"),
        "django_celery_beat.solarschedule": SolarSchedule.objects.create(
            event="sunrise", latitude=52.5, longitude=13.4
        ),
        "django_celery_beat.periodictask": PeriodicTask.objects.create(
            name=f"{PLATFORM_MARK}-task", task="walker.noop", interval=interval
        ),
    }
    w.extra.update(rows)


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


def _fingerprint(tenant: Tenant) -> dict[str, int]:
    """How many rows B has of every tenant-owned model."""
    return {m._meta.label: scoped(m, tenant).count() for m in tenant_models()}


def test_api_writes_naming_b_ids_change_nothing_in_b(world: World):
    w = world
    client = w.clients["api"]
    customer = _customer_b(w)
    order = w.rows_b[Order]
    identity = {"id": f"ext-{customer.pk}", "email": customer.email}
    before = _fingerprint(w.b)
    watched = (customer, order)
    snapshot = _snapshot(watched)
    writes = [
        ("patch", f"/api/v1/customers/{customer.pk}/", {"first_name": "from A"}, {404}),
        ("post", f"/api/v1/customers/{customer.pk}/erase/", {}, {404}),
        (
            "post",
            f"/api/v1/customers/{w.rows_a[Customer].pk}/inbox/{_in_app_b(w).pk}/read/",
            {},
            {404},
        ),
        # B's customer identity and order id sent as A's own: A gets its own rows.
        ("post", "/api/v1/customers/", {**identity, "first_name": "A's copy"}, {200, 201}),
        (
            "post",
            "/api/v1/orders/",
            {
                "id": order.external_id,
                "placed_at": clock.now().isoformat(),
                "currency": "EUR",
                "customer": identity,
                "subtotal": "10.00",
                "total": "10.00",
            },
            {200, 201},
        ),
        (
            "post",
            "/api/v1/events/",
            {
                "id": "evt-walker-1",
                "customer": identity,
                "category": "product",
                "kind": "walker.tested",
            },
            {202},
        ),
    ]
    answers = []
    for method, path, body, expected in writes:
        response = getattr(client, method)(path, data=body, content_type="application/json")
        answers.append((method, path, response.status_code in expected, response.status_code))
        assert MARK.encode() not in response.content, (method, path, response.content[:300])
    assert [a for a in answers if not a[2]] == []
    assert _fingerprint(w.b) == before
    assert _snapshot(watched) == snapshot
    made = Customer.objects.for_tenant(w.a).filter(email=customer.email)
    assert made.count() == 1


def _admin_actions() -> list[tuple[type[models.Model], str]]:
    out = []
    for model, model_admin in admin.site._registry.items():
        names = {"delete_selected"} | {
            a if isinstance(a, str) else a.__name__ for a in (model_admin.actions or [])
        }
        out.extend((model, name) for name in sorted(names))
    return out


@pytest.mark.parametrize("who", ROLES)
def test_admin_bulk_actions_on_b_ids_change_nothing(world: World, who: str):
    w = world
    client = w.clients[who]
    before = _fingerprint(w.b)
    found: list[str] = []
    for model, action in _admin_actions():
        row = _admin_row(w, model)
        if row is None:
            continue
        path = f"/admin/{model._meta.app_label}/{model._meta.model_name}/"
        watch = (row, _count(w, model)) if model in w.rows_b else ()
        for extra in ({}, {"post": "yes"}):
            data = {"action": action, "_selected_action": [row.pk], "index": "0", **extra}
            # The changelist answers 200 (it shows A's list again): what counts is
            # that B's row is untouched and not shown.
            req = Req("POST", path, data=data, watch=watch, b_ids=False)
            found.extend(problems(client, req))
    assert found == [], f"as {who} of A:\n" + "\n".join(found)
    assert _fingerprint(w.b) == before
