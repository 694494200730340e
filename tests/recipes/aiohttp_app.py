"""Event counts in an aiohttp app: POST /events feeds a stream, GET /counts reads it.

Run with ``python aiohttp_app.py``. The stream starts with the app (``cleanup_ctx``)
and stops with it gracefully: the events posted before shutdown are counted first.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

from streamio import Clock, ContextState, ContextStateError, PushStream, StreamingContext


def event_type(event: dict[str, Any]) -> tuple[str, int]:
    return event["type"], 1  # an event without "type" fails the stream: /health says so


def running_total(new: list[int], total: int | None) -> int:
    return (total or 0) + sum(new)


class Counts:
    """What the stream has counted so far, by event type."""

    def __init__(self) -> None:
        self.batch_time: float | None = None
        self.by_type: dict[str, int] = {}

    def update(self, batch_time: float, totals: list[tuple[str, int]]) -> None:
        self.batch_time, self.by_type = batch_time, dict(totals)


COUNTS = web.AppKey("counts", Counts)
CONTEXT = web.AppKey("context", StreamingContext)
EVENTS = web.AppKey("events", PushStream)


def create_app(clock: Clock | None = None) -> web.Application:
    async def streaming(app: web.Application) -> AsyncIterator[None]:
        async with StreamingContext(batch_interval=1.0, clock=clock) as ssc:
            events = ssc.push_stream(name="events")
            events.map(event_type).update_state_by_key(running_total).foreach_batch(
                app[COUNTS].update
            )
            await ssc.start()
            app[CONTEXT], app[EVENTS] = ssc, events
            # This generator runs in aiohttp's main task. A task awaiting termination
            # keeps a failed stream from stopping the server: /health reports it.
            termination = asyncio.create_task(ssc.await_termination())
            yield  # leaving the block drains the stream
        await termination  # the stream's error, if it failed, is raised at shutdown

    async def post_events(request: web.Request) -> web.Response:
        events = await request.json()
        if not isinstance(events, list) or not all(isinstance(e, dict) for e in events):
            raise web.HTTPBadRequest(text="expected a JSON list of objects")
        try:
            await request.app[EVENTS].send(events)  # waits while the buffer is full
        except ContextStateError as error:  # the stream has stopped
            raise web.HTTPServiceUnavailable(text=str(error)) from error
        return web.json_response({"accepted": len(events)}, status=202)

    async def get_counts(request: web.Request) -> web.Response:
        counts = request.app[COUNTS]
        return web.json_response({"batch_time": counts.batch_time, "counts": counts.by_type})

    async def health(request: web.Request) -> web.Response:
        ssc = request.app[CONTEXT]
        if ssc.error is not None:  # the stream failed
            return web.json_response({"status": "failed", "error": str(ssc.error)}, status=503)
        if ssc.state is not ContextState.ACTIVE:  # stopped, or not started yet
            return web.json_response({"status": ssc.state.value}, status=503)
        return web.json_response({"status": "ok"})

    app = web.Application()
    app[COUNTS] = Counts()
    app.cleanup_ctx.append(streaming)
    app.router.add_post("/events", post_events)
    app.router.add_get("/counts", get_counts)
    app.router.add_get("/health", health)
    return app


if __name__ == "__main__":
    web.run_app(create_app())
