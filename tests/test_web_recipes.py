"""README's web recipes (tests/recipes/fastapi_app.py, tests/recipes/aiohttp_app.py), each run by
its real server on loopback and spoken to over HTTP.

The apps run on a manual clock, so the tests post, advance the clock, and read the
exact counts. The listening socket is bound and listening before the server starts:
requests wait in its backlog until the app has started, so nothing is polled.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import aiohttp
import anyio
import httpx
import pytest
import uvicorn
from aiohttp import web

from streamio import ManualClock, OperatorError

EXAMPLES = Path(__file__).resolve().parent / "recipes"

# Upper bound for a wait that only a bug could make endless.
HANG_GUARD = 10


def load_example(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


fastapi_app = load_example("fastapi_app")
aiohttp_app = load_example("aiohttp_app")


def listening_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))  # a free port
    sock.listen()
    return sock


class Client:
    """The few HTTP calls the tests make, over httpx or aiohttp's client."""

    def __init__(self, post: Callable[..., Any], get: Callable[..., Any]) -> None:
        self.post = post
        self.get = get


@asynccontextmanager
async def serve_fastapi(app: Any) -> AsyncIterator[Client]:
    """Run ``app`` under uvicorn (lifespan on) and give an httpx client; shut down after."""
    with listening_socket() as sock, anyio.fail_after(HANG_GUARD):
        port = sock.getsockname()[1]
        config = uvicorn.Config(app, lifespan="on", log_config=None, log_level="warning")
        server = uvicorn.Server(config)
        async with anyio.create_task_group() as tg:
            tg.start_soon(server.serve, [sock])
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:

                async def post(path: str, body: Any) -> tuple[int, Any]:
                    response = await http.post(path, json=body)
                    return response.status_code, response.json()

                async def get(path: str) -> tuple[int, Any]:
                    response = await http.get(path)
                    return response.status_code, response.json()

                yield Client(post, get)
            server.should_exit = True  # uvicorn's way to shut down: lifespan then drains


@asynccontextmanager
async def serve_aiohttp(app: web.Application) -> AsyncIterator[Client]:
    """Run ``app`` with aiohttp's web runner and give an aiohttp client; clean up after."""
    with listening_socket() as sock, anyio.fail_after(HANG_GUARD):
        port = sock.getsockname()[1]
        runner = web.AppRunner(app)
        await runner.setup()  # runs cleanup_ctx up to its yield: the stream has started
        try:
            await web.SockSite(runner, sock).start()
            async with aiohttp.ClientSession(f"http://127.0.0.1:{port}") as http:

                async def post(path: str, body: Any) -> tuple[int, Any]:
                    async with http.post(path, json=body) as response:
                        return response.status, await body_of(response)

                async def get(path: str) -> tuple[int, Any]:
                    async with http.get(path) as response:
                        return response.status, await body_of(response)

                yield Client(post, get)
        except BaseException:
            # the test failed: report that, not the stream's error raised by the shutdown
            with contextlib.suppress(Exception):
                await runner.cleanup()
            raise
        await runner.cleanup()  # stops the server, then the rest of cleanup_ctx


async def body_of(response: aiohttp.ClientResponse) -> Any:
    if response.content_type == "application/json":
        return await response.json()
    return await response.text()


@dataclass
class Recipe:
    create_app: Callable[[ManualClock], Any]
    serve: Callable[[Any], AbstractAsyncContextManager[Client]]
    counts: Callable[[Any], Any]  # the app's Counts
    # aiohttp raises the stream's error out of cleanup_ctx at shutdown; under uvicorn
    # the lifespan ends with it when the stream fails, and uvicorn logs it
    error_raised_at_shutdown: bool


RECIPES = {
    "fastapi": Recipe(fastapi_app.create_app, serve_fastapi, lambda app: app.state.counts, False),
    "aiohttp": Recipe(
        aiohttp_app.create_app, serve_aiohttp, lambda app: app[aiohttp_app.COUNTS], True
    ),
}


@pytest.fixture(params=sorted(RECIPES))
def recipe(request: pytest.FixtureRequest) -> Recipe:
    return RECIPES[request.param]


# -- the recipes ------------------------------------------------------------------------------


async def test_posted_events_are_counted_in_exact_batches(recipe):
    clock = ManualClock()
    async with recipe.serve(recipe.create_app(clock)) as client:
        assert await client.get("/health") == (200, {"status": "ok"})
        posted = [{"type": "click"}, {"type": "view"}, {"type": "click"}]
        assert await client.post("/events", posted) == (202, {"accepted": 3})
        assert await client.get("/counts") == (200, {"batch_time": None, "counts": {}})
        await clock.advance(1.0)
        assert await client.get("/counts") == (
            200,
            {"batch_time": 1.0, "counts": {"click": 2, "view": 1}},
        )
        assert await client.post("/events", [{"type": "view"}]) == (202, {"accepted": 1})
        await clock.advance(1.0)
        assert await client.get("/counts") == (
            200,
            {"batch_time": 2.0, "counts": {"click": 2, "view": 2}},
        )


async def test_health_reports_a_failed_stream_with_503_and_the_server_keeps_serving(
    recipe, caplog
):
    clock = ManualClock()
    caplog.set_level(logging.ERROR)
    at_shutdown = pytest.raises(OperatorError) if recipe.error_raised_at_shutdown else nullcontext()
    with at_shutdown:
        async with recipe.serve(recipe.create_app(clock)) as client:
            assert await client.post("/events", [{"type": "click"}]) == (202, {"accepted": 1})
            await clock.advance(1.0)
            assert await client.post("/events", [{"kind": "no type"}]) == (202, {"accepted": 1})
            await clock.advance(1.0)  # event_type raises KeyError: the stream fails
            status, body = await client.get("/health")
            assert status == 503
            assert body["status"] == "failed"
            assert "failed in batch 2.0" in body["error"] and "KeyError" in body["error"]
            status, refused = await client.post("/events", [{"type": "click"}])
            assert status == 503 and "no longer takes records" in str(refused)
            # the results of the batches before the failure are still served
            assert await client.get("/counts") == (
                200,
                {"batch_time": 1.0, "counts": {"click": 1}},
            )
    if not recipe.error_raised_at_shutdown:
        assert "OperatorError" in caplog.text


async def test_shutdown_drains_the_events_posted_just_before(recipe):
    clock = ManualClock()
    app = recipe.create_app(clock)
    async with recipe.serve(app) as client:
        assert await client.post("/events", [{"type": "click"}]) == (202, {"accepted": 1})
        await clock.advance(1.0)
        assert await client.post("/events", [{"type": "view"}] * 2) == (202, {"accepted": 2})
    # no tick came for the last post: the graceful stop cut a final batch at once
    counts = recipe.counts(app)
    assert (counts.batch_time, counts.by_type) == (2.0, {"click": 1, "view": 2})
    assert clock.now() == 1.0
