"""REST API for segments (read only): segments with their counts and members,
and one customer's RFM, current segments and segment history.

The tenant is the API key's; every read goes through ``segments.selectors`` (and
``commerce.selectors`` for the customer), so another tenant's id answers 404.
"""

from __future__ import annotations

from drf_spectacular.utils import (
    OpenApiResponse,
    extend_schema,
    extend_schema_view,
)
from rest_framework import serializers, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from commerce import selectors as commerce_selectors
from commerce.models import Customer, ProductFamily
from retention.api import ERROR_RESPONSES, ErrorSerializer, TenantViewSetMixin, enum_field
from retention.errors import NotFound
from retention.pagination import Cursor
from segments import selectors
from segments.models import (
    CustomerRFM,
    Match,
    Segment,
    SegmentKind,
    SegmentStatus,
    SegmentTransition,
    Tier,
    TransitionKind,
)

LIST_ERROR_RESPONSES = {
    **ERROR_RESPONSES,
    422: OpenApiResponse(ErrorSerializer, description="Invalid filter, in `error.fields`."),
}


# --- query parameters -------------------------------------------------------------


class SegmentFilterQuery(serializers.Serializer):
    kind = serializers.ChoiceField(
        SegmentKind.choices, required=False, help_text="Only tiers or only rule segments."
    )


def _query(serializer_class, request) -> dict:
    serializer = serializer_class(data=request.query_params)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


def _pk(value: object, what: str) -> int:
    try:
        number = int(str(value))
    except (TypeError, ValueError):
        number = 0
    if not 0 < number < 2**63:
        raise NotFound(f"No such {what}.")
    return number


# --- output serializers -------------------------------------------------------


class BlankAsNullTierField(serializers.ChoiceField):
    """The tier a tier segment follows; a rule segment has none (null)."""

    def __init__(self, **kwargs):
        kwargs.setdefault("help_text", "The tier a tier segment follows; null for a rule segment.")
        super().__init__(choices=Tier.choices, read_only=True, allow_null=True, **kwargs)

    def to_representation(self, value: str) -> str | None:
        return value or None


class SegmentSerializer(serializers.ModelSerializer):
    kind = enum_field(SegmentKind, "SegmentKind")
    tier = BlankAsNullTierField()
    match = enum_field(Match, "SegmentMatch")
    status = enum_field(SegmentStatus, "SegmentStatus")
    conditions = serializers.JSONField(
        read_only=True, help_text='A list of {"field", "op", "value"}; empty for a tier.'
    )
    member_count = serializers.IntegerField(
        read_only=True, help_text="Members at the last count (see `counted_at`)."
    )

    class Meta:
        model = Segment
        fields = [
            "id",
            "name",
            "slug",
            "kind",
            "tier",
            "match",
            "conditions",
            "status",
            "member_count",
            "counted_at",
        ]
        read_only_fields = fields


class SegmentCountsSerializer(serializers.Serializer):
    members = serializers.IntegerField(help_text="Members now (counted live).")
    entered_7d = serializers.IntegerField(help_text="Entries in the last 7 days.")
    left_7d = serializers.IntegerField(help_text="Exits in the last 7 days.")
    entered_30d = serializers.IntegerField(help_text="Entries in the last 30 days.")
    left_30d = serializers.IntegerField(help_text="Exits in the last 30 days.")


class SegmentDetailSerializer(SegmentSerializer):
    counts = SegmentCountsSerializer(read_only=True)

    class Meta:
        model = Segment
        fields = [
            *SegmentSerializer.Meta.fields,
            "description",
            "created_at",
            "updated_at",
            "counts",
        ]
        read_only_fields = fields


class SegmentMemberSerializer(serializers.ModelSerializer):
    email = serializers.CharField(
        read_only=True, help_text="The primary email; empty when none is known."
    )
    since = serializers.DateTimeField(
        read_only=True,
        allow_null=True,
        help_text="When the customer entered the segment (for a tier, the latest "
        "recorded entry; null when none was recorded).",
    )

    class Meta:
        model = Customer
        fields = ["id", "email", "phone", "first_name", "last_name", "since"]
        read_only_fields = fields


class FamilyRefSerializer(serializers.ModelSerializer):
    class Meta:
        model = ProductFamily
        fields = ["id", "slug", "name"]
        read_only_fields = fields


class CustomerRFMSerializer(serializers.ModelSerializer):
    recency_days = serializers.IntegerField(
        read_only=True, help_text="Whole days since the last counted order."
    )
    tier = serializers.ChoiceField(Tier.choices, read_only=True)
    top_families = FamilyRefSerializer(
        many=True, read_only=True, source="families", help_text="By spend, most first."
    )

    class Meta:
        model = CustomerRFM
        fields = [
            "recency_days",
            "last_order_at",
            "first_order_at",
            "orders_total",
            "frequency",
            "monetary",
            "r_score",
            "f_score",
            "m_score",
            "tier",
            "top_families",
            "price_tier",
            "computed_at",
        ]
        read_only_fields = fields


