"""The journey admin: the list with its numbers, the journey page's flow picture
and figures, editing (a new version once customers are in), activate / pause /
archive behind a confirmation, moving customers to the current version, the
per-step template preview, test mode, the enrollment screens, roles and
tenancy."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

import pytest
from django import forms
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from journeys.models import Enrollment, Journey, JourneyStep, StepRun
from journeys.services.definitions import journey_create
from messaging.models import Message, Template
from retention import clock
from retention.models import AuditEntry, Role
from segments.models import Segment
from tests.conftest import login_as
from tests.factories import CustomerFactory, make_order

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)  # a Monday; 08:00 in New York


@pytest.fixture(autouse=True)
def _fixed_clock():
    clock.set_now(NOW)


def template(tenant, name: str, channel: str = "email") -> Template:
    return Template.objects.create(
        tenant=tenant,
        name=name,
        channel=channel,
        category="marketing",
        subject=f"{name} for {{{{ customer.first_name }}}}",
        text=f"Hi {{{{ customer.first_name }}}}, this is {name}.",
        html=f"<p>{name}</p>",
    )


def simple_journey(tenant, name: str = "Admin welcome", status: str = "active"):
    return journey_create(
        tenant=tenant,
        name=name,
        status=status,
        version={"trigger": "order_placed", "order_nth": "first"},
        steps=[
            {"name": "Thanks", "email_template": template(tenant, f"{name} thanks")},
            {
                "name": "Tips",
                "delay": 3,
                "window_start": time(9),
                "window_end": time(18),
                "email_template": template(tenant, f"{name} tips"),
            },
        ],
    )


def enroll(journey, customer, status: str = "active", *, version=None, n: int = 0):
    return Enrollment.objects.create(
        tenant_id=journey.tenant_id,
        journey=journey,
        version=version or journey.current_version,
        customer=customer,
        trigger_key=f"t:{customer.pk}:{n}",
        trigger_at=NOW,
        status=status,
        next_run_at=NOW if status == "active" else None,
        finished_at=None if status in ("active", "held_out") else NOW,
    )


def url(name: str, *args) -> str:
    return reverse(f"admin:journeys_{name}", args=args)


@pytest.fixture
def ann(tenant):
    return CustomerFactory(
        tenant=tenant, first_name="Ann", email="ann@alpha.example", timezone="America/New_York"
    )


@pytest.fixture
def theirs(other_tenant):
    """Another store's journey with a customer under way."""
    journey = simple_journey(other_tenant, "Bravo secret journey")
    enrollment = enroll(journey, CustomerFactory(tenant=other_tenant))
    return journey, enrollment


# --- the list ------------------------------------------------------------------------


def test_the_list_shows_each_journeys_numbers_exactly(tenant, marketer_client):
    welcome = simple_journey(tenant, "Admin welcome")
    winback = simple_journey(tenant, "Admin winback", status="draft")
    people = [CustomerFactory(tenant=tenant) for _ in range(6)]
    for person, status in zip(
        people, ["active", "active", "completed", "exited", "held_out"], strict=False
    ):
        enroll(welcome, person, status)
    enroll(winback, people[5], "completed")

    response = marketer_client.get(url("journey_changelist"))

    assert response.status_code == 200
    rows = {j.name: j for j in response.context["cl"].result_list}
    assert rows["Admin welcome"].figures == {
        "entered": 5,
        "active": 2,
        "completed": 1,
        "exited": 1,
        "held_out": 1,
        "failed": 0,
    }
    assert rows["Admin winback"].figures["entered"] == 1
    assert rows["Admin winback"].figures["completed"] == 1
    body = response.content.decode()
    assert "First order placed" in body
    assert '<td class="field-version_number">v1</td>' in body
    assert '<td class="field-entered">5</td>' in body
    assert '<td class="field-held_out">1</td>' in body


