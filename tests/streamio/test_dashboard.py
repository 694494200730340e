"""The dashboard's server, its live event stream, its panels, and its settings.

Jobs run on a manual clock; the page's event stream is read over HTTP from the
server the context runs (or from an application's own uvicorn), so each test
advances the clock and then reads the events that batch caused.
"""

from __future__ import annotations

import json
import operator
import signal
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import resources
from typing import Any

import anyio
import httpx
import pytest
from fastapi import FastAPI
from web import serve_with_uvicorn

from streamio import (
    ConfigurationError,
    ContextStateError,
    ManualClock,
    OperatorError,
    StreamingContext,
)
from streamio.dashboard.panels import Panel
from streamio.testing import ListSink

HANG_GUARD = 10


class EventStream:
    """The server-sent events of the page's feed, read one at a time."""

    def __init__(self, response: httpx.Response) -> None:
        self._lines = response.aiter_lines()
        self.batches: list[dict[str, Any]] = []
        self.last: dict[str, Any] = {}

    async def next(self) -> tuple[str, dict[str, Any]]:
        kind, data = None, None
        async for line in self._lines:
            if line.startswith("event: "):
                kind = line.removeprefix("event: ")
            elif line.startswith("data: "):
                data = json.loads(line.removeprefix("data: "))
            elif not line and kind is not None:
                assert data is not None
                self.batches.extend(data.get("batches", ()))
                if kind != "stopped":
                    self.last = data
                return kind, data
        raise AssertionError("the event stream ended")

    async def until_batches(self, count: int) -> dict[str, Any]:
        """Read updates until ``count`` batches were received in all; the last one."""
        while len(self.batches) < count:
            kind, _ = await self.next()
            assert kind in ("snapshot", "update")
        return self.last


@asynccontextmanager
async def events(url: str) -> AsyncIterator[EventStream]:
    async with httpx.AsyncClient(timeout=HANG_GUARD) as http, http.stream("GET", url) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        yield EventStream(response)


def word_count_job(ssc: StreamingContext, batches: list[list[str]]) -> ListSink[Any]:
    sink: ListSink[Any] = ListSink()
    lines = ssc.queue_stream(batches, name="lines")
    counts = (
        lines.flat_map(str.split, name="split")
        .map(lambda word: (word, 1), name="pair")
        .reduce_by_key(operator.add, name="count")
    )
    counts.to_dashboard("top words", kind="bar", top=2)
    counts.count().to_dashboard("distinct words", kind="line")
    counts.foreach_batch(sink, name="kept")
    return sink


# -- settings, checked when the graph is built ---------------------------------------


@pytest.mark.parametrize("port", ["8050", -1, 65536, 1.5, True])
def test_dashboard_must_be_a_port(port):
    with pytest.raises(ConfigurationError, match="dashboard= must be a TCP port"):
        StreamingContext(1.0, dashboard=port)


def test_retained_batches_must_be_a_whole_number():
    with pytest.raises(ConfigurationError, match="retained_batches"):
        StreamingContext(1.0, retained_batches=0)


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        (("",), {}, "needs a title"),
        ((None,), {}, "needs a title"),
        (("t",), {"kind": "pie"}, r"kind=\) must be one of 'table', 'bar', 'line'"),
        (("t",), {"top": 0}, r"to_dashboard\(top\) must be a whole number >= 1"),
        (("t",), {"top": "10"}, r"to_dashboard\(top\)"),
    ],
)
async def test_to_dashboard_checks_its_arguments_when_the_graph_is_built(args, kwargs, message):
    async with StreamingContext(1.0, clock=ManualClock()) as ssc:
        stream = ssc.queue_stream([[1]])
        with pytest.raises(ConfigurationError, match=message):
            stream.to_dashboard(*args, **kwargs)


async def test_a_port_in_use_fails_start_saying_what_to_change():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        async with StreamingContext(1.0, clock=ManualClock(), dashboard=port) as ssc:
            ssc.queue_stream([[1]]).foreach_batch(ListSink())
            with pytest.raises(ConfigurationError, match=f"127.0.0.1:{port}.*another dashboard="):
                ssc.start()
            assert ssc.dashboard_url is None


