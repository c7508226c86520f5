"""Survey link tokens: short, read back exactly, and refused when altered."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from feedback import tokens
from feedback.tokens import MAX_ID, survey_token, survey_token_read

ids = st.integers(min_value=1, max_value=MAX_ID)
small_ids = st.integers(min_value=1, max_value=10_000_000)
ALPHABET = tokens.ALPHABET + tokens.SEP


@given(tenant_id=ids, invitation_id=ids)
def test_every_token_reads_back_its_ids(tenant_id, invitation_id):
    token = survey_token(tenant_id=tenant_id, invitation_id=invitation_id)

    assert survey_token_read(token) == (tenant_id, invitation_id)
    assert token.isascii() and all(c in ALPHABET for c in token)


@given(tenant_id=st.integers(1, 99_999), invitation_id=small_ids)
def test_a_token_is_short_enough_for_a_text_message(tenant_id, invitation_id):
    # Up to 100k stores and 10M invitations each: at most 22 characters.
    assert len(survey_token(tenant_id=tenant_id, invitation_id=invitation_id)) <= 22


def test_the_token_of_a_small_store_is_under_twenty_characters():
    token = survey_token(tenant_id=7, invitation_id=1_000_000)

    assert token.startswith("7-4C92-")
    assert len(token) == 19


@given(
    tenant_id=small_ids,
    invitation_id=small_ids,
    position=st.integers(min_value=0),
    replacement=st.sampled_from(ALPHABET),
)
def test_a_token_with_any_character_changed_is_refused(
    tenant_id, invitation_id, position, replacement
):
    token = survey_token(tenant_id=tenant_id, invitation_id=invitation_id)
    position %= len(token)
    altered = token[:position] + replacement + token[position + 1 :]

    if altered != token:
        assert survey_token_read(altered) is None


@given(
    tenant_id=small_ids,
    invitation_id=small_ids,
    cut=st.integers(min_value=1, max_value=40),
    extra=st.text(alphabet=ALPHABET, min_size=1, max_size=5),
)
def test_a_cut_or_lengthened_token_is_refused(tenant_id, invitation_id, cut, extra):
    token = survey_token(tenant_id=tenant_id, invitation_id=invitation_id)

    assert survey_token_read(token[: max(len(token) - cut, 0)]) is None
    assert survey_token_read(token + extra) is None
    assert survey_token_read(extra + token) is None


@given(text=st.text(max_size=60))
def test_any_other_text_is_refused_without_error(text):
    # A random string is a valid token with odds of 1 in 62**12.
    assert survey_token_read(text) is None


def test_the_ids_cannot_be_swapped_or_moved_to_another_tenant():
    token = survey_token(tenant_id=3, invitation_id=5)
    tenant, invitation, mac = token.split("-")

    assert survey_token_read(f"{invitation}-{tenant}-{mac}") is None
    assert survey_token_read(f"4-{invitation}-{mac}") is None


def test_a_leading_zero_spelling_of_the_same_ids_is_refused():
    token = survey_token(tenant_id=3, invitation_id=5)

    assert survey_token_read("0" + token) is None


@pytest.mark.parametrize("value", [None, 12, b"1-1-abc", "", "--", "1-1-" + "x" * 12 + "\u00e9"])
def test_non_tokens_are_refused(value):
    assert survey_token_read(value) is None


@pytest.mark.parametrize(
    ("tenant_id", "invitation_id"), [(0, 1), (1, 0), (-1, 1), (True, 1), (1, MAX_ID + 1)]
)
def test_only_positive_ids_make_tokens(tenant_id, invitation_id):
    with pytest.raises(ValueError):
        survey_token(tenant_id=tenant_id, invitation_id=invitation_id)


def test_a_token_made_with_another_secret_is_refused(settings):
    token = survey_token(tenant_id=1, invitation_id=2)
    settings.SECRET_KEY = "another-secret-key-" + "x" * 40

    assert survey_token_read(token) is None


def test_a_token_made_before_a_secret_rotation_still_reads(settings):
    old = settings.SECRET_KEY
    token = survey_token(tenant_id=1, invitation_id=2)
    settings.SECRET_KEY = "the-new-secret-key-" + "x" * 40
    settings.SECRET_KEY_FALLBACKS = [old]

    assert survey_token_read(token) == (1, 2)
