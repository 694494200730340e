"""Streaming k-means: MLlib's ``StreamingKMeans``, batch by batch.

Each batch moves every cluster center towards the mean of the batch's points
nearest to it (the "mini-batch" k-means rule), with older data discounted by a
decay factor. What MLlib's code does, which its documentation leaves out or says
otherwise (PySpark's model is updated by the JVM's ``StreamingKMeansModel.update``):

- The discount applies to *every* cluster's weight at every batch, empty batches
  included (their weights decay; nothing else moves). With ``time_unit="points"``
  it is ``decay_factor ** n``, ``n`` the number of points in the whole batch.
- A cluster with ``m`` new points of mean ``x`` and discounted weight ``n'`` gets
  the weight ``n' + m`` and the center ``c + (x - c) * m / (n' + m)``: the
  documented ``[(c n a) + (x m)] / [n + m]`` divides by ``n + m``, the code by
  ``n a + m``. ``lambda`` is ``m / max(n' + m, 1e-16)``.
- A dying cluster is revived: after each update, if the smallest weight is below
  ``1e-8`` times the largest, the largest cluster is split in two: both get half
  the two weights' sum, and centers ``c ± 1e-14 * max(|c|, 1)`` per coordinate
  (first index on ties, one split per batch). This is how clusters that started
  with weight 0 and got no points join in.
- ``set_random_centers`` draws the centers as PySpark does, ``numpy``'s
  ``RandomState(seed).randn(k, dim)``; Scala's draws from its own generator.

Nearest centers are found with exact ``(x - c)·(x - c)`` sums, ties to the first
index, as MLlib's Python model predicts (the JVM assigns training points with a
norm-based shortcut, which can differ on near-ties).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..checks import check_whole_number
from ..errors import ConfigurationError
from .arrays import as_matrix, as_vector, check_vectors, np, split_pairs
from .settings import check_in_range
from .streams import LearnOutput, PredictNode, node_of, wrap

if TYPE_CHECKING:
    from ..batch import PartitionFn
    from ..dstream import DStream

__all__ = ["StreamingKMeans", "StreamingKMeansModel"]

TIME_UNITS = ("batches", "points")

# Points per block when distances are computed: bounds the (block, k, dim) array.
_DISTANCE_CELLS = 1 << 20


@dataclass(frozen=True, eq=False)
class StreamingKMeansModel:
    """Cluster centers and their weights after some batch (immutable).

    Attributes:
        cluster_centers: a read-only ``(k, dim)`` float array.
        cluster_weights: a read-only array of ``k`` floats: each cluster's
            discounted number of points.

    >>> model = StreamingKMeansModel([[0.0, 0.0], [1.0, 1.0]], [1.0, 1.0])
    >>> model = model.update([[-0.1, -0.1], [0.1, 0.1], [0.9, 0.9], [1.1, 1.1]], 1.0, "batches")
    >>> model.cluster_centers.tolist(), model.cluster_weights.tolist()
    ([[0.0, 0.0], [1.0, 1.0]], [3.0, 3.0])
    >>> model.predict([0.9, 0.8])
    1
    """

    cluster_centers: np.ndarray
    cluster_weights: np.ndarray

    def __init__(self, cluster_centers: Any, cluster_weights: Any) -> None:
        centers = np.array(cluster_centers, dtype=float)
        weights = np.array(cluster_weights, dtype=float)
        if centers.ndim != 2 or weights.shape != (len(centers),):
            msg = (
                f"a k-means model needs k centers of one dimension and k weights, got "
                f"centers of shape {centers.shape} and weights of shape {weights.shape}"
            )
            raise ValueError(msg)
        centers.flags.writeable = False
        weights.flags.writeable = False
        object.__setattr__(self, "cluster_centers", centers)
        object.__setattr__(self, "cluster_weights", weights)

    @property
    def k(self) -> int:
        """The number of clusters."""
        return len(self.cluster_centers)

    @property
    def dim(self) -> int:
        """The dimension of the vectors."""
        return int(self.cluster_centers.shape[1])

    def predict(self, vector: Any) -> int:
        """The index of the center nearest to ``vector`` (the first of equals)."""
        point = as_vector(vector, self.dim)
        return int(closest(self.cluster_centers, point[np.newaxis, :])[0])

    def update(
        self, points: Iterable[Any], decay_factor: float, time_unit: str
    ) -> StreamingKMeansModel:
        """The model after one batch of ``points``: MLlib's update rule (see the module)."""
        time_unit = _check_time_unit(time_unit, "update(time_unit)")
        sums, counts = cluster_sums(self.cluster_centers, points)
        return self.apply(sums, counts, _check_decay(decay_factor, "update"), time_unit)

    def apply(
        self, sums: np.ndarray, counts: np.ndarray, decay_factor: float, time_unit: str
    ) -> StreamingKMeansModel:
        """The model after a batch whose points nearest to each center add up to
        ``sums[i]`` and number ``counts[i]``."""
        centers = np.array(self.cluster_centers)
        weights = np.array(self.cluster_weights)
        if time_unit == "batches":
            discount = decay_factor
        else:
            discount = math.pow(decay_factor, int(counts.sum()))
        weights *= discount
        hit = np.flatnonzero(counts)
        count = counts[hit].astype(float)
        updated = weights[hit] + count
        share = count / np.maximum(updated, 1e-16)
        weights[hit] = updated
        centers[hit] = (
            centers[hit] * (1.0 - share)[:, np.newaxis] + sums[hit] * (share / count)[:, np.newaxis]
        )
        largest, smallest = int(np.argmax(weights)), int(np.argmin(weights))
        if weights[smallest] < 1e-8 * weights[largest]:
            weights[largest] = weights[smallest] = (weights[largest] + weights[smallest]) / 2.0
            center = centers[largest].copy()
            nudge = 1e-14 * np.maximum(np.abs(center), 1.0)
            centers[largest] = center + nudge
            centers[smallest] = center - nudge
        return StreamingKMeansModel(centers, weights)


