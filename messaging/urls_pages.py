"""Hosted shopper pages of messaging: preferences and unsubscribe ``/u/<token>/``."""

from django.urls import path

from messaging import preferences

urlpatterns = [
    path("u/<str:token>/", preferences.preferences_page, name="preferences-page"),
]
