"""Rows of the scores export (``export_scores``), riskiest first."""

from __future__ import annotations

from collections.abc import Iterator

from django.db.models import OuterRef, Subquery

from commerce.models import CustomerIdentity, IdentityKind
from scoring.models import ChurnScore

REASON_SEPARATOR = " | "
COLUMNS = (
    "customer_id", "storefront_id", "customer__email", "p_churn", "expected_orders",
    "band", "reasons", "next_action", "model_version__version", "as_of",
)  # fmt: skip


def export_rows(tenant_id: int, batch: int = 5000) -> Iterator[tuple]:
    """customer_id (the storefront's id as imported: the first storefront
    identity, else the platform id), email, p_churn, expected_orders, risk band,
    reasons, next action, model version, as-of time; ordered by p_churn
    descending, then platform id."""
    storefront_id = (
        CustomerIdentity.objects.for_tenant(tenant_id)
        .filter(customer_id=OuterRef("customer_id"), kind=IdentityKind.EXTERNAL)
        .order_by("pk")
        .values("value")[:1]
    )
    scores = (
        ChurnScore.objects.for_tenant(tenant_id)
        .annotate(storefront_id=Subquery(storefront_id))
        .order_by("-p_churn", "customer_id")
        .values_list(*COLUMNS)
    )
    for (
        customer_id, storefront, email, p, expected, band, reasons, action, version, as_of,
    ) in scores.iterator(chunk_size=batch):  # fmt: skip
        yield (
            storefront or str(customer_id),
            email,
            f"{p:.4f}",
            f"{expected:.3f}",
            band,
            REASON_SEPARATOR.join(reasons or []),
            action,
            version if version is not None else "",
            as_of.isoformat(),
        )
