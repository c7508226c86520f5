"""Hosted pages for shoppers, reached by signed links (see ``commerce.tokens``)."""

from django.urls import path

from commerce import pages

urlpatterns = [
    path("o/<str:token>/", pages.order_page, name="order-page"),
    path(
        "o/<str:token>/checkout-feedback/",
        pages.checkout_feedback,
        name="order-checkout-feedback",
    ),
]
