"""REST API of messaging, mounted under ``/api/v1/``: the in-app inbox."""

from django.urls import path

from messaging.api import InboxViewSet

urlpatterns = [
    path(
        "customers/<str:customer_pk>/inbox/",
        InboxViewSet.as_view({"get": "list"}),
        name="customer-inbox",
    ),
    path(
        "customers/<str:customer_pk>/inbox/<str:pk>/read/",
        InboxViewSet.as_view({"post": "read"}),
        name="customer-inbox-read",
    ),
]
