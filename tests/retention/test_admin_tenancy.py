"""A marketer of tenant A cannot list, open, change or choose tenant B's rows."""

import pytest
from django.urls import reverse

from commerce.models import Product
from journeys.models import Journey
from retention.models import AuditEntry, Role
from tests.conftest import login_as
from tests.factories import JourneyFactory, ProductFactory, ProductFamilyFactory


@pytest.fixture
def rows(tenant, other_tenant):
    return {
        "mine": JourneyFactory(tenant=tenant, name="Alpha welcome"),
        "theirs": JourneyFactory(tenant=other_tenant, name="Bravo secret journey"),
    }


def test_changelist_shows_only_own_tenant(marketer_client, rows):
    resp = marketer_client.get(reverse("admin:journeys_journey_changelist"))
    assert resp.status_code == 200
    body = resp.content.decode()
    assert "Alpha welcome" in body
    assert "Bravo secret journey" not in body


@pytest.mark.parametrize("view", ["change", "delete", "history"])
def test_other_tenants_object_answers_404(marketer_client, rows, view):
    url = reverse(f"admin:journeys_journey_{view}", args=[rows["theirs"].pk])
    resp = marketer_client.get(url)
    assert resp.status_code == 404
    assert "Bravo secret journey" not in resp.content.decode()
    # exactly like an id that does not exist at all
    assert marketer_client.get(url.replace(str(rows["theirs"].pk), "999999")).status_code == 404


def test_post_to_other_tenants_object_changes_nothing(marketer_client, rows):
    url = reverse("admin:journeys_journey_change", args=[rows["theirs"].pk])
    marketer_client.post(url, {"name": "hijacked", "status": "active", "description": ""})
    marketer_client.post(
        reverse("admin:journeys_journey_delete", args=[rows["theirs"].pk]), {"post": "yes"}
    )
    theirs = Journey.objects.unscoped().get(pk=rows["theirs"].pk)
    assert theirs.name == "Bravo secret journey"
    assert theirs.status == "draft"


def test_bulk_delete_action_ignores_other_tenants_ids(marketer_client, rows):
    marketer_client.post(
        reverse("admin:journeys_journey_changelist"),
        {"action": "delete_selected", "_selected_action": [rows["theirs"].pk], "post": "yes"},
    )
    assert Journey.objects.unscoped().filter(pk=rows["theirs"].pk).exists()


def test_foreign_key_choices_limited_to_tenant(marketer_client, tenant, other_tenant):
    ProductFamilyFactory(tenant=tenant, name="Alpha coffee")
    theirs = ProductFamilyFactory(tenant=other_tenant, name="Bravo tea")
    resp = marketer_client.get(reverse("admin:commerce_product_add"))
    body = resp.content.decode()
    assert "Alpha coffee" in body
    assert "Bravo tea" not in body

    # Choosing B's family by id is rejected by the form.
    resp = marketer_client.post(
        reverse("admin:commerce_product_add"),
        {
            "sku": "X-1",
            "name": "Sneaky",
            "family": theirs.pk,
            "price": "1.00",
            "price_tier": "standard",
        },
    )
    assert resp.status_code == 200
    assert "Select a valid choice" in resp.content.decode()
    assert not Product.objects.unscoped().filter(sku="X-1").exists()


def test_new_row_gets_the_members_tenant(marketer_client, tenant):
    resp = marketer_client.post(
        reverse("admin:journeys_journey_add"),
        {"name": "Winback", "status": "draft", "description": ""},
    )
    assert resp.status_code == 302
    assert Journey.objects.for_tenant(tenant).get(name="Winback")


def test_superuser_sees_all_tenants_with_filter(db, rows, client, django_user_model):
    admin = django_user_model.objects.create_superuser(
        email="op@platform.example", password="pw-op-123456"
    )
    client.force_login(admin)
    resp = client.get(reverse("admin:journeys_journey_changelist"))
    body = resp.content.decode()
    assert "Alpha welcome" in body and "Bravo secret journey" in body
    resp = client.get(
        reverse("admin:journeys_journey_changelist"), {"tenant": rows["theirs"].tenant_id}
    )
    body = resp.content.decode()
    assert "Bravo secret journey" in body and "Alpha welcome" not in body


def test_person_in_two_tenants_can_switch(tenant, other_tenant, rows):
    client = login_as(tenant, Role.MARKETER, email="both@example.com")
    from retention.models import Membership

    Membership.objects.create(tenant=other_tenant, user=client.user, role=Role.VIEWER)
    body = client.get(reverse("admin:journeys_journey_changelist")).content.decode()
    assert "Alpha welcome" in body and "Bravo secret journey" not in body

    resp = client.post(reverse("tenant-switch"), {"tenant": other_tenant.pk})
    assert resp.status_code == 302
    body = client.get(reverse("admin:journeys_journey_changelist")).content.decode()
    assert "Bravo secret journey" in body and "Alpha welcome" not in body


def test_cannot_switch_to_a_tenant_without_membership(marketer_client, other_tenant, rows):
    resp = marketer_client.post(reverse("tenant-switch"), {"tenant": other_tenant.pk})
    assert resp.status_code == 404
    body = marketer_client.get(reverse("admin:journeys_journey_changelist")).content.decode()
    assert "Bravo secret journey" not in body


def test_non_member_cannot_enter_admin(db, client, other_tenant):
    from tests.factories import UserFactory

    client.force_login(UserFactory(email="nobody@example.com"))
    resp = client.get(reverse("admin:index"))
    assert resp.status_code == 302
    assert "/admin/login/" in resp.url


def test_audit_entries_of_other_tenant_hidden(marketer_client, other_tenant, tenant):
    from retention.services import audit_record

    theirs = ProductFactory(tenant=other_tenant, name="Bravo audit marker")
    entry = audit_record(tenant=other_tenant, action="create", obj=theirs)
    body = marketer_client.get(reverse("admin:retention_auditentry_changelist")).content.decode()
    assert "Bravo audit marker" not in body
    resp = marketer_client.get(reverse("admin:retention_auditentry_change", args=[entry.pk]))
    assert "Bravo audit marker" not in resp.content.decode()
    assert AuditEntry.objects.for_tenant(tenant).count() == 0
