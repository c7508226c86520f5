"""Give tenants that existed before segments their settings and tier segments."""

from django.db import migrations

TIERS = [
    ("high_value_repeat", "High-value repeat", "high-value-repeat"),
    ("mid_value_repeat", "Mid-value repeat", "mid-value-repeat"),
    ("one_time", "One-time", "one-time"),
]


def forwards(apps, schema_editor):
    Tenant = apps.get_model("retention", "Tenant")
    Segment = apps.get_model("segments", "Segment")
    SegmentSettings = apps.get_model("segments", "SegmentSettings")
    # Migrations use the plain manager: tenancy scoping does not apply here.
    for tenant_id in Tenant.objects.values_list("pk", flat=True):
        SegmentSettings.objects.get_or_create(tenant_id=tenant_id)
        for tier, name, slug in TIERS:
            Segment.objects.get_or_create(
                tenant_id=tenant_id, kind="tier", tier=tier, defaults={"name": name, "slug": slug}
            )


class Migration(migrations.Migration):
    dependencies = [("segments", "0001_initial"), ("retention", "0001_initial")]
    operations = [migrations.RunPython(forwards, migrations.RunPython.noop)]
