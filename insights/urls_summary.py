"""The weekly summary's printable pages at ``/dashboard/summary/``."""

urlpatterns: list = []
