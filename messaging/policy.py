"""Send-time rules as pure functions: consent and suppression, quiet hours, the
frequency cap. The outbox loads the facts for a batch set-based and asks these.

Consent rules (per channel and category):

- email, marketing: never to an opted-out customer; to unknown consent only when
  the tenant allows it (``email_requires_opt_in`` off). Transactional email goes
  regardless of marketing consent.
- SMS, marketing: only to customers who opted in (express consent). SMS,
  transactional: not to a customer who opted out (STOP covers every message
  from the number).
- in-app, marketing: not to a customer who opted out of in-app messages.
- suppressions: a bounced, dropped, invalid, STOPped or staff-blocked address
  gets nothing; an unsubscribe or spam report blocks marketing only.
- staff test sends go to the marketer's own address and skip all of this.

Quiet hours apply to marketing email and SMS and to transactional SMS (a text at
night wakes people; an order email does not); in-app messages wait in the inbox
and never need deferring.
"""

from __future__ import annotations

from datetime import datetime, time, timedelta, tzinfo

from commerce.models import Channel, ConsentStatus
from messaging.models import BLOCKS_ALL, STAFF_CATEGORIES, Category, Reason

Decision = tuple[str, str] | None  # (reason, detail) when the message may not go


def consent_decision(
    *,
    channel: str,
    category: str,
    consent: str | None,
    suppression: str | None,
    email_requires_opt_in: bool,
) -> Decision:
    """Why this message may not be sent on consent grounds, or None."""
    if category in STAFF_CATEGORIES:
        return None
    marketing = category == Category.MARKETING
    if suppression is not None and (marketing or suppression in BLOCKS_ALL):
        return Reason.SUPPRESSED, f"address suppressed ({suppression})"
    if consent == ConsentStatus.OPTED_OUT and (marketing or channel == Channel.SMS):
        return Reason.OPTED_OUT, f"customer opted out of {channel}"
    if not marketing:
        return None
    if channel == Channel.SMS and consent != ConsentStatus.OPTED_IN:
        return Reason.NO_CONSENT, "marketing SMS needs an opt-in"
    if channel == Channel.EMAIL and email_requires_opt_in and consent != ConsentStatus.OPTED_IN:
        return Reason.NO_CONSENT, "marketing email needs an opt-in (tenant setting)"
    return None


def quiet_hours_apply(*, channel: str, category: str) -> bool:
    if category in STAFF_CATEGORIES or channel == Channel.IN_APP:
        return False
    return category == Category.MARKETING or channel == Channel.SMS


def quiet_until(*, now: datetime, tz: tzinfo, start: time, end: time) -> datetime | None:
    """The first allowed moment (aware, in ``tz``) if ``now`` falls in the quiet
    window [start, end) of local time, else None. A window may cross midnight
    (21:00 to 08:00); start == end means no quiet hours."""
    if start == end:
        return None
    local = now.astimezone(tz)
    t = local.time().replace(tzinfo=None)
    quiet = (start <= t < end) if start < end else (t >= start or t < end)
    if not quiet:
        return None
    day = local.date() if t < end else local.date() + timedelta(days=1)
    # A wall time that falls in a DST gap that day is read with the offset from
    # before the jump, which lands just after it: still an allowed minute.
    resume = datetime.combine(day, end, tzinfo=tz)
    return max(resume, now)


def counts_toward_cap(*, channel: str, category: str) -> bool:
    return category == Category.MARKETING and channel in (Channel.EMAIL, Channel.SMS)


def retry_delay(*, attempts: int, retry_after: float | None) -> timedelta:
    """Backoff before the next try: 30 s, 1, 2, 4 … minutes (at most an hour),
    or the provider's Retry-After when it asks for longer."""
    backoff = min(30 * 2 ** max(attempts - 1, 0), 3600)
    return timedelta(seconds=max(backoff, min(retry_after or 0, 3600)))
