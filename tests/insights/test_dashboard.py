"""The dashboard: its numbers against hand-computed rollup rows, the target
colours, the filters, CSV, bad filter values, who may see it and tenant
isolation."""

from __future__ import annotations

import csv
import io
from datetime import date

import pytest
from django.test import Client
from django.urls import reverse

from insights.models import Snapshot
from insights.selectors import dashboard_data
from insights.services.setup import insights_settings
from insights.views import CHARTS
from retention import clock
from retention.models import Role
from tests.conftest import login_as
from tests.factories import UserFactory
from tests.insights.dashboard_rows import NOW, TODAY, fill

DEFAULT_START = date(2026, 2, 19)


@pytest.fixture(autouse=True)
def _now():
    clock.set_now(NOW)


@pytest.fixture
def rows(tenant) -> dict:
    return fill(tenant)


def _data(tenant, *, start=DEFAULT_START, end=TODAY, segment_id=None, channel=None) -> dict:
    return dashboard_data(
        tenant=tenant, start=start, end=end, segment_id=segment_id, channel=channel
    )


def _kpis(row: dict) -> dict[str, dict]:
    return {cell["kpi"]: cell for cell in row["kpis"]}


def _values(row: dict) -> dict[str, float | None]:
    return {kpi: cell["value"] for kpi, cell in _kpis(row).items()}


# --- the numbers --------------------------------------------------------------------------


def test_journey_kpis_are_ratios_of_the_summed_counts(tenant, rows):
    kpis = _data(tenant)["kpis"]

    [journey, loose] = kpis["journeys"]
    assert journey["label"] == "Alpha Welcome journey"
    assert loose["label"] == "Not from a journey"
    # Rows of 2, 3 and 4 March; the January row is outside the range.
    assert journey["counts"]["sent"] == 350
    assert _values(journey) == {
        "delivery_rate": pytest.approx(335 / 350),
        "open_rate": pytest.approx(49 / 335),
        "click_rate": pytest.approx(9 / 335),
        "conversion_rate": pytest.approx(7 / 350),
        "response_rate": pytest.approx(11 / 350),
        "unsubscribe_rate": pytest.approx(3 / 350),
    }
    assert journey["avg_next_action_seconds"] == pytest.approx(72000 / 15)


def test_each_tier_of_a_journey_has_its_own_numbers_and_targets(tenant, rows):
    journey = _data(tenant)["kpis"]["journeys"][0]

    tiers = {t["tier"]: t for t in journey["tiers"]}
    assert list(tiers) == ["high_value_repeat", "one_time"]
    high = _kpis(tiers["high_value_repeat"])
    assert high["open_rate"]["value"] == pytest.approx(30 / 145)
    assert (high["open_rate"]["low"], high["open_rate"]["high"]) == (0.25, 0.40)
    assert high["click_rate"]["value"] == pytest.approx(8 / 145)
    assert (high["click_rate"]["low"], high["click_rate"]["high"]) == (0.04, 0.09)
    assert high["conversion_rate"]["value"] == pytest.approx(6 / 150)
    assert (high["conversion_rate"]["low"], high["conversion_rate"]["high"]) == (0.03, 0.07)
    one_time = _kpis(tiers["one_time"])
    assert one_time["open_rate"]["value"] == pytest.approx(0.10)
    assert (one_time["open_rate"]["low"], one_time["open_rate"]["high"]) == (0.10, 0.20)
    # No tier range for delivery: the all-customer one applies.
    assert (high["delivery_rate"]["low"], high["delivery_rate"]["high"]) == (0.95, 1.0)