def test_the_list_asks_the_same_number_of_queries_for_more_journeys(tenant, marketer_client):
    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert marketer_client.get(url("journey_changelist")).status_code == 200
        return len(captured)

    first = simple_journey(tenant, "Admin one")
    enroll(first, CustomerFactory(tenant=tenant))
    before = queries()
    for n in range(3):
        more = simple_journey(tenant, f"Admin more {n}")
        enroll(more, CustomerFactory(tenant=tenant))

    assert queries() == before


def test_the_list_shows_only_this_stores_journeys(marketer_client, tenant, theirs):
    simple_journey(tenant)
    body = marketer_client.get(url("journey_changelist")).content.decode()
    assert "Admin welcome" in body
    assert "Bravo secret journey" not in body


# --- the journey page: the flow picture -------------------------------------------------


@pytest.fixture
def branching(tenant):
    vip = Segment.objects.create(tenant=tenant, name="VIP buyers", slug="vip-buyers")
    return journey_create(
        tenant=tenant,
        name="Admin branching",
        status="active",
        version={"trigger": "order_placed", "order_nth": "first", "holdout_percent": 10},
        steps=[
            {"name": "Thanks", "email_template": template(tenant, "Branch thanks")},
            {
                "name": "Tips",
                "delay": 3,
                "window_start": time(9),
                "window_end": time(18),
                "condition": "opened_previous",
                "otherwise": "goto",
                "goto_position": 4,
                "email_template": template(tenant, "Branch tips"),
            },
            {
                "name": "Nudge",
                "delay": 1,
                "delay_from": "previous",
                "condition": "in_segment",
                "condition_value": str(vip.pk),
                "otherwise": "exit",
                "action": "sms",
                "sms_template": template(tenant, "Branch nudge", "sms"),
            },
            {
                "name": "Offer",
                "delay": 2,
                "delay_unit": "hours",
                "delay_from": "previous",
                "variants": [
                    {"key": "A", "weight": 70, "email_template": template(tenant, "Offer A")},
                    {"key": "B", "weight": 30, "email_template": template(tenant, "Offer B")},
                ],
            },
        ],
    )


def test_the_flow_picture_shows_the_trigger_delays_conditions_and_branches(
    marketer_client, branching
):
    response = marketer_client.get(url("journey_change", branching.pk))

    assert response.status_code == 200
    body = response.content.decode()
    flow = body[body.index('<ol class="jflow">') : body.index("</ol>")]
    for expected in [
        '<strong class="jflow-trigger-text">First order placed</strong>',
        "10% of entrants are held out at random",
        "Right after the trigger",
        "Send email “Branch thanks”",
        "3 days after the trigger, between 09:00 and 18:00 local",
        "If the customer opened the previous message?",
        '<li class="jflow-yes">yes ↓ this step</li>',
        "Send email “Branch tips”",
        '<li class="jflow-no">no → <a href="#step-4">go to step 4 (Offer)</a></li>',
        "1 day after the previous step",
        "If the customer is in segment “VIP buyers”?",
        '<li class="jflow-no">no → leave the journey</li>',
        "Send SMS “Branch nudge”",
        "2 hours after the previous step",
        "<li><strong>A</strong> 70% (weight 70): Email “Offer A”</li>",
        "<li><strong>B</strong> 30% (weight 30): Email “Offer B”</li>",
        "Enters again once their previous run has finished.",
        "Leaves early when the customer unsubscribes, or when stopped by hand.",
    ]:
        assert expected in flow, expected
    # Steps appear in order.
    assert flow.index('id="step-1"') < flow.index('id="step-2"') < flow.index('id="step-4"')


