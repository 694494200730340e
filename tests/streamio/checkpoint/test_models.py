"""Models are state: a resumed job goes on training where its checkpoint stopped."""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from streamio import DStream, StreamingContext
from streamio.ml import StreamingKMeans, StreamingLinearRegression
from streamio.testing import ListSink, ManualClock, MemorySource

BATCHES = 6


def points(seed: int) -> list[list[list[float]]]:
    rng = random.Random(seed)
    return [
        [[rng.gauss(c, 0.5), rng.gauss(-c, 0.5)] for c in rng.choices([-3, 3], k=20)]
        for _ in range(BATCHES)
    ]


async def run(
    make: Callable[[DStream[Any]], tuple[Any, DStream[Any]]],
    history: list[list[Any]],
    directory: Path | None,
    *,
    first: int = 1,
    last: int = BATCHES,
) -> tuple[Any, dict[float, list[Any]]]:
    """Batches first..last of ``history``; the learner and each batch's output."""
    clock, source, sink = ManualClock(), MemorySource(), ListSink()
    made: list[Any] = []

    def setup() -> StreamingContext:
        ssc = StreamingContext(1.0, clock=clock)
        if directory is not None:
            ssc.checkpoint(directory, 1.0)
        learner, out = make(ssc.receiver_stream(source, name="points"))
        out.foreach_batch(sink, name="out")
        made.append(learner)
        return ssc

    ssc = StreamingContext.get_or_create(directory, setup) if directory else setup()
    async with ssc:
        await ssc.start()
        for chunk in history[: first - 1] if ssc.resumed else []:
            await source.send(chunk)
        await clock.advance(first - 1)
        for chunk in history[first - 1 : last]:
            await source.send(chunk)
            await clock.advance(1.0)
        ssc.stop(graceful=False)
    return made[0], dict(sink.batches)


def kmeans(stream: DStream[Any]) -> tuple[Any, DStream[Any]]:
    km = StreamingKMeans(k=2, decay_factor=0.8).set_initial_centers(
        [[0.0, 0.0], [1.0, 1.0]], [1.0, 1.0]
    )
    km.train_on(stream, name="train")
    return km, km.predict_on(stream, name="clusters")


def regression(stream: DStream[Any]) -> tuple[Any, DStream[Any]]:
    reg = StreamingLinearRegression(step_size=0.05, num_iterations=10).set_initial_weights([0.0])
    examples = stream.map(lambda p: (p[1], [p[0]]), name="examples")
    reg.train_on(examples, name="train")
    return reg, reg.predict_on(examples.map(lambda e: e[1], name="features"), name="predicted")


def river(stream: DStream[Any]) -> tuple[Any, DStream[Any]]:
    from river import linear_model, metrics

    model = linear_model.LogisticRegression()
    labeled = stream.map(lambda p: ({"x": p[0], "y": p[1]}, p[0] > 0), name="labeled")
    scores = labeled.evaluate(model, metrics.Accuracy(), name="accuracy")
    return model, scores.map(lambda metric: metric.get(), name="score")


def model_of(learner: Any) -> Any:
    if hasattr(learner, "latest_model"):
        model = learner.latest_model()
        if hasattr(model, "cluster_centers"):
            return (model.cluster_centers.tolist(), model.cluster_weights.tolist())
        return (model.weights.tolist(), model.intercept)
    return dict(learner.weights)


@pytest.mark.parametrize("make", [kmeans, regression, river], ids=["kmeans", "regression", "river"])
async def test_a_resumed_job_goes_on_training(tmp_path: Path, make: Any) -> None:
    history = points(7)
    learner, expected = await run(make, history, None)
    await run(make, history, tmp_path, last=3)
    resumed, after = await run(make, history, tmp_path, first=4)
    assert repr(model_of(resumed)) == repr(model_of(learner))
    assert after == {time: out for time, out in expected.items() if time >= 4}