def test_rag_colours_follow_the_target_ranges(tenant, rows):
    journey = _data(tenant)["kpis"]["journeys"][0]
    colours = {kpi: cell["rag"] for kpi, cell in _kpis(journey).items()}
    # All-customer ranges: open 15-30% (amber down to 12%), unsubscribes 0-0.5%
    # (amber up to 0.6%).
    assert colours == {
        "delivery_rate": "green",  # 95.7% in 95-100%
        "open_rate": "amber",  # 14.6%
        "click_rate": "green",  # 2.7% in 2-6%
        "conversion_rate": "green",  # 2.0% in 1-4%
        "response_rate": "green",  # 3.1% in 2-8%
        "unsubscribe_rate": "red",  # 0.86%
    }
    tiers = {t["tier"]: _kpis(t) for t in journey["tiers"]}
    assert tiers["high_value_repeat"]["open_rate"]["rag"] == "red"  # 20.7% < 25% - 3%
    assert tiers["high_value_repeat"]["click_rate"]["rag"] == "green"
    assert tiers["one_time"]["open_rate"]["rag"] == "green"  # 10% on the edge
    assert tiers["one_time"]["click_rate"]["rag"] == "red"  # 0.53% < 1% - 0.4%


def test_rag_colours_reach_the_page(tenant, rows, viewer_client):
    text = viewer_client.get(reverse("dashboard")).content.decode()
    assert 'class="rag rag-amber" data-kpi="open_rate" data-rag="amber">14.6%' in text
    assert 'data-kpi="unsubscribe_rate" data-rag="red">0.9%' in text
    assert "15-30%" in text  # the all-customer open range
    assert "25-40%" in text  # the high-value repeat open range


def test_steps_channels_and_the_total(tenant, rows):
    kpis = _data(tenant)["kpis"]

    steps = {s["label"]: s for s in kpis["steps"]}
    assert set(steps) == {
        "v1 · 1. Alpha Welcome journey step 1",
        "v1 · 2. Alpha Welcome journey step 2",
    }
    first = steps["v1 · 1. Alpha Welcome journey step 1"]
    assert first["counts"]["sent"] == 150
    assert _values(first)["open_rate"] == pytest.approx(30 / 145)
    channels = {c["key"]: c for c in kpis["channels"]}
    assert list(channels) == ["email", "sms"]
    assert channels["email"]["counts"]["sent"] == 310
    assert _values(channels["email"])["open_rate"] == pytest.approx(54 / 295)
    assert _values(channels["sms"])["click_rate"] == pytest.approx(3 / 50)
    # An SMS is never seen opened: no open rate, no colour.
    assert (
        _kpis(channels["sms"])["open_rate"]["value"],
        _kpis(channels["sms"])["open_rate"]["rag"],
    ) == (None, "")
    assert kpis["total"]["counts"]["sent"] == 360
    assert _values(kpis["total"])["click_rate"] == pytest.approx(10 / 345)


def test_segment_kpis_come_from_the_segment_rollup(tenant, rows):
    [segment] = _data(tenant)["kpis"]["segments"]
    assert segment["label"] == "Alpha VIP segment"
    assert segment["counts"]["sent"] == 50
    assert _values(segment) == {
        "delivery_rate": pytest.approx(49 / 50),
        "open_rate": pytest.approx(12 / 49),
        "click_rate": pytest.approx(5 / 49),
        "conversion_rate": pytest.approx(3 / 50),
        "response_rate": pytest.approx(6 / 50),
        "unsubscribe_rate": pytest.approx(1 / 50),
    }
    assert segment["avg_next_action_seconds"] == pytest.approx(86400)


def test_product_families_reorder_rate_and_upsell_aov(tenant, rows):
    [family] = _data(tenant)["families"]
    assert family["name"] == "Alpha Coffee family"
    assert (family["orders"], family["reorders"]) == (20, 5)
    assert family["reorder_rate"] == pytest.approx(0.25)
    assert family["upsell_orders"] == 5
    assert str(family["upsell_revenue"]) == "150.00"
    assert str(family["upsell_aov"]) == "30.00"


