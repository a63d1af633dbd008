"""Errors as the REST API answers them: JSON ``{"error_code", "message"}``.

The status codes are MLflow's (``ERROR_CODE_TO_HTTP_STATUS``): a missing
object is 404 ``RESOURCE_DOES_NOT_EXIST``, a duplicate name 400
``RESOURCE_ALREADY_EXISTS``, any bad input 400 ``INVALID_PARAMETER_VALUE``.
A deterministic error is never a 5xx, 408 or 429: the official client retries
those, POST included, for minutes. An unexpected exception is a 500 whose body
names no internals (the traceback goes to the server's log only).
"""

from __future__ import annotations

import logging

from starlette.requests import Request
from starlette.responses import Response

from autolog.errors import (
    AutologError,
    InvalidParameterError,
    ResourceAlreadyExistsError,
    ResourceNotFoundError,
    RunStateError,
    StoreError,
    TransientStoreError,
)
from autolog.tracking.wire import dumps

__all__ = ["ApiError", "error_response", "handle_exception"]

log = logging.getLogger("autolog.server")

_STATUS = {
    "INVALID_PARAMETER_VALUE": 400,
    "BAD_REQUEST": 400,
    "RESOURCE_ALREADY_EXISTS": 400,
    "RESOURCE_DOES_NOT_EXIST": 404,
    "ENDPOINT_NOT_FOUND": 404,
    "UNAUTHENTICATED": 401,
    "PERMISSION_DENIED": 403,
    "REQUEST_TOO_LARGE": 413,
    "INTERNAL_ERROR": 500,
    "TEMPORARILY_UNAVAILABLE": 503,
}


class ApiError(Exception):  # not an AutologError: it is the answer, not the fault
    """An error the API answers as is: ``error_code`` (an MLflow code) and a message."""

    def __init__(
        self, error_code: str, message: str, status: int | None = None, autolog_error: str = ""
    ):
        super().__init__(message)
        self.error_code = error_code
        self.message = message
        self.status = status or _STATUS.get(error_code, 400)
        self.autolog_error = autolog_error


def error_response(
    error_code: str, message: str, status: int | None = None, autolog_error: str = ""
) -> Response:
    """The JSON error body with its status. ``autolog_error`` (autolog's own
    clients read it; others ignore unknown fields) names the autolog.errors class."""
    body = {"error_code": error_code, "message": message}
    if autolog_error:
        body["autolog_error"] = autolog_error
    return Response(
        dumps(body),
        status_code=status or _STATUS.get(error_code, 400),
        media_type="application/json",
    )


def _as_api_error(exc: BaseException) -> ApiError | None:
    api_error = _classify(exc)
    if api_error is not None and isinstance(exc, AutologError) and not isinstance(exc, ApiError):
        api_error.autolog_error = type(exc).__name__
    return api_error


def _classify(exc: BaseException) -> ApiError | None:
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, ResourceNotFoundError):
        return ApiError("RESOURCE_DOES_NOT_EXIST", str(exc))
    if isinstance(exc, ResourceAlreadyExistsError):
        return ApiError("RESOURCE_ALREADY_EXISTS", str(exc))
    if isinstance(exc, (InvalidParameterError, RunStateError)):
        return ApiError("INVALID_PARAMETER_VALUE", str(exc))
    if isinstance(exc, TransientStoreError):
        # a database restarting, a lock held too long: worth the client's retry
        return ApiError("TEMPORARILY_UNAVAILABLE", "The backend store is busy; try again", 503)
    if isinstance(exc, StoreError):
        # the database or disk failed under this request: not the request's fault
        log.warning("store failure: %s", exc)
        return ApiError("TEMPORARILY_UNAVAILABLE", "The backend store failed; see the server's log")
    if isinstance(exc, AutologError):
        return ApiError("INVALID_PARAMETER_VALUE", str(exc))
    return None


async def handle_exception(request: Request, exc: Exception) -> Response:
    """Any exception of a route as its JSON error; unexpected ones logged, body generic."""
    api_error = _as_api_error(exc)
    if api_error is None:
        log.exception("%s %s failed", request.method, request.url.path)
        return error_response("INTERNAL_ERROR", "Internal server error (see the server's log)")
    return error_response(
        api_error.error_code, api_error.message, api_error.status, api_error.autolog_error
    )
