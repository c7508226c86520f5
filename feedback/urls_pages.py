"""Hosted pages for shoppers: the survey at ``/s/<token>/``."""

urlpatterns: list = []