def test_the_retention_metric_reads_the_cohorts_whose_window_closed(tenant, rows):
    retention = _data(tenant)["retention"]

    weeks = retention["weeks"]
    assert len(weeks) == 26
    last = weeks[-1]
    # Wednesday 18 March: the newest full week is 9-15 March; the cohort is
    # the week that ended 90 days before it.
    assert (last["week_start"], last["week_end"]) == (date(2026, 3, 9), date(2026, 3, 15))
    assert (last["cohort_start"], last["cohort_end"]) == (date(2025, 12, 9), date(2025, 12, 15))
    assert (last["first_buyers"], last["returned"]) == (20, 5)
    assert retention["current"] == pytest.approx(0.25)
    # The week before: 4 of 20; the row computed with a 60-day window is ignored.
    assert (weeks[-2]["first_buyers"], weeks[-2]["returned"]) == (20, 4)
    assert retention["previous"] == pytest.approx(0.20)
    assert retention["change"] == pytest.approx(0.05)
    assert retention["target"] == 0.30
    assert retention["trend"]["last4"] == pytest.approx(9 / 40)
    assert retention["trend"]["prev4"] is None
    assert retention["trend"]["slope_per_week"] == pytest.approx(0.05)
    assert all(w["value"] is None for w in weeks[:-2])


def test_the_retention_trend_compares_the_last_four_weeks_with_the_four_before(tenant, rows):
    settings = insights_settings(tenant)
    settings.retention_target = 0.4
    settings.save()
    # The same rows read from one week later: this week is 16-22 March
    # (first orders 16-22 Dec: 100 of 100 returned).
    retention = _data(tenant, end=date(2026, 3, 22))["retention"]
    assert retention["current"] == pytest.approx(1.0)
    assert retention["change"] == pytest.approx(0.75)
    assert retention["target"] == 0.4
    assert retention["trend"]["last4"] == pytest.approx(109 / 140)
    assert retention["trend"]["direction"] == ""  # nothing in the four weeks before


def test_cohort_heatmap(tenant, rows):
    cohorts = _data(tenant)["cohorts"]
    assert cohorts["months"] == list(range(13))
    assert [r["cohort"] for r in cohorts["rows"]] == [date(2026, 1, 1), date(2026, 2, 1)]
    january, february = cohorts["rows"]
    assert january["size"] == 100
    assert [c["value"] for c in january["cells"][:4]] == [1.0, 0.2, 0.1, None]
    assert [c["value"] for c in february["cells"][:3]] == [1.0, 0.1, None]
    assert cohorts["scale"] == pytest.approx(0.2)


def test_snapshots_tiers_churn_and_feedback(tenant, rows):
    data = _data(tenant)
    assert [(s["tier"], s["count"]) for s in data["tiers"]["sizes"]] == [
        ("high_value_repeat", 120),
        ("mid_value_repeat", 340),
        ("one_time", 900),
    ]
    assert [(f["from"], f["to"], f["count"]) for f in data["tiers"]["flow"]] == [
        ("one_time", "mid_value_repeat", 25),
        ("mid_value_repeat", "high_value_repeat", 7),
        ("", "one_time", 3),
    ]
    assert data["tiers"]["flow"][2]["from_label"] == "No tier"
    assert data["tiers"]["flow_since"] == date(2026, 2, 17)
    churn = data["churn"]
    assert [b["count"] for b in churn["histogram"]] == [10, 20, 30, 40, 50, 60, 70, 80, 90, 100]
    assert (churn["histogram"][9]["low"], churn["histogram"][9]["high"]) == (0.9, 1.0)
    assert churn["bands"] == {"low": 600, "medium": 300, "high": 100}
    assert churn["scored"] == 550
    assert churn["at_risk"] == [
        {
            "customer_id": rows["customer"].pk,
            "email": "alpha-at-risk@example.com",
            "name": "Alpha Risky",
            "p_churn": 0.81,
            "value": 950.0,
        }
    ]
    feedback = data["feedback"]
    assert feedback["response_rate"] == pytest.approx(0.25)
    assert [(c["class"], c["share"]) for c in feedback["classes"]] == [
        ("promoter", pytest.approx(0.6)),
        ("neutral", pytest.approx(0.3)),
        ("detractor", pytest.approx(0.1)),
    ]
    assert feedback["sla_met_rate"] == pytest.approx(0.8)
    assert [a["segment"] for a in data["alerts"]] == ["Alpha VIP segment"]
    assert [e["name"] for e in data["experiments"]] == ["Alpha subject line test"]


