"""REST API for commerce: customers, orders and events (touchpoints).

Each action: input serializer (the payload shapes of ``commerce.schemas``) →
service → output serializer. The tenant is the API key's; every read goes
through ``commerce.selectors``, so another tenant's id answers 404.
"""

from __future__ import annotations

import codecs
import math

from django.db import transaction
from drf_spectacular.utils import (
    OpenApiResponse,
    PolymorphicProxySerializer,
    extend_schema,
    extend_schema_view,
)
from rest_framework import serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser, get_encoding
from rest_framework.response import Response
from rest_framework.utils import json as drf_json

from commerce import selectors
from commerce.identity import BadIdentifier, normalize_email, normalize_phone
from commerce.models import (
    Channel,
    ChannelConsent,
    ConsentStatus,
    Customer,
    CustomerIdentity,
    DeliveryEvent,
    Fulfillment,
    FulfillmentStatus,
    Order,
    OrderLine,
    OrderStatus,
    Touchpoint,
    TouchpointCategory,
)
from commerce.schemas import ContactFields, CustomerPayload, EventPayload, OrderPayload
from commerce.services.customers import (
    PROFILE_FIELDS,
    CustomerRef,
    customer_update,
    customer_upsert,
)
from commerce.services.orders import order_upsert
from commerce.services.privacy import customer_erase, customer_export
from commerce.services.touchpoints import MAX_BATCH, touchpoints_ingest
from retention.api import (
    ERROR_RESPONSES,
    WRITE_ERROR_RESPONSES,
    ErrorSerializer,
    TenantViewSetMixin,
    enum_field,
)
from retention.errors import DomainError, InvalidInput
from retention.models import AuditAction
from retention.pagination import Cursor
from retention.services import audit_record

DEFAULT_SOURCE = "storefront"
SOURCE_PATTERN = r"^[a-z0-9_-]{1,50}$"
AUDITED_FIELDS = ("email", "phone", *PROFILE_FIELDS)

LIST_ERROR_RESPONSES = {
    **ERROR_RESPONSES,
    422: OpenApiResponse(ErrorSerializer, description="Invalid filter, in `error.fields`."),
}


class TooManyEvents(DomainError):
    status = 413
    code = "too_many_events"


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e400: valid JSON, but no column or jsonb stores it
        raise ValueError(f"the number {text[:40]} is out of range")
    return value


class SafeJSONParser(JSONParser):
    """JSON parser that answers 400, not 500, to absurdly deep nesting and to
    numbers no database stores (NaN, Infinity, 1e400)."""

    def parse(self, stream, media_type=None, parser_context=None):
        encoding = get_encoding(parser_context or {})
        try:
            return drf_json.load(
                codecs.getreader(encoding)(stream),
                parse_constant=drf_json.strict_constant,
                parse_float=_finite_float,
            )
        except ValueError as exc:
            raise ParseError(f"JSON parse error - {exc}") from exc
        except RecursionError as exc:
            raise ParseError("JSON parse error - nested too deeply.") from exc


# --- query parameters -------------------------------------------------------------


class WriteSourceQuery(serializers.Serializer):
    source = serializers.RegexField(
        SOURCE_PATTERN,
        required=False,
        help_text="Whose ids the payload carries (default `storefront`, as in webhooks).",
    )


class CustomerFilterQuery(ContactFields, serializers.Serializer):
    email = serializers.CharField(
        max_length=254, required=False, help_text="Any case; matches every known email."
    )
    phone = serializers.CharField(
        max_length=40, required=False, help_text="Any format; normalised to E.164."
    )
    external_id = serializers.CharField(
        max_length=100, required=False, help_text="A storefront's own customer id."
    )
    source = serializers.RegexField(
        SOURCE_PATTERN, required=False, help_text="The storefront of `external_id`."
    )


class TimelineFilterQuery(serializers.Serializer):
    category = serializers.ChoiceField(TouchpointCategory.choices, required=False)
    kind = serializers.CharField(max_length=100, required=False)


class OrderFilterQuery(serializers.Serializer):
    customer = serializers.IntegerField(
        required=False, min_value=1, max_value=2**63 - 1, help_text="A customer id."
    )
    placed_after = serializers.DateTimeField(required=False, help_text="Inclusive.")
    placed_before = serializers.DateTimeField(required=False, help_text="Exclusive.")


def _query(serializer_class, request) -> dict:
    serializer = serializer_class(data=request.query_params)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


