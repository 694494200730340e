"""Event counts in a FastAPI app: POST /events feeds a stream, GET /counts reads it.

Run with ``uvicorn fastapi_app:app``. The stream starts with the app (lifespan) and
stops with it gracefully: the events posted before shutdown are counted first.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse

from streamio import Clock, ContextState, ContextStateError, StreamingContext


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


def create_app(clock: Clock | None = None) -> FastAPI:
    counts = Counts()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
        async with StreamingContext(batch_interval=1.0, clock=clock) as ssc:
            events = ssc.push_stream(name="events")
            events.map(event_type).update_state_by_key(running_total).foreach_batch(counts.update)
            await ssc.start()
            yield {"ssc": ssc, "events": events}  # leaving the block drains the stream

    app = FastAPI(lifespan=lifespan)
    app.state.counts = counts

    @app.post("/events", status_code=202)
    async def post_events(request: Request, events: list[dict[str, Any]]) -> dict[str, int]:
        try:
            await request.state.events.send(events)  # waits while the buffer is full
        except ContextStateError as error:  # the stream has stopped
            raise HTTPException(503, str(error)) from error
        return {"accepted": len(events)}

    @app.get("/counts")
    async def get_counts() -> dict[str, Any]:
        return {"batch_time": counts.batch_time, "counts": counts.by_type}

    @app.get("/health")
    async def health(request: Request) -> JSONResponse:
        ssc: StreamingContext = request.state.ssc
        if ssc.error is not None:  # the stream failed
            return JSONResponse({"status": "failed", "error": str(ssc.error)}, status_code=503)
        if ssc.state is not ContextState.ACTIVE:  # stopped, or not started yet
            return JSONResponse({"status": ssc.state.value}, status_code=503)
        return JSONResponse({"status": "ok"})

    return app


app = create_app()
