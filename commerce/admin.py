from django.contrib import admin

from commerce.models import Product, ProductFamily
from retention.admin_base import TenantAdmin


@admin.register(ProductFamily)
class ProductFamilyAdmin(TenantAdmin):
    list_display = ["name", "slug", "reorder_days", "upsell_days", "replenishment_days"]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ["name"]}
    filter_horizontal = ["related"]


@admin.register(Product)
class ProductAdmin(TenantAdmin):
    list_display = ["sku", "name", "family", "price", "price_tier"]
    list_filter = ["price_tier", "family"]
    search_fields = ["sku", "name"]
