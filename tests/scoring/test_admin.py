"""The scoring admin: settings changed (never added or deleted) with clear
errors; model versions read-only with their backtest, calibration and
importances, and a button that makes an older one active; the policy edited in
its list; scores and chosen actions read-only; the customer page's churn
panel. Another store's ids answer 404 and change nothing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.urls import reverse

from retention import clock
from retention.models import AuditEntry, Role
from scoring.models import (
    ActionPolicy,
    ChosenAction,
    ChurnScore,
    ModelVersion,
    NextAction,
    PolicyTier,
    RiskBand,
    ScoringSettings,
)
from scoring.services.setup import scoring_settings
from tests.conftest import login_as
from tests.factories import CustomerFactory
from tests.scoring.score_rows import chosen, history, score, version

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _fixed_clock():
    clock.set_now(NOW)


def url(name: str, *args) -> str:
    return reverse(f"admin:scoring_{name}", args=args)


@pytest.fixture
def versions(tenant):
    """v1 (older), v2 (active), both with metrics."""
    older = version(
        tenant,
        1,
        importances={f"feature_{i:02d}": float(i) for i in range(25)},
        notes="Trained on the spring data",
        artifact=b"SECRET-ARTIFACT-BYTES",
    )
    return older, version(tenant, 2, active=True, artifact=b"SECRET-ARTIFACT-BYTES")


@pytest.fixture
def theirs(other_tenant):
    """The other store's rows, which must never show or change."""
    customer = CustomerFactory(tenant=other_tenant, email="eve@bravo.example")
    v = version(other_tenant, 1)
    version(other_tenant, 2, active=True)
    return {
        "customer": customer,
        "version": v,
        "score": score(customer, 0.77, reasons=["Bravo secret reason"]),
        "chosen": chosen(customer, NOW - timedelta(days=1)),
        "policy": ActionPolicy.objects.for_tenant(other_tenant).first(),
        "settings": scoring_settings(other_tenant),
    }


# --- every screen renders for a marketer ----------------------------------------------------


def test_every_list_renders_for_a_marketer_with_only_this_stores_rows(
    marketer_client, tenant, versions, theirs
):
    customer = CustomerFactory(tenant=tenant, email="ann@alpha.example")
    score(customer, 0.8, reasons=["No order for 140 days"])
    chosen(customer, NOW - timedelta(days=1))

    for name in (
        "modelversion_changelist",
        "actionpolicy_changelist",
        "churnscore_changelist",
        "chosenaction_changelist",
    ):
        response = marketer_client.get(url(name))
        page = response.content.decode()
        assert response.status_code == 200, name
        assert "eve@bravo.example" not in page and "Bravo secret reason" not in page, name

    scores = marketer_client.get(url("churnscore_changelist")).content.decode()
    assert "ann@alpha.example" in scores and "80%" in scores
    assert "No order for 140 days" in scores
    listing = marketer_client.get(url("modelversion_changelist"))
    assert listing.context["cl"].result_count == 2
    assert "0.812" in listing.content.decode() and "0.451" in listing.content.decode()


def test_the_detail_pages_render_for_a_marketer(marketer_client, tenant, versions):
    customer = CustomerFactory(tenant=tenant)
    current = score(customer, 0.8, reasons=["Fewer orders than usual"], model_version=versions[1])
    action = chosen(customer, NOW - timedelta(days=1))

    for page_url in (
        url("churnscore_change", current.pk),
        url("chosenaction_change", action.pk),
        url("modelversion_change", versions[0].pk),
    ):
        assert marketer_client.get(page_url).status_code == 200, page_url
    page = marketer_client.get(url("churnscore_change", current.pk)).content.decode()
    assert "<li>Fewer orders than usual</li>" in page
    assert "v2 Gradient boosting, calibrated" in page


def test_scores_filter_by_band_and_action_and_search_by_email(marketer_client, tenant):
    ann = CustomerFactory(tenant=tenant, email="ann@alpha.example")
    bob = CustomerFactory(tenant=tenant, email="bob@alpha.example")
    score(ann, 0.9, band=RiskBand.HIGH, next_action=NextAction.CALL)
    score(bob, 0.2, band=RiskBand.LOW, next_action=NextAction.NONE)

    def emails(**params) -> list[str]:
        response = marketer_client.get(url("churnscore_changelist"), params)
        return [row.customer.email for row in response.context["cl"].result_list]

    assert emails() == ["ann@alpha.example", "bob@alpha.example"]  # riskiest first
    assert emails(band__exact="low") == ["bob@alpha.example"]
    assert emails(next_action__exact="call") == ["ann@alpha.example"]
    assert emails(q="bob@") == ["bob@alpha.example"]