def test_missing_snapshots_say_not_computed_yet(tenant, viewer_client):
    data = _data(tenant)
    assert (data["tiers"], data["churn"], data["feedback"]) == (None, None, None)
    assert data["kpis"]["journeys"] == []
    assert data["retention"]["current"] is None

    response = viewer_client.get(reverse("dashboard"))
    assert response.status_code == 200
    text = response.content.decode()
    assert "Tier sizes: not computed yet." in text
    assert "Churn risk: not computed yet." in text
    assert "Feedback: not computed yet." in text

    # A snapshot taken before any scoring has only zeros.
    Snapshot.objects.create(
        tenant=tenant,
        day=TODAY,
        kind="churn",
        data={"bands": {}, "histogram": [0] * 10, "at_risk": []},
    )
    text = viewer_client.get(reverse("dashboard")).content.decode()
    assert "Churn risk: no customer has been scored yet." in text
    assert 'data-chart="churn"' not in text


def test_the_page_shows_the_numbers_and_the_charts(tenant, rows, viewer_client):
    response = viewer_client.get(reverse("dashboard"))
    assert response.status_code == 200
    text = response.content.decode()
    assert "vendor/chartjs/chart.umd.min.js" in text and "insights/dashboard.js" in text
    for chart in ("retention", "kpi-channels", "tiers", "churn"):
        assert f'<canvas data-chart="{chart}"' in text
    assert 'id="dashboard-data"' in text
    assert '<span class="dash-big" id="retention-current">25.0%</span>' in text
    assert "+5.0 pp" in text
    assert "Alpha Risky" in text and "alpha-at-risk@example.com" in text
    url = reverse("admin:experiments_experiment_results", args=[rows["experiment"].pk])
    assert f'href="{url}"' in text
    assert "Alpha VIP segment</strong>: engagement up 100%" in text


# --- filters ----------------------------------------------------------------------------


def test_the_segment_filter_narrows_the_channel_table_to_its_members(tenant, rows):
    kpis = _data(tenant, segment_id=rows["segment"].pk)["kpis"]
    assert kpis["segment_filtered"] is True
    channels = {c["key"]: c["counts"]["sent"] for c in kpis["channels"]}
    assert channels == {"email": 40, "sms": 10}
    assert kpis["total"]["counts"]["sent"] == 50
    assert _values(kpis["total"])["open_rate"] == pytest.approx(12 / 49)
    # The journey table is not split by segment in the rollups: it stays whole.
    assert kpis["journeys"][0]["counts"]["sent"] == 350


def test_the_channel_filter_narrows_every_kpi_table(tenant, rows):
    kpis = _data(tenant, channel="sms")["kpis"]
    assert [j["counts"]["sent"] for j in kpis["journeys"]] == [50]
    assert [c["key"] for c in kpis["channels"]] == ["sms"]
    assert [s["counts"]["sent"] for s in kpis["segments"]] == [10]
    assert [s["counts"]["sent"] for s in kpis["steps"]] == [50]
    assert _values(kpis["journeys"][0])["open_rate"] is None
    assert _values(kpis["journeys"][0])["click_rate"] == pytest.approx(3 / 50)


def test_the_date_range_picks_the_days(tenant, rows, viewer_client):
    kpis = _data(tenant, start=date(2026, 1, 1), end=date(2026, 1, 31))["kpis"]
    assert [j["counts"]["sent"] for j in kpis["journeys"]] == [1000]

    response = viewer_client.get(
        reverse("dashboard"),
        {"start": "2026-01-01", "end": "2026-01-31", "channel": "email"},
    )
    assert response.status_code == 200
    assert response.context["data"]["kpis"]["total"]["counts"]["sent"] == 1000


