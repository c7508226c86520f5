"""Segment admin screens: the condition builder and live count, saving through
the service, tier segments read-only, roles, settings, history and tenancy."""

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone

from retention import clock
from retention.models import AuditEntry, Role
from segments.models import (
    CustomerRFM,
    Segment,
    SegmentKind,
    SegmentMembership,
    SegmentSettings,
    SegmentTransition,
    Tier,
)
from segments.services.memberships import segment_refresh
from segments.services.setup import tier_segments
from tests.conftest import login_as
from tests.factories import CustomerFactory, ProductFamilyFactory

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
REPEAT = [{"field": "orders_total", "op": "gte", "value": 2}]


@pytest.fixture(autouse=True)
def _fixed_clock():
    clock.set_now(NOW)


pytestmark = pytest.mark.usefixtures("eager_tasks")


def buyer(tenant, orders, email=None, **extra):
    customer = CustomerFactory(tenant=tenant, **({"email": email} if email else {}), **extra)
    CustomerRFM.objects.create(
        tenant=tenant,
        customer=customer,
        first_order_at=NOW - timedelta(days=90),
        last_order_at=NOW - timedelta(days=5),
        orders_total=orders,
        frequency=orders,
        monetary=Decimal("40.00") * orders,
        r_score=3,
        f_score=3,
        m_score=3,
        tier=Tier.ONE_TIME if orders < 2 else Tier.MID_VALUE_REPEAT,
    )
    return customer


@pytest.fixture
def shop(tenant, other_tenant):
    """Two repeat buyers and a one-time buyer here; a repeat buyer elsewhere."""
    return {
        "ann": buyer(tenant, 3, "ann@alpha.example", first_name="Ann"),
        "bob": buyer(tenant, 2, "bob@alpha.example"),
        "cid": buyer(tenant, 1, "cid@alpha.example"),
        "eve": buyer(other_tenant, 5, "eve@bravo.example"),
    }


@pytest.fixture
def repeat_segment(tenant):
    return Segment.objects.create(
        tenant=tenant, name="Repeat buyers", slug="repeat", conditions=REPEAT
    )


@pytest.fixture
def theirs(other_tenant):
    return Segment.objects.create(
        tenant=other_tenant, name="Bravo secret segment", slug="secret", conditions=REPEAT
    )


def url(name, *args, **query):
    base = reverse(f"admin:segments_{name}", args=args)
    return base + ("?" + "&".join(f"{k}={v}" for k, v in query.items()) if query else "")


def form_data(**overrides):
    data = {
        "name": "Repeat buyers",
        "slug": "repeat-buyers",
        "description": "",
        "status": "active",
        "match": "all",
        "conditions": json.dumps(REPEAT),
        "_save": "Save",
    }
    return {**data, **overrides}


def preview(client, conditions, match="all", segment=None):
    params = {"match": match, "conditions": json.dumps(conditions)}
    target = url("segment_preview", segment.pk) if segment else url("segment_preview_add")
    return client.get(target, params)


# --- list and pages ----------------------------------------------------------------------


def test_changelist_shows_this_stores_segments_with_counts(
    marketer_client, repeat_segment, theirs, shop
):
    segment_refresh(repeat_segment)
    resp = marketer_client.get(url("segment_changelist"))
    assert resp.status_code == 200
    body = resp.content.decode()
    assert "Repeat buyers" in body
    assert "High-value repeat" in body  # the tier segments come with the store
    assert "Bravo secret segment" not in body
    assert 'class="field-member_count">2<' in body


def test_add_page_offers_the_builder_with_this_stores_families(marketer_client, other_tenant):
    ProductFamilyFactory(tenant=marketer_client.user.memberships.get().tenant, name="Coffee")
    ProductFamilyFactory(tenant=other_tenant, name="Secret tea")
    resp = marketer_client.get(url("segment_add"))
    assert resp.status_code == 200
    body = resp.content.decode()
    assert 'class="segment-builder"' in body
    assert "segments/condition_builder.js" in body
    assert 'name="conditions"' in body  # the JSON fallback without JavaScript
    assert 'name="_preview"' in body
    catalogue = resp.context["adminform"].form.fields["conditions"].widget.catalogue
    families = next(f for f in catalogue if f["name"] == "family_bought")["choices"]
    assert [label for _, label in families] == ["Coffee"]
    assert "Secret tea" not in body


# --- saving through the service ------------------------------------------------------------


