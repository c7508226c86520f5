"""The admin site: open to platform operators and to members of a tenant."""

from django.contrib import admin


class RetentionAdminSite(admin.AdminSite):
    site_header = "Retention platform"
    site_title = "Retention admin"
    index_title = "Your store"

    def has_permission(self, request) -> bool:
        user = request.user
        if not (user.is_active and user.is_staff):
            return False
        return user.is_superuser or bool(getattr(request, "memberships", None))
