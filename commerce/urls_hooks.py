"""Storefront webhooks under ``/hooks/``."""

from django.urls import path

from commerce import webhooks

urlpatterns = [
    path("<str:slug>/", webhooks.standard_webhook, name="hooks-standard"),
    path("<str:slug>/shopify/", webhooks.shopify_webhook, name="hooks-shopify"),
]
