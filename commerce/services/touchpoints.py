"""Touchpoints: the one timeline of everything that happened to a customer."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection

from commerce.models import Customer, Touchpoint
from commerce.services.customers import CustomerRef, customer_facts_changed, customer_resolve
from retention import clock
from retention.models import Tenant

MAX_BATCH = 1000


def touchpoint_record(
    *,
    tenant: Tenant,
    customer: Customer,
    category: str,
    kind: str,
    source: str,
    occurred_at: datetime | None = None,
    properties: dict | None = None,
    external_id: str | None = None,
) -> bool:
    """Record one touchpoint; with an ``external_id`` a repeat is ignored.
    Returns True if it was stored now."""
    fields = {
        "customer": customer,
        "category": category,
        "kind": kind,
        "occurred_at": occurred_at or clock.now(),
        "properties": properties or {},
    }
    if external_id is None:
        Touchpoint.objects.create(tenant=tenant, source=source, **fields)
        created = True
    else:
        _, created = Touchpoint.objects.get_or_create(
            tenant=tenant, source=source, external_id=external_id, defaults=fields
        )
    # An order's own touchpoint needs no word: the order hooks refresh its buyer.
    if created and kind != "order.placed":
        customer_facts_changed(tenant.pk, [customer.pk], "touchpoint")
    return created


def touchpoints_ingest(*, tenant: Tenant, items: list[dict], source: str) -> dict[str, int]:
    """Store a batch of validated event payloads (up to MAX_BATCH). Items with a
    client id seen before are skipped. Returns {"received", "created", "duplicates"}."""
    if len(items) > MAX_BATCH:
        raise ValueError(f"at most {MAX_BATCH} events per batch")
    ids = [i["id"] for i in items if i.get("id")]
    seen = (
        set(
            Touchpoint.objects.for_tenant(tenant)
            .filter(source=source, external_id__in=ids)
            .values_list("external_id", flat=True)
        )
        if ids
        else set()
    )

    customers: dict[CustomerRef, Customer] = {}
    rows, batch_ids = [], set()
    for item in items:
        ext = item.get("id") or None
        if ext is not None and (ext in seen or ext in batch_ids):
            continue
        ref = CustomerRef.from_data(item["customer"], source=source)
        if ref not in customers:
            customers[ref] = customer_resolve(tenant=tenant, ref=ref, profile=item["customer"])
        rows.append(
            Touchpoint(
                tenant=tenant,
                customer=customers[ref],
                category=item["category"],
                kind=item["kind"],
                source=source,
                occurred_at=item.get("occurred_at") or clock.now(),
                properties=item.get("properties") or {},
                external_id=ext,
            )
        )
        if ext is not None:
            batch_ids.add(ext)
    # A concurrent request may have stored the same ids since we looked.
    Touchpoint.objects.bulk_create(rows, ignore_conflicts=True)
    customer_facts_changed(tenant.pk, (row.customer_id for row in rows), "touchpoint")
    return {"received": len(items), "created": len(rows), "duplicates": len(items) - len(rows)}


@dataclass(frozen=True)
class TouchpointIn:
    """One touchpoint another app records about a known customer."""

    customer_id: int
    category: str
    kind: str
    occurred_at: datetime
    properties: dict
    external_id: str | None = None


def touchpoints_record_many(*, tenant_id: int, source: str, items: list[TouchpointIn]) -> int:
    """Store many touchpoints in one statement (a send batch, a callback batch);
    items whose ``external_id`` is already stored are skipped. Returns how many
    were offered."""
    if not items:
        return 0
    if connection.vendor == "postgresql":
        _insert_unnest(tenant_id, source, items)
    else:
        Touchpoint.objects.bulk_create(
            [
                Touchpoint(
                    tenant_id=tenant_id,
                    customer_id=item.customer_id,
                    category=item.category,
                    kind=item.kind,
                    source=source,
                    occurred_at=item.occurred_at,
                    properties=item.properties,
                    external_id=item.external_id,
                )
                for item in items
            ],
            ignore_conflicts=True,
        )
    customer_facts_changed(tenant_id, {item.customer_id for item in items}, "touchpoint")
    return len(items)


# The send path records a touchpoint per message sent: one statement over
# arrays costs a fraction of building and binding a model instance per row.
_INSERT_UNNEST = """
    INSERT INTO commerce_touchpoint
        (tenant_id, customer_id, category, kind, source, occurred_at, properties,
         external_id, created_at)
    SELECT %s, t.customer_id, t.category, t.kind, %s, t.occurred_at, t.properties::jsonb,
           t.external_id, %s
      FROM unnest(%s::bigint[], %s::text[], %s::text[], %s::timestamptz[], %s::text[],
                  %s::text[])
           AS t(customer_id, category, kind, occurred_at, properties, external_id)
    ON CONFLICT DO NOTHING
"""


def _insert_unnest(tenant_id: int, source: str, items: list[TouchpointIn]) -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            _INSERT_UNNEST,
            [
                tenant_id,
                source,
                clock.now(),
                [i.customer_id for i in items],
                [i.category for i in items],
                [i.kind for i in items],
                [i.occurred_at for i in items],
                [json.dumps(i.properties, cls=DjangoJSONEncoder) for i in items],
                [i.external_id for i in items],
            ],
        )
