"""REST API routes for commerce, mounted under ``/api/v1/``."""

from django.urls import include, path
from rest_framework.routers import DefaultRouter

from commerce import api

router = DefaultRouter(trailing_slash=True)
# No `.json` twins: the viewsets take no `format` argument (they answered 500).
router.include_format_suffixes = False
router.include_root_view = False
router.register("customers", api.CustomerViewSet, basename="customer")
router.register("orders", api.OrderViewSet, basename="order")
router.register("events", api.EventViewSet, basename="event")

urlpatterns = [path("", include(router.urls))]
