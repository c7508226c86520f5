"""export_scores: one CSV row per current score of one store, riskiest first,
with the storefront's own customer id where it has one."""

from __future__ import annotations

import csv
from datetime import UTC, datetime
from io import StringIO

import pandas as pd
import pytest
from django.core.management import call_command

from commerce.models import Customer, CustomerIdentity, IdentityKind
from retention import clock
from scoring.models import ChurnScore
from scoring.services.runs import churn_score
from scoring.services.score import scores_write
from scoring.services.setup import scoring_settings
from tests.factories import CustomerFactory
from tests.scoring.score_rows import version

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
HEADER = (
    "customer_id,email,p_churn,expected_orders,risk_band,reasons,next_action,model_version,as_of"
)

pytestmark = pytest.mark.usefixtures("one_thread")


def export(tenant, tmp_path) -> tuple[str, list[list[str]]]:
    path = tmp_path / "scores.csv"
    out = StringIO()
    call_command("export_scores", "--tenant", tenant.slug, str(path), stdout=out)
    assert out.getvalue() == f"Wrote {text_rows(path)} scores of {tenant.slug} to {path}\n"
    text = path.read_text()
    return text.splitlines()[0], list(csv.reader(text.splitlines()[1:]))


def text_rows(path) -> str:
    return f"{len(path.read_text().splitlines()) - 1:,}"


def identity(customer: Customer, value: str, *, kind=IdentityKind.EXTERNAL, source="storefront"):
    CustomerIdentity.objects.create(
        tenant_id=customer.tenant_id, customer=customer, kind=kind, source=source, value=value
    )


def write(tenant, rows: dict[Customer, tuple[float, str, list[str], str]], number: int = 3):
    """Scores as the pipeline writes them: (p_churn, band, reasons, action) per customer."""
    frame = pd.DataFrame(
        {
            "p_churn": [r[0] for r in rows.values()],
            "expected_orders": [1.25] * len(rows),
            "band": [r[1] for r in rows.values()],
            "tier": ["none"] * len(rows),
            "contacted": [False] * len(rows),
            "action": [r[3] for r in rows.values()],
            "reasons": [r[2] for r in rows.values()],
        },
        index=pd.Index([c.pk for c in rows], name="customer_id"),
    )
    scores_write(
        tenant.pk, version(tenant, number), NOW, frame, lo=None, hi=None, announce=False,
        horizon_days=90,
    )  # fmt: skip


def test_the_export_has_one_row_per_score_riskiest_first(tenant, other_tenant, tmp_path):
    clock.set_now(NOW)
    ann = CustomerFactory(tenant=tenant, email="ann@shop.example")
    bob = CustomerFactory(tenant=tenant, email="bob@shop.example")
    cat = CustomerFactory(tenant=tenant, email="cat@shop.example")
    dan = CustomerFactory(tenant=tenant, email="dan@shop.example")
    identity(ann, "SF-1")
    identity(bob, "bob@shop.example", kind=IdentityKind.EMAIL, source="")
    identity(cat, "SH-9", source="shopify")  # the first storefront id is the one exported
    identity(cat, "SF-3")
    identity(dan, "SF-4")
    reasons = ["no order for 84 days, twice their usual gap of 42 days", "rated the last order 2/5"]
    write(
        tenant,
        {
            cat: (0.1, "low", [], "none"),
            dan: (0.55, "medium", ["last delivery arrived 5 days late"], "nudge"),
            bob: (0.55, "medium", [], "nudge"),
            ann: (0.91234567, "high", reasons, "call"),
        },
    )
    stranger = CustomerFactory(tenant=other_tenant)
    write(other_tenant, {stranger: (0.99, "high", [], "call")}, number=1)

    header, rows = export(tenant, tmp_path)

    assert header == HEADER
    as_of = "2026-06-01T12:00:00+00:00"
    assert rows == [
        ["SF-1", "ann@shop.example", "0.9123", "1.250", "high",
         "no order for 84 days, twice their usual gap of 42 days | rated the last order 2/5",
         "call", "3", as_of],
        [str(bob.pk), "bob@shop.example", "0.5500", "1.250", "medium", "", "nudge", "3", as_of],
        ["SF-4", "dan@shop.example", "0.5500", "1.250", "medium",
         "last delivery arrived 5 days late", "nudge", "3", as_of],
        ["SH-9", "cat@shop.example", "0.1000", "1.250", "low", "", "none", "3", as_of],
    ]  # fmt: skip


def test_a_store_without_scores_exports_the_header_alone(tenant, tmp_path):
    header, rows = export(tenant, tmp_path)

    assert (header, rows) == (HEADER, [])


def test_the_export_of_a_scoring_run_covers_every_scored_customer(tenant, seeded, tmp_path):
    seeded(tenant, at=NOW, customers=400)
    settings = scoring_settings(tenant)
    settings.min_buyers_for_model = 50
    settings.save()
    run = churn_score(tenant.pk)

    header, rows = export(tenant, tmp_path)

    assert header == HEADER
    scores = ChurnScore.objects.for_tenant(tenant)
    assert len(rows) == scores.count() == run.scored == 400
    storefront = dict(
        CustomerIdentity.objects.for_tenant(tenant)
        .filter(kind=IdentityKind.EXTERNAL)
        .values_list("value", "customer_id")
    )
    emails = dict(Customer.objects.for_tenant(tenant).values_list("pk", "email"))
    p = {s.customer_id: s.p_churn for s in scores}
    ids = [storefront[row[0]] for row in rows]  # every demo customer has a storefront id
    assert sorted(ids) == sorted(p)
    assert [row[1] for row in rows] == [emails[pk] for pk in ids]
    assert [row[2] for row in rows] == [f"{p[pk]:.4f}" for pk in ids]
    assert ids == sorted(ids, key=lambda pk: (-p[pk], pk))
    assert {row[4] for row in rows} <= {"low", "medium", "high"}
    assert {row[7] for row in rows} == {str(run.model_version.version)}
    assert {row[8] for row in rows} == {"2026-06-01T12:00:00+00:00"}
    assert any(" | " in row[5] for row in rows)