def _write_source(request) -> str:
    return _query(WriteSourceQuery, request).get("source") or DEFAULT_SOURCE


# --- output serializers -------------------------------------------------------


class CustomerIdentitySerializer(serializers.ModelSerializer):
    class Meta:
        model = CustomerIdentity
        fields = ["kind", "source", "value", "created_at"]


class ChannelConsentSerializer(serializers.ModelSerializer):
    channel = enum_field(Channel, "Channel")
    status = enum_field(ConsentStatus, "ConsentStatus")

    class Meta:
        model = ChannelConsent
        fields = ["channel", "status", "source", "at"]


class CustomerSerializer(serializers.ModelSerializer):
    # Not an email format: a customer known only by phone or storefront id, or
    # erased, has none.
    email = serializers.CharField(
        read_only=True, help_text="The primary email; empty when none is known."
    )
    preferred_channel = serializers.ChoiceField(
        Channel.choices, allow_blank=True, read_only=True, help_text="Empty when not chosen."
    )
    identities = CustomerIdentitySerializer(many=True, read_only=True)
    consent = ChannelConsentSerializer(many=True, read_only=True, source="consents")
    order_count = serializers.IntegerField(
        read_only=True, help_text="Orders not cancelled or refunded."
    )
    total_spent = serializers.DecimalField(
        max_digits=16,
        decimal_places=2,
        read_only=True,
        help_text="Sum of those orders' totals.",
    )
    merged_from = serializers.ListField(
        child=serializers.IntegerField(),
        source="merged_from_ids",
        read_only=True,
        help_text="Ids of customers merged into this one; they answer with this customer.",
    )

    class Meta:
        model = Customer
        fields = [
            "id",
            "email",
            "phone",
            "first_name",
            "last_name",
            "timezone",
            "locale",
            "preferred_channel",
            "created_at",
            "updated_at",
            "identities",
            "consent",
            "order_count",
            "total_spent",
            "merged_from",
        ]
        read_only_fields = fields


class CustomerPatchPayload(CustomerPayload):
    """The customer payload without the storefront id, every field optional."""

    id = None

    def validate(self, attrs: dict) -> dict:
        return attrs


class TouchpointSerializer(serializers.ModelSerializer):
    class Meta:
        model = Touchpoint
        fields = [
            "id",
            "category",
            "kind",
            "source",
            "occurred_at",
            "properties",
            "external_id",
            "created_at",
        ]


class OrderLineSerializer(serializers.ModelSerializer):
    family = serializers.SlugRelatedField(slug_field="slug", read_only=True, allow_null=True)

    class Meta:
        model = OrderLine
        fields = [
            "id",
            "sku",
            "name",
            "family",
            "quantity",
            "unit_price",
            "discount",
            "total",
            "price_tier",
        ]


class DeliveryEventSerializer(serializers.ModelSerializer):
    status = enum_field(FulfillmentStatus, "FulfillmentStatus")

    class Meta:
        model = DeliveryEvent
        fields = ["status", "at", "message"]


class FulfillmentSerializer(serializers.ModelSerializer):
    status = enum_field(FulfillmentStatus, "FulfillmentStatus")
    events = DeliveryEventSerializer(many=True, read_only=True)

    class Meta:
        model = Fulfillment
        fields = [
            "id",
            "external_id",
            "status",
            "carrier",
            "tracking_number",
            "tracking_url",
            "estimated_delivery_start",
            "estimated_delivery_end",
            "shipped_at",
            "delivered_at",
            "updated_at",
            "events",
        ]


ORDER_FIELDS = [
    "id",
    "external_id",
    "source",
    "number",
    "status",
    "customer",
    "currency",
    "subtotal",
    "discount_total",
    "shipping_total",
    "tax_total",
    "fee_total",
    "total",
    "placed_at",
    "cancelled_at",
    "created_at",
    "updated_at",
]


class OrderSummarySerializer(serializers.ModelSerializer):
    status = enum_field(OrderStatus, "OrderStatus")
    customer = serializers.PrimaryKeyRelatedField(read_only=True)

    class Meta:
        model = Order
        fields = ORDER_FIELDS


class OrderSerializer(OrderSummarySerializer):
    lines = OrderLineSerializer(many=True, read_only=True)
    fulfillments = FulfillmentSerializer(many=True, read_only=True)

    class Meta:
        model = Order
        fields = [*ORDER_FIELDS, "lines", "fulfillments"]