class CurrentSegmentSerializer(SegmentSerializer):
    since = serializers.DateTimeField(
        read_only=True,
        allow_null=True,
        help_text="When the customer entered (for a tier, the latest recorded entry).",
    )

    class Meta:
        model = Segment
        fields = ["id", "name", "slug", "kind", "tier", "status", "since"]
        read_only_fields = fields


class SegmentRefSerializer(serializers.ModelSerializer):
    kind = enum_field(SegmentKind, "SegmentKind")

    class Meta:
        model = Segment
        fields = ["id", "name", "kind"]
        read_only_fields = fields


class TransitionSerializer(serializers.ModelSerializer):
    segment = SegmentRefSerializer(read_only=True)
    kind = enum_field(TransitionKind, "TransitionKind")

    class Meta:
        model = SegmentTransition
        fields = ["segment", "kind", "at", "cause"]
        read_only_fields = fields


class CustomerSegmentsSerializer(serializers.Serializer):
    customer = serializers.IntegerField(
        help_text="The customer's id (a merged customer's id answers with the survivor's)."
    )
    rfm = CustomerRFMSerializer(
        allow_null=True, help_text="Null when the customer has no counted order."
    )
    segments = CurrentSegmentSerializer(many=True, help_text="Their tier first, then by name.")
    transitions = TransitionSerializer(
        many=True,
        help_text=f"Entries and exits, newest first (the latest {selectors.TRANSITIONS_SHOWN}).",
    )


# --- viewsets -----------------------------------------------------------------


class SegmentCursor(Cursor):
    ordering = "id"


class MemberCursor(Cursor):
    # The membership tables' own (tenant, [segment,] customer) unique indexes.
    ordering = "-customer_id"


@extend_schema_view(
    list=extend_schema(
        summary="List segments (tiers and rule segments)",
        parameters=[SegmentFilterQuery],
        responses={200: SegmentSerializer(many=True), **LIST_ERROR_RESPONSES},
    ),
    retrieve=extend_schema(
        summary="Get a segment with its live member count and recent entries and exits",
        responses={200: SegmentDetailSerializer, **ERROR_RESPONSES},
    ),
)
class SegmentViewSet(TenantViewSetMixin, viewsets.GenericViewSet):
    model = Segment
    serializer_class = SegmentSerializer
    pagination_class = SegmentCursor
    lookup_value_regex = "[0-9]+"

    def _segment(self, pk) -> Segment:
        segment = selectors.segment_get(tenant=self.tenant, segment_id=_pk(pk, "segment"))
        if segment is None:
            raise NotFound("No such segment.")
        return segment

    def list(self, request):
        query = _query(SegmentFilterQuery, request)
        queryset = selectors.segment_list(tenant=self.tenant, kind=query.get("kind", ""))
        page = self.paginate_queryset(queryset)
        return self.get_paginated_response(SegmentSerializer(page, many=True).data)

    def retrieve(self, request, pk=None):
        segment = self._segment(pk)
        segment.counts = selectors.segment_counts(segment)
        return Response(SegmentDetailSerializer(segment).data)

    @extend_schema(
        summary="A segment's current members, newest customers first",
        responses={200: SegmentMemberSerializer(many=True), **ERROR_RESPONSES},
    )
    @action(detail=True, methods=["get"], pagination_class=MemberCursor)
    def members(self, request, pk=None):
        segment = self._segment(pk)
        rows = self.paginate_queryset(selectors.segment_member_rows(segment))
        members = selectors.member_page(segment, rows)
        return self.get_paginated_response(SegmentMemberSerializer(members, many=True).data)


class CustomerSegmentsViewSet(TenantViewSetMixin, viewsets.GenericViewSet):
    model = Customer
    serializer_class = CustomerSegmentsSerializer
    pagination_class = None

    @extend_schema(
        summary="A customer's RFM, current segments and segment history",
        responses={200: CustomerSegmentsSerializer, **ERROR_RESPONSES},
    )
    def retrieve(self, request, pk=None):
        customer = commerce_selectors.customer_get(tenant=self.tenant, customer_id=pk)
        rfm = selectors.customer_rfm(self.tenant, customer.pk)
        if rfm is not None:
            rfm.recency_days = selectors.recency_days(rfm)
        body = {
            "customer": customer.pk,
            "rfm": rfm,
            "segments": selectors.customer_segments(self.tenant, customer.pk),
            "transitions": selectors.customer_transitions(self.tenant, customer.pk),
        }
        return Response(CustomerSegmentsSerializer(body).data)
