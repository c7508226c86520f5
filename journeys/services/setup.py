"""Per-tenant setup: install the shipped journeys (``journeys.defaults``) and the
templates they send, once per journey ``key``.

Runs for every new tenant (a ``TENANT_CREATED_HOOKS`` entry, so for every test's
tenant fixture too) and for existing tenants through ``install_journeys``. It
must stay cheap: the shipped definitions are fixed, so instead of validating
each foreign key row by row as ``journey_create`` does, everything is written
with one ``bulk_create`` per table (about twenty queries in all, against some
five hundred through ``template_save`` and ``journey_create``). That the rows
are exactly what ``journey_create`` would have made is checked by
``tests/journeys/test_defaults.py``.

A journey whose key the tenant has already is left alone, edited or archived;
a shipped template whose name is taken by a template of the same channel and
category is reused (a marketer's edits survive a re-install).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from django.db import transaction
from django.db.models import Q

from journeys.defaults import JOURNEYS, TEMPLATES, ShippedJourney, ShippedTemplate
from journeys.models import Journey, JourneyStatus, JourneyStep, JourneyVersion
from messaging.models import Template
from messaging.services.templates import template_validate
from retention import clock
from retention.models import Tenant

logger = logging.getLogger(__name__)

SEGMENT_FIELDS = ("segment", "entry_segment", "exit_segment")
TEMPLATE_FIELDS = ("email_template", "sms_template", "in_app_template")
# Appended to a shipped name a store already uses for something else.
TAKEN_SUFFIX = " (shipped)"


def journeys_install_defaults(
    *, tenant: Tenant, journeys: Iterable[ShippedJourney] = JOURNEYS
) -> int:
    """Install the shipped journeys the tenant does not have yet (by key), active,
    with their templates. Returns how many journeys were installed."""
    from journeys.services.triggers import cursors_ensure

    journeys = list(journeys)
    now = clock.now()
    with transaction.atomic():
        # Two installs for one tenant (a command and a hook) take turns.
        list(Tenant.objects.select_for_update().filter(pk=tenant.pk).values_list("pk"))
        existing = Journey.objects.for_tenant(tenant).filter(
            Q(key__in=[j.key for j in journeys]) | Q(name__in=[j.name for j in journeys])
        )
        keys, names = set(), set()
        for key, name in existing.values_list("key", "name"):
            keys.add(key)
            names.add(name)
        todo = [j for j in journeys if j.key not in keys]
        if not todo:
            return 0
        templates = _templates_ensure(tenant, [k for j in todo for k in j.template_keys()], now)
        tiers = _tiers(tenant) if any(_tier_fields(j) for j in todo) else {}

        made = Journey.objects.bulk_create(
            [
                Journey(
                    tenant=tenant,
                    key=j.key,
                    name=j.name if j.name not in names else f"{j.name}{TAKEN_SUFFIX}",
                    description=j.description,
                    status=JourneyStatus.ACTIVE,
                    created_at=now,
                    updated_at=now,
                )
                for j in todo
            ]
        )
        versions = JourneyVersion.objects.bulk_create(
            [
                JourneyVersion(
                    tenant=tenant,
                    journey=journey,
                    number=1,
                    created_at=now,
                    activated_at=now,
                    **_resolve(spec.version, SEGMENT_FIELDS, tiers),
                )
                for journey, spec in zip(made, todo, strict=True)
            ]
        )
        for journey, version in zip(made, versions, strict=True):
            journey.current_version = version
        Journey.objects.for_tenant(tenant).bulk_update(made, ["current_version"])
        JourneyStep.objects.bulk_create(
            [
                JourneyStep(
                    tenant=tenant,
                    version=version,
                    position=position,
                    **_resolve(step, TEMPLATE_FIELDS, templates),
                )
                for version, spec in zip(versions, todo, strict=True)
                for position, step in enumerate(spec.steps, start=1)
            ]
        )
        # Active journeys read their trigger feeds from here on, not from the start.
        cursors_ensure(tenant_id=tenant.pk)
    logger.info(
        "journeys.defaults_installed tenant_id=%s journeys=%s", tenant.pk, [j.key for j in todo]
    )
    return len(todo)


def on_tenant_created(tenant: Tenant) -> None:
    """TENANT_CREATED_HOOKS: every new store starts with the shipped journeys."""
    journeys_install_defaults(tenant=tenant)


def _tier_fields(journey: ShippedJourney) -> list[str]:
    return [journey.version[f] for f in SEGMENT_FIELDS if journey.version.get(f)]


def _tiers(tenant: Tenant) -> dict:
    """The tenant's tier segments by tier. Segments' own tenant hook makes them;
    asking here too means the order of the hooks does not matter."""
    from segments.services.setup import tier_segments

    return tier_segments(tenant)


def _resolve(spec: dict, fields: tuple[str, ...], rows: dict) -> dict:
    """The spec with the keys in ``fields`` swapped for the tenant's rows."""
    return {k: rows[v] if k in fields and v else v for k, v in spec.items()}


def _templates_ensure(tenant: Tenant, keys: list[str], now) -> dict[str, Template]:
    """The tenant's templates for these shipped keys, creating the missing ones
    in one statement. Each is checked as ``template_save`` checks it (the check
    is cached per source, so after the first tenant it costs nothing)."""
    wanted = [TEMPLATES[k] for k in dict.fromkeys(keys)]
    found = {
        t.name: t
        for t in Template.objects.for_tenant(tenant).filter(
            name__in=[s.name for s in wanted] + [s.name + TAKEN_SUFFIX for s in wanted]
        )
    }
    out: dict[str, Template] = {}
    new: list[tuple[ShippedTemplate, Template]] = []
    for spec in wanted:
        for name in (spec.name, spec.name + TAKEN_SUFFIX):
            same = found.get(name)
            if same is None:
                template_validate(
                    channel=spec.channel, subject=spec.subject, html=spec.html, text=spec.text
                )
                row = Template(
                    tenant=tenant, created_at=now, updated_at=now, **{**spec.fields(), "name": name}
                )
                new.append((spec, row))
                out[spec.key] = row
                break
            if same.channel == spec.channel and same.category == spec.category:
                out[spec.key] = same
                break
        else:
            raise ValueError(f"shipped template {spec.name!r}: both names are taken")
    Template.objects.bulk_create([row for _, row in new])
    return out
