"""The store settings page: owners edit the business hours (the one source the
callback SLA reads), with the days as Monday…Sunday checkboxes stored as ISO
weekday numbers, clear errors for hours that cannot work, and an audit entry."""

from __future__ import annotations

from datetime import time

import pytest

from retention.models import AuditEntry, Role, Tenant
from tests.conftest import login_as
from tests.retention.tenant_forms import tenant_settings_post, tenant_settings_url

DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


def _hours(tenant: Tenant) -> tuple:
    tenant.refresh_from_db()
    return tenant.business_hours_start, tenant.business_hours_end, tenant.business_days


def test_the_business_days_are_monday_to_sunday_checkboxes_with_iso_values(tenant, owner_client):
    Tenant.objects.filter(pk=tenant.pk).update(business_days=[1, 3, 7])

    page = owner_client.get(tenant_settings_url(tenant)).content.decode()

    for n, name in enumerate(DAYS, start=1):
        assert f'type="checkbox" name="business_days" value="{n}"' in page
        assert f"{name}</label>" in page
    checked = [
        n for n in range(1, 8) if f'value="{n}" id="id_business_days_{n - 1}" checked' in page
    ]
    assert checked == [1, 3, 7]
    assert "Business hours" in page


def test_owners_save_the_hours_and_days_sorted_as_iso_numbers_and_audited(tenant, owner_client):
    response = owner_client.post(
        tenant_settings_url(tenant),
        tenant_settings_post(
            tenant,
            business_hours_start="08:00",
            business_hours_end="12:30",
            business_days=["7", "3", "1"],
        ),
    )

    assert response.status_code == 302
    assert _hours(tenant) == (time(8), time(12, 30), [1, 3, 7])
    entry = AuditEntry.objects.for_tenant(tenant).get(object_type="retention.tenant")
    assert (entry.action, entry.actor_user_id) == ("update", owner_client.user.pk)
    assert entry.changes["business_days"] == [[1, 2, 3, 4, 5], [1, 3, 7]]
    assert entry.changes["business_hours_end"] == ["17:00:00", "12:30:00"]


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        ({"business_days": []}, "business_days", "Choose at least one business day."),
        (
            {"business_hours_start": "17:00", "business_hours_end": "09:00"},
            "business_hours_end",
            "Must be after the start of business.",
        ),
        (
            {"business_hours_start": "09:00", "business_hours_end": "09:00"},
            "business_hours_end",
            "Must be after the start of business.",
        ),
        ({"business_days": ["0", "8"]}, "business_days", "Select a valid choice."),
    ],
)
def test_hours_that_cannot_work_are_refused_with_a_clear_error(
    tenant, owner_client, change, field, message
):
    response = owner_client.post(
        tenant_settings_url(tenant), tenant_settings_post(tenant, **change)
    )

    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert list(errors) == [field]
    assert message in errors[field][0]
    assert _hours(tenant) == (time(9), time(17), [1, 2, 3, 4, 5])
    assert not AuditEntry.objects.for_tenant(tenant).filter(object_type="retention.tenant")


def test_no_days_and_end_before_start_are_both_reported_at_once(tenant, owner_client):
    response = owner_client.post(
        tenant_settings_url(tenant),
        tenant_settings_post(
            tenant, business_days=[], business_hours_start="17:00", business_hours_end="09:00"
        ),
    )

    errors = response.context["adminform"].form.errors
    assert errors == {
        "business_days": ["Choose at least one business day."],
        "business_hours_end": ["Must be after the start of business."],
    }


@pytest.mark.parametrize("role", [Role.MARKETER, Role.AGENT, Role.VIEWER])
def test_only_owners_change_the_business_hours(tenant, role):
    client = login_as(tenant, role)

    page = client.get(tenant_settings_url(tenant))
    response = client.post(
        tenant_settings_url(tenant), tenant_settings_post(tenant, business_days=["6", "7"])
    )

    assert page.status_code == 200
    assert 'name="business_days"' not in page.content.decode()  # shown read-only
    assert response.status_code == 403
    assert _hours(tenant) == (time(9), time(17), [1, 2, 3, 4, 5])


def test_another_stores_hours_cannot_be_changed(tenant, other_tenant, owner_client):
    response = owner_client.post(
        tenant_settings_url(other_tenant), tenant_settings_post(other_tenant, business_days=["6"])
    )

    # Outside this admin's queryset: Django's "does not exist" redirect.
    assert (response.status_code, response["Location"]) == (302, "/admin/")
    assert _hours(other_tenant) == (time(9), time(17), [1, 2, 3, 4, 5])


def test_stores_are_not_added_in_the_admin_but_with_create_tenant(admin_client):
    # tenant_create makes the secret, settings and shipped journeys a bare row lacks.
    assert admin_client.get("/admin/retention/tenant/add/").status_code == 403