def test_chosen_actions_filter_by_whether_the_customer_ordered(marketer_client, tenant):
    ann, bob = CustomerFactory(tenant=tenant), CustomerFactory(tenant=tenant)
    chosen(ann, NOW - timedelta(days=100), ordered=True)
    chosen(bob, NOW - timedelta(days=100), ordered=False)

    response = marketer_client.get(url("chosenaction_changelist"), {"ordered__exact": "1"})

    assert [row.customer_id for row in response.context["cl"].result_list] == [ann.pk]


@pytest.mark.parametrize("model", [ChurnScore, ChosenAction])
def test_scores_and_chosen_actions_are_read_only(marketer_client, tenant, model):
    customer = CustomerFactory(tenant=tenant)
    row = score(customer, 0.5) if model is ChurnScore else chosen(customer, NOW)
    name = model._meta.model_name

    assert marketer_client.get(url(f"{name}_add")).status_code == 403
    page = marketer_client.get(url(f"{name}_change", row.pk)).content.decode()
    assert 'name="_save"' not in page
    assert marketer_client.post(url(f"{name}_delete", row.pk), {"post": "yes"}).status_code == 403
    assert model.objects.for_tenant(tenant).filter(pk=row.pk).exists()


# --- model versions -------------------------------------------------------------------------


def test_a_version_shows_its_backtest_calibration_and_importances_never_the_artifact(
    marketer_client, versions
):
    page = marketer_client.get(url("modelversion_change", versions[0].pk)).content.decode()

    assert "SECRET-ARTIFACT" not in page and 'name="artifact"' not in page
    for text in ("This model", "Recency baseline", "Buy-till-you-die baseline"):
        assert f"<th>{text}</th>" in page
    assert "<td>ROC AUC</td><td><strong>0.812</strong></td><td>0.701</td><td>0.744</td>" in page
    assert "<td>Log loss</td><td><strong>0.451</strong></td><td>0.550</td><td>0.520</td>" in page
    assert "<td>10</td><td>124</td><td>91.0%</td><td>88.0%</td>" in page  # calibration
    assert "<td>Gradient boosting, calibrated</td><td>0.440</td><td>0.810</td><td>chosen</td>" in (
        page
    )
    assert "feature_24" in page and "feature_05" in page and "feature_04" not in page  # top 20
    assert page.index("feature_24") < page.index("feature_23")  # largest first
    assert "The top 20 of 25 features." in page
    assert "Trained on the spring data" in page


def test_a_version_with_no_metrics_says_so(marketer_client, tenant):
    bare = version(tenant, 1, metrics={})

    page = marketer_client.get(url("modelversion_change", bare.pk)).content.decode()

    assert "No backtest recorded for this version." in page
    assert "No feature importances recorded for this version." in page


def test_the_rollback_button_makes_an_older_version_active(marketer_client, tenant, versions):
    older, _ = versions
    page = marketer_client.get(url("modelversion_change", older.pk)).content.decode()
    assert "Make this version active (roll back)" in page
    assert 'name="_activate"' in page

    response = marketer_client.post(url("modelversion_change", older.pk), {"_activate": older.pk})

    assert (response.status_code, response["Location"]) == (
        302,
        url("modelversion_change", older.pk),
    )
    active = ModelVersion.objects.for_tenant(tenant).filter(is_active=True)
    assert list(active.values_list("pk", flat=True)) == [older.pk]
    follow = marketer_client.get(response["Location"]).content.decode()
    assert "Version 1 (Gradient boosting, calibrated) is now the active version" in follow
    assert 'name="_activate"' not in follow  # it is the active one now
    entry = AuditEntry.objects.for_tenant(tenant).get(object_type="scoring.modelversion")
    assert entry.actor_user == marketer_client.user


def test_the_list_action_makes_one_version_active(marketer_client, tenant, versions):
    older, _ = versions
    response = marketer_client.post(
        url("modelversion_changelist"),
        {"action": "activate_selected", "_selected_action": [older.pk]},
    )

    assert response.status_code == 302
    assert ModelVersion.objects.for_tenant(tenant).get(is_active=True).pk == older.pk


