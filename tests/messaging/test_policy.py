"""Send-time rules as pure functions: consent, quiet hours at exact boundaries
in several timezones, the cap's scope and the retry backoff."""

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from messaging import policy

QUIET = {"start": time(21, 0), "end": time(8, 0)}


def _local(tz: str, *args) -> datetime:
    return datetime(*args, tzinfo=ZoneInfo(tz))


@pytest.mark.parametrize("tz", ["Europe/Berlin", "America/New_York", "Asia/Kolkata", "UTC"])
def test_the_quiet_window_starts_at_21_00_local_and_ends_at_08_00(tz):
    zone = ZoneInfo(tz)
    assert policy.quiet_until(now=_local(tz, 2026, 6, 1, 20, 59, 59), tz=zone, **QUIET) is None
    assert policy.quiet_until(now=_local(tz, 2026, 6, 1, 21, 0), tz=zone, **QUIET) == _local(
        tz, 2026, 6, 2, 8, 0
    )
    assert policy.quiet_until(now=_local(tz, 2026, 6, 2, 7, 59, 59), tz=zone, **QUIET) == _local(
        tz, 2026, 6, 2, 8, 0
    )
    assert policy.quiet_until(now=_local(tz, 2026, 6, 2, 8, 0), tz=zone, **QUIET) is None


def test_quiet_hours_are_read_in_the_customers_timezone_not_utc():
    # 19:30 UTC is 21:30 in Berlin (summer) but 15:30 in New York.
    now = datetime(2026, 7, 1, 19, 30, tzinfo=UTC)
    berlin = policy.quiet_until(now=now, tz=ZoneInfo("Europe/Berlin"), **QUIET)
    assert berlin == datetime(2026, 7, 2, 6, 0, tzinfo=UTC)  # 08:00 CEST
    assert policy.quiet_until(now=now, tz=ZoneInfo("America/New_York"), **QUIET) is None


def test_the_night_the_clocks_go_back_resumes_at_08_00_local_time():
    # Europe/Berlin leaves summer time on 2026-10-25 at 03:00: the night is an hour longer.
    zone = ZoneInfo("Europe/Berlin")
    until = policy.quiet_until(now=_local("Europe/Berlin", 2026, 10, 24, 23, 0), tz=zone, **QUIET)
    assert until.astimezone(UTC) == datetime(2026, 10, 25, 7, 0, tzinfo=UTC)  # 08:00 CET


def test_a_daytime_window_and_an_empty_window():
    zone = ZoneInfo("UTC")
    lunch = {"start": time(12, 0), "end": time(13, 0)}
    assert policy.quiet_until(now=_local("UTC", 2026, 1, 1, 12, 30), tz=zone, **lunch) == _local(
        "UTC", 2026, 1, 1, 13, 0
    )
    assert policy.quiet_until(now=_local("UTC", 2026, 1, 1, 13, 0), tz=zone, **lunch) is None
    same = {"start": time(9, 0), "end": time(9, 0)}
    assert policy.quiet_until(now=_local("UTC", 2026, 1, 1, 9, 0), tz=zone, **same) is None


@given(
    st.datetimes(
        min_value=datetime(2024, 1, 1), max_value=datetime(2030, 12, 31), timezones=st.just(UTC)
    ),
    st.sampled_from(["Europe/Berlin", "America/Los_Angeles", "Australia/Sydney", "Asia/Tokyo"]),
)
def test_a_deferred_message_resumes_outside_quiet_hours_within_a_day(now, tz):
    zone = ZoneInfo(tz)
    until = policy.quiet_until(now=now, tz=zone, **QUIET)
    local = now.astimezone(zone).time()
    in_window = local >= QUIET["start"] or local < QUIET["end"]
    assert (until is not None) == in_window
    if until is not None:
        assert now < until <= now + timedelta(hours=12)
        assert policy.quiet_until(now=until, tz=zone, **QUIET) is None


CONSENT = {"email_requires_opt_in": True, "suppression": None}


@pytest.mark.parametrize(
    ("channel", "category", "consent", "allowed"),
    [
        ("email", "marketing", "opted_in", True),
        ("email", "marketing", "unknown", False),
        ("email", "marketing", None, False),
        ("email", "marketing", "opted_out", False),
        ("email", "transactional", "opted_out", True),
        ("sms", "marketing", "opted_in", True),
        ("sms", "marketing", None, False),
        ("sms", "transactional", None, True),
        ("sms", "transactional", "opted_out", False),
        ("in_app", "marketing", None, True),
        ("in_app", "marketing", "opted_out", False),
        ("in_app", "transactional", "opted_out", True),
        ("email", "test", "opted_out", True),
    ],
)
def test_consent_rules_per_channel_and_category(channel, category, consent, allowed):
    decision = policy.consent_decision(
        channel=channel, category=category, consent=consent, **CONSENT
    )
    assert (decision is None) == allowed


def test_unknown_email_consent_is_enough_when_the_tenant_does_not_require_opt_in():
    assert (
        policy.consent_decision(
            channel="email",
            category="marketing",
            consent=None,
            suppression=None,
            email_requires_opt_in=False,
        )
        is None
    )


@pytest.mark.parametrize(
    ("reason", "blocks_transactional"),
    [
        ("bounce", True),
        ("dropped", True),
        ("invalid", True),
        ("sms_stop", True),
        ("manual", True),
        ("unsubscribe", False),
        ("spamreport", False),
    ],
)
def test_a_suppression_blocks_marketing_and_only_hard_reasons_block_transactional(
    reason, blocks_transactional
):
    common = {"channel": "email", "consent": "opted_in", "email_requires_opt_in": True}
    marketing = policy.consent_decision(category="marketing", suppression=reason, **common)
    transactional = policy.consent_decision(category="transactional", suppression=reason, **common)
    assert marketing == ("suppressed", f"address suppressed ({reason})")
    assert (transactional is not None) == blocks_transactional


def test_quiet_hours_and_the_cap_apply_where_they_should():
    assert policy.quiet_hours_apply(channel="email", category="marketing")
    assert policy.quiet_hours_apply(channel="sms", category="transactional")
    assert not policy.quiet_hours_apply(channel="email", category="transactional")
    assert not policy.quiet_hours_apply(channel="in_app", category="marketing")
    assert policy.counts_toward_cap(channel="sms", category="marketing")
    assert not policy.counts_toward_cap(channel="email", category="transactional")
    assert not policy.counts_toward_cap(channel="in_app", category="marketing")


def test_retries_back_off_exponentially_and_honour_retry_after():
    delays = [policy.retry_delay(attempts=n, retry_after=None).total_seconds() for n in (1, 2, 3)]
    assert delays == [30, 60, 120]
    assert policy.retry_delay(attempts=20, retry_after=None) == timedelta(hours=1)
    assert policy.retry_delay(attempts=1, retry_after=600) == timedelta(seconds=600)
