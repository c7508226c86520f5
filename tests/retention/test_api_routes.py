"""The API has one URL per resource: no `.json` twins (DRF's format-suffix
routes reached viewset methods that take no `format` and answered 500)."""

import pytest


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/customers.json",
        "/api/v1/tenant.json",
        "/api/v1/segments.json",
        "/api/v1/orders.json",
    ],
)
def test_format_suffix_urls_are_not_found(api_client, path):
    assert api_client.get(path).status_code == 404


def test_the_plain_route_answers(api_client):
    assert api_client.get("/api/v1/customers/").status_code == 200
