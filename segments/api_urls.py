"""REST API routes for segments, mounted under ``/api/v1/``."""

from django.urls import include, path
from rest_framework.routers import DefaultRouter

from segments import api

router = DefaultRouter(trailing_slash=True)
# No `.json` twins: the viewsets take no `format` argument (they answered 500).
router.include_format_suffixes = False
router.include_root_view = False
router.register("segments", api.SegmentViewSet, basename="segment")

urlpatterns = [
    path("", include(router.urls)),
    path(
        "customers/<int:pk>/segments/",
        api.CustomerSegmentsViewSet.as_view({"get": "retrieve"}),
        name="customer-segments",
    ),
]
