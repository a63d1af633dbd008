"""Experiment routes: get-by-name, create, get, search, delete, restore, update, tags."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from autolog.server.errors import ApiError
from autolog.server.messages import integer, optional_text, read_message, required_text
from autolog.server.routing import api_routes, json_response, store_call, store_of
from autolog.tracking import search as _search
from autolog.tracking.entities import ViewType
from autolog.tracking.validation import validate_key
from autolog.tracking.wire import experiment_to_wire, key_values_from_wire

__all__ = ["routes", "view_type_of"]

MAX_NAME_LENGTH = 500
MAX_EXPERIMENT_TAG_VALUE = 20_000
_VIEW_TYPES = {"ACTIVE_ONLY": 1, "DELETED_ONLY": 2, "ALL": 3}


def view_type_of(message: dict, field: str) -> int:
    """A ViewType by name or number; ACTIVE_ONLY when absent."""
    value = message.get(field)
    if value is None:
        return ViewType.ACTIVE_ONLY
    if isinstance(value, str) and value in _VIEW_TYPES:
        return _VIEW_TYPES[value]
    number = integer(message, field)
    if number not in (1, 2, 3):
        raise ApiError("INVALID_PARAMETER_VALUE", f"Invalid value {value!r} for field {field!r}")
    return number


def _name(message: dict, field: str) -> str:
    name = required_text(message, field)
    if len(name) > MAX_NAME_LENGTH:
        raise ApiError(
            "INVALID_PARAMETER_VALUE",
            f"Experiment name is {len(name)} characters long; the limit is {MAX_NAME_LENGTH}",
        )
    return name


def _experiment_tag(key: str, value: str) -> None:
    validate_key(key, "experiment tag key")
    if len(value) > MAX_EXPERIMENT_TAG_VALUE:
        raise ApiError(
            "INVALID_PARAMETER_VALUE",
            f"Experiment tag {key!r} is {len(value)} characters long; "
            f"the limit is {MAX_EXPERIMENT_TAG_VALUE}",
        )


async def get_by_name(request: Request) -> Response:
    name = required_text(await read_message(request), "experiment_name")
    experiment = await store_call(store_of(request).get_experiment_by_name, name)
    if experiment is None:
        raise ApiError("RESOURCE_DOES_NOT_EXIST", f"Could not find experiment with name {name!r}")
    return json_response({"experiment": experiment_to_wire(experiment)})


async def create(request: Request) -> Response:
    message = await read_message(request)
    name = _name(message, "name")
    tags = key_values_from_wire(message.get("tags"), "tags")
    for key, value in tags.items():
        _experiment_tag(key, value)
    location = optional_text(message, "artifact_location") or None
    experiment_id = await store_call(store_of(request).create_experiment, name, location, tags)
    return json_response({"experiment_id": str(experiment_id)})


async def get(request: Request) -> Response:
    experiment_id = required_text(await read_message(request), "experiment_id")
    experiment = await store_call(store_of(request).get_experiment, experiment_id)
    return json_response({"experiment": experiment_to_wire(experiment)})


async def search(request: Request) -> Response:
    message = await read_message(request)
    max_results = integer(message, "max_results", 1000)
    _search.check_max_results(max_results)
    offset = _search.decode_page_token(optional_text(message, "page_token"))
    order_by = message.get("order_by") or []
    if isinstance(order_by, str):
        order_by = [order_by]
    wanted = min(offset + max_results + 1, _search.MAX_RESULTS_LIMIT)
    found = await store_call(
        store_of(request).search_experiments,
        view_type_of(message, "view_type"),
        wanted,
        optional_text(message, "filter") or None,
        order_by,
    )
    page = found[offset : offset + max_results]
    answer: dict = {}
    if page:
        answer["experiments"] = [experiment_to_wire(e) for e in page]
    if len(found) > offset + max_results:
        answer["next_page_token"] = _search.encode_page_token(offset + max_results)
    return json_response(answer)


async def delete(request: Request) -> Response:
    experiment_id = required_text(await read_message(request), "experiment_id")
    await store_call(store_of(request).delete_experiment, experiment_id)
    return json_response({})


async def restore(request: Request) -> Response:
    experiment_id = required_text(await read_message(request), "experiment_id")
    await store_call(store_of(request).restore_experiment, experiment_id)
    return json_response({})


async def update(request: Request) -> Response:
    message = await read_message(request)
    experiment_id = required_text(message, "experiment_id")
    new_name = optional_text(message, "new_name")
    if new_name:
        await store_call(
            store_of(request).rename_experiment, experiment_id, _name(message, "new_name")
        )
    else:
        await store_call(store_of(request).get_experiment, experiment_id)
    return json_response({})


async def set_tag(request: Request) -> Response:
    message = await read_message(request)
    experiment_id = required_text(message, "experiment_id")
    key = required_text(message, "key")
    value = optional_text(message, "value")
    if value is None:
        raise ApiError("INVALID_PARAMETER_VALUE", "Missing value for required field 'value'")
    _experiment_tag(key, value)
    await store_call(store_of(request).set_experiment_tag, experiment_id, key, value)
    return json_response({})


def routes() -> list[Route]:
    return api_routes(
        [
            ("/experiments/get-by-name", ("GET",), get_by_name),
            ("/experiments/create", ("POST",), create),
            ("/experiments/get", ("GET",), get),
            ("/experiments/search", ("GET", "POST"), search),
            ("/experiments/delete", ("POST",), delete),
            ("/experiments/restore", ("POST",), restore),
            ("/experiments/update", ("POST",), update),
            ("/experiments/set-experiment-tag", ("POST",), set_tag),
        ]
    )
