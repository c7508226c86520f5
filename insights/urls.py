"""The dashboard at ``/dashboard/`` (views in ``insights.views``)."""

from django.urls import path

from insights import views

urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("csv/<slug:chart>/", views.chart_csv, name="dashboard-csv"),
]
