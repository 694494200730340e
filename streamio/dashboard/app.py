"""The dashboard as an ASGI application (Starlette), to serve or to mount.

Routes (relative to where it is mounted):

- ``/``: the page (``static/index.html``, with its own script and style sheet;
  nothing is fetched from elsewhere, so it works offline).
- ``/events``: server-sent events: a ``snapshot`` when the page connects, then
  an ``update`` after every change (new completed batches only, the status, the
  panels that changed), and ``stopped`` when the job has terminated.
- ``/api/state``: the snapshot as JSON (for scripts and tests).
- ``/metrics``: the Prometheus exporter.

Every route only reads: nothing here changes the job.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from importlib import resources
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from .exporter import job_registry, metrics_text
from .monitor import Monitor

__all__ = ["dashboard_app"]

_STATIC = {
    "index.html": "text/html; charset=utf-8",
    "dashboard.js": "text/javascript; charset=utf-8",
    "dashboard.css": "text/css; charset=utf-8",
}


def _event(kind: str, data: Any) -> bytes:
    return f"event: {kind}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


async def _events(monitor: Monitor) -> AsyncIterator[bytes]:
    """The page's live feed: a snapshot, then one update per change, until the job ends."""
    version = monitor.version
    snapshot = monitor.snapshot()
    sequence = snapshot["sequence"]
    panel_versions = {panel["name"]: panel["version"] for panel in snapshot["panels"]}
    yield _event("snapshot", snapshot)
    while not monitor.stopped:
        await monitor.wait_change(version)
        version = monitor.version
        update = monitor.status(panel_versions)
        update["batches"] = monitor.batches_since(sequence)
        sequence = monitor.sequence
        yield _event("update", update)
    yield _event("stopped", {})


def dashboard_app(monitor: Monitor) -> Starlette:
    """The dashboard of ``monitor``'s job, as an ASGI app."""
    files = resources.files(__package__) / "static"

    def static(name: str) -> Response:
        return Response((files / name).read_bytes(), media_type=_STATIC[name])

    async def page(request: Request) -> Response:
        return static("index.html")

    async def asset(request: Request) -> Response:
        name = request.path_params["name"]
        if name not in _STATIC:
            return Response("not found", status_code=404)
        return static(name)

    async def events(request: Request) -> Response:
        headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
        return StreamingResponse(_events(monitor), media_type="text/event-stream", headers=headers)

    async def state(request: Request) -> Response:
        return JSONResponse(monitor.snapshot())

    routes: list[Any] = [
        Route("/", page),
        Route("/static/{name}", asset),
        Route("/events", events),
        Route("/api/state", state),
    ]
    registry = job_registry(monitor)

    async def metrics(request: Request) -> Response:
        body, content_type = metrics_text(registry)
        return Response(body, headers={"Content-Type": content_type})

    routes.append(Route("/metrics", metrics))
    return Starlette(routes=routes)