def test_the_journey_page_shows_each_steps_figures_from_the_outbox(
    marketer_client, tenant, branching
):
    thanks = JourneyStep.objects.for_tenant(tenant).get(
        version=branching.current_version, position=1
    )
    for n, status in enumerate(["sent", "opened", "clicked"]):
        person = CustomerFactory(tenant=tenant)
        message = Message.objects.create(
            tenant=tenant,
            customer=person,
            channel="email",
            category="marketing",
            idempotency_key=f"journey:page:{n}",
            status=status,
            sent_at=NOW - timedelta(days=2),
        )
        StepRun.objects.create(
            tenant=tenant,
            enrollment=enroll(branching, person),
            step=thanks,
            outcome="queued",
            message=message,
        )
        if status == "clicked":
            make_order(person, NOW - timedelta(days=1))

    response = marketer_client.get(url("journey_change", branching.pk))

    figures = response.context["flow"].steps[0].figures
    assert (figures["sent"], figures["opened"], figures["clicked"], figures["converted"]) == (
        3,
        2,
        1,
        1,
    )
    assert "3 sent · 2 opened · 1 clicked · 1 converted" in response.content.decode()


# --- editing ------------------------------------------------------------------------------


def posted(response) -> dict:
    """What the browser would post back from the edit page, unchanged."""
    context = response.context
    data: dict = {}
    all_forms = [context["version_form"]]
    for formset in (context["steps"], context["variants"]):
        management = formset.management_form
        for name in management.fields:
            data[management.add_prefix(name)] = management[name].value()
        all_forms.extend(formset.forms)
    for form in all_forms:
        for bound in form:
            value = bound.value()
            if isinstance(bound.field, forms.BooleanField):
                if value:
                    data[bound.html_name] = "on"
                continue
            if value is None:
                continue
            data[bound.html_name] = value.strftime("%H:%M") if isinstance(value, time) else value
    return data


def test_editing_a_journey_with_enrollments_makes_version_2_and_they_stay_on_1(
    marketer_client, tenant, ann
):
    journey = simple_journey(tenant)
    v1 = journey.current_version
    under_way = enroll(journey, ann)
    page = marketer_client.get(url("journey_edit", journey.pk))
    assert page.status_code == 200
    data = posted(page)
    data["steps-1-delay"] = "5"
    data["note"] = "Tips later"

    response = marketer_client.post(url("journey_edit", journey.pk), data, follow=True)

    journey.refresh_from_db()
    assert journey.current_version.number == 2
    assert journey.current_version.note == "Tips later"
    steps = JourneyStep.objects.for_tenant(tenant).filter(version=journey.current_version)
    assert [(s.position, s.delay) for s in steps.order_by("position")] == [(1, 0), (2, 5)]
    assert JourneyStep.objects.for_tenant(tenant).get(version=v1, position=2).delay == 3
    under_way.refresh_from_db()
    assert under_way.version_id == v1.pk
    assert [str(m) for m in response.context["messages"]] == [
        "Saved as version 2, now current. 1 customer under way finishes version 1; move them "
        "from the versions list if they should switch."
    ]
    entry = AuditEntry.objects.filter(tenant=tenant, object_type="journeys.journey").latest("id")
    assert (entry.changes, entry.actor_user_id) == ({"version": [1, 2]}, marketer_client.user.pk)


def test_editing_a_draft_nobody_entered_changes_version_1_in_place(marketer_client, tenant):
    journey = simple_journey(tenant, status="draft")
    data = posted(marketer_client.get(url("journey_edit", journey.pk)))
    data["steps-0-name"] = "Thank you"

    assert marketer_client.post(url("journey_edit", journey.pk), data).status_code == 302

    journey.refresh_from_db()
    assert journey.current_version.number == 1
    assert (
        JourneyStep.objects.for_tenant(tenant).get(version=journey.current_version, position=1).name
        == "Thank you"
    )


def test_a_go_to_step_follows_the_steps_new_numbers(marketer_client, tenant):
    journey = simple_journey(tenant, status="draft")
    data = posted(marketer_client.get(url("journey_edit", journey.pk)))
    # A third step numbered 7 on the form; step 1 jumps to it when not opened.
    data.update(
        {
            "steps-2-position": "7",
            "steps-2-name": "Last call",
            "steps-2-delay": "10",
            "steps-2-action": "email",
            "steps-2-email_template": str(template(tenant, "Last call").pk),
            "steps-0-condition": "opened_previous",
            "steps-0-otherwise": "goto",
            "steps-0-goto_position": "7",
        }
    )

    response = marketer_client.post(url("journey_edit", journey.pk), data)

    assert response.status_code == 302
    steps = JourneyStep.objects.for_tenant(tenant).filter(version_id=journey.current_version_id)
    assert [(s.position, s.name, s.goto_position) for s in steps.order_by("position")] == [
        (1, "Thanks", 3),
        (2, "Tips", None),
        (3, "Last call", None),
    ]