def test_the_default_range_is_the_last_28_days(tenant, rows, viewer_client):
    response = viewer_client.get(reverse("dashboard"))
    filters = response.context["data"]["filters"]
    assert (filters["start"], filters["end"]) == (DEFAULT_START, TODAY)
    assert response.context["query"] == "start=2026-02-19&end=2026-03-18"
    text = response.content.decode()
    assert 'name="start" value="2026-02-19"' in text and 'name="end" value="2026-03-18"' in text


def test_the_page_passes_the_filters_on(tenant, rows, viewer_client):
    segment = rows["segment"].pk
    response = viewer_client.get(reverse("dashboard"), {"segment": segment, "channel": "sms"})
    assert response.status_code == 200
    assert response.context["data"]["kpis"]["total"]["counts"]["sent"] == 10
    assert f"segment={segment}&amp;channel=sms" in response.content.decode()


BAD_FILTERS = [
    ({"start": "2026-13-45"}, "From: Enter a valid date."),
    ({"end": "yesterday"}, "To: Enter a valid date."),
    ({"start": "2026-03-10", "end": "2026-03-01"}, "must be on or before the end date"),
    ({"start": "0001-01-01"}, "Give a date between 2000-01-01 and 2027-03-19"),
    ({"start": "2020-01-01", "end": "2026-01-01"}, "at most 731 days"),
    ({"end": "9999-12-31"}, "Give a date between 2000-01-01"),
    ({"segment": "abc"}, "Choose one of this store&#x27;s segments (abc is not)"),
    ({"segment": "99999999999999999999999"}, "Choose one of this store&#x27;s segments"),
    ({"channel": "fax"}, "Choose email, SMS or in-app (fax is not)"),
]


def test_bad_filters_answer_400_with_a_clear_message(tenant, viewer_client):
    for params, message in BAD_FILTERS:
        response = viewer_client.get(reverse("dashboard"), params)
        assert response.status_code == 400, params
        text = response.content.decode()
        assert 'id="filter-errors"' in text
        assert message in text, params

        csv_response = viewer_client.get(reverse("dashboard-csv", args=["retention"]), params)
        assert csv_response.status_code == 400
        assert csv_response["Content-Type"].startswith("text/plain")
        assert csv_response.content.decode().startswith("Bad filters: ")


# --- CSV --------------------------------------------------------------------------------


def _csv(response) -> list[list[str]]:
    return list(csv.reader(io.StringIO(response.content.decode())))


def test_every_chart_downloads_as_csv(tenant, rows, viewer_client):
    for chart in CHARTS:
        response = viewer_client.get(reverse("dashboard-csv", args=[chart]))
        assert response.status_code == 200, chart
        assert response["Content-Type"] == "text/csv; charset=utf-8"
        assert response["Content-Disposition"] == (
            f'attachment; filename="alpha-{chart}-2026-02-19-2026-03-18.csv"'
        )
        assert len(_csv(response)) >= 2, chart


def test_the_retention_csv_has_the_weekly_numbers(tenant, rows, viewer_client):
    table = _csv(viewer_client.get(reverse("dashboard-csv", args=["retention"])))
    assert table[0] == [
        "week_start",
        "week_end",
        "cohort_first_order_from",
        "cohort_first_order_to",
        "first_buyers",
        "returned",
        "retention",
        "target",
    ]
    assert len(table) == 27
    assert table[-1] == [
        "2026-03-09",
        "2026-03-15",
        "2025-12-09",
        "2025-12-15",
        "20",
        "5",
        "0.25",
        "0.3",
    ]


def test_the_kpi_csv_follows_the_filters(tenant, rows, viewer_client):
    table = _csv(
        viewer_client.get(reverse("dashboard-csv", args=["kpi-channels"]), {"channel": "sms"})
    )
    header, sms, total = table
    assert header[:9] == [
        "channel", "sent", "delivered", "opened", "clicked", "converted", "responded",
        "unsubscribed", "delivery_rate",
    ]  # fmt: skip
    assert sms[:3] == ["sms", "50", "50"]
    assert total[:2] == ["all", "50"]
    row = dict(zip(header, sms, strict=True))
    assert (row["click_rate"], row["click_rate_rag"]) == ("0.06", "green")

    cohorts = _csv(viewer_client.get(reverse("dashboard-csv", args=["cohorts"])))
    assert cohorts[1][:5] == ["2026-01", "100", "1", "0.2", "0.1"]


