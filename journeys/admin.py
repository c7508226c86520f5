from django.contrib import admin

from journeys.models import Journey
from retention.admin_base import TenantAdmin


@admin.register(Journey)
class JourneyAdmin(TenantAdmin):
    list_display = ["name", "status", "updated_at"]
    list_filter = ["status"]
    search_fields = ["name"]