def test_the_services_errors_show_on_the_step_they_are_about(marketer_client, tenant):
    journey = simple_journey(tenant, status="draft")
    data = posted(marketer_client.get(url("journey_edit", journey.pk)))
    data["steps-1-email_template"] = ""

    response = marketer_client.post(url("journey_edit", journey.pk), data)

    assert response.status_code == 200
    assert response.context["steps"].forms[1].errors == {
        "email_template": ["Choose the template to send."]
    }
    journey.refresh_from_db()
    assert (
        JourneyStep.objects.for_tenant(tenant)
        .filter(version=journey.current_version, email_template__isnull=True)
        .count()
        == 0
    )


def test_a_marketer_names_a_new_journey_then_defines_it(marketer_client, tenant):
    mail = template(tenant, "Created mail")
    named = marketer_client.post(
        url("journey_add"), {"name": "Admin created", "description": "Carts", "_save": "Save"}
    )
    created = Journey.objects.for_tenant(tenant).get(name="Admin created")
    assert named.status_code == 302
    assert named["Location"] == url("journey_edit", created.pk)
    assert (created.status, created.current_version_id) == ("draft", None)

    data = posted(marketer_client.get(url("journey_edit", created.pk)))
    data.update(
        {
            "trigger": "cart_abandoned",
            "steps-0-position": "1",
            "steps-0-name": "Reminder",
            "steps-0-delay": "1",
            "steps-0-delay_unit": "hours",
            "steps-0-action": "email",
            "steps-0-email_template": str(mail.pk),
        }
    )
    defined = marketer_client.post(url("journey_edit", created.pk), data)

    assert defined.status_code == 302
    created.refresh_from_db()
    assert (created.status, created.current_version.number) == ("draft", 1)
    assert created.current_version.trigger == "cart_abandoned"
    step = JourneyStep.objects.for_tenant(tenant).get(version=created.current_version)
    assert (step.delay, step.delay_unit, step.email_template_id) == (1, "hours", mail.pk)


def test_a_taken_name_is_refused_on_the_add_page(marketer_client, tenant):
    simple_journey(tenant, "Admin welcome")
    response = marketer_client.post(url("journey_add"), {"name": "Admin welcome", "_save": "1"})
    assert response.status_code == 200
    assert response.context["adminform"].form.errors == {
        "name": ["A journey called 'Admin welcome' exists already."]
    }


def test_renaming_from_the_journey_page_keeps_the_definition(marketer_client, tenant):
    journey = simple_journey(tenant)
    response = marketer_client.post(
        url("journey_change", journey.pk),
        {"name": "Admin hello", "description": "First buyers", "_save": "1"},
    )
    assert response.status_code == 302
    journey.refresh_from_db()
    assert (journey.name, journey.description, journey.status) == (
        "Admin hello",
        "First buyers",
        "active",
    )
    assert journey.current_version.number == 1


# --- activate, pause, archive ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "target"),
    [("draft", "active"), ("active", "paused"), ("paused", "active"), ("active", "archived")],
)
def test_a_status_changes_only_on_a_confirmed_post(marketer_client, tenant, start, target):
    journey = simple_journey(tenant, status="active" if start == "paused" else start)
    if start == "paused":
        Journey.objects.for_tenant(tenant).filter(pk=journey.pk).update(status="paused")
    address = url("journey_status", journey.pk, target)

    confirm_page = marketer_client.get(address)
    unconfirmed = marketer_client.post(address, {})

    assert confirm_page.status_code == 200
    assert b'name="confirm" value="yes"' in confirm_page.content
    assert unconfirmed.status_code == 200
    journey.refresh_from_db()
    assert journey.status == start

    done = marketer_client.post(address, {"confirm": "yes"})

    assert done.status_code == 302
    journey.refresh_from_db()
    assert journey.status == target
    entry = AuditEntry.objects.filter(tenant=tenant, object_type="journeys.journey").latest("id")
    assert (entry.changes, entry.actor_user_id) == (
        {"status": [start, target]},
        marketer_client.user.pk,
    )


