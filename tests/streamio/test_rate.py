"""Backpressure: the PID rate controller, against Spark's PIDRateEstimator formula.

Each job runs on the manual clock: the output makes each record cost a known
number of seconds (``clock.elapse``), so processing times, scheduling delays and
so the rates are exact. The expected rates are computed here, independently, by
Spark's formula on the batches the job reported.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest

from streamio import BatchInfo, ConfigurationError, ManualClock, StreamingContext
from streamio.rate import PIDRateEstimator
from streamio.testing import MemorySource


def spark_rates(
    batches: list[tuple[float, int, float, float]], interval: float, min_rate: float
) -> list[float | None]:
    """Spark's ``PIDRateEstimator.compute`` (kp 1.0, ki 0.2, kd 0.0) over
    ``(end time, records, processing time, scheduling delay)`` per batch, in
    seconds: the rate it publishes after each batch, or None."""
    kp, ki, kd = 1.0, 0.2, 0.0
    first, latest_time, latest_rate, latest_error = True, -1.0, -1.0, -1.0
    published: list[float | None] = []
    for time, records, processing, scheduling in batches:
        if not (time > latest_time and records > 0 and processing > 0):
            published.append(None)
            continue
        since_update = time - latest_time
        processing_rate = records / processing
        error = latest_rate - processing_rate
        historical_error = scheduling * processing_rate / interval
        d_error = (error - latest_error) / since_update
        new_rate = max(latest_rate - kp * error - ki * historical_error - kd * d_error, min_rate)
        latest_time = time
        if first:
            latest_rate, latest_error, first = processing_rate, 0.0, False
            published.append(None)
        else:
            latest_rate, latest_error = new_rate, error
            published.append(new_rate)
    return published


class Completed:
    def __init__(self) -> None:
        self.batches: list[BatchInfo] = []

    def on_batch_completed(self, info: BatchInfo) -> None:
        self.batches.append(info)


async def run_job(
    cost: Callable[[float], float],
    *,
    backlog: int,
    until: float,
    initial_rate: float | None = None,
    min_rate: float = 100,
    max_rate: float | None = None,
    interval: float = 1.0,
) -> list[BatchInfo]:
    """A receiver holding ``backlog`` records from the start, and an output whose
    records cost ``cost(batch_time)`` seconds each; the batches completed by
    ``until``."""
    clock = ManualClock()
    source: MemorySource[int] = MemorySource()
    completed = Completed()

    def output(time: float, records: list[int]) -> None:
        clock.elapse(len(records) * cost(time))

    async with StreamingContext(
        interval, clock=clock, backpressure=True, initial_rate=initial_rate, min_rate=min_rate
    ) as ssc:
        ssc.add_listener(completed)
        ssc.receiver_stream(source, name="in", max_rate=max_rate).foreach_batch(output)
        await ssc.start()
        await source.send(range(backlog))
        await clock.advance(until)
        ssc.stop(graceful=False)  # the backlog is not drained
    return completed.batches


def check_against_spark(
    batches: list[BatchInfo],
    backlog: int,
    min_rate: float,
    initial_rate: float | None,
    max_rate: float | None = None,
    interval: float = 1.0,
) -> list[float | None]:
    """Each batch's cap is Spark's rate after the batches before it (or
    ``initial_rate`` until the first), bounded by ``max_rate``; it took that many
    records, or what was left of the backlog. The caps, per batch."""
    measures = [
        (b.processing_end_time, b.records_per_input["in"], b.processing_time, b.scheduling_delay)
        for b in batches
    ]
    published = spark_rates(measures, interval, min_rate)  # type: ignore[arg-type]
    caps: list[float | None] = []
    rate = initial_rate
    left = backlog
    for batch, new_rate in zip(batches, published, strict=True):
        cap = rate if max_rate is None or rate is None else min(rate, max_rate)
        if cap is None:
            assert batch.rate_limits == {}
            assert batch.records_per_input["in"] == left
        else:
            assert batch.rate_limits["in"] == pytest.approx(cap, rel=1e-12)
            assert batch.records_per_input["in"] == min(left, max(1, int(cap * interval)))
        left -= batch.records_per_input["in"]
        caps.append(cap)
        if new_rate is not None:
            rate = new_rate
    return caps


async def test_a_burst_is_taken_at_the_initial_rate_then_at_the_rate_the_pipeline_keeps_up_with():
    # the pipeline processes 200 records/s; 5,000 records wait at the start
    batches = await run_job(lambda time: 0.005, backlog=5000, until=20.0, initial_rate=1000)
    caps = check_against_spark(batches, 5000, 100, 1000)
    # the first two batches at the initial rate: the first estimate needs two measures
    assert caps[:2] == [1000, 1000]
    assert [b.records_per_input["in"] for b in batches[:2]] == [1000, 1000]
    # then the rate falls to what is processed in a batch interval, and the delay
    # of the burst drains
    assert caps[2] < 1000
    assert len(batches) >= 12
    assert all(cap == pytest.approx(200, rel=0.05) for cap in caps[-3:])
    assert all(b.scheduling_delay < 2.0 for b in batches[-3:])


async def test_a_slowdown_lowers_the_rate_and_a_recovery_raises_it_again():
    def cost(time: float) -> float:  # 400/s, then 100/s from batch 10, then 400/s again
        return 0.01 if 10 <= time < 20 else 0.0025

    batches = await run_job(cost, backlog=50_000, until=40.0, initial_rate=400)
    caps = check_against_spark(batches, 50_000, 100, 400)
    by_time = {b.batch_time: cap for b, cap in zip(batches, caps, strict=True)}
    assert by_time[9.0] == pytest.approx(400, rel=0.05)
    slow = [by_time[t] for t in sorted(by_time) if 14 <= t < 20]
    assert slow and all(cap is not None and cap < 200 for cap in slow)
    assert max(by_time) >= 30
    assert by_time[max(by_time)] == pytest.approx(400, rel=0.1)


async def test_without_initial_rate_the_first_batches_take_everything():
    batches = await run_job(lambda time: 0.001, backlog=3000, until=6.0)
    check_against_spark(batches, 3000, 100, None)
    assert batches[0].records_per_input["in"] == 3000
    assert batches[0].rate_limits == {}


async def test_the_rate_never_drops_below_min_rate():
    # one record costs 0.1 s: 10 records/s, far below min_rate
    batches = await run_job(lambda time: 0.1, backlog=3000, until=10.0, initial_rate=500)
    caps = check_against_spark(batches, 3000, 100, 500)
    assert caps[2:] and all(cap == 100 for cap in caps[2:])


async def test_max_rate_still_bounds_the_controlled_rate():
    batches = await run_job(
        lambda time: 0.0001, backlog=100_000, until=10.0, initial_rate=2000, max_rate=500
    )
    caps = check_against_spark(batches, 100_000, 100, 2000, max_rate=500)
    assert set(caps) == {500}


def test_the_estimator_follows_spark_step_by_step():
    interval = 0.5
    estimator = PIDRateEstimator(interval, min_rate=10)
    measures = [
        (1.0, 0, 0.0, 0.0),  # nothing to learn from
        (1.5, 1000, 0.25, 0.0),  # the first measure: no rate yet
        (2.0, 1000, 0.5, 0.0),
        (2.0, 1000, 0.5, 0.0),  # not later than the last: skipped
        (2.5, 2000, 0.5, 0.1),
        (3.1, 500, 2.0, 1.5),
        (3.6, 800, 0.4, 0.0),
        (4.0, 10, 5.0, 3.0),  # collapses to min_rate
    ]
    expected = spark_rates(measures, interval, 10)
    assert expected[:4] == [None, None, expected[2], None]
    got = [estimator.compute(*measure) for measure in measures]
    assert [rate is None for rate in got] == [rate is None for rate in expected]
    rates = [rate for rate in expected if rate is not None]
    assert [rate for rate in got if rate is not None] == pytest.approx(rates, rel=1e-12)
    assert got[-1] == 10


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"backpressure": "yes"}, "backpressure must be True or False"),
        ({"backpressure": True, "min_rate": 0}, "min_rate must be a finite number"),
        ({"backpressure": True, "min_rate": math.inf}, "min_rate must be a finite number"),
        ({"backpressure": True, "initial_rate": -5}, "initial_rate must be a finite number"),
        (
            {"backpressure": True, "initial_rate": 50, "min_rate": 100},
            r"initial_rate \(50.0\) must not be less than min_rate \(100.0\)",
        ),
        ({"initial_rate": 1000}, "give backpressure=True too"),
    ],
)
def test_backpressure_settings_are_checked_when_the_context_is_made(settings, message):
    with pytest.raises(ConfigurationError, match=message):
        StreamingContext(1.0, **settings)
