"""Hostile values in a sample of admin add and change forms (product family,
cart, rule segment, journey, template, and the stores' settings pages). The
form is read from the page as a browser would, filled as shown, then each
field in turn gets a nasty value: the answer is the form again with an error
(200) or a save (302), never a 5xx; NUL characters are always a form error."""

from __future__ import annotations

from html.parser import HTMLParser

import pytest
from django.apps import apps
from django.test import Client
from django.urls import reverse
from hypothesis import given
from hypothesis import strategies as st

from tests.hostile import corpus
from tests.hostile.conftest import HYPOTHESIS, assert_no_5xx

TEXT_TYPES = {"text", "number", "email", "url", "search", "tel", "date", "time", "datetime-local"}


class FormReader(HTMLParser):
    """The fields of the admin's main form, with the values a browser would send."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.in_form = False
        self.fields: dict[str, list[str]] = {}
        self.editable: list[str] = []
        self._select: str | None = None
        self._select_first: str | None = None
        self._select_chosen = False
        self._textarea: str | None = None
        self._text = ""

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "form" and (a.get("id") or "").endswith("_form"):
            self.in_form = True
        if not self.in_form:
            return
        name = a.get("name")
        if tag == "input" and name:
            kind = (a.get("type") or "text").lower()
            if kind in ("submit", "button", "file", "image"):
                return
            if kind in ("checkbox", "radio") and "checked" not in a:
                return
            self.fields.setdefault(name, []).append(
                a.get("value") or ("on" if kind == "checkbox" else "")
            )
            if (
                kind in TEXT_TYPES
                and not name.startswith(("csrf", "_"))
                and "__prefix__" not in name
            ):
                self.editable.append(name)
        elif tag == "select" and name:
            self._select, self._select_first, self._select_chosen = name, None, False
        elif tag == "option" and self._select:
            value = a.get("value", "")
            if self._select_first is None:
                self._select_first = value
            if "selected" in a:
                self.fields.setdefault(self._select, []).append(value)
                self._select_chosen = True
        elif tag == "textarea" and name:
            self._textarea, self._text = name, ""

    def handle_data(self, data):
        if self._textarea:
            self._text += data

    def handle_endtag(self, tag):
        if tag == "form":
            self.in_form = False
        elif tag == "select" and self._select:
            if not self._select_chosen and self._select_first is not None:
                self.fields.setdefault(self._select, []).append(self._select_first)
            if "__prefix__" not in self._select:
                self.editable.append(self._select)
            self._select = None
        elif tag == "textarea" and self._textarea:
            self.fields[self._textarea] = [self._text.lstrip("\n")]
            if "__prefix__" not in self._textarea:
                self.editable.append(self._textarea)
            self._textarea = None


# What a person types into the add pages so that the form, as shown, saves.
FILLED = {
    "productfamily": {"name": "Coffee", "slug": "coffee"},
    "cart": {"external_id": "cart-1", "currency": "EUR"},
    "segment": {
        "name": "Repeat buyers",
        "slug": "repeat-buyers",
        "conditions": '[{"field": "orders_total", "op": "gte", "value": 2}]',
    },
    "journey": {"name": "Hostile welcome"},
    "template": {"name": "Hello", "channel": "email", "subject": "Hi", "text": "Hello there"},
}


def read_form(client: Client, url: str) -> tuple[dict, list[str]]:
    response = client.get(url)
    assert response.status_code == 200, (url, response.status_code)
    reader = FormReader()
    reader.feed(response.content.decode())
    assert reader.fields, f"no admin form on {url}"
    data = {k: v if len(v) > 1 else v[0] for k, v in reader.fields.items() if "__prefix__" not in k}
    data["_save"] = "Save"
    return data, list(dict.fromkeys(reader.editable))


def _model_rows(label: str) -> list:
    model = apps.get_model(label)
    return list(model.objects.unscoped().order_by("pk").values())


@pytest.fixture
def pages(tenant) -> dict[str, tuple[str, str]]:
    """url -> model label, for each form in the sample."""
    from commerce.models import CommerceSettings
    from messaging.services.outbox import messaging_settings
    from segments.models import SegmentSettings

    commerce_settings = CommerceSettings.objects.get_or_create(tenant=tenant)[0]
    segment_settings = SegmentSettings.objects.for_tenant(tenant).get()
    return {
        "productfamily": (reverse("admin:commerce_productfamily_add"), "commerce.ProductFamily"),
        "cart": (reverse("admin:commerce_cart_add"), "commerce.Cart"),
        "segment": (reverse("admin:segments_segment_add"), "segments.Segment"),
        "journey": (reverse("admin:journeys_journey_add"), "journeys.Journey"),
        "template": (reverse("admin:messaging_template_add"), "messaging.Template"),
        "commercesettings": (
            reverse("admin:commerce_commercesettings_change", args=[commerce_settings.pk]),
            "commerce.CommerceSettings",
        ),
        "segmentsettings": (
            reverse("admin:segments_segmentsettings_change", args=[segment_settings.pk]),
            "segments.SegmentSettings",
        ),
        "messagingsettings": (
            reverse(
                "admin:messaging_messagingsettings_change",
                args=[messaging_settings(tenant).pk],
            ),
            "messaging.MessagingSettings",
        ),
    }


@pytest.fixture
def owner(owner_client) -> Client:
    owner_client.raise_request_exception = False
    return owner_client


PAGES = [
    "productfamily",
    "cart",
    "segment",
    "journey",
    "template",
    "commercesettings",
    "segmentsettings",
    "messagingsettings",
]


@pytest.mark.parametrize("page", PAGES)
def test_nasty_values_in_every_field_give_form_errors(owner, pages, page):
    url, label = pages[page]
    baseline, editable = read_form(owner, url)
    baseline.update(FILLED.get(page, {}))
    assert editable, f"nothing to edit on {url}"
    # The form as filled saves: each refusal below is the nasty value's doing.
    before = _model_rows(label)
    saved = owner.post(url, baseline)
    assert saved.status_code == 302, saved.context["adminform"].form.errors
    if url.endswith("/add/"):
        apps.get_model(label).objects.unscoped().exclude(
            pk__in=[row["id"] for row in before]
        ).delete()
    for index, field in enumerate(editable):
        for value in corpus.rotation(corpus.FORM_FIELD_VALUES, index, extra=3):
            before = _model_rows(label)
            response = owner.post(url, {**baseline, field: value})
            assert_no_5xx(response)
            assert response.status_code in (200, 302), (field, value[:20], response.status_code)
            if "\x00" in value:
                assert response.status_code == 200, (field, "a NUL was saved")
            if response.status_code == 200:
                assert _model_rows(label) == before, (field, value[:20])
            elif url.endswith("/add/"):
                # Saved: remove it so the next value meets the same empty store.
                apps.get_model(label).objects.unscoped().exclude(
                    pk__in=[row["id"] for row in before]
                ).delete()


@pytest.mark.parametrize("page", ["segment", "template", "cart", "messagingsettings"])
@HYPOTHESIS
@given(data=st.data())
def test_hypothesis_admin_forms(owner, pages, page, data):
    url, label = pages[page]
    baseline, editable = read_form(owner, url)
    baseline.update(FILLED.get(page, {}))
    changes = data.draw(st.dictionaries(st.sampled_from(editable), corpus.form_text, min_size=1))
    before = _model_rows(label)
    response = owner.post(url, {**baseline, **changes})
    assert_no_5xx(response)
    assert response.status_code in (200, 302)
    if response.status_code == 200:
        assert _model_rows(label) == before
    elif url.endswith("/add/"):
        apps.get_model(label).objects.unscoped().exclude(
            pk__in=[row["id"] for row in before]
        ).delete()


def test_an_emptied_not_null_json_field_saves_its_default(owner, pages):
    from commerce.models import Cart

    url, _ = pages["cart"]
    baseline, _ = read_form(owner, url)
    response = owner.post(url, {**baseline, **FILLED["cart"], "items": ""})
    assert response.status_code == 302
    assert Cart.objects.unscoped().get(external_id="cart-1").items == []


def test_json_fields_with_nul_escapes_are_form_errors(owner, pages):
    # A JSON text field may hold "\\u0000": valid JSON, but jsonb refuses it.
    for page, field, value in [
        ("segment", "conditions", '[{"field": "orders_total", "op": "gte", "value": NaN}]'),
        ("segment", "conditions", "[" * 5000 + "]" * 5000),
        ("segment", "conditions", '[{"field": "orders_total", "op": "gte", "value": "\\u0000"}]'),
        ("cart", "items", '[{"sku": "a\\u0000b"}]'),
        ("cart", "items", '[{"sku": "\\ud800"}]'),
        ("cart", "items", '{"a": ' * 5000 + "1" + "}" * 5000),
        ("cart", "items", "[NaN, Infinity, 1e400]"),
        ("cart", "items", "null"),  # the column is NOT NULL
    ]:
        url, label = pages[page]
        baseline, _ = read_form(owner, url)
        baseline.update(FILLED.get(page, {}))
        before = _model_rows(label)
        response = owner.post(url, {**baseline, field: value})
        assert response.status_code == 200, (page, field, response.status_code)
        assert _model_rows(label) == before
