"""Email and phone normalisation: the same person is found the same way everywhere."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from commerce.identity import BadIdentifier, normalize_email, normalize_phone


@pytest.mark.parametrize(
    "raw,expected",
    [
        (" Anna@Example.COM ", "anna@example.com"),
        ("", ""),
        (None, ""),
    ],
)
def test_email_normalised(raw, expected):
    assert normalize_email(raw) == expected


@pytest.mark.parametrize("raw", ["not-an-email", "a@", "@b.com", "a" * 250 + "@b.com"])
def test_bad_email_refused(raw):
    with pytest.raises(BadIdentifier):
        normalize_email(raw)


@pytest.mark.parametrize(
    "raw,region,expected",
    [
        ("+49 151 1234 5678", None, "+4915112345678"),
        ("0151 12345678", "DE", "+4915112345678"),
        ("(415) 555-2671", None, "+14155552671"),
        ("+1-415-555-2671", "DE", "+14155552671"),
    ],
)
def test_phone_to_e164(raw, region, expected):
    assert normalize_phone(raw, region) == expected


@pytest.mark.parametrize("raw", ["12", "call me", "+999 1", "1" * 50])
def test_bad_phone_refused(raw):
    with pytest.raises(BadIdentifier):
        normalize_phone(raw)


@given(st.text(max_size=300))
def test_normalisers_never_crash(text):
    for fn in (normalize_email, normalize_phone):
        try:
            out = fn(text)
        except BadIdentifier:
            continue
        assert out == fn(out)  # idempotent
