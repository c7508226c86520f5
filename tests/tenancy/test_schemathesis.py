"""Schemathesis against ``/api/v1/schema/`` with tenant A's key.

Every operation of the published schema is called with generated data (valid
and invalid: the examples and coverage phases' boundary values, then fuzzing)
through the Django WSGI application in-process, as A. Path ids are drawn from
what the generator makes up, A's own ids and B's ids. Each answer must

- not be a 5xx (``not_a_server_error``);
- match the schema: a documented status code, content type and body shape
  (``status_code_conformance``, ``content_type_conformance``,
  ``response_schema_conformance``), so the schema stays complete and true;
- not contain any of tenant B's markers (``zzB-MARKER`` in every free-text
  field of B's rows, see ``tests/tenancy/world.py``), in any case, nor any of
  B's rows by id;
- answer 404 when the path names one of B's objects, and leave B's rows as
  they were when that call was a write;
- when it was a success, be refused (401) to the same request sent with no
  key, with a garbage key, with B's revoked key and with A's revoked key: the
  key is what authorises the call, not something that happens to be ignored.

The request-side checks (``positive_data_acceptance``,
``negative_data_rejection``) are left out on purpose: the API validates more
than JSON Schema can say (an identity needs one of id, email or phone; phone
numbers and time zones are parsed), and it tolerates an unparsable ``limit``
as DRF's pagination does.

Each call runs in a savepoint that is rolled back, so one generated write
never decides what the next example sees, and a database error in one call
cannot poison the rest. Generation is deterministic (a fixed seed,
``derandomize``) and bounded, so CI sees the same cases every run.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import schemathesis
from django.core.handlers.wsgi import WSGIHandler
from django.core.signals import request_finished, request_started
from django.db import close_old_connections, models, transaction
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from commerce.models import Customer, Order, Touchpoint
from messaging.models import Message
from retention.models import ApiKey, ApiScope, AuditEntry
from retention.services import api_key_issue, api_key_revoke
from segments.models import Segment
from tests.tenancy.world import MARK, World, _fingerprint, _snapshot, scoped

pytestmark = pytest.mark.django_db

MAX_EXAMPLES = 15
SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}

CONFIG = schemathesis.Config.from_dict(
    {
        "seed": 20261124,
        "generation": {
            "max-examples": MAX_EXAMPLES,
            "deterministic": True,
            "database": "none",
            # The key is set by the test; generated Authorization headers would
            # only test the 401 path, which the auth check covers on purpose.
            "with-security-parameters": False,
        },
    }
)

# Django's own handler, in-process: the test database (and its open
# transaction) is what the API sees.
APP = WSGIHandler()
schema = schemathesis.openapi.from_wsgi("/api/v1/schema/", APP, config=CONFIG)

MARKERS = (MARK.encode(), MARK.lower().encode())

# Which model each path parameter names, by operation path.
PATH_MODELS: dict[str, dict[str, type[models.Model]]] = {
    "/api/v1/audit-log/{id}/": {"id": AuditEntry},
    "/api/v1/customers/{id}/": {"id": Customer},
    "/api/v1/customers/{id}/erase/": {"id": Customer},
    "/api/v1/customers/{id}/export/": {"id": Customer},
    "/api/v1/customers/{id}/segments/": {"id": Customer},
    "/api/v1/customers/{id}/timeline/": {"id": Customer},
    "/api/v1/customers/{customer_pk}/inbox/": {"customer_pk": Customer},
    "/api/v1/customers/{customer_pk}/inbox/{id}/read/": {"customer_pk": Customer, "id": Message},
    "/api/v1/orders/{id}/": {"id": Order},
    "/api/v1/segments/{id}/": {"id": Segment},
    "/api/v1/segments/{id}/members/": {"id": Segment},
}
# The model of the rows each operation answers with (a list's `results`, or the body).
RESULT_MODELS: dict[str, type[models.Model]] = {
    "/api/v1/audit-log/": AuditEntry,
    "/api/v1/audit-log/{id}/": AuditEntry,
    "/api/v1/customers/": Customer,
    "/api/v1/customers/{id}/": Customer,
    "/api/v1/customers/{customer_pk}/inbox/": Message,
    "/api/v1/customers/{customer_pk}/inbox/{id}/read/": Message,
    "/api/v1/customers/{id}/timeline/": Touchpoint,
    "/api/v1/orders/": Order,
    "/api/v1/orders/{id}/": Order,
    "/api/v1/segments/": Segment,
    "/api/v1/segments/{id}/": Segment,
    "/api/v1/segments/{id}/members/": Customer,
}

# Filled by the `ids` fixture before any case is generated: a few ids of each
# side per model (for path parameters), and all of B's ids (for the checks).
SAMPLE: dict[str, dict[type[models.Model], list[int]]] = {}
B_IDS: dict[type[models.Model], set[int]] = {}


def _sample(tenant, model: type[models.Model]) -> list[int]:
    rows = scoped(model, tenant)
    if model is Customer:  # customers with an inbox, so the inbox read path has pairs
        with_inbox = Message.objects.for_tenant(tenant).filter(channel="in_app")
        rows = rows.filter(pk__in=with_inbox.values("customer_id")) or rows
    if model is Message:
        rows = rows.filter(channel="in_app")
    return list(rows.order_by("pk").values_list("pk", flat=True)[:3])


@pytest.fixture
def ids(world: World) -> None:
    wanted = {m for models_ in PATH_MODELS.values() for m in models_.values()}
    SAMPLE["a"] = {m: _sample(world.a, m) for m in wanted}
    SAMPLE["b"] = {m: _sample(world.b, m) for m in wanted}
    for model in {*wanted, *RESULT_MODELS.values()}:
        B_IDS[model] = set(scoped(model, world.b).values_list("pk", flat=True))
    assert all(SAMPLE["a"].values()) and all(SAMPLE["b"].values()), SAMPLE
    yield
    SAMPLE.clear()
    B_IDS.clear()


@schema.hook
def flatmap_path_parameters(ctx, path_parameters: dict[str, Any]):
    """Half the time the generated ids; else A's own ids, or B's."""
    names = PATH_MODELS.get(ctx.operation.path)
    if not names or not SAMPLE:
        return st.just(path_parameters)

    def fill(side: str):
        return st.fixed_dictionaries(
            {
                name: st.sampled_from(SAMPLE[side][model]).map(str)
                for name, model in names.items()
                if name in path_parameters
            }
        ).map(lambda chosen: {**path_parameters, **chosen})

    return st.one_of(st.just(path_parameters), fill("a"), fill("b"))


def _names_b(case) -> bool:
    names = PATH_MODELS.get(case.operation.path, {})
    for name, model in names.items():
        value = str((case.path_parameters or {}).get(name, ""))
        if value.isdigit() and int(value) in B_IDS[model]:
            return True
    return False


@pytest.fixture
def keys(world: World) -> dict[str, str]:
    """A's live key, and keys that must open nothing: garbage, B's revoked, A's revoked."""
    b_revoked, b_raw = api_key_issue(tenant=world.b, name="revoked", scopes=list(ApiScope.values))
    api_key_revoke(key=b_revoked)
    a_revoked, a_raw = api_key_issue(tenant=world.a, name="revoked", scopes=list(ApiScope.values))
    api_key_revoke(key=a_revoked)
    assert ApiKey.objects.for_tenant(world.b).get(pk=b_revoked.pk).revoked_at is not None
    return {
        "a": world.a.api_key,
        "garbage": "rk_0000000000.not-a-real-key",
        "b-revoked": b_raw,
        "a-revoked": a_raw,
    }


