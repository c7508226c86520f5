"""Domain errors and the one JSON error shape every API and webhook answers with:

    {"error": {"code": "...", "message": "...", "fields": {...}}}

Services raise :class:`DomainError` subclasses; views and the DRF exception
handler (``retention.api_errors``) turn them into 4xx responses. A 5xx is always a bug.
"""

from __future__ import annotations

import logging
from typing import Any

from django.http import JsonResponse

logger = logging.getLogger(__name__)


class DomainError(Exception):
    status = 400
    code = "bad_request"

    def __init__(self, message: str, *, fields: dict[str, Any] | None = None, code: str = ""):
        super().__init__(message)
        self.message = message
        self.fields = fields or {}
        if code:
            self.code = code


class InvalidInput(DomainError):
    status = 422
    code = "invalid"


class NotFound(DomainError):
    status = 404
    code = "not_found"


class Forbidden(DomainError):
    status = 403
    code = "forbidden"


class Conflict(DomainError):
    status = 409
    code = "conflict"


class Unauthorized(DomainError):
    status = 401
    code = "unauthorized"


def error_body(code: str, message: str, fields: dict | None = None) -> dict:
    return {"error": {"code": code, "message": message, "fields": fields or {}}}


def json_error(status: int, code: str, message: str, fields: dict | None = None, **kw):
    return JsonResponse(error_body(code, message, fields), status=status, **kw)


def wants_json(path: str) -> bool:
    return path.startswith(("/api/", "/hooks/"))


def handler400(request, exception=None):
    if wants_json(request.path):
        return json_error(400, "bad_request", "The request is malformed.")
    from django.views.defaults import bad_request

    return bad_request(request, exception)


def handler404(request, exception=None):
    if wants_json(request.path):
        return json_error(404, "not_found", "Not found.")
    from django.views.defaults import page_not_found

    return page_not_found(request, exception)


def handler500(request):
    if wants_json(request.path):
        return json_error(500, "server_error", "Internal error; it has been logged.")
    from django.views.defaults import server_error

    return server_error(request)
