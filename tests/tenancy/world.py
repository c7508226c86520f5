"""The tenancy suite's world: tenants A (``alpha``) and B (``bravo``) with rows of
every tenant-owned model, B's free text carrying ``zzB-MARKER``, and the helpers
that send one request as A and say what it showed or changed of B.

Built once per package (``tests/tenancy/conftest.py``) inside a transaction
that is rolled back afterwards, so the rest of the suite never sees it.
"""

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from io import StringIO
from typing import Any
from urllib.parse import parse_qsl, quote, quote_plus, urlsplit

import pytest
from django.apps import apps
from django.core.management import call_command
from django.db import connection, models, transaction
from django.test import Client
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
from feedback.models import Callback, CallbackContact, SurveyResponse
from insights.models import KpiTarget, SummarySubscription, WeeklySummary
from insights.services.summary import summary_make
from journeys.models import (
    JourneySettings,
    JourneyStep,
    OutboundWebhook,
    StepVariant,
)
from messaging.models import Message, ProviderEvent, Suppression
from retention import clock
from retention.models import Role, Tenant, User
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


def build_world() -> World:
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


@dataclass(frozen=True)
class Counts:
    """Watch the number of a tenant's rows of every tenant-owned model, in one query."""

    tenant_id: int


def tenant_counts(tenant_id: int) -> dict[str, int]:
    """How many rows the tenant has of every tenant-owned model (one round trip)."""
    tables = sorted({m._meta.db_table for m in tenant_models()})
    # The table names come from the models, never from input.
    count = "(SELECT count(*) FROM {} WHERE tenant_id = %s)"
    columns = ", ".join(count.format(connection.ops.quote_name(t)) for t in tables)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {columns}", [tenant_id] * len(tables))
        return dict(zip(tables, cursor.fetchone(), strict=True))


def _snapshot(rows: tuple[Any, ...]) -> list[Any]:
    out: list[Any] = []
    for r in rows:
        if isinstance(r, Count):
            out.append(r.model._default_manager.filter(tenant_id=r.tenant_id).count())
        elif isinstance(r, Counts):
            out.append(tenant_counts(r.tenant_id))
        elif hasattr(r, "tenant_id"):
            manager = type(r)._default_manager
            out.append(manager.filter(pk=r.pk, tenant_id=r.tenant_id).values().first())
        else:  # a platform row (the tenant itself, a user, a group)
            out.append(type(r)._default_manager.filter(pk=r.pk).values().first())
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


def _customer_b(w: World) -> Customer:
    return w.rows_b[Customer]


@dataclass(frozen=True)
class Count:
    """Watch the number of B's rows of a model."""

    model: type[models.Model]
    tenant_id: int


def _count(w: World, model: type[models.Model]) -> Count:
    return Count(model, w.b.pk)


def _in_app_b(w: World) -> Message:
    found = (
        Message.objects.for_tenant(w.b).filter(channel="in_app").order_by("pk").first()
        or w.rows_b[Message]
    )
    return found


# Platform-level models (not tenant-owned): their rows are not B's, but a
# tenant's staff must not reach them either; the walker uses the row below.
PLATFORM_ROWS: dict[str, Callable[[World], models.Model]] = {
    "retention.tenant": lambda w: w.b,
    "retention.user": lambda w: w.b_user,
}


def _admin_row(w: World, model: type[models.Model]) -> models.Model | None:
    label = model._meta.label_lower
    if label in PLATFORM_ROWS:
        return PLATFORM_ROWS[label](w)
    if model in w.rows_b:
        return w.rows_b[model]
    return w.extra.get(label)


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


def _fingerprint(tenant: Tenant) -> dict[str, int]:
    """How many rows B has of every tenant-owned model."""
    return {m._meta.label: scoped(m, tenant).count() for m in tenant_models()}