async def test_the_dashboard_app_is_set_up_before_start():
    async with StreamingContext(1.0, clock=ManualClock()) as ssc:
        ssc.queue_stream([[1]]).foreach_batch(ListSink())
        ssc.start()
        with pytest.raises(ContextStateError, match="before start"):
            ssc.dashboard_app()


# -- the server the context runs -------------------------------------------------


async def test_the_server_binds_loopback_installs_no_signal_handler_and_stops_with_the_context():
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    clock = ManualClock()
    with anyio.fail_after(HANG_GUARD):
        async with StreamingContext(1.0, clock=clock, dashboard=0) as ssc:
            word_count_job(ssc, [["a b a"]])
            await ssc.start()
            url = ssc.dashboard_url
            assert url is not None and url.startswith("http://127.0.0.1:")
            async with httpx.AsyncClient(base_url=url) as http:
                page = await http.get("")
                assert page.status_code == 200 and "streamio" in page.text
                assert (await http.get("static/dashboard.js")).status_code == 200
                assert (await http.get("static/missing.js")).status_code == 404
            assert {sig: signal.getsignal(sig) for sig in handlers} == handlers
            async with events(url + "events") as stream:
                assert (await stream.next())[0] == "snapshot"
                await clock.advance(1.0)
                await stream.until_batches(1)
                ssc.stop()
                while (await stream.next())[0] != "stopped":
                    pass
        # the server has stopped with the context: its port is closed
        with pytest.raises(httpx.ConnectError):
            async with httpx.AsyncClient() as http:
                await http.get(url)


async def test_the_event_stream_sends_each_batch_once_with_the_panels_that_changed():
    clock = ManualClock()
    with anyio.fail_after(HANG_GUARD):
        async with StreamingContext(1.0, clock=clock, dashboard=0) as ssc:
            sink = word_count_job(ssc, [["a b a"], ["c c c b"], []])
            await ssc.start()
            async with events(ssc.dashboard_url + "events") as stream:
                kind, snapshot = await stream.next()
                assert kind == "snapshot" and snapshot["batches"] == []
                assert [panel["time"] for panel in snapshot["panels"]] == [None, None]
                await clock.advance(2.0)
                update = await stream.until_batches(2)
                assert [batch["time"] for batch in stream.batches] == [1.0, 2.0]
                assert [batch["num_records"] for batch in stream.batches] == [1, 1]
                panels = {panel["name"]: panel for panel in update["panels"]}
                assert panels["top words"]["time"] == 2.0
                assert panels["top words"]["rows"] == [["c", 3], ["b", 1]]
                assert panels["distinct words"]["series"] == {
                    "distinct words": [[1.0, 2.0], [2.0, 2.0]]
                }
                header = update["header"]
                assert (header["completed"], header["records"]) == (2, 2)
                assert {o["name"]: o["records"] for o in update["outputs"]}["kept"] == 4
                (lines,) = update["inputs"]
                assert (lines["name"], lines["records"], lines["status"]) == ("lines", 2, "queue")
                await clock.advance(1.0)
                await stream.until_batches(3)
                assert [batch["time"] for batch in stream.batches] == [1.0, 2.0, 3.0]
    assert len(sink.batches) == 3


async def test_the_graph_is_drawn_from_the_graph_with_fused_stages_marked():
    clock = ManualClock()
    async with StreamingContext(1.0, clock=clock, dashboard=0) as ssc:
        word_count_job(ssc, [["a"]])
        await ssc.start()
        async with httpx.AsyncClient(base_url=ssc.dashboard_url) as http:
            graph = (await http.get("api/state")).json()["graph"]
    nodes = {node["name"]: node for node in graph["nodes"]}
    assert nodes["lines"]["kind"] == "queue_stream" and nodes["lines"]["parents"] == []
    assert (nodes["split"]["fused"], nodes["split"]["stage"]) == (True, "lines")
    assert (nodes["pair"]["fused"], nodes["pair"]["stage"]) == (True, "lines")
    assert nodes["pair"]["parents"] == ["split"]
    assert nodes["count"]["fused"] is False and nodes["count"]["kind"] == "reduce_by_key"
    assert {(o["name"], o["kind"], o["stream"]) for o in graph["outputs"]} >= {
        ("kept", "foreach_batch", "count"),
        ("top words", "to_dashboard", "count"),
    }