@pytest.fixture
def in_process_requests():
    """Keep the test's connection across requests: Django's ``request_finished``
    closes a connection that is inside a transaction, which the test client's
    handler avoids for the same reason."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


def _bearer(key: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"} if key else {}


# --- checks ------------------------------------------------------------------------------------


def no_b_markers(ctx, response, case) -> None:
    """No answer to A carries any of B's marked text."""
    body = response.content or b""
    for marker in MARKERS:
        at = body.find(marker)
        assert at < 0, f"the answer shows B's data: ...{body[max(at - 80, 0) : at + 60]!r}..."


def no_b_rows(ctx, response, case) -> None:
    """No row the answer lists (or is) is one of B's, by id."""
    model = RESULT_MODELS.get(case.operation.path)
    if model is None or not 200 <= response.status_code < 300:
        return
    try:
        body = json.loads(response.content)
    except ValueError:
        return
    rows = body.get("results", [body]) if isinstance(body, dict) else []
    shown = {row.get("id") for row in rows if isinstance(row, dict)} & B_IDS[model]
    assert not shown, f"the answer lists B's {model._meta.label} rows {sorted(shown)}"


def b_ids_not_found(ctx, response, case) -> None:
    """A path naming one of B's objects answers 404, like a missing one."""
    if _names_b(case) and case.method.upper() not in {"OPTIONS"}:
        assert response.status_code == 404, (
            f"{case.method} {case.formatted_path} names B's object and answered "
            f"{response.status_code}"
        )


def _refused_without(keys: dict[str, str]):
    def auth_not_ignored(ctx, response, case) -> None:
        """A success for A must be a 401 with no key or with a key that opens nothing."""
        if not 200 <= response.status_code < 300:
            return
        for name in (None, "garbage", "b-revoked", "a-revoked"):
            with transaction.atomic():
                other = case.call(headers=_bearer(keys[name] if name else None))
                transaction.set_rollback(True)
            assert other.status_code == 401, (
                f"{case.method} {case.formatted_path} answered {response.status_code} to A's key "
                f"and {other.status_code} with {name or 'no'} key"
            )
            no_b_markers(ctx, other, case)

    return auth_not_ignored


# --- the test ----------------------------------------------------------------------------------