def test_the_status_post_needs_the_csrf_token(tenant):
    journey = simple_journey(tenant)
    client = login_as(tenant, Role.MARKETER)
    client.handler.enforce_csrf_checks = True

    response = client.post(url("journey_status", journey.pk, "paused"), {"confirm": "yes"})

    assert response.status_code == 403
    journey.refresh_from_db()
    assert journey.status == "active"


@pytest.mark.parametrize("role", [Role.VIEWER, Role.AGENT])
def test_viewers_and_agents_see_the_journey_but_change_nothing(tenant, role):
    journey = simple_journey(tenant)
    client = login_as(tenant, role)

    page = client.get(url("journey_change", journey.pk))
    assert page.status_code == 200
    assert url("journey_status", journey.pk, "paused") not in page.content.decode()
    assert (
        client.post(url("journey_status", journey.pk, "paused"), {"confirm": "yes"}).status_code
        == 403
    )
    assert client.get(url("journey_edit", journey.pk)).status_code == 403
    assert client.post(url("journey_test", journey.pk), {"confirm": "yes"}).status_code == 403
    enrollment = enroll(journey, CustomerFactory(tenant=tenant))
    stop = url("enrollment_stop", enrollment.pk)
    assert client.post(stop, {"confirm": "yes"}).status_code == 403
    journey.refresh_from_db()
    enrollment.refresh_from_db()
    assert (journey.status, enrollment.status) == ("active", "active")


# --- moving customers to the current version ---------------------------------------------------


def test_customers_move_to_the_current_version_after_a_confirmation(marketer_client, tenant, ann):
    journey = simple_journey(tenant)
    v1 = journey.current_version
    under_way = enroll(journey, ann)
    data = posted(marketer_client.get(url("journey_edit", journey.pk)))
    marketer_client.post(url("journey_edit", journey.pk), data)
    journey.refresh_from_db()
    address = url("journey_migrate", journey.pk, v1.pk)

    page = marketer_client.get(address)
    assert page.status_code == 200
    assert "<strong>1</strong> customer is under way on version 1." in page.content.decode()
    under_way.refresh_from_db()
    assert under_way.version_id == v1.pk

    marketer_client.post(address, {"confirm": "yes"})

    under_way.refresh_from_db()
    assert under_way.version_id == journey.current_version_id


# --- template preview per step ------------------------------------------------------------------


def test_a_steps_template_is_previewed_for_a_chosen_customer(marketer_client, tenant, ann):
    journey = simple_journey(tenant)
    bob = CustomerFactory(tenant=tenant, first_name="Bob")
    make_order(bob, NOW - timedelta(days=1))  # the most recent buyer: the default
    step = JourneyStep.objects.for_tenant(tenant).get(version=journey.current_version, position=1)

    chosen = marketer_client.get(
        url("journey_step_preview", journey.pk, step.pk), {"customer": ann.pk}
    )
    default = marketer_client.get(url("journey_step_preview", journey.pk, step.pk))

    assert chosen.status_code == 200
    assert "Admin welcome thanks for Ann" in chosen.content.decode()
    assert "Admin welcome thanks for Bob" in default.content.decode()


def test_a_variant_step_previews_each_variant(marketer_client, tenant, ann, branching):
    offer = JourneyStep.objects.for_tenant(tenant).get(
        version=branching.current_version, position=4
    )
    body = marketer_client.get(
        url("journey_step_preview", branching.pk, offer.pk), {"customer": ann.pk}
    ).content.decode()
    assert "Variant A (70%)" in body
    assert "Offer A for Ann" in body
    assert "Offer B for Ann" in body


