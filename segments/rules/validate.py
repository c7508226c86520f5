"""Normalising and validating conditions, and describing them for people."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.db.models import Q

from commerce.models import Channel, ConsentStatus, ProductFamily
from retention.errors import InvalidInput
from segments.models import Match
from segments.rules.registry import (
    COMMON_TOUCHPOINT_KINDS,
    MAX_CONDITIONS,
    OP_LABELS,
    REGISTRY,
    ConditionError,
    ConditionField,
)

# --- resolvers (database checks when a marketer saves or previews) -------------------


def _resolve_families(tenant_id: int, cond: dict) -> dict:
    """Family ids or slugs of this tenant become ids; anything else is an error."""
    value = cond["value"]
    refs = value if isinstance(value, list) else [value]
    maybe_ids = {int(r) for r in refs if isinstance(r, int) or r.isdigit()}
    slugs = {r for r in refs if isinstance(r, str)}
    found = ProductFamily.objects.for_tenant(tenant_id).filter(
        Q(pk__in=maybe_ids) | Q(slug__in=slugs)
    )
    by_slug = dict(found.values_list("slug", "pk"))
    ids = set(by_slug.values())
    resolved = []
    for ref in refs:
        if isinstance(ref, str) and ref in by_slug:
            resolved.append(by_slug[ref])
        elif (isinstance(ref, int) or ref.isdigit()) and int(ref) in ids:
            resolved.append(int(ref))
        else:
            raise ConditionError(f"Unknown product family '{ref}'.")
    resolved = list(dict.fromkeys(resolved))
    return {**cond, "value": resolved if isinstance(value, list) else resolved[0]}


def family_choices(tenant_id: int) -> list[tuple[int, str]]:
    return list(
        ProductFamily.objects.for_tenant(tenant_id).order_by("name").values_list("pk", "name")
    )


# --- validation -----------------------------------------------------------------------------


def _normalise_one(raw: Any) -> dict:
    """Check one condition's shape and value without the database."""
    if not isinstance(raw, dict):
        raise ConditionError('Give an object with "field", "op" and "value".', "")
    name = raw.get("field")
    spec = REGISTRY.get(name) if isinstance(name, str) else None
    if name in (None, ""):
        raise ConditionError("Choose a field.", "field")
    if spec is None:
        raise ConditionError(
            f"Unknown field {name!r}; choose one of {', '.join(REGISTRY)}.", "field"
        )
    op = raw.get("op")
    if op in (None, "") and len(spec.ops) == 1:
        op = spec.ops[0]
    if op not in spec.ops:
        raise ConditionError(
            f"Operator {op!r} does not apply to {name}; use one of {', '.join(spec.ops)}.", "op"
        )
    for key in raw:
        if key not in {"field", "op", "value", *spec.extras}:
            raise ConditionError(f"Unknown key {key!r} for {name}.", key)
    if raw.get("value") is None:
        raise ConditionError("A value is required.")
    cond = {"field": name, "op": op, "value": spec.parse(op, raw["value"])}
    for key, parse_extra in spec.extras.items():
        extra = parse_extra(raw.get(key))
        if extra is not None:
            cond[key] = extra
    return cond


def _path(index: int, key: str) -> str:
    return f"conditions[{index}]" + (f".{key}" if key else "")


def _each(conditions: Any, check: Callable[[int, Any], dict]) -> list[dict]:
    if not isinstance(conditions, list | tuple):
        raise InvalidInput(
            "Conditions must be a list of {field, op, value} objects.",
            fields={"conditions": "Give a list of conditions."},
        )
    if len(conditions) > MAX_CONDITIONS:
        raise InvalidInput(
            f"A segment has at most {MAX_CONDITIONS} conditions.",
            fields={"conditions": f"At most {MAX_CONDITIONS} conditions."},
        )
    normalised, errors = [], {}
    for index, raw in enumerate(conditions):
        try:
            normalised.append(check(index, raw))
        except ConditionError as exc:
            errors[_path(index, exc.key)] = exc.message
    if errors:
        first = next(iter(errors.items()))
        raise InvalidInput(f"Check the segment's conditions: {first[0]}: {first[1]}", fields=errors)
    return normalised


def validate_conditions(tenant: Any, conditions: Any) -> list[dict]:
    """The normalised conditions, or InvalidInput with one error per bad part,
    keyed like ``conditions[1].value``. Product families are checked against
    the tenant and stored by id."""
    tenant_id = getattr(tenant, "pk", tenant)

    def check(index: int, raw: Any) -> dict:
        cond = _normalise_one(raw)
        resolve = REGISTRY[cond["field"]].resolve
        return resolve(tenant_id, cond) if resolve else cond

    return _each(conditions, check)


def validate_match(match: Any) -> str:
    if match not in Match.values:
        raise InvalidInput(
            f"Match must be one of {', '.join(Match.values)}.",
            fields={"match": "Choose all or any."},
        )
    return match


# --- for people: the builder's catalogue and plain-language definitions -------------


def field_catalogue(tenant: Any) -> list[dict]:
    """Every field with its operators, value type and this tenant's choices, for
    the admin's condition builder."""
    tenant_id = getattr(tenant, "pk", tenant)
    catalogue = []
    for spec in REGISTRY.values():
        entry = {
            "name": spec.name,
            "label": spec.label,
            "ops": [[op, OP_LABELS[op]] for op in spec.ops],
            "type": spec.value_type,
            "choices": [[value, str(label)] for value, label in spec.choices_for(tenant_id)],
            "extras": list(spec.extras),
            "help": spec.help_text,
        }
        if spec.value_type == "consent":
            entry["channels"] = [[v, str(label)] for v, label in Channel.choices]
            entry["statuses"] = [[v, str(label)] for v, label in ConsentStatus.choices]
        if spec.value_type == "touchpoint":
            entry["kinds"] = list(COMMON_TOUCHPOINT_KINDS)
        catalogue.append(entry)
    return catalogue


def _value_text(spec: ConditionField, cond: dict, labels: dict) -> str:
    value = cond["value"]
    if spec.value_type == "consent":
        return f"{value['channel']} {value['status'].replace('_', ' ')}"
    if spec.value_type == "touchpoint":
        return f"{value['min_count']} x {value['kind']} in the last {value['within_days']} days"
    if cond["op"] == "between":
        return f"{value[0]} and {value[1]}"
    values = value if isinstance(value, list) else [value]
    return ", ".join(str(labels.get(v, v)) for v in values)


def describe_conditions(tenant: Any, match: str, conditions: Any) -> list[str]:
    """Plain-language lines for a stored rule, e.g. "Days since last order at
    least 30", for read-only screens. Unreadable conditions are shown raw."""
    tenant_id = getattr(tenant, "pk", tenant)
    families = dict(family_choices(tenant_id)) if conditions else {}
    lines = []
    for raw in conditions if isinstance(conditions, list) else []:
        try:
            cond = _normalise_one(raw)
        except ConditionError:
            lines.append(f"(unreadable condition: {raw!r})")
            continue
        spec = REGISTRY[cond["field"]]
        labels = families if spec.value_type == "family" else dict(spec.choices_for(tenant_id))
        line = f"{spec.label} {OP_LABELS[cond['op']]} {_value_text(spec, cond, labels)}"
        if cond.get("within_days"):
            line += f" in the last {cond['within_days']} days"
        lines.append(line)
    return lines
