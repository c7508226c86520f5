"""Saving a list edit or a page with inline rows works under tenant scoping.

Django gives each formset row's hidden id field the model's default manager,
which refuses a query without a tenant: saving such a form was a 500. The
admin base gives the field the admin's scoped rows instead, so another store's
ids are also refused (as not found), not saved."""

from datetime import datetime

import pytest

from commerce.models import Customer, CustomerIdentity, IdentityKind, ProductFamily


def _changelist_post(family, **values):
    return {
        "form-TOTAL_FORMS": "1",
        "form-INITIAL_FORMS": "1",
        "form-MIN_NUM_FORMS": "0",
        "form-MAX_NUM_FORMS": "1000",
        "form-0-id": str(family.pk),
        "form-0-reorder_days": str(values.get("reorder_days", family.reorder_days)),
        "form-0-upsell_days": str(family.upsell_days),
        "form-0-replenishment_days": str(family.replenishment_days),
        "_save": "Save",
    }


@pytest.mark.django_db
def test_list_edit_saves_in_scope_and_refuses_another_stores_row(
    tenant, other_tenant, owner_client
):
    ours = ProductFamily.objects.create(tenant=tenant, name="Coffee", slug="coffee")
    theirs = ProductFamily.objects.create(tenant=other_tenant, name="Tea", slug="tea")
    url = "/admin/commerce/productfamily/"

    response = owner_client.post(url, _changelist_post(ours, reorder_days=9))
    assert response.status_code == 302
    ours.refresh_from_db()
    assert ours.reorder_days == 9

    response = owner_client.post(url, _changelist_post(theirs, reorder_days=11))
    assert response.status_code in (200, 302)
    theirs.refresh_from_db()
    assert theirs.reorder_days == 7


@pytest.mark.django_db
def test_customer_with_identity_rows_saves(tenant, owner_client):
    customer = Customer.objects.create(tenant=tenant, email="ann@example.com", first_name="Ann")
    identity = CustomerIdentity.objects.create(
        tenant=tenant, customer=customer, kind=IdentityKind.EMAIL, value="ann@example.com"
    )
    url = f"/admin/commerce/customer/{customer.pk}/change/"
    page = owner_client.get(url)
    assert page.status_code == 200
    form = page.context["adminform"].form
    data = {}
    for name, value in form.initial.items():
        if isinstance(value, datetime):  # the admin's split date and time inputs
            data[f"{name}_0"], data[f"{name}_1"] = f"{value:%Y-%m-%d}", f"{value:%H:%M:%S}"
        elif value is not None and not isinstance(value, list):
            data[name] = value
    data["first_name"] = "Anna"
    for formset in page.context["inline_admin_formsets"]:
        management = formset.formset.management_form
        for name, field in management.fields.items():
            data[f"{management.prefix}-{name}"] = management.initial.get(name, field.initial)
        for i, inline_form in enumerate(formset.formset.forms):
            for name in inline_form.fields:
                value = inline_form.initial.get(name)
                if name == "id":
                    value = inline_form.instance.pk
                if (
                    name == inline_form._meta.model._meta.get_field("customer").name
                    if hasattr(inline_form._meta.model, "customer")
                    else None
                ):
                    value = customer.pk
                if value is not None:
                    data[f"{formset.formset.prefix}-{i}-{name}"] = value
    response = owner_client.post(url, data)
    if response.status_code != 302:
        errors = [response.context["adminform"].form.errors] + [
            (f.formset.prefix, f.formset.errors, f.formset.non_form_errors())
            for f in response.context["inline_admin_formsets"]
        ]
        raise AssertionError(errors)
    customer.refresh_from_db()
    assert customer.first_name == "Anna"
    assert CustomerIdentity.objects.for_tenant(tenant).filter(pk=identity.pk).exists()
