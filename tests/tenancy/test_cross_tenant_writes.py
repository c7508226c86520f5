"""Writes from tenant A that name tenant B's ids change nothing of B.

Three doors a write can come through, each covered from the project's own
registry so a new door is covered (or fails) without editing this file:

- the REST API: every write operation of the published schema, with B's ids
  in the path and B's storefront ids, emails and event ids in the body. A path
  naming B's object answers 404; a body naming B's storefront ids makes or
  updates A's own rows (ids are per tenant), never B's;
- admin changelist bulk actions: every action of every registered admin
  (``admin.site._registry``), posted by every role of A with B's ids selected,
  alone and mixed with A's, before and after the confirmation step;
- admin change forms: every foreign key (and inline row id) of every
  registered admin's change form for A's object, set to B's object's id, is a
  form error and nothing is saved. The unchanged form is posted first and
  must save, so a form that fails for another reason cannot pass for safe.

Every request runs in a savepoint that is rolled back; B's rows are compared
inside it (the named rows' values and B's row count of every tenant-owned
model), so one request's effect never hides another's.
"""

from __future__ import annotations

import copy
import re
from html.parser import HTMLParser
from typing import Any

import pytest
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.core.exceptions import FieldDoesNotExist
from django.db import models, transaction
from django.forms.models import _get_foreign_key
from django.test import Client
from drf_spectacular.generators import SchemaGenerator

from commerce.models import Cart, Customer, Order, Touchpoint
from experiments.models import Experiment, ExperimentKind
from experiments.services.lifecycle import Arm, experiment_create
from feedback.models import Callback
from journeys.models import Journey
from messaging.models import Message
from retention import clock
from retention.models import Role, Tenant
from segments.models import Segment
from tests.tenancy.world import (
    MARK,
    PLATFORM_ROWS,
    ROLES,
    Counts,
    Req,
    World,
    _admin_row,
    _customer_b,
    _in_app_b,
    _snapshot,
    problems,
    scoped,
    tenant_counts,
)

pytestmark = pytest.mark.django_db

SAFE_METHODS = {"get", "head", "options", "trace"}


# --- the REST API --------------------------------------------------------------------------------


def _a_in_app(w: World) -> Message:
    return Message.objects.for_tenant(w.a).filter(channel="in_app").order_by("pk").first()


def _identity(customer: Customer) -> dict[str, str]:
    """B's customer as a storefront would send it: its storefront id and email."""
    external = customer.identities.filter(kind="external").order_by("pk").first()
    out = {"email": customer.email}
    if external is not None:
        out["id"] = external.value
    return out


def _api_writes(w: World) -> dict[tuple[str, str], list[tuple[str, dict, set[int]]]]:
    """Per schema operation (method, path template): (path, JSON body, answers allowed)."""
    cb, ca = _customer_b(w), w.rows_a[Customer]
    msg_b, msg_a = _in_app_b(w), _a_in_app(w)
    order_b = w.rows_b[Order]
    cart_b = w.rows_b[Cart]
    touch_b = _b_event(w)
    now = clock.now().isoformat()
    return {
        ("patch", "/api/v1/customers/{id}/"): [
            (f"/api/v1/customers/{cb.pk}/", body, {404})
            for body in (
                {"first_name": "from A"},
                {"email": "taken-by-a@alpha.example"},
                {"phone": "+4915112345678"},
                {"accepts_email": False, "accepts_sms": False},
                {},
            )
        ]
        # A's own customer given B's customer's email: B's email is not
        # "taken" in A, and B's customer keeps it.
        + [(f"/api/v1/customers/{ca.pk}/", {"email": cb.email}, {200})],
        ("post", "/api/v1/customers/{id}/erase/"): [
            (f"/api/v1/customers/{cb.pk}/erase/", {}, {404}),
        ],
        ("post", "/api/v1/customers/{customer_pk}/inbox/{id}/read/"): [
            (f"/api/v1/customers/{cb.pk}/inbox/{msg_b.pk}/read/", {}, {404}),
            (f"/api/v1/customers/{msg_b.customer_id}/inbox/{msg_b.pk}/read/", {}, {404}),
            # A's customer with B's message, B's customer with A's message.
            (f"/api/v1/customers/{ca.pk}/inbox/{msg_b.pk}/read/", {}, {404}),
            (f"/api/v1/customers/{msg_b.customer_id}/inbox/{msg_a.pk}/read/", {}, {404}),
        ],
        # B's storefront ids in a body are A's to use: they make (or, where A
        # has the same storefront id, update) A's own rows, never B's.
        ("post", "/api/v1/customers/"): [
            ("/api/v1/customers/", {**_identity(cb), "first_name": "A's copy"}, {201}),
        ],
        ("post", "/api/v1/orders/"): [
            (
                "/api/v1/orders/",
                {
                    "id": order_b.external_id,
                    "placed_at": now,
                    "currency": "EUR",
                    "customer": _identity(cb),
                    "cart_id": cart_b.external_id,
                    "subtotal": "10.00",
                    "total": "10.00",
                    "status": "cancelled",
                },
                {200, 201},
            ),
        ],
        ("post", "/api/v1/events/"): [
            (
                "/api/v1/events/",
                {
                    "id": touch_b.external_id,
                    "customer": _identity(cb),
                    "category": touch_b.category,
                    "kind": touch_b.kind,
                },
                {202},
            ),
        ],
    }