def test_an_unknown_chart_is_404(viewer_client):
    assert viewer_client.get("/dashboard/csv/nothing/").status_code == 404


def test_a_name_is_never_a_spreadsheet_formula(tenant, rows, viewer_client):
    rows["family"].name = "=HYPERLINK(1)"
    rows["family"].save()
    table = _csv(viewer_client.get(reverse("dashboard-csv", args=["families"])))
    assert table[1][0] == "'=HYPERLINK(1)"


# --- who may see it ---------------------------------------------------------------------


@pytest.mark.parametrize("role", [Role.OWNER, Role.MARKETER, Role.AGENT, Role.VIEWER])
def test_every_member_may_read_it(tenant, rows, role):
    client = login_as(tenant, role)
    assert client.get(reverse("dashboard")).status_code == 200
    assert client.get(reverse("dashboard-csv", args=["tiers"])).status_code == 200


def test_anonymous_people_are_sent_to_the_login(tenant):
    for url in (reverse("dashboard"), reverse("dashboard-csv", args=["retention"])):
        response = Client().get(url)
        assert response.status_code == 302
        assert response["Location"].startswith(f"/admin/login/?next={url}")


def test_someone_without_a_store_gets_403(tenant, rows):
    client = Client()
    client.force_login(UserFactory(email="nobody@example.com"))
    for url in (reverse("dashboard"), reverse("dashboard-csv", args=["retention"])):
        response = client.get(url)
        assert response.status_code == 403
        assert b"not a member of any store" in response.content
        assert b"Alpha" not in response.content


# --- tenant isolation -------------------------------------------------------------------


def _all_urls() -> list[str]:
    return [reverse("dashboard")] + [reverse("dashboard-csv", args=[c]) for c in CHARTS]


def test_one_store_never_sees_anothers_numbers(tenant, other_tenant):
    fill(tenant, marker="Alpha")
    theirs = fill(other_tenant, marker="Bravo")
    # Even a snapshot of ours that names their customer never shows them.
    Snapshot.objects.for_tenant(tenant).filter(kind="churn").update(
        data={"at_risk": [{"id": theirs["customer"].pk, "email": "x", "p_churn": 0.9, "value": 1}]}
    )
    client = login_as(tenant, Role.OWNER)

    for url in _all_urls():
        for params in ({}, {"start": "2025-06-01", "end": "2026-03-18"}):
            response = client.get(url, params)
            assert response.status_code == 200, url
            text = response.content.decode().lower()
            assert "bravo" not in text, url
    # Their segment is not a choice here: refused, and nothing of theirs shown.
    for url in _all_urls():
        response = client.get(url, {"segment": theirs["segment"].pk})
        assert response.status_code == 400, url
        assert "bravo" not in response.content.decode().lower()
    page = client.get(reverse("dashboard")).content.decode()
    assert f'value="{theirs["segment"].pk}"' not in page
    assert "Alpha VIP segment" in page


def test_a_member_of_both_stores_sees_the_one_chosen(tenant, other_tenant):
    fill(tenant, marker="Alpha")
    fill(other_tenant, marker="Bravo")
    client = login_as(tenant, Role.VIEWER, email="both@example.com")
    login_as(other_tenant, Role.VIEWER, email="both@example.com")
    client.post(reverse("tenant-switch"), {"tenant": other_tenant.pk, "next": "/dashboard/"})

    text = client.get(reverse("dashboard")).content.decode()
    assert "Bravo Welcome journey" in text
    assert "Alpha Welcome journey" not in text and "alpha-at-risk" not in text
