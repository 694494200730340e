"""Plain per-point references for MLlib's streaming algorithms, and a harness.

The references follow MLlib's formulas one point at a time in plain Python floats
(no numpy), written from Spark's code, not from streamio's: the k-means update in
the form Spark's first version wrote it (``c + (mean - c) * lambda``), gradient
descent one example at a time. The harness runs a job on a manual clock.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

from streamio import ManualClock, StreamingContext
from streamio.testing import step

Vector = list[float]


async def run_job(
    build: Callable[..., Any], *queues: list[list[Any]], executor: str = "inline"
) -> None:
    """Feed each queue through a queue stream, ``build(*streams)``, run every batch."""
    async with StreamingContext(batch_interval=1.0, clock=ManualClock(), executor=executor) as ssc:
        build(*(ssc.queue_stream(list(queue)) for queue in queues))
        ssc.start()
        await step(ssc, max(len(queue) for queue in queues))


def squared_distance(a: Sequence[float], b: Sequence[float]) -> float:
    return sum((x - y) * (x - y) for x, y in zip(a, b, strict=True))


def nearest(centers: Sequence[Vector], point: Sequence[float]) -> int:
    best, best_distance = 0, math.inf
    for index, center in enumerate(centers):
        distance = squared_distance(point, center)
        if distance < best_distance:
            best, best_distance = index, distance
    return best


def kmeans_step(
    centers: list[Vector],
    weights: list[float],
    points: Sequence[Sequence[float]],
    decay: float,
    unit: str,
) -> tuple[list[Vector], list[float]]:
    """One batch of MLlib's StreamingKMeansModel.update."""
    k, dim = len(centers), len(centers[0])
    sums = [[0.0] * dim for _ in range(k)]
    counts = [0] * k
    for point in points:
        label = nearest(centers, point)
        counts[label] += 1
        sums[label] = [s + float(x) for s, x in zip(sums[label], point, strict=True)]
    discount = decay if unit == "batches" else decay ** len(points)
    weights = [w * discount for w in weights]
    centers = [list(c) for c in centers]
    for label in range(k):
        if counts[label]:
            new_weight = weights[label] + counts[label]
            share = counts[label] / max(new_weight, 1e-16)
            weights[label] = new_weight
            # MLlib's arithmetic, step for step (BLAS.scal(1 - share), then
            # BLAS.axpy(share / count, sum)): the two halves of a split cluster sit
            # 1e-14 apart, so another rounding could send a point to the other one
            centers[label] = [
                c * (1.0 - share) + (share / counts[label]) * s
                for c, s in zip(centers[label], sums[label], strict=True)
            ]
    largest = max(range(k), key=lambda i: (weights[i], -i))
    smallest = min(range(k), key=lambda i: (weights[i], i))
    if weights[smallest] < 1e-8 * weights[largest]:
        half = (weights[largest] + weights[smallest]) / 2.0
        weights[largest] = weights[smallest] = half
        center = centers[largest]
        centers[largest] = [x + 1e-14 * max(abs(x), 1.0) for x in center]
        centers[smallest] = [x - 1e-14 * max(abs(x), 1.0) for x in center]
    return centers, weights


def kmeans(
    centers: Sequence[Sequence[float]],
    weights: Sequence[float],
    batches: Sequence[Sequence[Sequence[float]]],
    decay: float = 1.0,
    unit: str = "batches",
) -> list[tuple[list[Vector], list[float]]]:
    """The model after each batch."""
    model = ([list(map(float, c)) for c in centers], [float(w) for w in weights])
    history = []
    for points in batches:
        model = kmeans_step(*model, points, decay, unit)
        history.append(model)
    return history


def dot(a: Sequence[float], b: Sequence[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))


def least_squares(weights: Vector, features: Sequence[float], label: float) -> Vector:
    diff = dot(features, weights) - label
    return [diff * x for x in features]


def logistic(weights: Vector, features: Sequence[float], label: float) -> Vector:
    margin = -dot(features, weights)
    multiplier = 1.0 / (1.0 + math.exp(margin)) - label if margin < 700 else -label
    return [multiplier * x for x in features]


def descend(
    weights: Sequence[float],
    examples: Sequence[tuple[float, Sequence[float]]],
    gradient: Callable[[Vector, Sequence[float], float], Vector],
    step_size: float,
    iterations: int,
    tol: float,
    reg_param: float = 0.0,
) -> Vector:
    """MLlib's runMiniBatchSGD with miniBatchFraction 1.0, one example at a time."""
    current = [float(w) for w in weights]
    for i in range(1, iterations + 1):
        total = [0.0] * len(current)
        for label, features in examples:
            total = [t + g for t, g in zip(total, gradient(current, features, label), strict=True)]
        step_i = step_size / math.sqrt(i)
        new = [
            w * (1.0 - step_i * reg_param) - step_i * (t / len(examples))
            for w, t in zip(current, total, strict=True)
        ]
        # MLlib compares the weights of two updates: never the first with the start
        moved = math.sqrt(sum((a - b) ** 2 for a, b in zip(current, new, strict=True)))
        done = i > 1 and moved < tol * max(math.sqrt(sum(w * w for w in new)), 1.0)
        current = new
        if done:
            break
    return current


def streaming_regression(
    weights: Sequence[float],
    batches: Sequence[Sequence[tuple[float, Sequence[float]]]],
    gradient: Callable[[Vector, Sequence[float], float], Vector],
    step_size: float,
    iterations: int,
    tol: float = 0.001,
    reg_param: float = 0.0,
) -> list[Vector]:
    """The weights after each batch (empty batches change nothing)."""
    history = []
    current = [float(w) for w in weights]
    for examples in batches:
        if examples:
            current = descend(current, examples, gradient, step_size, iterations, tol, reg_param)
        history.append(current)
    return history


def close(actual: Any, expected: Any, tol: float = 1e-9) -> bool:
    """Equal to ``tol``, absolute or relative, element by element."""
    if isinstance(expected, (list, tuple)):
        return len(actual) == len(expected) and all(
            close(a, e, tol) for a, e in zip(actual, expected, strict=True)
        )
    return abs(float(actual) - expected) <= tol * max(1.0, abs(expected))