def test_the_list_action_wants_exactly_one_version(marketer_client, tenant, versions):
    response = marketer_client.post(
        url("modelversion_changelist"),
        {"action": "activate_selected", "_selected_action": [v.pk for v in versions]},
        follow=True,
    )

    assert "Choose exactly one version to make active." in response.content.decode()
    assert ModelVersion.objects.for_tenant(tenant).get(is_active=True).pk == versions[1].pk


def test_viewers_see_versions_but_cannot_roll_back(tenant, versions):
    viewer = login_as(tenant, Role.VIEWER)
    older = versions[0]

    page = viewer.get(url("modelversion_change", older.pk)).content.decode()
    response = viewer.post(url("modelversion_change", older.pk), {"_activate": older.pk})

    assert 'name="_activate"' not in page
    assert response.status_code == 403
    assert ModelVersion.objects.for_tenant(tenant).get(is_active=True).pk == versions[1].pk


def test_versions_are_not_added_and_the_active_one_is_not_deleted(
    marketer_client, tenant, versions
):
    older, current = versions

    assert marketer_client.get(url("modelversion_add")).status_code == 403
    assert marketer_client.get(url("modelversion_delete", current.pk)).status_code == 403
    response = marketer_client.post(url("modelversion_delete", older.pk), {"post": "yes"})

    assert response.status_code == 302
    assert list(ModelVersion.objects.for_tenant(tenant).values_list("pk", flat=True)) == [
        current.pk
    ]


def test_bulk_delete_cannot_take_the_active_version(marketer_client, tenant, versions):
    marketer_client.post(
        url("modelversion_changelist"),
        {"action": "delete_selected", "_selected_action": [v.pk for v in versions], "post": "yes"},
    )

    assert ModelVersion.objects.for_tenant(tenant).count() == 2


# --- settings -------------------------------------------------------------------------------

GOOD_SETTINGS = {
    "horizon_days": "60",
    "medium_from": "0.4",
    "high_from": "0.7",
    "recent_contact_days": "10",
    "nightly_hour": "4",
    "train_weekday": "6",
    "min_buyers_for_model": "200",
    "history_days": "180",
}


def test_the_settings_list_goes_to_the_stores_own_row(marketer_client, tenant, theirs):
    mine = scoring_settings(tenant)

    response = marketer_client.get(url("scoringsettings_changelist"))

    assert (response.status_code, response["Location"]) == (
        302,
        url("scoringsettings_change", mine.pk),
    )
    assert marketer_client.get(url("scoringsettings_add")).status_code == 403
    assert (
        marketer_client.post(url("scoringsettings_delete", mine.pk), {"post": "yes"}).status_code
        == 403
    )


def test_a_marketer_changes_the_settings(marketer_client, tenant):
    mine = scoring_settings(tenant)

    response = marketer_client.post(
        url("scoringsettings_change", mine.pk), {**GOOD_SETTINGS, "_save": "Save"}
    )

    assert response.status_code == 302
    mine.refresh_from_db()
    assert (mine.horizon_days, mine.medium_from, mine.high_from) == (60, 0.4, 0.7)
    assert mine.history_days == 180
    assert mine.updated_at == NOW
    entry = AuditEntry.objects.for_tenant(tenant).get(object_type="scoring.scoringsettings")
    assert entry.changes["horizon_days"] == [90, 60]


@pytest.mark.parametrize("high", ["0.4", "0.3"])
def test_bands_out_of_order_are_a_form_error(marketer_client, tenant, high):
    mine = scoring_settings(tenant)

    response = marketer_client.post(
        url("scoringsettings_change", mine.pk), {**GOOD_SETTINGS, "high_from": high}
    )

    assert response.status_code == 200
    form = response.context["adminform"].form
    assert form.errors == {"high_from": ["The high band must start above the medium band."]}
    mine.refresh_from_db()
    assert (mine.medium_from, mine.high_from) == (0.5, 0.75)


def test_a_value_out_of_range_is_a_form_error(marketer_client, tenant):
    mine = scoring_settings(tenant)

    response = marketer_client.post(
        url("scoringsettings_change", mine.pk), {**GOOD_SETTINGS, "horizon_days": "5"}
    )

    assert response.status_code == 200
    assert "horizon_days" in response.context["adminform"].form.errors


# --- the action policy ----------------------------------------------------------------------


