"""Answering the survey by SMS: the reply parser (with properties), and replies
through the real signed Twilio inbound webhook (recorded once, thanked, one
retry prompt for an unreadable reply)."""

from __future__ import annotations

import itertools
from datetime import timedelta

import pytest
from django.test import Client
from hypothesis import given
from hypothesis import strategies as st

from commerce.models import Channel, ChannelConsent, ConsentStatus
from feedback.models import SurveyInvitation, SurveyResponse
from feedback.survey_hooks import RETRY_PROMPT, parse_sms_answer, survey_sms_reply
from messaging.models import MessagingSettings, ProviderEvent
from messaging.services.callbacks import INBOUND_SMS_HOOKS
from retention import clock
from tests.factories import CustomerFactory
from tests.feedback.test_survey_support import NOW, callbacks, invite, survey_touchpoints
from tests.messaging.signing import twilio_post

TOKEN = "twilio-auth-token-for-tests"
BASE = "https://retention.example"
STORE_NUMBER = "+4930123456"
OTHER_STORE_NUMBER = "+4930999999"
SHOPPER = "+4915112345678"
EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response></Response>'
_sids = itertools.count(1)


# --- the parser -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "rating", "text", "call"),
    [
        ("4", 4, "", False),
        ("4 fast delivery", 4, "fast delivery", False),
        ("2 call me", 2, "call me", True),
        ("5!", 5, "", False),
        (" 3 - slow shipping", 3, "slow shipping", False),
        ("3 \u2013 slow shipping", 3, "slow shipping", False),
        ("4/5 great", 4, "great", False),
        ("4 out of 5 stars, call me", 4, "call me", True),
        ("5stars", 5, "", False),
        ("*5*", 5, "", False),
        ('"5"', 5, "", False),
        ("1\n\nBox was   crushed", 1, "Box was crushed", False),
        ("four", 4, "", False),
        ("Five!", 5, "", False),
        ("five - great", 5, "great", False),
        ("Two stars", 2, "", False),
        ("three out of five", 3, "", False),
        ("2 please call back", 2, "please call back", True),
        ("1 callback", 1, "callback", True),
        ("2 ring me tonight", 2, "ring me tonight", True),
        ("3 give me a call", 3, "give me a call", True),
        ("1 not happy at all, call me", 1, "not happy at all, call me", True),
        ("3 don't call me", 3, "don't call me", False),
        ("3 don\u2019t call", 3, "don\u2019t call", False),
        ("2 no need to call", 2, "no need to call", False),
        ("3 please do not call", 3, "please do not call", False),
        ("2 no calls please", 2, "no calls please", False),
        ("4 recalled item", 4, "recalled item", False),
    ],
)
def test_replies_that_are_read(body, rating, text, call):
    parsed = parse_sms_answer(body)

    assert (parsed.rating, parsed.text, parsed.wants_call) == (rating, text, call)


@pytest.mark.parametrize(
    "body",
    [
        "",
        "   ",
        "0",
        "6",
        "10",
        "45",
        "4.5",
        "4,5 ok",
        "I'd say 4",
        "one item was missing",
        "two days late",
        "fourteen",
        "call me",
        "when does it ship?",
        "\u0664",  # an Arabic-Indic four: only ASCII digits are ratings
    ],
)
def test_replies_that_are_not_read(body):
    assert parse_sms_answer(body) is None


@given(
    rating=st.integers(1, 5),
    space=st.sampled_from(["", " ", "  ", "\n", "\t", "\u00a0"]),
    text=st.text(max_size=200),
)
def test_any_reply_starting_with_a_rating_reads_that_rating(rating, space, text):
    body = f"{space}{rating} {text}"

    parsed = parse_sms_answer(body)

    assert parsed is not None and parsed.rating == rating
    assert parsed.text == parsed.text.strip()
    assert len(parsed.text) <= 500
    assert "\n" not in parsed.text


@given(body=st.text(max_size=300))
def test_the_parser_never_fails_and_only_gives_ratings_1_to_5(body):
    parsed = parse_sms_answer(body)

    assert parsed is None or parsed.rating in range(1, 6)


def _after_leading_noise(text: str) -> str:
    """The reply from its first character that is not space, a quote or a bracket."""
    for i, char in enumerate(text):
        if not (char.isspace() or char in "\"'\u201c\u201d\u2018\u2019([*#"):
            return text[i:]
    return ""