def closest(centers: np.ndarray, points: np.ndarray) -> np.ndarray:
    """For each point (row), the index of its nearest center: exact squared
    distances, the first index on ties."""
    k, dim = centers.shape
    block = max(1, _DISTANCE_CELLS // (k * dim))
    labels = np.empty(len(points), dtype=np.intp)
    for start in range(0, len(points), block):
        diff = points[start : start + block, np.newaxis, :] - centers[np.newaxis, :, :]
        labels[start : start + block] = np.einsum("nkd,nkd->nk", diff, diff).argmin(axis=1)
    return labels


def cluster_sums(centers: np.ndarray, vectors: Iterable[Any]) -> tuple[np.ndarray, np.ndarray]:
    """Assign ``vectors`` to their nearest centers: per center, the sum of its
    vectors and how many there are (what one partition contributes to an update)."""
    k, dim = centers.shape
    points = as_matrix(vectors, dim)
    labels = closest(centers, points)
    # one bincount per coordinate: each sums its points in order, faster than np.add.at
    sums = np.stack(
        [np.bincount(labels, weights=points[:, j], minlength=k) for j in range(dim)], axis=1
    )
    return sums, np.bincount(labels, minlength=k)


class StreamingKMeans:
    """k-means clustering trained on a stream, as MLlib's ``StreamingKMeans``.

    Args:
        k: the number of clusters.
        decay_factor: how much of the past a batch keeps, in [0, 1]: 1 weighs
            every batch alike, 0 keeps only the latest batch.
        time_unit: "batches" (the discount applies once per batch) or "points"
            (``decay_factor`` to the power of the batch's number of points).

    Raises:
        ConfigurationError: for an invalid argument.

    >>> km = StreamingKMeans(k=2, decay_factor=0.0)
    >>> km = km.set_initial_centers([[0.0], [1.0]], [1.0, 1.0])
    >>> def job(points):
    ...     km.train_on(points)
    ...     return km.predict_on(points)
    >>> collect(job, [[[-0.5], [0.6], [0.8]], [[0.2], [-0.1], [0.3]]])
    [[0, 1, 1], [1, 0, 1]]
    >>> km.latest_model().cluster_centers.tolist()
    [[-0.1], [0.25]]
    """

    def __init__(self, k: int, decay_factor: float = 1.0, time_unit: str = "batches") -> None:
        self._k = check_whole_number(k, "StreamingKMeans(k)")
        self._decay_factor = _check_decay(decay_factor, "StreamingKMeans")
        self._time_unit = _check_time_unit(time_unit, "StreamingKMeans(time_unit)")
        self._model: StreamingKMeansModel | None = None

    @property
    def k(self) -> int:
        return self._k

    @property
    def decay_factor(self) -> float:
        return self._decay_factor

    @property
    def time_unit(self) -> str:
        return self._time_unit

    def set_initial_centers(
        self, centers: Sequence[Any], weights: Sequence[float]
    ) -> StreamingKMeans:
        """Start from ``k`` given centers, each with its weight (points seen so far)."""
        matrix = check_vectors(centers, "set_initial_centers(centers)")
        if len(matrix) != self._k:
            msg = f"set_initial_centers(): {len(matrix)} centers given for k={self._k}"
            raise ConfigurationError(msg)
        self._model = StreamingKMeansModel(matrix, _check_weights(weights, self._k))
        return self

    def set_random_centers(
        self, dim: int, weight: float, seed: int | None = None
    ) -> StreamingKMeans:
        """Start from ``k`` centers drawn from a standard normal distribution (as
        PySpark draws them: ``numpy.random.RandomState(seed).randn(k, dim)``), each
        with ``weight``."""
        dim = check_whole_number(dim, "set_random_centers(dim)")
        weights = _check_weights([weight] * self._k, self._k, "set_random_centers(weight)")
        if seed is not None:
            check_whole_number(seed, "set_random_centers(seed)", minimum=0)
        centers = np.random.RandomState(seed).randn(self._k, dim)
        self._model = StreamingKMeansModel(centers, weights)
        return self

    def set_half_life(self, half_life: float, time_unit: str) -> StreamingKMeans:
        """Forget so that data of ``half_life`` batches (or points) ago weighs half:
        the decay factor becomes ``exp(log(0.5) / half_life)``."""
        life = check_in_range(half_life, "set_half_life(half_life)", include_low=False)
        self._time_unit = _check_time_unit(time_unit, "set_half_life(time_unit)")
        self._decay_factor = math.exp(math.log(0.5) / life)
        return self

    def set_decay_factor(self, decay_factor: float) -> StreamingKMeans:
        """Set the decay factor (in [0, 1]); the time unit stays."""
        self._decay_factor = _check_decay(decay_factor, "set_decay_factor")
        return self

    def latest_model(self) -> StreamingKMeansModel | None:
        """The model after the latest batch trained on (None before centers are set)."""
        return self._model

    def train_on(self, stream: DStream[Any], *, name: str | None = None) -> None:
        """Update the model with every batch of ``stream`` (vectors): an output
        operation of its own, which needs no other output.

        Points are assigned to centers per partition, in the executor of the
        stream's stage; the sums are merged and the centers updated on the loop.
        """
        node = node_of(stream, "train_on")
        self._initialized("train_on")
        LearnOutput(node, self, self._assign, self._learn, "train_on", name)

    def predict_on(self, stream: DStream[Any], *, name: str | None = None) -> DStream[int]:
        """The index of the nearest center for every vector of ``stream``, with the
        model as it was before the batch's training."""
        node = node_of(stream, "predict_on")
        self._initialized("predict_on")
        return wrap(stream, PredictNode(node, self, self._predictor, "predict_on", name))

    def predict_on_values(
        self, stream: DStream[tuple[Any, Any]], *, name: str | None = None
    ) -> DStream[tuple[Any, int]]:
        """``(key, cluster index)`` for every ``(key, vector)`` of ``stream``."""
        node = node_of(stream, "predict_on_values")
        self._initialized("predict_on_values")
        predict = self._values_predictor
        return wrap(stream, PredictNode(node, self, predict, "predict_on_values", name))

    def _initialized(self, operator: str) -> StreamingKMeansModel:
        if self._model is None:
            msg = (
                f"{operator}(): set the initial centers first, with set_initial_centers() "
                "or set_random_centers()"
            )
            raise ConfigurationError(msg)
        return self._model

    def _assign(self) -> PartitionFn:
        centers = self._initialized("train_on").cluster_centers

        def assign_to_centers(vectors: Iterable[Any]) -> tuple[np.ndarray, np.ndarray]:
            return cluster_sums(centers, vectors)

        return assign_to_centers

    def _learn(self, time: float, results: list[tuple[np.ndarray, np.ndarray]]) -> None:
        model = self._initialized("train_on")
        sums = np.sum([part_sums for part_sums, _ in results], axis=0)
        counts = np.sum([part_counts for _, part_counts in results], axis=0)
        self._model = model.apply(sums, counts, self._decay_factor, self._time_unit)

    def _predictor(self) -> PartitionFn:
        centers = self._initialized("predict_on").cluster_centers

        def nearest_center(vectors: Iterable[Any]) -> list[int]:
            return closest(centers, as_matrix(vectors, centers.shape[1])).tolist()

        return nearest_center

    def _values_predictor(self) -> PartitionFn:
        centers = self._initialized("predict_on_values").cluster_centers

        def nearest_center_of_values(pairs: Iterable[Any]) -> list[tuple[Any, int]]:
            keys, vectors = split_pairs(pairs, "(key, vector)")
            labels = closest(centers, as_matrix(vectors, centers.shape[1]))
            return list(zip(keys, labels.tolist(), strict=True))

        return nearest_center_of_values


def _check_decay(decay_factor: Any, operator: str) -> float:
    return check_in_range(decay_factor, f"{operator}(): decay_factor", 0.0, 1.0)


def _check_time_unit(time_unit: Any, what: str) -> str:
    if time_unit in TIME_UNITS:
        return str(time_unit)
    raise ConfigurationError(f'{what} must be "batches" or "points", not {time_unit!r}')


def _check_weights(weights: Any, k: int, what: str = "set_initial_centers(weights)") -> np.ndarray:
    try:
        array = np.array(weights, dtype=float)
    except (TypeError, ValueError):
        array = np.array([np.nan])
    if array.shape != (k,) or not np.isfinite(array).all() or (array < 0).any():
        msg = f"{what} must be {k} finite numbers >= 0, one per center, not {weights!r}"
        raise ConfigurationError(msg)
    return array