class PrivacyExportSerializer(serializers.Serializer):
    format = serializers.CharField(help_text="`retention.gdpr-export/1`")
    generated_at = serializers.DateTimeField()
    tenant = serializers.CharField()
    customer = serializers.DictField(help_text="The customer row.")
    data = serializers.DictField(
        child=serializers.ListField(child=serializers.DictField()),
        help_text="Rows about the customer, keyed by `app.model`.",
    )
    merged = serializers.ListField(
        child=serializers.DictField(), help_text="The same for customers merged into this one."
    )


class ErasureSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    erased_at = serializers.DateTimeField()
    already_erased = serializers.BooleanField(help_text="True when nothing was left to erase.")


class EventBatchPayload(serializers.Serializer):
    events = EventPayload(many=True, min_length=1, max_length=MAX_BATCH)


class EventsAcceptedSerializer(serializers.Serializer):
    received = serializers.IntegerField(help_text="Events in the request.")
    created = serializers.IntegerField(help_text="Events stored now.")
    duplicates = serializers.IntegerField(help_text="Events whose id was seen before.")


# --- helpers ------------------------------------------------------------------


def _with_stats(tenant, customers: list[Customer]) -> list[Customer]:
    stats = selectors.customer_stats(tenant=tenant, customer_ids=[c.pk for c in customers])
    for customer in customers:
        row = stats[customer.pk]
        customer.order_count = row["order_count"]
        customer.total_spent = row["total_spent"]
        customer.merged_from_ids = row["merged_from"]
    return customers


def _customer_out(tenant, customer_id: int) -> dict:
    customer = selectors.customer_get(tenant=tenant, customer_id=customer_id)
    return CustomerSerializer(_with_stats(tenant, [customer])[0]).data


def _snapshot(tenant, customer: Customer | None) -> dict:
    if customer is None:
        return {}
    fresh = selectors.customer_get(tenant=tenant, customer_id=customer.pk)
    snap = {field: getattr(fresh, field) for field in AUDITED_FIELDS}
    for consent in fresh.consents.all():
        snap[f"consent.{consent.channel}"] = consent.status
    return snap


def _diff(before: dict, after: dict) -> dict:
    return {
        key: [before.get(key), after.get(key)]
        for key in sorted(set(before) | set(after))
        if before.get(key) != after.get(key) and (before or after.get(key) not in ("", None))
    }


def _raise_invalid(fields: dict) -> None:
    if fields:
        raise InvalidInput("The request has invalid fields.", fields=fields)


# --- viewsets -----------------------------------------------------------------


class CustomerCursor(Cursor):
    ordering = "-id"


class TimelineCursor(Cursor):
    ordering = ("-occurred_at", "-id")


class OrderCursor(Cursor):
    ordering = ("-placed_at", "-id")


SOURCE_PARAMS = [WriteSourceQuery]