def _b_event(w: World) -> Touchpoint:
    """One of B's events with a storefront event id from the default source, as
    A's API call will send it (the demo's have none), set in the test's own
    transaction."""
    rows = scoped(Touchpoint, w.b).filter(pk=w.rows_b[Touchpoint].pk)
    rows.update(external_id=f"evt-bravo-{w.rows_b[Touchpoint].pk}", source="storefront")
    return rows.get()


def _schema_writes() -> set[tuple[str, str]]:
    schema = SchemaGenerator().get_schema(request=None, public=True)
    return {
        (method, path)
        for path, operations in schema["paths"].items()
        for method in operations
        if method not in SAFE_METHODS
    }


def test_every_api_write_of_the_schema_is_covered(world: World):
    missing = _schema_writes() - set(_api_writes(world))
    assert missing == set(), (
        "API writes with no cross-tenant case in tests/tenancy/test_cross_tenant_writes.py "
        f"(_api_writes): {sorted(missing)}"
    )


def _api(w: World, method: str, path: str, body: dict) -> tuple[int, bytes, dict]:
    client = w.clients["api"]
    with transaction.atomic():
        response = getattr(client, method)(path, data=body, content_type="application/json")
        payload = response.json() if response.content else {}
        transaction.set_rollback(True)
    return response.status_code, response.content, payload


def _b_rows(w: World) -> tuple[Any, ...]:
    touch_b = _b_event(w)
    return (
        Counts(w.b.pk),
        _customer_b(w),
        _in_app_b(w),
        w.rows_b[Order],
        w.rows_b[Cart],
        touch_b,
        *Customer.objects.for_tenant(w.b).filter(pk=_in_app_b(w).customer_id),
    )


def _echoes(body: Any) -> list[bytes]:
    """The marked values the request itself sent (B's email as A's own customer's)."""
    if isinstance(body, dict):
        return [e for v in body.values() for e in _echoes(v)]
    if isinstance(body, str) and MARK.lower() in body.lower():
        return [body.encode()]
    return []


def _shows_b(content: bytes, sent: Any) -> bool:
    for echo in sorted(_echoes(sent), key=len, reverse=True):
        content = content.replace(echo, b"")
    return MARK.encode() in content or MARK.lower().encode() in content


def test_api_writes_naming_b_ids_answer_404_and_change_nothing_in_b(world: World):
    w = world
    watched = _b_rows(w)
    found = []
    for (method, _template), calls in _api_writes(w).items():
        for path, body, allowed in calls:
            with transaction.atomic():
                before = _snapshot(watched)
                response = getattr(w.clients["api"], method)(
                    path, data=body, content_type="application/json"
                )
                after = _snapshot(watched)
                transaction.set_rollback(True)
            if response.status_code not in allowed:
                found.append(f"{method} {path} {body} answered {response.status_code}")
            if _shows_b(response.content, body):
                found.append(f"{method} {path} showed B's data")
            if before != after:
                found.append(f"{method} {path} {body} changed B's rows")
    assert found == [], "\n".join(found)


