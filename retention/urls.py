from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.routers import DefaultRouter

from retention import api, views

router = DefaultRouter(trailing_slash=True)
# No `.json` twins: the viewsets take no `format` argument (they answered 500).
router.include_format_suffixes = False
router.include_root_view = False
router.register("audit-log", api.AuditEntryViewSet, basename="audit-log")

api_urlpatterns = [
    path("", include(router.urls)),
    path("tenant/", api.CurrentTenantView.as_view(), name="current-tenant"),
    path("", include("commerce.api_urls")),
    path("", include("segments.api_urls")),
    path("", include("messaging.api_urls")),
    path(
        "schema/",
        SpectacularAPIView.as_view(authentication_classes=[], permission_classes=[]),
        name="schema",
    ),
    path(
        "docs/",
        SpectacularSwaggerView.as_view(
            url_name="schema", authentication_classes=[], permission_classes=[]
        ),
        name="docs",
    ),
]

urlpatterns = [
    path("healthz", views.healthz, name="healthz"),
    path("readyz", views.readyz, name="readyz"),
    path("tenant/switch/", views.tenant_switch, name="tenant-switch"),
    path("admin/", admin.site.urls),
    path("api/v1/", include(api_urlpatterns)),
    # Provider callbacks first: their fixed paths never match a store's slug route.
    path("hooks/", include("messaging.urls_hooks")),
    path("hooks/", include("commerce.urls_hooks")),
    path("", include("commerce.urls_pages")),
    path("", include("messaging.urls_pages")),
    path("", include("feedback.urls_pages")),
    path("agent/", include("feedback.urls_agent")),
    path("dashboard/summary/", include("insights.urls_summary")),
    path("dashboard/", include("insights.urls")),
]

handler400 = "retention.errors.handler400"
handler404 = "retention.errors.handler404"
handler500 = "retention.errors.handler500"