@given(
    body=st.text(max_size=100).filter(
        lambda t: (
            not _after_leading_noise(t).lower().startswith(("1", "2", "3", "4", "5", "o", "t", "f"))
        )
    )
)
def test_a_reply_not_starting_with_a_rating_is_not_read(body):
    assert parse_sms_answer(body) is None


@given(number=st.integers(6, 10_000) | st.integers(-1000, 0))
def test_numbers_outside_1_to_5_are_not_ratings(number):
    assert parse_sms_answer(str(number)) is None
    assert parse_sms_answer(f"{number} great") is None


@given(rating=st.integers(1, 5), text=st.text(max_size=2000))
def test_long_replies_are_cut_to_the_answer_field(rating, text):
    parsed = parse_sms_answer(f"{rating} {text}")

    assert parsed is not None and len(parsed.text) <= 500


# --- through the webhook ----------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _setup(settings):
    clock.set_now(NOW)
    settings.TWILIO_AUTH_TOKEN = TOKEN
    settings.PUBLIC_BASE_URL = BASE


@pytest.fixture
def store_number(tenant) -> str:
    MessagingSettings.objects.update_or_create(tenant=tenant, defaults={"sms_from": STORE_NUMBER})
    return STORE_NUMBER


def _reply(body: str, *, to: str = STORE_NUMBER, sid: str | None = None):
    params = {
        "MessageSid": sid or f"SM{next(_sids):032x}",
        "From": SHOPPER,
        "To": to,
        "Body": body,
    }
    return twilio_post(Client(), TOKEN, BASE, "/hooks/twilio/inbound/", params)


def _twiml(text: str) -> str:
    return f'<?xml version="1.0" encoding="UTF-8"?><Response><Message>{text}</Message></Response>'


def _responses(tenant) -> list[tuple]:
    return list(
        SurveyResponse.objects.for_tenant(tenant)
        .order_by("id")
        .values_list("invitation_id", "rating", "highlight_text", "wants", "channel", "sms_body")
    )


def test_the_survey_hook_is_registered():
    assert survey_sms_reply in INBOUND_SMS_HOOKS


def test_a_rating_by_text_is_recorded_and_thanked(tenant, store_number):
    invitation = invite(tenant, channel="sms", phone=SHOPPER)

    response = _reply("5 fast delivery")

    assert response.status_code == 200
    assert response.content.decode() == _twiml("Thank you! We are so glad it went well.")
    assert _responses(tenant) == [(invitation.pk, 5, "fast delivery", "", "sms", "5 fast delivery")]
    assert [kind for _, kind, _ in survey_touchpoints(tenant)] == [
        "survey.answered",
        "survey.promoter",
    ]
    assert ProviderEvent.objects.get().outcome == "reply handled by survey_sms_reply"


def test_a_low_rating_asking_for_a_call_queues_one(tenant, store_number):
    invitation = invite(tenant, channel="sms", phone=SHOPPER)

    response = _reply("2 call me")

    assert response.content.decode() == _twiml(
        "Thank you! Someone from Alpha Store will call you soon."
    )
    assert _responses(tenant) == [(invitation.pk, 2, "call me", "callback", "sms", "2 call me")]
    [(customer_id, reason, source, *_, asked)] = callbacks(tenant)
    assert (customer_id, reason, source, asked) == (
        invitation.customer_id,
        "Rated the delivery 2 of 5 and asked for a call back",
        "survey",
        True,
    )


def test_a_detractor_by_text_is_told_someone_will_be_in_touch(tenant, store_number):
    invite(tenant, channel="sms", phone=SHOPPER)

    response = _reply("3")

    assert response.content.decode() == _twiml(
        "Thank you, and sorry it was not better. Someone from Alpha Store will be in touch soon."
    )
    assert len(callbacks(tenant)) == 1


def test_an_unsubscribed_detractor_is_not_promised_a_call(tenant, store_number):
    invitation = invite(tenant, channel="sms", phone=SHOPPER)
    ChannelConsent.objects.create(
        tenant=tenant,
        customer=invitation.customer,
        channel=Channel.EMAIL,
        status=ConsentStatus.OPTED_OUT,
    )

    response = _reply("1")

    assert response.content.decode() == _twiml(
        "Thank you, and sorry it was not better. Your answer helps us improve."
    )
    assert callbacks(tenant) == []


def test_a_neutral_is_thanked(tenant, store_number):
    invite(tenant, channel="sms", phone=SHOPPER)

    assert _reply("four").content.decode() == _twiml("Thank you for your answer!")
    assert _responses(tenant)[0][1] == 4


