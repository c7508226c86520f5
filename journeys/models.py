"""Journey definitions. Starts thin (name, status); the journeys issue adds
triggers, steps, versions and enrollments."""

from django.db import models

from retention import clock
from retention.tenancy import TenantOwnedModel


class JourneyStatus(models.TextChoices):
    DRAFT = "draft", "Draft"
    ACTIVE = "active", "Active"
    PAUSED = "paused", "Paused"
    ARCHIVED = "archived", "Archived"


class Journey(TenantOwnedModel):
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    status = models.CharField(
        max_length=10, choices=JourneyStatus.choices, default=JourneyStatus.DRAFT
    )
    created_at = models.DateTimeField(default=clock.now, editable=False)
    updated_at = models.DateTimeField(default=clock.now, editable=False)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "name"], name="journey_tenant_name_uniq")
        ]
        indexes = [models.Index(fields=["tenant", "status"], name="journey_tenant_status")]

    def __str__(self) -> str:
        return self.name

    def save(self, *args, **kwargs):
        self.updated_at = clock.now()
        if kwargs.get("update_fields") is not None:
            kwargs["update_fields"] = {*kwargs["update_fields"], "updated_at"}
        super().save(*args, **kwargs)