def _policy_formset_data(response) -> dict[str, str]:
    """The changelist's list_editable formset as the browser would post it."""
    formset = response.context["cl"].formset
    data = {
        f"{formset.prefix}-TOTAL_FORMS": str(formset.total_form_count()),
        f"{formset.prefix}-INITIAL_FORMS": str(formset.initial_form_count()),
        f"{formset.prefix}-MIN_NUM_FORMS": "0",
        f"{formset.prefix}-MAX_NUM_FORMS": "1000",
        "_save": "Save",
    }
    for form in formset.forms:
        data[f"{form.prefix}-id"] = str(form.instance.pk)
        data[f"{form.prefix}-action"] = form.instance.action
    return data


def test_the_policy_lists_every_cell_riskiest_first(marketer_client, tenant):
    response = marketer_client.get(url("actionpolicy_changelist"))

    rows = list(response.context["cl"].result_list)
    assert len(rows) == 24
    assert [r.band for r in rows[:8]] == [RiskBand.HIGH] * 8
    assert (rows[0].tier, rows[0].recently_contacted) == (PolicyTier.HIGH_VALUE_REPEAT, False)
    assert rows[-1].band == RiskBand.LOW


def test_a_marketer_edits_a_cells_action_in_the_list(marketer_client, tenant):
    cell = ActionPolicy.objects.for_tenant(tenant).get(
        band=RiskBand.MEDIUM, tier=PolicyTier.ONE_TIME, recently_contacted=False
    )
    listing = marketer_client.get(url("actionpolicy_changelist"))
    data = _policy_formset_data(listing)
    form = next(f for f in listing.context["cl"].formset.forms if f.instance.pk == cell.pk)
    data[f"{form.prefix}-action"] = NextAction.WINBACK

    response = marketer_client.post(url("actionpolicy_changelist"), data)

    assert response.status_code == 302
    cell.refresh_from_db()
    assert (cell.action, cell.updated_at) == (NextAction.WINBACK, NOW)
    entry = AuditEntry.objects.for_tenant(tenant).get(object_type="scoring.actionpolicy")
    assert entry.changes["action"] == ["nudge", "winback"]


def test_adding_a_taken_cell_is_a_form_error(marketer_client, tenant):
    before = ActionPolicy.objects.for_tenant(tenant).count()

    response = marketer_client.post(
        url("actionpolicy_add"),
        {"band": "high", "tier": "one_time", "recently_contacted": "on", "action": "call"},
    )

    assert response.status_code == 200
    assert response.context["adminform"].form.non_field_errors() == [
        "There is already a rule for high risk, one-time, recently contacted: change its "
        "action in the list instead."
    ]
    assert ActionPolicy.objects.for_tenant(tenant).count() == before


def test_a_deleted_cell_can_be_added_again(marketer_client, tenant):
    cell = dict(band="high", tier="one_time", recently_contacted=True)
    ActionPolicy.objects.for_tenant(tenant).filter(**cell).delete()

    response = marketer_client.post(
        url("actionpolicy_add"),
        {"band": "high", "tier": "one_time", "recently_contacted": "on", "action": "nudge"},
    )

    assert response.status_code == 302
    assert ActionPolicy.objects.for_tenant(tenant).get(**cell).action == "nudge"


def test_the_policy_list_sums_up_how_each_action_turned_out(marketer_client, tenant, theirs):
    customers = [CustomerFactory(tenant=tenant) for _ in range(3)]
    chosen(customers[0], NOW - timedelta(days=100), ordered=True)
    chosen(customers[1], NOW - timedelta(days=100), ordered=False)
    chosen(customers[2], NOW - timedelta(days=1))

    page = marketer_client.get(url("actionpolicy_changelist")).content.decode()

    assert "How the chosen actions turned out" in page
    assert (
        "<tr><td>Personal check-in call</td><td>High</td><td>3</td><td>2</td><td>1</td>"
        "<td>50.0%</td></tr>"
    ) in page


def test_viewers_cannot_edit_the_policy(tenant):
    viewer = login_as(tenant, Role.VIEWER)
    cell = ActionPolicy.objects.for_tenant(tenant).first()

    assert viewer.get(url("actionpolicy_changelist")).status_code == 200
    response = viewer.post(url("actionpolicy_change", cell.pk), {"action": "call"})

    assert response.status_code == 403


# --- another store's ids ------------------------------------------------------------------


