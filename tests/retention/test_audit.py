"""The audit log records who created, changed or deleted what."""

from django.urls import reverse

from journeys.models import Journey
from retention.models import AuditEntry
from tests.factories import JourneyFactory


def test_admin_change_is_audited_with_changed_fields(marketer_client, tenant):
    journey = JourneyFactory(tenant=tenant, name="Welcome", status="draft")
    resp = marketer_client.post(
        reverse("admin:journeys_journey_change", args=[journey.pk]),
        {"name": "Welcome v2", "status": "active", "description": ""},
    )
    assert resp.status_code == 302
    entry = AuditEntry.objects.for_tenant(tenant).get()
    assert entry.action == "update"
    assert entry.actor_user == marketer_client.user
    assert entry.object_type == "journeys.journey"
    assert entry.object_id == str(journey.pk)
    # Status moves only through the confirmed activate/pause/archive actions.
    assert entry.changes == {"name": ["Welcome", "Welcome v2"]}


def test_admin_create_and_delete_are_audited(marketer_client, tenant):
    marketer_client.post(
        reverse("admin:journeys_journey_add"),
        {"name": "Winback", "status": "draft", "description": ""},
    )
    journey = Journey.objects.for_tenant(tenant).get(name="Winback")
    marketer_client.post(
        reverse("admin:journeys_journey_delete", args=[journey.pk]), {"post": "yes"}
    )
    actions = list(
        AuditEntry.objects.for_tenant(tenant).order_by("id").values_list("action", "object_repr")
    )
    assert actions == [("create", "Winback"), ("delete", "Winback")]


def test_audit_log_is_viewable_in_admin(marketer_client, tenant):
    JourneyFactory(tenant=tenant, name="Audited journey")
    marketer_client.post(
        reverse("admin:journeys_journey_add"),
        {"name": "Seen in log", "status": "draft", "description": ""},
    )
    body = marketer_client.get(reverse("admin:retention_auditentry_changelist")).content.decode()
    assert "Seen in log" in body
    assert marketer_client.user.email in body


def test_audit_masks_secret_fields():
    from retention.services import audit_changes

    assert audit_changes({"secret": "a", "name": "x"}, {"secret": "b", "name": "y"}) == {
        "name": ["x", "y"],
        "secret": ["***", "***"],
    }