# --- test mode ----------------------------------------------------------------------------------


def test_test_mode_shows_each_planned_step_in_the_customers_time(marketer_client, tenant, ann):
    journey = simple_journey(tenant)

    response = marketer_client.get(url("journey_test", journey.pk), {"customer": ann.pk})

    assert response.status_code == 200
    plan = response.context["plan"]
    assert [
        (r["step"].name, r["at"].strftime("%a %d %b %H:%M %Z"), r["channel"]) for r in plan
    ] == [
        ("Thanks", "Mon 01 Jun 08:00 EDT", "Email"),
        ("Tips", "Thu 04 Jun 09:00 EDT", "Email"),
    ]
    assert [r["subject"] for r in plan] == [
        "Admin welcome thanks for Ann",
        "Admin welcome tips for Ann",
    ]
    body = response.content.decode()
    assert "Thu 4 Jun 2026, 09:00" in body
    assert "America/New_York" in body
    assert Enrollment.objects.for_tenant(tenant).count() == 0


def test_test_mode_says_which_condition_a_planned_step_waits_for(marketer_client, ann, branching):
    response = marketer_client.get(url("journey_test", branching.pk), {"customer": ann.pk})

    assert [(r["step"].position, r["note"]) for r in response.context["plan"]] == [
        (1, ""),
        (2, "Only if the customer opened the previous message."),
        (3, "Only if the customer is in segment “VIP buyers”."),
        (4, "Variant A (70%)."),
        (4, "Variant B (30%)."),
    ]
    offers = [r["subject"] for r in response.context["plan"] if r["step"].position == 4]
    assert offers == ["Offer A for Ann", "Offer B for Ann"]


def test_enrolling_a_test_customer_for_real_needs_a_confirmation(marketer_client, tenant, ann):
    journey = simple_journey(tenant)
    address = url("journey_test", journey.pk)

    asked = marketer_client.post(address, {"customer": ann.pk})

    assert asked.status_code == 200
    assert f"Enroll {ann} for real?" in asked.content.decode()
    assert not Enrollment.objects.for_tenant(tenant).exists()

    done = marketer_client.post(address, {"customer": ann.pk, "confirm": "yes"})

    enrollment = Enrollment.objects.for_tenant(tenant).get()
    assert (enrollment.customer_id, enrollment.is_test, enrollment.version_id) == (
        ann.pk,
        True,
        journey.current_version_id,
    )
    assert done["Location"] == url("enrollment_change", enrollment.pk)


# --- enrollments ---------------------------------------------------------------------------------


def test_enrollments_filter_by_journey_and_status(marketer_client, tenant):
    welcome = simple_journey(tenant, "Admin welcome")
    winback = simple_journey(tenant, "Admin winback")
    people = [CustomerFactory(tenant=tenant) for _ in range(3)]
    wanted = enroll(welcome, people[0], "active")
    enroll(welcome, people[1], "completed")
    enroll(winback, people[2], "active")

    response = marketer_client.get(
        url("enrollment_changelist"), {"journey": welcome.pk, "status": "active"}
    )

    assert [e.pk for e in response.context["cl"].result_list] == [wanted.pk]


def test_an_enrollment_page_shows_its_step_runs(marketer_client, tenant, ann):
    journey = simple_journey(tenant)
    enrollment = enroll(journey, ann)
    step = JourneyStep.objects.for_tenant(tenant).get(version=journey.current_version, position=1)
    message = Message.objects.create(
        tenant=tenant,
        customer=ann,
        channel="email",
        category="marketing",
        idempotency_key="journey:runs:1",
        status="delivered",
    )
    StepRun.objects.create(
        tenant=tenant, enrollment=enrollment, step=step, outcome="queued", message=message
    )

    body = marketer_client.get(url("enrollment_change", enrollment.pk)).content.decode()

    assert "<td>1. Thanks</td>" in body
    assert "<td>Message queued</td>" in body
    assert f"#{message.pk}</a> Delivered" in body