def test_an_unreadable_reply_gets_one_retry_prompt_then_is_left_to_others(tenant, store_number):
    invitation = invite(tenant, channel="sms", phone=SHOPPER)

    first = _reply("it was ok I guess")
    clock.advance(minutes=2)
    second = _reply("meh")

    assert first.content.decode() == _twiml(RETRY_PROMPT)
    assert second.content.decode() == EMPTY_TWIML
    invitation.refresh_from_db()
    assert invitation.retry_prompted_at == NOW
    assert _responses(tenant) == []
    # A readable reply after the prompt is still recorded.
    clock.advance(minutes=2)
    assert _reply("3 slow").content.decode().startswith("<?xml")
    assert _responses(tenant) == [(invitation.pk, 3, "slow", "", "sms", "3 slow")]


def test_the_retry_prompt_fits_one_sms():
    assert len(RETRY_PROMPT) <= 160 and RETRY_PROMPT.isascii()


def test_a_second_reply_after_the_answer_is_not_taken_as_another_answer(tenant, store_number):
    invite(tenant, channel="sms", phone=SHOPPER)
    _reply("5")

    response = _reply("4 actually")

    assert response.content.decode() == EMPTY_TWIML
    assert [r[1] for r in _responses(tenant)] == [5]


def test_a_replayed_reply_is_recorded_once(tenant, store_number):
    invite(tenant, channel="sms", phone=SHOPPER)
    _reply("2", sid="SMreplayed")

    _reply("2", sid="SMreplayed")

    assert len(_responses(tenant)) == 1
    assert len(callbacks(tenant)) == 1


def test_the_latest_open_sms_invitation_gets_the_answer(tenant, store_number):
    ann = CustomerFactory(tenant=tenant, phone=SHOPPER)
    older = invite(tenant, channel="sms", customer=ann)
    clock.advance(days=2)
    newer = invite(tenant, channel="sms", customer=ann)
    invite(tenant, channel="email", customer=ann)  # newest, but not sent by SMS

    _reply("4")
    _reply("2")

    assert [(r[0], r[1]) for r in _responses(tenant)] == [(newer.pk, 4), (older.pk, 2)]


def test_an_expired_invitation_does_not_take_replies(tenant, store_number):
    invite(tenant, channel="sms", phone=SHOPPER)
    clock.advance(days=30)

    response = _reply("5")

    assert response.content.decode() == EMPTY_TWIML
    assert _responses(tenant) == []
    assert SurveyInvitation.objects.for_tenant(tenant).get().retry_prompted_at is None


def test_a_reply_without_an_invitation_is_left_alone(tenant, store_number):
    CustomerFactory(tenant=tenant, phone=SHOPPER)

    response = _reply("5")

    assert response.content.decode() == EMPTY_TWIML
    assert ProviderEvent.objects.get().outcome == "reply recorded"


def test_stop_never_reaches_the_survey(tenant, store_number):
    invitation = invite(tenant, channel="sms", phone=SHOPPER)

    _reply("STOP")

    assert _responses(tenant) == []
    invitation.refresh_from_db()
    assert invitation.retry_prompted_at is None


def test_a_reply_to_one_store_never_answers_another_stores_survey(
    tenant, other_tenant, store_number
):
    MessagingSettings.objects.update_or_create(
        tenant=other_tenant, defaults={"sms_from": OTHER_STORE_NUMBER}
    )
    theirs = invite(other_tenant, channel="sms", phone=SHOPPER)

    response = _reply("1 call me")  # to our number; only their customer has a survey

    assert response.content.decode() == EMPTY_TWIML
    assert _responses(tenant) == _responses(other_tenant) == []
    assert callbacks(other_tenant) == []

    _reply("1 call me", to=OTHER_STORE_NUMBER)
    assert [r[0] for r in _responses(other_tenant)] == [theirs.pk]
    assert _responses(tenant) == []


def test_a_long_reply_is_kept_in_full_and_its_words_cut_to_fit(tenant, store_number):
    invite(tenant, channel="sms", phone=SHOPPER)
    body = "4 " + "word " * 200

    _reply(body)

    [(_, rating, text, _, _, sms_body)] = _responses(tenant)
    assert rating == 4
    assert len(text) == 500 and text.endswith("\u2026")
    assert sms_body == body.strip()


def test_an_invitation_made_a_moment_before_expiry_still_takes_replies(tenant, store_number):
    invitation = invite(tenant, channel="sms", phone=SHOPPER)
    clock.set_now(invitation.expires_at - timedelta(seconds=1))

    _reply("5")

    assert len(_responses(tenant)) == 1
