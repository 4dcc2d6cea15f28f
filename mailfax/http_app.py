"""The HTTP listener's app: health, readiness, metrics and the status page beside the webhooks."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping

from prometheus_client import CONTENT_TYPE_LATEST
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.types import ASGIApp

from mailfax.logs import log_event
from mailfax.metrics import render_metrics
from mailfax.status_page import status_routes
from mailfax.store import Store

log = logging.getLogger("mailfax.http")


def http_app(
    webhooks: ASGIApp,
    store: Store,
    listeners: Callable[[], Mapping[str, bool]],
    admin_token: str,
) -> Starlette:
    """/healthz, /readyz and /metrics; with an admin token, the status page at /; every other
    path goes to the webhook app.

    `listeners` says, when asked, which of the process's listeners and worker loops are up."""

    async def healthz(request: Request) -> Response:
        # Answering at all is the proof: the event loop runs.
        return PlainTextResponse("ok\n")

    async def readyz(request: Request) -> Response:
        checks = {name: "up" if up else "down" for name, up in listeners().items()}
        try:
            await store.ping()
            checks["store"] = "up"
        except Exception as exc:  # any way the store fails to answer means "not ready"
            log_event(log, "readyz.store_down", logging.WARNING, error=exc.__class__.__name__)
            checks["store"] = "down"
        ready = all(value == "up" for value in checks.values())
        return JSONResponse({"ready": ready, "checks": checks}, status_code=200 if ready else 503)

    async def metrics(request: Request) -> Response:
        return Response(await render_metrics(store), media_type=CONTENT_TYPE_LATEST)

    routes: list[BaseRoute] = [
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
    ]
    if admin_token:
        routes += status_routes(store, admin_token)
    routes.append(Mount("", app=webhooks))
    return Starlette(routes=routes)