@extend_schema_view(
    list=extend_schema(
        summary="List customers, newest first; look one up by email, phone or storefront id",
        parameters=[CustomerFilterQuery],
        responses={200: CustomerSerializer(many=True), **LIST_ERROR_RESPONSES},
    ),
    retrieve=extend_schema(
        summary="Get a customer (a merged customer's id answers with the survivor)",
        responses={200: CustomerSerializer, **ERROR_RESPONSES},
    ),
    create=extend_schema(
        summary="Create or update a customer by identity resolution",
        parameters=SOURCE_PARAMS,
        request=CustomerPayload,
        responses={
            201: OpenApiResponse(CustomerSerializer, description="A new customer."),
            200: OpenApiResponse(CustomerSerializer, description="Matched an existing customer."),
            **WRITE_ERROR_RESPONSES,
        },
    ),
    partial_update=extend_schema(
        summary="Update a customer's profile, email, phone or consent",
        parameters=SOURCE_PARAMS,
        request=CustomerPatchPayload,
        responses={
            200: CustomerSerializer,
            **WRITE_ERROR_RESPONSES,
            409: OpenApiResponse(
                ErrorSerializer, description="The email or phone belongs to another customer."
            ),
        },
    ),
)
class CustomerViewSet(TenantViewSetMixin, viewsets.GenericViewSet):
    model = Customer
    serializer_class = CustomerSerializer
    pagination_class = CustomerCursor
    parser_classes = [SafeJSONParser]
    lookup_value_regex = "[0-9]+"

    def list(self, request):
        query = _query(CustomerFilterQuery, request)
        queryset = selectors.customer_list(
            tenant=self.tenant,
            email=query.get("email", ""),
            phone=query.get("phone", ""),
            external_id=query.get("external_id", ""),
            source=query.get("source") or DEFAULT_SOURCE,
        )
        page = _with_stats(self.tenant, self.paginate_queryset(queryset))
        return self.get_paginated_response(CustomerSerializer(page, many=True).data)

    def retrieve(self, request, pk=None):
        return Response(_customer_out(self.tenant, pk))

    def create(self, request):
        source = _write_source(request)
        payload = CustomerPayload(data=request.data)
        payload.is_valid(raise_exception=True)
        data = payload.validated_data
        ref = CustomerRef.from_data(data, source=source)
        existing = selectors.customer_find(tenant=self.tenant, ref=ref)
        before = _snapshot(self.tenant, existing)
        with transaction.atomic():
            customer = customer_upsert(tenant=self.tenant, data=data, source=source)
            changes = _diff(before, _snapshot(self.tenant, customer))
            if existing is None or changes:
                audit_record(
                    tenant=self.tenant,
                    action=AuditAction.CREATE if existing is None else AuditAction.UPDATE,
                    obj=customer,
                    api_key=request.auth,
                    changes=changes,
                )
        return Response(
            _customer_out(self.tenant, customer.pk),
            status=status.HTTP_200_OK if existing else status.HTTP_201_CREATED,
        )

    def partial_update(self, request, pk=None):
        source = _write_source(request)
        customer = selectors.customer_get(tenant=self.tenant, customer_id=pk)
        payload = CustomerPatchPayload(data=request.data, partial=True)
        payload.is_valid(raise_exception=True)
        data = payload.validated_data
        fields: dict[str, list[str]] = {}
        contacts = {}
        for field, normalize in (("email", normalize_email), ("phone", normalize_phone)):
            if field in data:
                try:
                    contacts[field] = normalize(data[field])
                except BadIdentifier as exc:
                    fields[field] = [str(exc)]
        _raise_invalid(fields)
        before = _snapshot(self.tenant, customer)
        with transaction.atomic():
            customer = customer_update(
                tenant=self.tenant, customer=customer, data=data, contacts=contacts, source=source
            )
            changes = _diff(before, _snapshot(self.tenant, customer))
            if changes:
                audit_record(
                    tenant=self.tenant,
                    action=AuditAction.UPDATE,
                    obj=customer,
                    api_key=request.auth,
                    changes=changes,
                )
        return Response(_customer_out(self.tenant, customer.pk))

    @extend_schema(
        summary="A customer's timeline of touchpoints, newest first",
        parameters=[TimelineFilterQuery],
        responses={200: TouchpointSerializer(many=True), **LIST_ERROR_RESPONSES},
    )
    @action(detail=True, methods=["get"], pagination_class=TimelineCursor)
    def timeline(self, request, pk=None):
        customer = selectors.customer_get(tenant=self.tenant, customer_id=pk)
        query = _query(TimelineFilterQuery, request)
        queryset = selectors.customer_timeline(
            tenant=self.tenant,
            customer=customer,
            category=query.get("category", ""),
            kind=query.get("kind", ""),
        )
        page = self.paginate_queryset(queryset)
        return self.get_paginated_response(TouchpointSerializer(page, many=True).data)

    @extend_schema(
        summary="Export everything held about a customer (GDPR access request)",
        description=(
            "Profile, identities, consent, orders with lines, fulfilments and returns, "
            "carts, touchpoints, messages (without bodies), surveys, callbacks, segments, "
            "scores, experiment exposures and journey enrollments, as one JSON document."
        ),
        responses={200: OpenApiResponse(PrivacyExportSerializer), **ERROR_RESPONSES},
    )
    @action(detail=True, methods=["get"], pagination_class=None)
    def export(self, request, pk=None):
        customer = selectors.customer_get(tenant=self.tenant, customer_id=pk)
        return Response(customer_export(tenant=self.tenant, customer=customer))

    @extend_schema(
        summary="Erase a customer's personal data (GDPR erasure request; idempotent)",
        description=(
            "Removes names, emails, phone numbers, identities, message addresses and bodies, "
            "survey free text and event properties. Orders stay, on an anonymous customer, "
            "for the store's books. Only a SHA-256 of each email and phone is kept, so a "
            "later webhook or import cannot opt the person back in."
        ),
        request=None,
        responses={200: ErasureSerializer, **ERROR_RESPONSES},
    )
    @action(detail=True, methods=["post"], pagination_class=None)
    def erase(self, request, pk=None):
        customer = selectors.customer_get(tenant=self.tenant, customer_id=pk)
        counts = customer_erase(tenant=self.tenant, customer=customer, actor=request.auth)
        customer.refresh_from_db(fields=["erased_at"])
        return Response(
            {"id": customer.pk, "erased_at": customer.erased_at, "already_erased": not counts}
        )


