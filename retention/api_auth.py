"""REST API authentication: ``Authorization: Bearer <api key>``.

The key resolves the tenant: views read it from ``request.auth.tenant``.
Scopes gate methods: ``read`` for safe methods, ``write`` for the rest.
"""

from __future__ import annotations

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions, permissions

from retention.models import ApiKey, ApiScope
from retention.selectors import api_key_authenticate
from retention.services import api_key_touch


class ApiKeyAuthentication(authentication.BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request):
        header = authentication.get_authorization_header(request)
        if not header:
            return None
        try:
            keyword, _, raw = header.decode("ascii").partition(" ")
        except UnicodeDecodeError as exc:
            raise exceptions.AuthenticationFailed("The Authorization header is not ASCII.") from exc
        if keyword != self.keyword or not raw.strip():
            raise exceptions.AuthenticationFailed("Use 'Authorization: Bearer <api key>'.")
        key = api_key_authenticate(raw=raw.strip())
        if key is None:
            raise exceptions.AuthenticationFailed("The API key is wrong or has been revoked.")
        api_key_touch(key=key)
        return (None, key)

    def authenticate_header(self, request) -> str:
        return 'Bearer realm="api"'


class HasApiKeyScope(permissions.BasePermission):
    message = "This API key does not have the scope for this request."

    def has_permission(self, request, view) -> bool:
        key = request.auth
        if not isinstance(key, ApiKey):
            raise exceptions.NotAuthenticated("Send 'Authorization: Bearer <api key>'.")
        needed = ApiScope.READ if request.method in permissions.SAFE_METHODS else ApiScope.WRITE
        return key.has_scope(needed)


class ApiKeyAuthenticationScheme(OpenApiAuthenticationExtension):
    """Documents the API key as an HTTP bearer scheme in the OpenAPI schema."""

    target_class = ApiKeyAuthentication
    name = "apiKey"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "A tenant API key, `rk_…`, issued by `create_tenant` or in the admin.",
        }
