"""Request messages: the fields of a REST call, from its query string or JSON body.

GET calls carry their fields in the query string (repeated keys for lists);
POST calls in a JSON object body with ``Content-Type: application/json`` (a
POST without it is refused, as MLflow's server does: a cross-site form post
cannot set that type without a CORS preflight). Field readers raise
:class:`~autolog.server.errors.ApiError` naming the field.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request

from autolog.server.errors import ApiError
from autolog.tracking.wire import int_from_wire

__all__ = ["read_message", "optional_text", "required_text", "run_id_of", "integer", "text_list"]


async def _body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise ApiError("REQUEST_TOO_LARGE", f"Request body over the limit of {limit} bytes", 413)
    chunks = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ApiError(
                "REQUEST_TOO_LARGE", f"Request body over the limit of {limit} bytes", 413
            )
        chunks.append(chunk)
    return b"".join(chunks)


def _parse_json(body: bytes) -> dict[str, Any]:
    try:
        message = json.loads(body)
    except (UnicodeDecodeError, ValueError):
        raise ApiError("MALFORMED_REQUEST", "The request body is not valid JSON", 400) from None
    if not isinstance(message, dict):
        raise ApiError("MALFORMED_REQUEST", "The request body must be a JSON object", 400)
    return message


async def read_message(request: Request) -> dict[str, Any]:
    """The call's fields: the query string of a GET (its JSON body when the query
    is empty), the JSON body of any other method."""
    limit = request.app.state.settings.max_request_bytes
    if request.method == "GET":
        query = request.query_params
        if query:
            fields: dict[str, Any] = {}
            for key in query:
                values = query.getlist(key)
                fields[key] = values if len(values) > 1 else values[0]
            return fields
        body = await _body(request, limit)
        return _parse_json(body) if body.strip() else {}
    content_type = request.headers.get("content-type")
    if not content_type:
        raise ApiError("INVALID_PARAMETER_VALUE", "Content-Type header is missing")
    if "json" not in content_type.lower():
        raise ApiError(
            "INVALID_PARAMETER_VALUE", f"Content-Type {content_type!r}: expected application/json"
        )
    body = await _body(request, limit)
    return _parse_json(body) if body.strip() else {}


def optional_text(message: dict[str, Any], name: str, default: str | None = None) -> str | None:
    value = message.get(name)
    if value is None:
        return default
    if isinstance(value, list) and len(value) == 1:
        value = value[0]
    if not isinstance(value, str):
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
        raise ApiError("INVALID_PARAMETER_VALUE", f"Invalid value {value!r} for field {name!r}")
    return value


def required_text(message: dict[str, Any], name: str) -> str:
    value = optional_text(message, name)
    if value is None or value == "":
        raise ApiError("INVALID_PARAMETER_VALUE", f"Missing value for required field {name!r}")
    return value


def run_id_of(message: dict[str, Any]) -> str:
    """``run_id``, or its older name ``run_uuid``."""
    value = optional_text(message, "run_id") or optional_text(message, "run_uuid")
    if not value:
        raise ApiError("INVALID_PARAMETER_VALUE", "Missing value for required field 'run_id'")
    return value


def integer(message: dict[str, Any], name: str, default: int | None = None) -> int | None:
    value = message.get(name)
    if isinstance(value, list) and len(value) == 1:
        value = value[0]
    return int_from_wire(value, name, default)


def text_list(message: dict[str, Any], name: str) -> list[str]:
    """A repeated string field (one value in a query string is a list of one)."""
    value = message.get(name)
    if value is None:
        return []
    if isinstance(value, (str, int)) and not isinstance(value, bool):
        return [str(value)]
    if isinstance(value, list) and all(isinstance(v, (str, int)) for v in value):
        return [str(v) for v in value]
    raise ApiError("INVALID_PARAMETER_VALUE", f"Invalid value {value!r} for field {name!r}")
