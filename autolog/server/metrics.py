"""``metrics/get-history``: a metric's every point, in pages.

The page token is the offset into the store's order (step, timestamp, logging
order), so any replica can serve the next page.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from autolog.server.messages import integer, optional_text, read_message, required_text, run_id_of
from autolog.server.routing import api_routes, json_response, store_call, store_of
from autolog.tracking import search as _search
from autolog.tracking.wire import metric_to_wire

__all__ = ["routes"]

#: points per page when the client names no max_results
DEFAULT_PAGE = 25_000


async def get_history(request: Request) -> Response:
    message = await read_message(request)
    run_id = run_id_of(message)
    key = required_text(message, "metric_key")
    max_results = integer(message, "max_results") or DEFAULT_PAGE
    offset = _search.decode_page_token(optional_text(message, "page_token") or None)
    store = store_of(request)
    paged = getattr(store, "metric_history_page", None)  # the SQL store: the page's points only
    if paged is not None:
        page, total = await store_call(paged, run_id, key, offset, max_results)
    else:
        points = await store_call(store.get_metric_history, run_id, key)
        page, total = points[offset : offset + max_results], len(points)
    answer: dict = {}
    if page:
        answer["metrics"] = [metric_to_wire(m) for m in page]
    if offset + max_results < total:
        answer["next_page_token"] = _search.encode_page_token(offset + max_results)
    return json_response(answer)


def routes() -> list[Route]:
    return api_routes([("/metrics/get-history", ("GET",), get_history)])
