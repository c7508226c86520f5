"""HTTP helpers shared by the hosted pages for shoppers (order status, survey,
preferences)."""

from __future__ import annotations

from django.http import HttpResponse


def shopper_headers(response: HttpResponse, referrer_policy: str = "no-referrer") -> HttpResponse:
    """A page reached by a signed link: never cached or indexed, and the link
    (a credential) never leaks in a Referer. A page with a form uses
    ``strict-origin``: with ``no-referrer`` browsers send ``Origin: null`` and
    the CSRF check refuses the post."""
    response["Cache-Control"] = "private, no-store"
    response["X-Robots-Tag"] = "noindex"
    response["Referrer-Policy"] = referrer_policy
    return response
