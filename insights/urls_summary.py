"""The weekly summary's printable pages at ``/dashboard/summary/``."""

from django.urls import path, re_path

from insights import summary_views

urlpatterns = [
    path("", summary_views.summary_latest, name="dashboard-summary"),
    re_path(
        r"^(?P<week>\d{4}-\d{2}-\d{2})/$",
        summary_views.summary_page,
        name="dashboard-summary-week",
    ),
]