@extend_schema_view(
    list=extend_schema(
        summary="List orders, newest placed first",
        parameters=[OrderFilterQuery],
        responses={200: OrderSummarySerializer(many=True), **LIST_ERROR_RESPONSES},
    ),
    retrieve=extend_schema(
        summary="Get an order with its lines, fulfilments and delivery events",
        responses={200: OrderSerializer, **ERROR_RESPONSES},
    ),
    create=extend_schema(
        summary="Create or update an order (idempotent on the storefront's order id)",
        parameters=SOURCE_PARAMS,
        request=OrderPayload,
        responses={
            201: OpenApiResponse(OrderSerializer, description="A new order."),
            200: OpenApiResponse(OrderSerializer, description="An order with this id, updated."),
            **WRITE_ERROR_RESPONSES,
        },
    ),
)
class OrderViewSet(TenantViewSetMixin, viewsets.GenericViewSet):
    model = Order
    serializer_class = OrderSerializer
    pagination_class = OrderCursor
    parser_classes = [SafeJSONParser]
    lookup_value_regex = "[0-9]+"

    def list(self, request):
        query = _query(OrderFilterQuery, request)
        queryset = selectors.order_list(
            tenant=self.tenant,
            customer_id=query.get("customer"),
            placed_after=query.get("placed_after"),
            placed_before=query.get("placed_before"),
        )
        page = self.paginate_queryset(queryset)
        return self.get_paginated_response(OrderSummarySerializer(page, many=True).data)

    def retrieve(self, request, pk=None):
        return Response(OrderSerializer(selectors.order_get(tenant=self.tenant, order_id=pk)).data)

    def create(self, request):
        source = _write_source(request)
        payload = OrderPayload(data=request.data)
        payload.is_valid(raise_exception=True)
        order, created = order_upsert(
            tenant=self.tenant, data=payload.validated_data, source=source
        )
        return Response(
            OrderSerializer(selectors.order_get(tenant=self.tenant, order_id=order.pk)).data,
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
        )


EVENTS_REQUEST = PolymorphicProxySerializer(
    component_name="EventOrBatch",
    serializers=[EventPayload, EventBatchPayload],
    resource_type_field_name=None,
)


class EventViewSet(viewsets.ViewSet):
    parser_classes = [SafeJSONParser]

    @extend_schema(
        summary="Record one event or a batch of up to 1000 (idempotent on each event's id)",
        description=(
            'Send one event object, or `{"events": [...]}`. Every event is validated '
            "first: if any is invalid nothing is stored and the 422 lists the errors by "
            "index under `error.fields.events`. An event whose `id` was seen before "
            "(for the same source) is counted as a duplicate and not stored again."
        ),
        parameters=SOURCE_PARAMS,
        request=EVENTS_REQUEST,
        responses={
            202: EventsAcceptedSerializer,
            **WRITE_ERROR_RESPONSES,
            413: OpenApiResponse(ErrorSerializer, description="More than 1000 events."),
        },
    )
    def create(self, request):
        source = _write_source(request)
        tenant = request.auth.tenant
        body = request.data
        batch = isinstance(body, dict) and "events" in body
        if batch:
            items = body["events"]
            if not isinstance(items, list) or not items:
                _raise_invalid({"events": ["Give a non-empty list of events."]})
            if len(items) > MAX_BATCH:
                raise TooManyEvents(
                    f"At most {MAX_BATCH} events per request; this one has {len(items)}. "
                    "Split it into smaller batches."
                )
        else:
            items = [body]
        validated, errors = [], {}
        for index, item in enumerate(items):
            payload = EventPayload(data=item)
            if not payload.is_valid():
                errors[str(index)] = payload.errors
                continue
            data = payload.validated_data
            try:
                CustomerRef.from_data(data["customer"], source=source)
            except InvalidInput as exc:
                errors[str(index)] = exc.fields
            validated.append(data)
        if errors:
            raise serializers.ValidationError({"events": errors} if batch else errors["0"])
        with transaction.atomic():
            result = touchpoints_ingest(tenant=tenant, items=validated, source=source)
        return Response(result, status=status.HTTP_202_ACCEPTED)
