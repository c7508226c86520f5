from django.apps import AppConfig
from django.contrib.admin import apps as admin_apps


class RetentionConfig(AppConfig):
    default = True
    name = "retention"
    verbose_name = "Platform"


class RetentionAdminConfig(admin_apps.AdminConfig):
    default = False
    default_site = "retention.admin_site.RetentionAdminSite"