def test_marketer_creates_a_rule_segment_and_it_fills(
    marketer_client, tenant, shop, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        resp = marketer_client.post(url("segment_add"), form_data())
    assert resp.status_code == 302
    segment = Segment.objects.for_tenant(tenant).get(slug="repeat-buyers")
    assert (segment.kind, segment.conditions) == (SegmentKind.RULE, REPEAT)
    members = SegmentMembership.objects.for_tenant(tenant).filter(segment=segment)
    assert set(members.values_list("customer_id", flat=True)) == {shop["ann"].pk, shop["bob"].pk}
    assert segment.member_count == 2
    audits = AuditEntry.objects.for_tenant(tenant).filter(object_id=str(segment.pk))
    assert list(audits.values_list("action", "actor_user")) == [("create", marketer_client.user.pk)]


def test_a_slug_is_made_from_the_name_when_left_empty(marketer_client, tenant):
    resp = marketer_client.post(url("segment_add"), form_data(name="Big spenders", slug=""))
    assert resp.status_code == 302
    assert Segment.objects.for_tenant(tenant).filter(slug="big-spenders").exists()


def test_bad_conditions_are_shown_on_the_form_and_nothing_is_saved(marketer_client, tenant):
    bad = [*REPEAT, {"field": "family_bought", "op": "eq", "value": "x"}]
    resp = marketer_client.post(url("segment_add"), form_data(conditions=json.dumps(bad)))
    assert resp.status_code == 200
    form = resp.context["adminform"].form
    assert form.errors["conditions"] == ["Condition 2 (value): Unknown product family 'x'."]
    assert form.fields["conditions"].widget.condition_errors == {
        "conditions[1].value": "Unknown product family 'x'."
    }
    assert "Unknown product family" in resp.content.decode()
    assert not Segment.objects.for_tenant(tenant).filter(kind="rule").exists()


def test_one_forms_condition_errors_never_show_on_the_next(marketer_client, other_tenant):
    bad = [{"field": "family_bought", "op": "eq", "value": "secret-family"}]
    marketer_client.post(url("segment_add"), form_data(conditions=json.dumps(bad)))
    # Someone else (here: another store's marketer) opens a fresh form.
    page = login_as(other_tenant, "marketer").get(url("segment_add"))
    assert page.context["adminform"].form.fields["conditions"].widget.condition_errors == {}
    assert "secret-family" not in page.content.decode()


def test_invalid_json_is_a_form_error(marketer_client, tenant):
    resp = marketer_client.post(url("segment_add"), form_data(conditions="[{"))
    assert resp.status_code == 200
    assert "conditions" in resp.context["adminform"].form.errors


def test_duplicate_slug_is_a_field_error(marketer_client, repeat_segment):
    resp = marketer_client.post(url("segment_add"), form_data(slug="repeat"))
    assert resp.status_code == 200
    assert resp.context["adminform"].form.errors["slug"] == [
        "A segment with the slug 'repeat' already exists in this store."
    ]


def test_change_refreshes_when_the_rule_changes(
    marketer_client, tenant, repeat_segment, shop, django_capture_on_commit_callbacks
):
    segment_refresh(repeat_segment)
    one_time = [{"field": "orders_total", "op": "eq", "value": 1}]
    with django_capture_on_commit_callbacks(execute=True):
        resp = marketer_client.post(
            url("segment_change", repeat_segment.pk),
            form_data(name="One-timers", slug="repeat", conditions=json.dumps(one_time)),
        )
    assert resp.status_code == 302
    members = SegmentMembership.objects.for_tenant(tenant).filter(segment=repeat_segment)
    assert list(members.values_list("customer_id", flat=True)) == [shop["cid"].pk]
    kinds = SegmentTransition.objects.for_tenant(tenant).filter(segment=repeat_segment)
    assert sorted(kinds.values_list("kind", flat=True)) == ["entered"] * 3 + ["left"] * 2


# --- the live count -------------------------------------------------------------------------


def test_preview_endpoint_counts_and_samples(marketer_client, shop):
    resp = preview(marketer_client, REPEAT)
    assert resp.status_code == 200
    body = resp.json()
    assert body["count"] == 2
    assert [m["email"] for m in body["sample"]] == ["bob@alpha.example", "ann@alpha.example"]
    assert body["sample"][1]["name"] == "Ann"
    assert body["sample"][1]["url"] == reverse(
        "admin:commerce_customer_change", args=[shop["ann"].pk]
    )


def test_preview_endpoint_reports_errors_by_condition(marketer_client, shop):
    resp = preview(marketer_client, [{"field": "r_score", "op": "gte", "value": 9}])
    assert resp.status_code == 422
    assert resp.json()["error"]["fields"] == {
        "conditions[0].value": "Enter a whole number from 1 to 5."
    }
    resp = marketer_client.get(url("segment_preview_add"), {"conditions": "{nope"})
    assert resp.status_code == 422
    assert resp.json()["error"]["fields"] == {"conditions": "Not JSON."}


def test_preview_of_a_segment_counts_in_its_own_store(marketer_client, repeat_segment, shop):
    resp = preview(
        marketer_client,
        [{"field": "orders_total", "op": "gte", "value": 1}],
        segment=repeat_segment,
    )
    assert resp.json()["count"] == 3  # eve, in the other store, is never counted


def test_preview_button_counts_without_saving(marketer_client, tenant, shop):
    resp = marketer_client.post(url("segment_add"), {**form_data(), "_preview": "1"})
    assert resp.status_code == 200
    body = resp.content.decode()
    assert "<strong>2</strong> customers match now." in body
    assert "ann@alpha.example" in body and "cid@alpha.example" not in body
    assert "Please correct" not in body
    assert not Segment.objects.for_tenant(tenant).filter(kind="rule").exists()


def test_change_page_shows_the_stored_rules_count(marketer_client, repeat_segment, shop):
    resp = marketer_client.get(url("segment_change", repeat_segment.pk))
    assert resp.status_code == 200
    body = resp.content.decode()
    assert "<strong>2</strong> customers match now." in body
    assert url("segment_preview", repeat_segment.pk) in body


# --- tier segments --------------------------------------------------------------------------


def test_tier_segments_are_read_only_with_their_definition(marketer_client, tenant, shop):
    tier = tier_segments(tenant)[Tier.ONE_TIME]
    page = marketer_client.get(url("segment_change", tier.pk))
    assert page.status_code == 200
    body = page.content.decode()
    assert 'name="_save"' not in body
    assert "fewer than 2 counted orders in the last 365 days" in body
    assert "<strong>1</strong> customer matches now." in body
    assert 'name="_preview"' not in body

    assert marketer_client.post(url("segment_change", tier.pk), form_data()).status_code == 403
    assert marketer_client.post(url("segment_delete", tier.pk), {"post": "yes"}).status_code == 403
    tier.refresh_from_db()
    assert tier.name == "One-time"


def test_bulk_delete_cannot_take_a_tier_segment(marketer_client, tenant, repeat_segment):
    tier = tier_segments(tenant)[Tier.ONE_TIME]
    resp = marketer_client.post(
        url("segment_changelist"),
        {
            "action": "delete_selected",
            "_selected_action": [tier.pk, repeat_segment.pk],
            "post": "yes",
        },
    )
    assert resp.status_code == 403
    assert (
        Segment.objects.for_tenant(tenant).filter(pk__in=[tier.pk, repeat_segment.pk]).count() == 2
    )


def test_deleting_a_rule_segment_sums_up_its_members(marketer_client, tenant, repeat_segment, shop):
    segment_refresh(repeat_segment)
    page = marketer_client.get(url("segment_delete", repeat_segment.pk))
    assert page.status_code == 200
    assert list(page.context["model_count"]) == [
        ("segments", 1),
        ("memberships", 2),
        ("entries and exits", 2),
    ]
    resp = marketer_client.post(url("segment_delete", repeat_segment.pk), {"post": "yes"})
    assert resp.status_code == 302
    assert not Segment.objects.for_tenant(tenant).filter(pk=repeat_segment.pk).exists()
    assert AuditEntry.objects.for_tenant(tenant).filter(action="delete").count() == 1


# --- refresh action -------------------------------------------------------------------------


def test_refresh_now_action(
    marketer_client, tenant, repeat_segment, shop, django_capture_on_commit_callbacks
):
    tier = tier_segments(tenant)[Tier.ONE_TIME]
    with django_capture_on_commit_callbacks(execute=True):
        resp = marketer_client.post(
            url("segment_changelist"),
            {"action": "refresh_now", "_selected_action": [repeat_segment.pk, tier.pk]},
            follow=True,
        )
    messages = [str(m) for m in resp.context["messages"]]
    assert messages == [
        "Refreshing 1 segment(s); counts update when done. "
        "1 tier segment(s) follow the RFM engine and were skipped."
    ]
    repeat_segment.refresh_from_db()
    assert repeat_segment.member_count == 2


# --- roles ------------------------------------------------------------------------------------


@pytest.mark.parametrize("role", [Role.VIEWER, Role.AGENT])
def test_viewers_and_agents_read_but_do_not_change(tenant, repeat_segment, shop, role):
    client = login_as(tenant, role)
    assert client.get(url("segment_changelist")).status_code == 200
    page = client.get(url("segment_change", repeat_segment.pk))
    assert page.status_code == 200
    body = page.content.decode()
    assert 'name="_save"' not in body and 'name="_preview"' not in body
    assert "Orders (all time) at least 2" in body  # the definition, in words
    assert "<strong>2</strong> customers match now." in body

    assert client.get(url("segment_add")).status_code == 403
    resp = client.post(url("segment_change", repeat_segment.pk), form_data(name="Hijacked"))
    assert resp.status_code == 403
    assert client.post(url("segment_delete", repeat_segment.pk), {"post": "yes"}).status_code == 403
    assert preview(client, REPEAT).status_code == 403
    assert preview(client, REPEAT, segment=repeat_segment).status_code == 200
    resp = client.post(
        url("segment_changelist"),
        {"action": "refresh_now", "_selected_action": [repeat_segment.pk]},
    )
    assert not SegmentMembership.objects.for_tenant(tenant).exists()
    repeat_segment.refresh_from_db()
    assert repeat_segment.name == "Repeat buyers"


def test_owner_edits_segments(owner_client, tenant, repeat_segment):
    resp = owner_client.post(
        url("segment_change", repeat_segment.pk), form_data(name="Loyal", slug="repeat")
    )
    assert resp.status_code == 302
    repeat_segment.refresh_from_db()
    assert repeat_segment.name == "Loyal"


# --- tenancy -----------------------------------------------------------------------------------


@pytest.mark.parametrize("view", ["change", "delete", "history", "preview"])
def test_another_stores_segment_answers_404(marketer_client, theirs, view):
    resp = marketer_client.get(
        url(f"segment_{view}" if view != "preview" else "segment_preview", theirs.pk)
    )
    assert resp.status_code == 404
    assert "Bravo secret segment" not in resp.content.decode()


def test_posting_to_another_stores_segment_changes_nothing(marketer_client, theirs):
    marketer_client.post(url("segment_change", theirs.pk), form_data(name="Hijacked"))
    marketer_client.post(url("segment_delete", theirs.pk), {"post": "yes"})
    marketer_client.post(
        url("segment_changelist"),
        {"action": "refresh_now", "_selected_action": [theirs.pk]},
    )
    theirs = Segment.objects.unscoped().get(pk=theirs.pk)
    assert theirs.name == "Bravo secret segment"
    assert not SegmentMembership.objects.unscoped().filter(segment=theirs).exists()


# --- settings ----------------------------------------------------------------------------------


def settings_form(**overrides):
    data = {
        "window_days": 365,
        "repeat_min_orders": 2,
        "high_value_min_monetary_score": 4,
        "nightly_hour": 3,
        "rising_threshold_pct": 50,
        "rising_min_members": 20,
        "_save": "Save",
    }
    return {**data, **overrides}


def test_marketer_edits_only_their_stores_settings(
    marketer_client, tenant, other_tenant, django_capture_on_commit_callbacks
):
    mine = SegmentSettings.objects.for_tenant(tenant).get()
    other = SegmentSettings.objects.for_tenant(other_tenant).get()
    listing = marketer_client.get(url("segmentsettings_changelist")).content.decode()
    assert "Alpha Store" in listing and "Bravo Store" not in listing
    assert marketer_client.get(url("segmentsettings_change", other.pk)).status_code == 404
    assert marketer_client.get(url("segmentsettings_add")).status_code == 403
    assert (
        marketer_client.post(url("segmentsettings_delete", mine.pk), {"post": "yes"}).status_code
        == 403
    )

    page = marketer_client.get(url("segmentsettings_change", mine.pk)).content.decode()
    assert 'name="window_days"' in page and 'name="boundaries"' not in page
    with django_capture_on_commit_callbacks() as callbacks:
        resp = marketer_client.post(
            url("segmentsettings_change", mine.pk), settings_form(window_days=180)
        )
    assert resp.status_code == 302
    assert len(callbacks) == 1  # tiers are recomputed with the new window
    mine.refresh_from_db()
    assert (mine.window_days, mine.updated_at) == (180, NOW)

    with django_capture_on_commit_callbacks() as callbacks:
        marketer_client.post(
            url("segmentsettings_change", mine.pk), settings_form(window_days=180, nightly_hour=4)
        )
    assert callbacks == []  # the night hour changes no tier


def test_viewer_cannot_change_settings(viewer_client, tenant):
    mine = SegmentSettings.objects.for_tenant(tenant).get()
    assert viewer_client.get(url("segmentsettings_change", mine.pk)).status_code == 200
    resp = viewer_client.post(url("segmentsettings_change", mine.pk), settings_form(window_days=30))
    assert resp.status_code == 403
    mine.refresh_from_db()
    assert mine.window_days == 365


# --- history -----------------------------------------------------------------------------------


def test_transition_history_is_read_only_and_filtered(
    marketer_client, tenant, repeat_segment, theirs, shop
):
    clock.set_now(None)  # the admin's date filters count from the real date
    segment_refresh(repeat_segment)
    segment_refresh(theirs)
    today = timezone.now()
    resp = marketer_client.get(url("segmenttransition_changelist"), {"segment": repeat_segment.pk})
    assert resp.status_code == 200
    body = resp.content.decode()
    assert "ann@alpha.example" in body or "Ann" in body
    assert "eve@bravo.example" not in body and "Bravo secret segment" not in body
    assert resp.context["cl"].result_count == 2

    left = marketer_client.get(url("segmenttransition_changelist"), {"kind": "left"})
    assert left.context["cl"].result_count == 0
    today = marketer_client.get(
        url("segmenttransition_changelist"),
        {"at__year": today.year, "at__month": today.month, "at__day": today.day},
    )
    assert today.context["cl"].result_count == 2
    date_filter = next(f for f in resp.context["cl"].filter_specs if f.title == "at")
    past_week = next(
        c for c in date_filter.choices(resp.context["cl"]) if c["display"] == "Past 7 days"
    )
    followed = marketer_client.get(url("segmenttransition_changelist") + past_week["query_string"])
    assert followed.context["cl"].result_count == 2

    moved = SegmentTransition.objects.for_tenant(tenant).first()
    assert marketer_client.get(url("segmenttransition_add")).status_code == 403
    page = marketer_client.get(url("segmenttransition_change", moved.pk))
    assert page.status_code == 200 and 'name="_save"' not in page.content.decode()
    theirs_move = SegmentTransition.objects.for_tenant(theirs.tenant_id).first()
    assert marketer_client.get(url("segmenttransition_change", theirs_move.pk)).status_code == 404


# --- list segments ------------------------------------------------------------------------------


def test_marketer_creates_a_list_segment_from_the_changelist(marketer_client, tenant, other_tenant):
    listing = marketer_client.get(url("segment_changelist")).content.decode()
    assert "Add list segment" in listing
    page = marketer_client.get(url("segment_add_list"))
    assert page.status_code == 200
    assert "A list segment has no conditions" in page.content.decode()

    resp = marketer_client.post(url("segment_add_list"), {"name": "Asked for a call"})

    segment = Segment.objects.for_tenant(tenant).get(name="Asked for a call")
    assert resp.status_code == 302
    assert resp["Location"] == url("segment_change", segment.pk)
    assert (segment.kind, segment.slug, segment.member_count) == (
        SegmentKind.LIST,
        "asked-for-a-call",
        0,
    )
    assert not Segment.objects.for_tenant(other_tenant).filter(name="Asked for a call").exists()
    entry = AuditEntry.objects.get(tenant=tenant, object_type="segments.segment", action="create")
    assert entry.actor_user_id == marketer_client.user.pk


def test_a_list_segment_with_a_taken_slug_is_refused_on_the_form(marketer_client, repeat_segment):
    resp = marketer_client.post(url("segment_add_list"), {"name": "Again", "slug": "repeat"})

    assert resp.status_code == 200
    assert resp.context["form"].errors["slug"] == [
        "A segment with the slug 'repeat' already exists in this store."
    ]
    assert not Segment.objects.for_tenant(repeat_segment.tenant).filter(name="Again").exists()


@pytest.mark.parametrize("role", [Role.VIEWER, Role.AGENT])
def test_only_editors_create_list_segments(tenant, role):
    client = login_as(tenant, role)
    assert "Add list segment" not in client.get(url("segment_changelist")).content.decode()
    assert client.post(url("segment_add_list"), {"name": "Sneaky"}).status_code == 403
    assert not Segment.objects.for_tenant(tenant).filter(name="Sneaky").exists()
