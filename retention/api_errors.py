"""The DRF exception handler: every API error in the one JSON shape."""

from __future__ import annotations

from typing import Any

from django.http import Http404
from rest_framework import exceptions as drf_exceptions
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_default_handler

from retention.errors import DomainError, error_body


def _flatten_detail(detail: Any) -> Any:
    if isinstance(detail, list):
        return (
            [str(d) for d in detail]
            if all(not isinstance(d, dict | list) for d in detail)
            else [_flatten_detail(d) for d in detail]
        )
    if isinstance(detail, dict):
        return {k: _flatten_detail(v) for k, v in detail.items()}
    return str(detail)


_DRF_CODES = {
    drf_exceptions.NotAuthenticated: "unauthorized",
    drf_exceptions.AuthenticationFailed: "unauthorized",
    drf_exceptions.PermissionDenied: "forbidden",
    drf_exceptions.NotFound: "not_found",
    drf_exceptions.MethodNotAllowed: "method_not_allowed",
    drf_exceptions.ParseError: "malformed",
    drf_exceptions.UnsupportedMediaType: "unsupported_media_type",
    drf_exceptions.Throttled: "rate_limited",
    drf_exceptions.NotAcceptable: "not_acceptable",
}


def _encodable(value: Any) -> Any:
    """``value`` with every string made UTF-8 encodable. An error may quote the
    bad input back ("'\\ud800' is not a valid choice."), and DRF's renderer
    writes UTF-8: a lone surrogate would turn the 4xx into a 500."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return value.encode("utf-8", "backslashreplace").decode("utf-8")
        return value
    if isinstance(value, dict):
        return {_encodable(k): _encodable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_encodable(v) for v in value]
    return value


def api_exception_handler(exc: Exception, context: dict) -> Response | None:
    """DRF exception handler: every error becomes the one JSON shape."""
    response = _handle(exc, context)
    if response is not None:
        response.data = _encodable(response.data)
    return response


def _handle(exc: Exception, context: dict) -> Response | None:
    if isinstance(exc, DomainError):
        return Response(error_body(exc.code, exc.message, exc.fields), status=exc.status)
    if isinstance(exc, Http404):
        return Response(error_body("not_found", "Not found."), status=404)

    response = drf_default_handler(exc, context)
    if response is None:
        return None  # a real bug: let it surface as a 500 and be logged

    if isinstance(exc, drf_exceptions.ValidationError):
        detail = _flatten_detail(exc.detail)
        fields = detail if isinstance(detail, dict) else {"non_field_errors": detail}
        response.data = error_body("invalid", "The request has invalid fields.", fields)
        response.status_code = 422 if response.status_code == 400 else response.status_code
        return response

    code = next((c for cls, c in _DRF_CODES.items() if isinstance(exc, cls)), "error")
    message = str(getattr(exc, "detail", exc))
    response.data = error_body(code, message)
    return response
