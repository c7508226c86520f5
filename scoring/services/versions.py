"""Model versions: making one the store's active version (a roll back, or
forward again). Scores made by the version active before keep their version
until the next scoring run rescores the store with the new one."""

from __future__ import annotations

import logging

from django.db import transaction

from retention.errors import InvalidInput, NotFound
from retention.models import AuditAction, User
from retention.services import audit_record
from scoring.models import ModelVersion

logger = logging.getLogger(__name__)


def _version_pk(value: object) -> int:
    try:
        pk = int(str(value))
    except (TypeError, ValueError):
        pk = 0
    if not 0 < pk < 2**63:
        raise InvalidInput(
            "Give the model version's id as a whole number.",
            fields={"version_id": "Not a valid id."},
        )
    return pk


def version_activate(*, tenant_id: int, version_id: int, actor: User | None = None) -> ModelVersion:
    """Make this version the store's only active one and return it (the
    artifact deferred). Activating the active version changes nothing.

    Every version of the store is locked first, in id order, so two activations
    at once run one after the other (the second sees the first's result) and
    the one-active constraint never fires. Raises NotFound for a missing id or
    another store's, InvalidInput for an id that is not a number."""
    pk = _version_pk(version_id)
    versions = ModelVersion.objects.for_tenant(tenant_id)
    with transaction.atomic():
        locked = dict(versions.select_for_update().order_by("pk").values_list("pk", "is_active"))
        if pk not in locked:
            raise NotFound("No such model version.", fields={"version_id": "Not found."})
        changed = not locked[pk]
        before = [other for other, active in locked.items() if active and other != pk]
        if changed:
            # Deactivate first: the partial unique index allows one active row.
            versions.filter(pk__in=before).update(is_active=False)
            versions.filter(pk=pk).update(is_active=True)
        version = versions.defer("artifact").get(pk=pk)
        if changed:
            audit_record(
                tenant=tenant_id,
                action=AuditAction.ACTION,
                obj=version,
                changes={"event": "model_version.activated", "deactivated": before},
                user=actor,
            )
    if changed:
        logger.info(
            "scoring.version_activated tenant_id=%s version_id=%s version=%s deactivated=%s",
            tenant_id,
            version.pk,
            version.version,
            before,
        )
    return version