def test_b_storefront_ids_in_a_body_make_a_own_rows(world: World):
    """The 201s above are A's own new rows, not B's rows answered under A's key."""
    w = world
    cb = _customer_b(w)
    calls = _api_writes(w)
    path, body, _ = calls[("post", "/api/v1/customers/")][0]
    with transaction.atomic():
        customer = w.clients["api"].post(path, data=body, content_type="application/json").json()
        made = Customer.objects.for_tenant(w.a).filter(pk=customer["id"]).exists()
        transaction.set_rollback(True)
    assert made and customer["id"] != cb.pk
    path, body, _ = calls[("post", "/api/v1/orders/")][0]
    with transaction.atomic():
        order = w.clients["api"].post(path, data=body, content_type="application/json").json()
        mine = Order.objects.for_tenant(w.a).filter(pk=order["id"]).exists()
        cart_b = scoped(Cart, w.b).get(pk=w.rows_b[Cart].pk)
        transaction.set_rollback(True)
    assert mine and order["id"] != w.rows_b[Order].pk
    assert cart_b.order_id != order["id"]
    path, body, _ = calls[("post", "/api/v1/events/")][0]
    _, _, accepted = _api(w, "post", path, body)
    assert accepted == {"received": 1, "created": 1, "duplicates": 0}


# --- admin bulk actions --------------------------------------------------------------------------


def _admin_actions() -> list[tuple[type[models.Model], str]]:
    """Every action of every registered admin, the site-wide ones included."""
    out = []
    for model, model_admin in admin.site._registry.items():
        names = {name for _func, name, _desc in model_admin._get_base_actions()}
        out.extend((model, name) for name in sorted(names))
    return out


def _b_selection(w: World, model: type[models.Model]) -> list[models.Model]:
    """A few of B's rows of the model (or the platform row the admin shows)."""
    if model._meta.label_lower in PLATFORM_ROWS or model not in w.rows_b:
        row = _admin_row(w, model)
        return [row] if row is not None else []
    return list(scoped(model, w.b).order_by("pk")[:3])


def test_every_admin_action_is_enumerated(world: World):
    actions = _admin_actions()
    names = {name for _model, name in actions}
    assert "delete_selected" in names
    assert len(names) > 1, "no admin declares an action of its own: the enumeration is broken"
    unreachable = sorted(
        f"{m._meta.label}.{name}" for m, name in actions if not _b_selection(world, m)
    )
    assert unreachable == [], f"admin actions with no row of B to select: {unreachable}"


@pytest.mark.parametrize("who", ROLES)
def test_admin_bulk_actions_on_b_ids_change_nothing(world: World, who: str):
    w = world
    client = w.clients[who]
    found: list[str] = []
    for model, action in _admin_actions():
        rows_b = _b_selection(w, model)
        path = f"/admin/{model._meta.app_label}/{model._meta.model_name}/"
        watch = (*rows_b, Counts(w.b.pk))
        a_row = w.rows_a.get(model)
        selections = [[r.pk for r in rows_b]]
        if a_row is not None:  # A's row selected along with B's: A's may change, B's not
            selections.append([a_row.pk, *[r.pk for r in rows_b]])
        for selected in selections:
            for extra in ({}, {"post": "yes"}):
                data = {"action": action, "_selected_action": selected, "index": "0", **extra}
                # The changelist answers 200 (A's list again, "no items selected")
                # or 302: what counts is that B's rows are untouched and not shown.
                req = Req("POST", path, data=data, watch=watch, b_ids=False)
                found.extend(f"{action}: {p}" for p in problems(client, req))
    assert found == [], f"as {who} of A:\n" + "\n".join(found)


# --- admin change forms --------------------------------------------------------------------------


