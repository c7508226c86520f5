"""REST API of messaging: the in-app inbox a storefront shows its shoppers.

GET  /api/v1/customers/<id>/inbox/               newest first (?unread=true)
POST /api/v1/customers/<id>/inbox/<message id>/read/
"""

from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, viewsets
from rest_framework.response import Response

from commerce.selectors import customer_get
from messaging.models import Message, Status
from messaging.selectors import inbox_queryset
from messaging.services.inbox import inbox_mark_delivered, inbox_mark_read
from retention.api import ERROR_RESPONSES, ErrorSerializer, TenantViewSetMixin, enum_field
from retention.errors import InvalidInput
from retention.pagination import Cursor


class InboxMessageSerializer(serializers.ModelSerializer):
    title = serializers.CharField(source="subject")
    text = serializers.CharField(source="body_text")
    status = enum_field(Status, "MessageStatus")
    read = serializers.SerializerMethodField()
    read_at = serializers.DateTimeField(source="opened_at", allow_null=True)

    class Meta:
        model = Message
        fields = ["id", "title", "text", "status", "read", "sent_at", "read_at", "context"]

    def get_read(self, obj: Message) -> bool:
        return obj.opened_at is not None


class InboxQuery(serializers.Serializer):
    unread = serializers.BooleanField(required=False, default=False)


class InboxCursor(Cursor):
    ordering = "-id"


class InboxViewSet(TenantViewSetMixin, viewsets.GenericViewSet):
    model = Message
    serializer_class = InboxMessageSerializer
    pagination_class = InboxCursor

    @extend_schema(
        summary="A customer's in-app messages, newest first; fetching marks them delivered",
        parameters=[InboxQuery],
        responses={
            200: InboxMessageSerializer(many=True),
            **ERROR_RESPONSES,
            422: OpenApiResponse(ErrorSerializer, description="Invalid filter."),
        },
    )
    def list(self, request, customer_pk=None):
        customer = customer_get(tenant=self.tenant, customer_id=customer_pk)
        query = InboxQuery(data=request.query_params)
        if not query.is_valid():
            raise InvalidInput("Invalid filter.", fields=query.errors)
        page = self.paginate_queryset(
            inbox_queryset(customer=customer, unread_only=query.validated_data["unread"])
        )
        delivered_at = inbox_mark_delivered(customer=customer, message_ids=[m.pk for m in page])
        for message in page:
            if message.status == Status.SENT:
                message.status, message.delivered_at = Status.DELIVERED, delivered_at
        return self.get_paginated_response(InboxMessageSerializer(page, many=True).data)

    @extend_schema(
        summary="Mark an in-app message read (opened); repeating it is harmless",
        request=None,
        responses={200: InboxMessageSerializer, **ERROR_RESPONSES},
    )
    def read(self, request, customer_pk=None, pk=None):
        customer = customer_get(tenant=self.tenant, customer_id=customer_pk)
        message = inbox_mark_read(customer=customer, message_id=pk)
        return Response(InboxMessageSerializer(message).data)
