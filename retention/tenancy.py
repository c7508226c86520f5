"""Tenant scoping that fails closed.

Every tenant-owned model inherits :class:`TenantOwnedModel`. Its default manager
refuses to run a query that is not restricted to one tenant:

    Customer.objects.for_tenant(tenant).filter(...)   # fine
    Customer.objects.filter(email=...)                 # raises TenantScopeError

A query counts as scoped when it came from ``for_tenant()``, from a related
manager of an object that was itself loaded in scope (``order.lines.all()``), or
when its WHERE clause pins the ``tenant`` column (so Django's own unique checks,
which filter on constraints that lead with ``tenant``, keep working).

The escape hatch is ``Model.objects.unscoped()``; every call site says why in a
comment, and only platform-operator tools, tenant resolution and migrations use it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.db import models
from django.db.models.lookups import Exact, In
from django.db.models.sql.where import AND, WhereNode

if TYPE_CHECKING:
    from retention.models import Tenant


class TenantScopeError(RuntimeError):
    """A tenant-owned table was queried without a tenant."""


def _where_pins_tenant(where: WhereNode, base_alias: str | None) -> bool:
    if where.negated or where.connector != AND:
        return False
    for child in where.children:
        if isinstance(child, WhereNode):
            if _where_pins_tenant(child, base_alias):
                return True
            continue
        if isinstance(child, Exact | In):
            target = getattr(child.lhs, "target", None)
            alias = getattr(child.lhs, "alias", None)
            if target is not None and target.name == "tenant" and alias == base_alias:
                return True
    return False


class TenantQuerySet(models.QuerySet):
    _tenant_scoped: bool = False

    def _clone(self):
        clone = super()._clone()
        clone._tenant_scoped = self._tenant_scoped
        return clone

    def for_tenant(self, tenant: Tenant | int) -> TenantQuerySet:
        if tenant is None:
            raise TenantScopeError(f"{self.model.__name__}.objects.for_tenant(None)")
        qs = self.filter(tenant=tenant)
        qs._tenant_scoped = True
        return qs

    def unscoped(self) -> TenantQuerySet:
        """Read across tenants. Only for platform operators, tenant resolution
        and migrations; the caller must say why in a comment."""
        qs = self._chain()
        qs._tenant_scoped = True
        return qs

    def _check_scope(self) -> None:
        if self._tenant_scoped:
            return
        base_alias = next(iter(self.query.alias_map), None)
        if base_alias is not None and _where_pins_tenant(self.query.where, base_alias):
            return
        raise TenantScopeError(
            f"Query on {self.model.__name__} has no tenant: use "
            f"{self.model.__name__}.objects.for_tenant(tenant)"
        )

    # Every path that sends a query to the database goes through one of these.
    def _fetch_all(self):
        if self._result_cache is None:
            self._check_scope()
        super()._fetch_all()

    def _iterator(self, use_chunked_fetch, chunk_size):
        self._check_scope()
        return super()._iterator(use_chunked_fetch, chunk_size)

    def count(self) -> int:
        if self._result_cache is None:
            self._check_scope()
        return super().count()

    def exists(self) -> bool:
        if self._result_cache is None:
            self._check_scope()
        return super().exists()

    def aggregate(self, *args: Any, **kwargs: Any) -> dict:
        self._check_scope()
        return super().aggregate(*args, **kwargs)

    def update(self, **kwargs: Any) -> int:
        self._check_scope()
        return super().update(**kwargs)

    update.alters_data = True

    def delete(self):
        self._check_scope()
        return super().delete()

    delete.alters_data = True

    def explain(self, *, format=None, **options):
        self._check_scope()
        return super().explain(format=format, **options)


class _TenantManagerBase(models.Manager):
    def get_queryset(self) -> TenantQuerySet:
        qs = super().get_queryset()
        # A related manager (customer.orders) hangs off an instance that was
        # loaded in scope, and same-tenant foreign keys are enforced on write.
        if getattr(self, "instance", None) is not None:
            qs._tenant_scoped = True
        return qs


class TenantManager(_TenantManagerBase.from_queryset(TenantQuerySet)):
    pass


class TenantOwnedModel(models.Model):
    """Abstract base for every row that belongs to a tenant."""

    # No single-column index: every model's constraints and indexes lead with
    # tenant already, and a redundant index on the largest tables costs writes.
    tenant = models.ForeignKey(
        "retention.Tenant", on_delete=models.CASCADE, related_name="+", db_index=False
    )

    objects = TenantManager()

    class Meta:
        abstract = True

    def same_tenant(self, *others: TenantOwnedModel | None) -> bool:
        return all(o is None or o.tenant_id == self.tenant_id for o in others)
