"""The dashboard at ``/dashboard/`` (views in ``insights.views``)."""

urlpatterns: list = []
