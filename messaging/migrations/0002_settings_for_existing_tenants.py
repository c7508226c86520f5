"""Give tenants that existed before messaging their settings row."""

from django.db import migrations


def forwards(apps, schema_editor):
    Tenant = apps.get_model("retention", "Tenant")
    MessagingSettings = apps.get_model("messaging", "MessagingSettings")
    # Migrations use the plain manager: tenancy scoping does not apply here.
    for tenant_id in Tenant.objects.values_list("pk", flat=True):
        MessagingSettings.objects.get_or_create(tenant_id=tenant_id)


class Migration(migrations.Migration):
    dependencies = [("messaging", "0001_initial"), ("retention", "0001_initial")]
    operations = [migrations.RunPython(forwards, migrations.RunPython.noop)]