def test_stopping_an_enrollment_needs_a_confirmation(marketer_client, tenant, ann):
    enrollment = enroll(simple_journey(tenant), ann)
    address = url("enrollment_stop", enrollment.pk)

    assert marketer_client.get(address).status_code == 200
    marketer_client.post(address, {})
    enrollment.refresh_from_db()
    assert enrollment.status == "active"

    marketer_client.post(address, {"confirm": "yes"})

    enrollment.refresh_from_db()
    assert (enrollment.status, enrollment.exit_reason) == ("exited", "manual")


def test_the_stop_action_on_the_list_asks_first(marketer_client, tenant):
    journey = simple_journey(tenant)
    rows = [enroll(journey, CustomerFactory(tenant=tenant)) for _ in range(2)]
    chosen = {"action": "stop_selected", "_selected_action": [r.pk for r in rows]}

    asked = marketer_client.post(url("enrollment_changelist"), {**chosen, "index": "0"})

    assert asked.status_code == 200
    assert b"Yes, stop 2" in asked.content
    assert Enrollment.objects.for_tenant(tenant).filter(status="active").count() == 2

    marketer_client.post(url("enrollment_changelist"), {**chosen, "confirm": "yes"})

    assert Enrollment.objects.for_tenant(tenant).filter(status="exited").count() == 2


# --- tenancy: another store's journey or enrollment is a 404 and nothing changes ------------------


def test_another_stores_journey_pages_answer_404(marketer_client, theirs):
    journey, enrollment = theirs
    step = (
        JourneyStep.objects.for_tenant(journey.tenant_id)
        .filter(version=journey.current_version)
        .first()
    )
    gets = [
        url("journey_change", journey.pk),
        url("journey_edit", journey.pk),
        url("journey_status", journey.pk, "paused"),
        url("journey_migrate", journey.pk, journey.current_version_id),
        url("journey_step_preview", journey.pk, step.pk),
        url("journey_test", journey.pk),
        url("enrollment_change", enrollment.pk),
        url("enrollment_stop", enrollment.pk),
    ]
    for address in gets:
        response = marketer_client.get(address)
        assert response.status_code == 404, address
        assert "Bravo secret journey" not in response.content.decode()


def test_posts_to_another_stores_journey_change_nothing(marketer_client, theirs, ann):
    journey, enrollment = theirs
    posts = [
        (url("journey_status", journey.pk, "archived"), {"confirm": "yes"}),
        (url("journey_edit", journey.pk), {"trigger": "cart_abandoned"}),
        (url("journey_test", journey.pk), {"customer": ann.pk, "confirm": "yes"}),
        (url("journey_migrate", journey.pk, journey.current_version_id), {"confirm": "yes"}),
        (url("enrollment_stop", enrollment.pk), {"confirm": "yes"}),
    ]
    for address, data in posts:
        assert marketer_client.post(address, data).status_code == 404, address
    marketer_client.post(
        url("enrollment_changelist"),
        {"action": "stop_selected", "_selected_action": [enrollment.pk], "confirm": "yes"},
    )

    journey.refresh_from_db()
    enrollment.refresh_from_db()
    assert (journey.status, journey.current_version.number) == ("active", 1)
    assert (enrollment.status, enrollment.exit_reason) == ("active", "")
    assert Enrollment.objects.unscoped().filter(journey=journey).count() == 1


def test_test_mode_never_previews_another_stores_customer(marketer_client, tenant, other_tenant):
    journey = simple_journey(tenant)
    eve = CustomerFactory(tenant=other_tenant, first_name="Eve")

    response = marketer_client.get(url("journey_test", journey.pk), {"customer": eve.pk})

    body = response.content.decode()
    assert f"No customer with the id {eve.pk} in this store." in body
    assert "for Eve" not in body
    marketer_client.post(url("journey_test", journey.pk), {"customer": eve.pk, "confirm": "yes"})
    assert not Enrollment.objects.unscoped().filter(customer=eve).exists()