@pytest.mark.parametrize(
    "name,key",
    [
        ("modelversion_change", "version"),
        ("modelversion_delete", "version"),
        ("modelversion_history", "version"),
        ("churnscore_change", "score"),
        ("chosenaction_change", "chosen"),
        ("actionpolicy_change", "policy"),
        ("actionpolicy_delete", "policy"),
        ("scoringsettings_change", "settings"),
        ("scoringsettings_history", "settings"),
    ],
)
def test_another_stores_ids_answer_404(marketer_client, theirs, name, key):
    response = marketer_client.get(url(name, theirs[key].pk))

    assert response.status_code == 404
    assert "Bravo secret reason" not in response.content.decode()


def test_posting_to_another_stores_rows_changes_nothing(marketer_client, other_tenant, theirs):
    older = theirs["version"]
    assert (
        marketer_client.post(
            url("modelversion_change", older.pk), {"_activate": older.pk}
        ).status_code
        == 404
    )
    marketer_client.post(
        url("modelversion_changelist"),
        {"action": "activate_selected", "_selected_action": [older.pk]},
    )
    marketer_client.post(url("modelversion_delete", older.pk), {"post": "yes"})
    marketer_client.post(
        url("actionpolicy_change", theirs["policy"].pk),
        {"band": "low", "tier": "one_time", "action": "call"},
    )
    marketer_client.post(
        url("scoringsettings_change", theirs["settings"].pk), {**GOOD_SETTINGS, "_save": "Save"}
    )

    versions = ModelVersion.objects.for_tenant(other_tenant)
    assert versions.count() == 2 and versions.get(is_active=True).version == 2
    policy = ActionPolicy.objects.for_tenant(other_tenant).get(pk=theirs["policy"].pk)
    assert (policy.band, policy.action) == (theirs["policy"].band, theirs["policy"].action)
    assert ScoringSettings.objects.for_tenant(other_tenant).get().horizon_days == 90


# --- the customer page --------------------------------------------------------------------


def test_the_customer_page_shows_the_churn_panel_with_reasons_and_history(
    marketer_client, tenant, versions
):
    customer = CustomerFactory(tenant=tenant)
    score(
        customer,
        0.82,
        reasons=["No order for 140 days", "Rated the last delivery 2 of 5", "Spends less"],
        model_version=versions[1],
        next_action=NextAction.CALL,
    )
    for days, p in ((1, 0.8), (2, 0.7)):
        history(customer, NOW - timedelta(days=days), p)

    page = marketer_client.get(
        reverse("admin:commerce_customer_change", args=[customer.pk])
    ).content.decode()

    assert "Churn risk" in page
    assert "chance of no order in the next 90 days" in page
    assert "<td>82%</td>" in page
    for reason in ("No order for 140 days", "Rated the last delivery 2 of 5", "Spends less"):
        assert f"<li>{reason}</li>" in page
    assert "Personal check-in call" in page
    model_url = url("modelversion_change", versions[1].pk)
    assert f'<a href="{model_url}">v2 Gradient boosting, calibrated</a>' in page
    assert "Latest scores (last 10)" in page
    assert page.index("<td>80%</td>") < page.index("<td>70%</td>")


def test_an_unscored_customer_says_so_on_the_customer_page(marketer_client, tenant):
    customer = CustomerFactory(tenant=tenant)

    page = marketer_client.get(
        reverse("admin:commerce_customer_change", args=[customer.pk])
    ).content.decode()

    assert "Not scored yet: scores come from the nightly run." in page


def test_posting_another_stores_policy_id_in_the_list_changes_nothing(
    marketer_client, tenant, theirs
):
    listing = marketer_client.get(url("actionpolicy_changelist"))
    data = _policy_formset_data(listing)
    data["form-0-id"] = str(theirs["policy"].pk)
    data["form-0-action"] = NextAction.CALL if theirs["policy"].action != "call" else "none"

    response = marketer_client.post(url("actionpolicy_changelist"), data)

    assert response.status_code == 200  # the list again, with the error
    theirs_now = ActionPolicy.objects.for_tenant(theirs["policy"].tenant_id).get(
        pk=theirs["policy"].pk
    )
    assert theirs_now.action == theirs["policy"].action


# --- platform operators -------------------------------------------------------------------


def test_operators_see_every_stores_lists(client, django_user_model, tenant, versions, theirs):
    client.force_login(django_user_model.objects.create_superuser("op@example.com", "pw-op-123"))

    for name in (
        "scoringsettings_changelist",
        "modelversion_changelist",
        "actionpolicy_changelist",
        "churnscore_changelist",
        "chosenaction_changelist",
    ):
        assert client.get(url(name)).status_code == 200, name
    listing = client.get(url("modelversion_changelist"))
    assert listing.context["cl"].result_count == 4