class _FormReader(HTMLParser):
    """The fields of the admin's change form, as a browser would post them."""

    def __init__(self, form_id: str):
        super().__init__(convert_charrefs=True)
        self.form_id = form_id
        self.inside = False
        self.data: dict[str, list[str]] = {}
        self._select: tuple[str, bool] | None = None
        self._select_values: list[str] = []
        self._first_option: str | None = None
        self._textarea: str | None = None
        self._text = ""

    def _add(self, name: str, value: str) -> None:
        self.data.setdefault(name, []).append(value)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: (v if v is not None else "") for k, v in attrs}
        if tag == "form" and a.get("id") == self.form_id:
            self.inside = True
        if not self.inside or "disabled" in a:
            return
        name = a.get("name")
        if tag == "input" and name:
            kind = a.get("type", "text").lower()
            if kind in ("submit", "button", "image", "reset", "file"):
                return
            if kind in ("checkbox", "radio") and "checked" not in a:
                return
            self._add(name, a.get("value", "on" if kind == "checkbox" else ""))
        elif tag == "select" and name:
            self._select = (name, "multiple" in a)
            self._select_values, self._first_option = [], None
        elif tag == "option" and self._select is not None:
            value = a.get("value", "")
            if self._first_option is None:
                self._first_option = value
            if "selected" in a:
                self._select_values.append(value)
        elif tag == "textarea" and name:
            self._textarea, self._text = name, ""

    def handle_endtag(self, tag: str) -> None:
        if tag == "form" and self.inside:
            self.inside = False
        elif tag == "select" and self._select is not None:
            name, multiple = self._select
            values = self._select_values
            if not values and not multiple and self._first_option is not None:
                values = [self._first_option]
            for value in values:
                self._add(name, value)
            self._select = None
        elif tag == "textarea" and self._textarea is not None:
            self._add(self._textarea, self._text.removeprefix("\n"))
            self._textarea = None

    def handle_data(self, data: str) -> None:
        if self._textarea is not None:
            self._text += data


def _form_data(client: Client, url: str, model: type[models.Model]) -> dict[str, list[str]] | None:
    response = client.get(url)
    if response.status_code != 200 or b'name="_save"' not in response.content:
        return None  # view-only for this role: the POST is refused (walker-tested)
    reader = _FormReader(f"{model._meta.model_name}_form")
    reader.feed(response.content.decode())
    return reader.data or None


def _b_target(w: World, related: type[models.Model]) -> models.Model | None:
    if related is Tenant:
        return w.b
    if related is get_user_model():
        return w.b_user
    return w.rows_b.get(related)


def _inline_prefixes(model_admin) -> dict[str, type[models.Model]]:
    out = {}
    for inline_class in model_admin.inlines:
        inline_model = inline_class.model
        fk = _get_foreign_key(model_admin.model, inline_model, fk_name=inline_class.fk_name)
        out[fk.remote_field.get_accessor_name(model=inline_model).replace("+", "")] = inline_model
    return out


def _model_field(model: type[models.Model], name: str) -> Any:
    """The model's field of that name, or None for a form-only one (DELETE, ORDER)."""
    try:
        return model._meta.get_field(name)
    except FieldDoesNotExist:
        return None


INLINE_FIELD = re.compile(r"^(?P<prefix>.+)-(?P<index>\d+)-(?P<field>[\w]+)$")


# People are platform accounts: an owner adds anyone to the store by exact
# email (``UserAdmin.get_search_results``, ``manage.py add_member``), so a
# membership naming a person who also works for B is by design.
ANY_TENANT_MAY_NAME = {("retention.membership", "user")}


def _fk_swaps(w: World, model_admin, data: dict[str, list[str]]) -> list[tuple[str, Any, bool]]:
    """(form field name, B's object, whether it is an inline row's own id) for
    every related field and inline row the form posts."""
    swaps: list[tuple[str, Any, bool]] = []
    label = model_admin.model._meta.label_lower
    for field in model_admin.model._meta.get_fields():
        if (label, field.name) in ANY_TENANT_MAY_NAME:
            continue
        if field.is_relation and field.concrete and field.name in data:
            target = _b_target(w, field.related_model)
            if target is not None:
                swaps.append((field.name, target, False))
    prefixes = _inline_prefixes(model_admin)
    for name in data:
        match = INLINE_FIELD.match(name)
        if not match or match["prefix"] not in prefixes:
            continue
        inline_model = prefixes[match["prefix"]]
        if match["field"] == inline_model._meta.pk.name:
            # A's parent form carrying B's inline row id: B's row must not move.
            target = w.rows_b.get(inline_model)
            if target is not None and data[name] != [""]:
                swaps.append((name, target, True))
            continue
        field = _model_field(inline_model, match["field"])
        if (
            field is not None
            and field.is_relation
            and field.concrete
            and field.related_model is not model_admin.model
        ):
            target = _b_target(w, field.related_model)
            if target is not None:
                swaps.append((name, target, False))
    return swaps