def _b_state(world: World, case) -> list[Any]:
    rows = []
    for name, model in PATH_MODELS.get(case.operation.path, {}).items():
        value = str((case.path_parameters or {}).get(name, ""))
        if value.isdigit() and int(value) in B_IDS[model]:
            rows.append(scoped(model, world.b).get(pk=int(value)))
    return [_fingerprint(world.b), _snapshot(tuple(rows))]


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_api_as_a_never_fails_leaks_b_or_ignores_the_key(
    case, world: World, ids, keys: dict[str, str], in_process_requests
):
    watch = case.method.upper() not in SAFE_METHODS and _names_b(case)
    with transaction.atomic():
        before = _b_state(world, case) if watch else None
        response = case.call(headers=_bearer(keys["a"]))
        after = _b_state(world, case) if watch else None
        transaction.set_rollback(True)
    assert before == after, f"{case.method} {case.formatted_path} changed B's rows"
    case.validate_response(
        response,
        checks=[
            not_a_server_error,
            status_code_conformance,
            content_type_conformance,
            response_schema_conformance,
            no_b_markers,
            no_b_rows,
            b_ids_not_found,
            _refused_without(keys),
        ],
        headers=_bearer(keys["a"]),
    )


def test_the_checks_catch_b_data_shown_to_a(world: World, ids, in_process_requests):
    """The control: B's own key sees B's markers and rows, so the checks above
    would catch them if A's key did."""
    operation = schema["/api/v1/customers/{id}/"]["GET"]
    customer = SAMPLE["b"][Customer][0]
    case = operation.Case(path_parameters={"id": str(customer)})
    response = case.call(headers=_bearer(world.b.api_key))
    assert response.status_code == 200
    for check in (no_b_markers, no_b_rows):
        with pytest.raises(AssertionError):
            check(None, response, case)
    with pytest.raises(AssertionError):
        b_ids_not_found(None, response, case)


ID_OPERATIONS = [
    op for op in (result.ok() for result in schema.get_all_operations()) if op.path_parameters
]


@pytest.mark.parametrize("operation", ID_OPERATIONS, ids=lambda op: op.label)
def test_every_operation_answers_404_to_b_ids_and_changes_nothing(
    operation, world: World, ids, keys: dict[str, str], in_process_requests
):
    """Deterministically, whatever the generator drew: every operation whose
    path takes ids, called as A with B's ids (and A's customer with B's
    message), is a 404 that shows nothing of B and changes nothing of B."""
    names = PATH_MODELS.get(operation.path)
    assert names, f"add {operation.path} to PATH_MODELS in {__name__}"
    choices = [{n: SAMPLE["b"][m][0] for n, m in names.items()}]
    if len(names) > 1:  # mixed: each of A's ids with the rest B's
        for name in names:
            choices.append({n: SAMPLE["a" if n == name else "b"][m][0] for n, m in names.items()})
    for chosen in choices:
        case = operation.Case(path_parameters={n: str(v) for n, v in chosen.items()})
        if operation.body:
            case.body, case.media_type = {}, "application/json"
        with transaction.atomic():
            before = _b_state(world, case)
            response = case.call(headers=_bearer(keys["a"]))
            after = _b_state(world, case)
            transaction.set_rollback(True)
        assert response.status_code == 404, (operation.label, chosen, response.status_code)
        assert before == after, (operation.label, chosen)
        no_b_markers(None, response, case)


def _conforms(world: World, method: str, template: str, **parts: Any):
    """Call the API as A and validate the answer against the published schema."""
    case = schema[template][method].Case(**parts)
    response = case.call(headers=_bearer(world.a.api_key))
    case.validate_response(
        response, checks=[not_a_server_error, status_code_conformance, response_schema_conformance]
    )
    return response


def test_schema_documents_blank_contacts_local_times_and_unread_messages(
    world: World, in_process_requests
):
    """The answers the schema once described wrongly, each called on purpose:
    the current tenant is one object whose business hours are local times
    without an offset; a customer known only by a storefront id has an empty
    email and no preferred channel; an unread in-app message has no read time."""
    _conforms(world, "GET", "/api/v1/tenant/")
    created = _conforms(
        world,
        "POST",
        "/api/v1/customers/",
        body={"id": "only-an-id"},
        media_type="application/json",
    )
    assert created.status_code == 201
    customer = created.json()
    assert customer["email"] == "" and customer["preferred_channel"] == ""
    _conforms(world, "GET", "/api/v1/customers/{id}/", path_parameters={"id": str(customer["id"])})
    unread = Message.objects.for_tenant(world.a).filter(channel="in_app", opened_at=None).first()
    assert unread is not None
    listed = _conforms(
        world,
        "GET",
        "/api/v1/customers/{customer_pk}/inbox/",
        path_parameters={"customer_pk": str(unread.customer_id)},
        query={"unread": "true"},
    )
    assert any(m["read_at"] is None for m in listed.json()["results"])
