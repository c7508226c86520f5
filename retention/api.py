"""Bases every app's REST API builds on: tenant-scoped viewsets and pagination."""

from __future__ import annotations

from drf_spectacular.utils import (
    OpenApiResponse,
    extend_schema,
    extend_schema_field,
    extend_schema_view,
)
from rest_framework import mixins, serializers, viewsets
from rest_framework.response import Response
from rest_framework.views import APIView

from retention.models import AuditEntry, Tenant

_ENUM_FIELDS: dict[str, type[serializers.ChoiceField]] = {}


def enum_field(choices, component_name: str) -> serializers.ChoiceField:
    """A read-only choice field documented as a named enum component, so the
    several ``status`` and ``kind`` fields of the schema do not collide."""
    if component_name not in _ENUM_FIELDS:

        @extend_schema_field({"type": "string", "enum": list(choices.values)}, component_name)
        class EnumField(serializers.ChoiceField):
            pass

        _ENUM_FIELDS[component_name] = EnumField
    return _ENUM_FIELDS[component_name](choices=choices.choices, read_only=True)


class ErrorDetailSerializer(serializers.Serializer):
    code = serializers.CharField()
    message = serializers.CharField()
    fields = serializers.DictField(child=serializers.JSONField())


class ErrorSerializer(serializers.Serializer):
    error = ErrorDetailSerializer()


ERROR_RESPONSES = {
    401: OpenApiResponse(ErrorSerializer, description="Missing, wrong or revoked API key."),
    403: OpenApiResponse(ErrorSerializer, description="The key lacks the needed scope."),
    404: OpenApiResponse(ErrorSerializer, description="No such object in this tenant."),
}
WRITE_ERROR_RESPONSES = {
    **ERROR_RESPONSES,
    400: OpenApiResponse(ErrorSerializer, description="Malformed JSON body."),
    422: OpenApiResponse(ErrorSerializer, description="Field errors, in `error.fields`."),
}


class TenantViewSetMixin:
    """Scopes every query to the API key's tenant; another tenant's id is a 404."""

    model = None

    @property
    def tenant(self) -> Tenant:
        return self.request.auth.tenant

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # schema generation has no request key
            return self.model.objects.unscoped().none()
        return self.model.objects.for_tenant(self.tenant)


class AuditEntrySerializer(serializers.ModelSerializer):
    actor = serializers.CharField(read_only=True)

    class Meta:
        model = AuditEntry
        fields = [
            "id",
            "at",
            "actor",
            "action",
            "object_type",
            "object_id",
            "object_repr",
            "changes",
        ]


@extend_schema_view(
    list=extend_schema(
        summary="List audit log entries, newest first",
        responses={200: AuditEntrySerializer(many=True), **ERROR_RESPONSES},
    ),
    retrieve=extend_schema(
        summary="Get one audit log entry", responses={200: AuditEntrySerializer, **ERROR_RESPONSES}
    ),
)
class AuditEntryViewSet(
    TenantViewSetMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet
):
    model = AuditEntry
    serializer_class = AuditEntrySerializer

    def get_queryset(self):
        return super().get_queryset().select_related("actor_user", "actor_api_key")


@extend_schema_field(
    {
        "type": "string",
        "pattern": r"^([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]$",
        "example": "09:00:00",
    }
)
class LocalTimeField(serializers.TimeField):
    """A wall-clock time in the tenant's time zone: ``HH:MM:SS`` without an
    offset, so not JSON Schema's ``time`` format (which requires one)."""


class TenantSerializer(serializers.ModelSerializer):
    business_hours_start = LocalTimeField(read_only=True, help_text="In the tenant's time zone.")
    business_hours_end = LocalTimeField(read_only=True, help_text="In the tenant's time zone.")

    class Meta:
        model = Tenant
        fields = [
            "slug",
            "name",
            "timezone",
            "currency",
            "business_hours_start",
            "business_hours_end",
            "business_days",
        ]


class CurrentTenantView(APIView):
    """One object, the key's tenant: a plain view, so the schema documents an
    object (a viewset's ``list`` is documented as an array)."""

    @extend_schema(
        summary="The tenant this API key belongs to",
        responses={200: TenantSerializer, **ERROR_RESPONSES},
    )
    def get(self, request):
        return Response(TenantSerializer(request.auth.tenant).data)