async def test_memory_is_bounded_by_retained_batches():
    clock = ManualClock()
    async with StreamingContext(1.0, clock=clock, dashboard=0, retained_batches=3) as ssc:
        word_count_job(ssc, [["a"]] * 5)
        await ssc.start()
        await clock.advance(5.0)
        async with httpx.AsyncClient(base_url=ssc.dashboard_url) as http:
            state = (await http.get("api/state")).json()
    assert [batch["time"] for batch in state["batches"]] == [3.0, 4.0, 5.0]
    assert state["header"]["completed"] == 5
    series = state["panels"][1]["series"]["distinct words"]
    assert [time for time, _ in series] == [3.0, 4.0, 5.0]


# -- mounted in an application's own server ------------------------------------------


async def test_the_dashboard_mounts_in_a_fastapi_app_served_by_its_own_server():
    clock = ManualClock()
    with anyio.fail_after(HANG_GUARD):
        async with StreamingContext(1.0, clock=clock) as ssc:
            word_count_job(ssc, [["a b"], ["b"]])
            app = FastAPI()
            app.mount("/streamio", ssc.dashboard_app())
            await ssc.start()
            async with serve_with_uvicorn(app) as url:
                async with httpx.AsyncClient(base_url=url) as http:
                    page = await http.get("/streamio/")
                    assert page.status_code == 200 and 'src="static/dashboard.js"' in page.text
                    script = await http.get("/streamio/static/dashboard.js")
                    assert script.headers["content-type"].startswith("text/javascript")
                async with events(f"{url}/streamio/events") as stream:
                    assert (await stream.next())[0] == "snapshot"
                    await clock.advance(2.0)
                    await stream.until_batches(2)
                    assert [batch["records"] for batch in stream.batches] == [
                        {"lines": 1},
                        {"lines": 1},
                    ]
                    ssc.stop()
                    while (await stream.next())[0] != "stopped":
                        pass
                async with httpx.AsyncClient(base_url=url) as http:
                    metrics = (await http.get("/streamio/metrics")).text
    assert 'streamio_input_records_total{input="lines"} 2.0' in metrics


# -- panels ---------------------------------------------------------------------------


def test_a_table_ranks_pairs_by_their_number_and_keeps_other_records_in_order():
    panel = Panel("t", "table", 2, retained=10)
    panel.update(1.0, [("a", 1), ("b", 5), ("c", 3)])
    assert panel.to_json()["rows"] == [["b", 5], ["c", 3]]
    panel.update(2.0, ["z", "y", "x"])
    assert panel.to_json()["rows"] == ["z", "y"]
    assert (panel.to_json()["time"], panel.to_json()["records"]) == (2.0, 3)


def test_a_line_keeps_one_point_per_batch_and_at_most_top_lines():
    panel = Panel("rates", "line", 2, retained=2)
    for time in (1.0, 2.0, 3.0):
        panel.update(time, [("a", time), ("b", 1), ("c", 7)])
    assert panel.to_json()["series"] == {"a": [[2.0, 2.0], [3.0, 3.0]], "b": [[2.0, 1], [3.0, 1]]}


async def test_a_bar_chart_of_records_that_are_not_pairs_fails_the_job_naming_it():
    clock = ManualClock()
    with pytest.raises(OperatorError, match=r"'bars'.*needs \(label, number\) pairs"):
        async with StreamingContext(1.0, clock=clock) as ssc:
            ssc.queue_stream([["not a pair"]]).to_dashboard("bars", kind="bar")
            ssc.start()
            await clock.advance(1.0)


# -- the page ---------------------------------------------------------------------------


def test_the_page_loads_nothing_from_elsewhere():
    static = resources.files("streamio.dashboard") / "static"
    page = (static / "index.html").read_text()
    assert "://" not in page  # scripts and styles are the package's own, by relative path
    script = (static / "dashboard.js").read_text()
    assert script.count("://") == 1 and '"http://www.w3.org/2000/svg"' in script  # a namespace
    assert "//" not in (static / "dashboard.css").read_text()