def _post_form(client: Client, url: str, data: dict, watch: tuple) -> tuple[int, bool, bytes]:
    with transaction.atomic():
        before = _snapshot(watch)
        response = client.post(url, data={**data, "_save": "Save"})
        changed = _snapshot(watch) != before
        transaction.set_rollback(True)
    return response.status_code, changed, response.content


def _editable_rows(w: World) -> list[tuple[type[models.Model], models.Model]]:
    """A's row of every registered model, plus rows whose related fields only a
    draft can change (a launched experiment's journey and segment are fixed)."""
    rows = [(m, w.rows_a[m]) for m in admin.site._registry if w.rows_a.get(m) is not None]
    draft = experiment_create(
        tenant=w.a,
        name="Cross-tenant draft",
        kind=ExperimentKind.HOLDOUT,
        journey=w.rows_a[Journey],
        hypothesis="A draft whose design fields are editable.",
        arms=[Arm("control", 50, True, "No messages"), Arm("treatment", 50)],
        eligibility_segment=w.rows_a[Segment],
    )
    return [*rows, (Experiment, draft)]


def test_change_forms_refuse_b_objects_in_foreign_keys(world: World):
    w = world
    client = w.clients[Role.OWNER]
    found: list[str] = []
    checked = 0
    for model, row in _editable_rows(w):
        model_admin = admin.site._registry[model]
        url = f"/admin/{model._meta.app_label}/{model._meta.model_name}/{row.pk}/change/"
        data = _form_data(client, url, model)
        if data is None:
            continue
        swaps = _fk_swaps(w, model_admin, data)
        if not swaps:
            continue
        # The control: the form as shown saves, so a refusal below is about B's id.
        status, _, body = _post_form(client, url, data, ())
        if status != 302:
            found.append(f"{url}: the unchanged form did not save ({status})")
            continue
        for name, target, row_id in swaps:
            bad = copy.deepcopy(data)
            bad[name] = [str(target.pk)]
            watch = (target, Counts(w.b.pk))
            status, changed, body = _post_form(client, url, bad, watch)
            checked += 1
            # A foreign key to B's object is a form error (200, the form again).
            # B's id as an inline row's own id may also be skipped as no row of
            # this form (302): Django ignores a row id outside the inline's rows.
            if status not in ({200, 302} if row_id else {200}):
                found.append(f"{url} {name}={target.pk} (B's) answered {status}")
            if changed:
                found.append(f"{url} {name}={target.pk} (B's) changed B's rows")
            if MARK.encode() in body or MARK.lower().encode() in body:
                found.append(f"{url} {name}={target.pk} (B's) shows B's data")
    assert found == [], "\n".join(found)
    assert checked > 20, f"only {checked} foreign keys checked: the form reader is broken"


# --- the agent's callback queue ------------------------------------------------------------------


def test_a_callback_cannot_be_handed_to_b_people(world: World):
    """Reassigning A's callback names a person by id: B's owner is refused,
    and the control, A's own agent, is taken."""
    w = world
    client = w.clients[Role.OWNER]
    callback = w.rows_a[Callback]
    url = f"/agent/callbacks/{callback.pk}/reassign/"
    watch = (callback, w.b_user, Counts(w.b.pk))
    with transaction.atomic():
        before = _snapshot(watch)
        refused = client.post(url, {"to_agent": str(w.b_user.pk)})
        after = _snapshot(watch)
        transaction.set_rollback(True)
    assert refused.status_code in {200, 302, 400, 403, 404, 422}
    assert after == before
    assert not _shows_b(refused.content, {})
    agent = w.clients[Role.AGENT].user
    with transaction.atomic():
        taken = client.post(url, {"to_agent": str(agent.pk)})
        claimed_by = scoped(Callback, w.a).get(pk=callback.pk).claimed_by_id
        transaction.set_rollback(True)
    assert taken.status_code in {200, 302}
    assert claimed_by == agent.pk


def test_b_counts_cover_every_tenant_owned_table(world: World):
    counts = tenant_counts(world.b.pk)
    assert len(counts) > 30 and sum(counts.values()) > 100, counts
