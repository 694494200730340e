"""Streaming linear and logistic regression: MLlib's ``StreamingLinearRegressionWithSGD``
and ``StreamingLogisticRegressionWithSGD``, batch by batch.

Every non-empty batch runs gradient descent from the current weights (MLlib's
``GradientDescent.runMiniBatchSGD``); empty batches change nothing. What the code
does, which the documentation leaves out:

- Iteration ``i`` (from 1) steps by ``step_size / sqrt(i)`` along the mean gradient
  of its sample: least squares ``(w·x - y) x``, or logistic
  ``(1 / (1 + exp(-w·x)) - y) x``; the logistic one with the L2 updater
  PySpark asks for, ``w (1 - step reg_param) - step g``.
- ``num_iterations`` is a maximum: after each step from the second on, the
  descent stops once ``|w_i - w_{i-1}| < convergence_tol * max(|w_i|, 1)``. The
  first step is never compared with the starting weights, so at least two run.
- With ``mini_batch_fraction < 1`` each iteration samples each example with that
  probability; an iteration whose sample is empty is skipped (its step number
  still counts). MLlib seeds iteration ``i`` with ``42 + i`` at every batch; here
  the generator is seeded with ``(seed, batch number, i)``, so batches of equal
  size do not all sample the same positions.
- No intercept is fitted: PySpark's streaming regressions never pass one (the
  linear one passes the model's intercept, 0.0, as the "fit an intercept" flag),
  so ``intercept`` stays 0. With ``fit_intercept=True`` a constant feature 1.0 is
  appended and its weight is the intercept, continued from batch to batch
  (MLlib's own algorithms, asked for an intercept, restart it from 1.0 at every
  batch).
- Logistic labels must be 0 or 1 (MLlib validates them); its predictions are 1
  when the probability is above 0.5, else 0.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, Self, TypeVar

from ..checks import check_whole_number
from ..errors import ConfigurationError
from .arrays import as_matrix, as_vector, check_vectors, np, split_pairs
from .settings import check_in_range
from .streams import LearnOutput, PredictNode, node_of, wrap

if TYPE_CHECKING:
    from ..batch import PartitionFn
    from ..dstream import DStream

__all__ = [
    "LinearRegressionModel",
    "LogisticRegressionModel",
    "StreamingLinearRegression",
    "StreamingLogisticRegression",
    "gradient_descent",
]

Gradient = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]


@dataclass(frozen=True, eq=False)
class LinearRegressionModel:
    """Weights and intercept after some batch (immutable).

    Attributes:
        weights: a read-only float array, one weight per feature.
        intercept: the constant term (0.0 unless ``fit_intercept=True``).

    >>> LinearRegressionModel([1.0, 2.0], 0.5).predict([3.0, 4.0])
    11.5
    """

    weights: np.ndarray
    intercept: float

    def __init__(self, weights: Any, intercept: float = 0.0) -> None:
        array = np.array(weights, dtype=float)
        if array.ndim != 1:
            raise ValueError(f"weights must be one vector of floats, not {weights!r}")
        array.flags.writeable = False
        object.__setattr__(self, "weights", array)
        object.__setattr__(self, "intercept", float(intercept))

    def predict(self, features: Any) -> Any:
        """``weights · features + intercept``."""
        return self.predict_all(as_vector(features, len(self.weights))[np.newaxis, :])[0]

    def predict_all(self, features: np.ndarray) -> list[Any]:
        """Predictions for the rows of an ``(n, dim)`` array."""
        return (features @ self.weights + self.intercept).tolist()


@dataclass(frozen=True, eq=False)
class LogisticRegressionModel(LinearRegressionModel):
    """A binary logistic regression model: ``predict`` gives 0 or 1.

    >>> model = LogisticRegressionModel([2.0], 0.0)
    >>> model.predict([1.0]), model.predict([-1.0]), round(model.probability([1.0]), 4)
    (1, 0, 0.8808)
    """

    def probability(self, features: Any) -> float:
        """The probability that the label of ``features`` is 1."""
        point = as_vector(features, len(self.weights))[np.newaxis, :]
        return float(self.probabilities(point)[0])

    def probabilities(self, features: np.ndarray) -> np.ndarray:
        """Probabilities of label 1 for the rows of an ``(n, dim)`` array (computed as
        PySpark's model does, without overflow)."""
        margin = features @ self.weights + self.intercept
        with np.errstate(over="ignore", invalid="ignore"):
            return np.where(
                margin > 0, 1.0 / (1.0 + np.exp(-margin)), np.exp(margin) / (1.0 + np.exp(margin))
            )

    def predict_all(self, features: np.ndarray) -> list[Any]:
        return (self.probabilities(features) > 0.5).astype(int).tolist()


def least_squares_gradient(features: np.ndarray, labels: np.ndarray, weights: np.ndarray) -> Any:
    """The sum over the examples of ``(w·x - y) x``."""
    return features.T @ (features @ weights - labels)


def logistic_gradient(features: np.ndarray, labels: np.ndarray, weights: np.ndarray) -> Any:
    """The sum over the examples of ``(1 / (1 + exp(-w·x)) - y) x``."""
    with np.errstate(over="ignore"):
        multiplier = 1.0 / (1.0 + np.exp(-(features @ weights))) - labels
    return features.T @ multiplier


def gradient_descent(
    features: np.ndarray,
    labels: np.ndarray,
    weights: np.ndarray,
    gradient: Gradient,
    *,
    step_size: float,
    num_iterations: int,
    mini_batch_fraction: float = 1.0,
    convergence_tol: float = 0.001,
    reg_param: float = 0.0,
    seed: Sequence[int] = (42,),
) -> np.ndarray:
    """MLlib's mini-batch gradient descent on one batch (see the module): the
    weights after at most ``num_iterations`` steps from ``weights``."""
    updated = False
    for i in range(1, num_iterations + 1):
        if mini_batch_fraction < 1.0:
            keep = np.random.default_rng([*seed, i]).random(len(labels)) < mini_batch_fraction
            x, y = features[keep], labels[keep]
        else:
            x, y = features, labels
        if not len(y):
            continue
        step = step_size / math.sqrt(i)
        new = weights * (1.0 - step * reg_param) - step * (gradient(x, y, weights) / len(y))
        done = updated and bool(
            np.linalg.norm(weights - new) < convergence_tol * max(float(np.linalg.norm(new)), 1.0)
        )
        weights, updated = new, True
        if done:
            break
    return weights


M = TypeVar("M", bound=LinearRegressionModel)


class _StreamingLinearAlgorithm(Generic[M]):
    """What the streaming regressions share: the model, training, predictions."""

    _gradient: Gradient
    _model_class: type[M]
    _binary_labels = False

    def __init__(
        self,
        step_size: float,
        num_iterations: int,
        mini_batch_fraction: float,
        convergence_tol: float,
        reg_param: float,
        fit_intercept: bool,
        seed: int,
    ) -> None:
        kind = type(self).__name__
        self._step_size = check_in_range(step_size, f"{kind}(step_size)", include_low=False)
        self._num_iterations = check_whole_number(num_iterations, f"{kind}(num_iterations)")
        self._fraction = check_in_range(
            mini_batch_fraction, f"{kind}(mini_batch_fraction)", 0.0, 1.0, include_low=False
        )
        self._tol = check_in_range(convergence_tol, f"{kind}(convergence_tol)", 0.0, 1.0)
        self._reg_param = check_in_range(reg_param, f"{kind}(reg_param)")
        if not isinstance(fit_intercept, bool):
            raise ConfigurationError(f"{kind}(fit_intercept) must be True or False")
        self._fit_intercept = fit_intercept
        self._seed = check_whole_number(seed, f"{kind}(seed)", minimum=0)
        self._model: M | None = None
        self._batches = 0  # batches trained on: part of the sampling seed

    def set_initial_weights(self, initial_weights: Sequence[float]) -> Self:
        """Start from these weights (one per feature; the intercept starts at 0.0)."""
        (weights,) = check_vectors([initial_weights], "set_initial_weights(initial_weights)")
        self._model = self._model_class(weights, 0.0)
        return self

    def latest_model(self) -> M | None:
        """The model after the latest batch trained on (None before weights are set)."""
        return self._model

    def train_on(self, stream: DStream[tuple[float, Any]], *, name: str | None = None) -> None:
        """Update the model with every non-empty batch of ``(label, features)`` pairs:
        an output operation of its own, which needs no other output.

        Records become arrays per partition, in the executor of the stream's stage;
        the gradient descent runs over the whole batch, on the loop.
        """
        node = node_of(stream, "train_on")
        self._initialized("train_on")
        LearnOutput(node, self, self._examples, self._learn, "train_on", name)

    def predict_on(self, stream: DStream[Any], *, name: str | None = None) -> DStream[Any]:
        """A prediction for every feature vector of ``stream``, with the model as it
        was before the batch's training."""
        node = node_of(stream, "predict_on")
        self._initialized("predict_on")
        return wrap(stream, PredictNode(node, self, self._predictor, "predict_on", name))

    def predict_on_values(
        self, stream: DStream[tuple[Any, Any]], *, name: str | None = None
    ) -> DStream[tuple[Any, Any]]:
        """``(key, prediction)`` for every ``(key, features)`` of ``stream``."""
        node = node_of(stream, "predict_on_values")
        self._initialized("predict_on_values")
        predict = self._values_predictor
        return wrap(stream, PredictNode(node, self, predict, "predict_on_values", name))

    def _initialized(self, operator: str) -> M:
        if self._model is None:
            msg = f"{operator}(): set the initial weights first, with set_initial_weights()"
            raise ConfigurationError(msg)
        return self._model

    def _examples(self) -> PartitionFn:
        dim = len(self._initialized("train_on").weights)
        binary = self._binary_labels

        def labeled_arrays(pairs: Iterable[Any]) -> tuple[np.ndarray, np.ndarray]:
            labels, features = split_pairs(pairs, "(label, features)")
            try:
                y = np.array(labels, dtype=float)
            except (TypeError, ValueError) as exc:
                raise ValueError(f"labels must be numbers: {exc}") from None
            if binary and not np.isin(y, (0.0, 1.0)).all():
                bad = float(y[~np.isin(y, (0.0, 1.0))][0])
                raise ValueError(f"logistic regression labels must be 0 or 1, got {bad!r}")
            return as_matrix(features, dim), y

        return labeled_arrays

    def _learn(self, time: float, results: list[tuple[np.ndarray, np.ndarray]]) -> None:
        features = np.concatenate([x for x, _ in results])
        labels = np.concatenate([y for _, y in results])
        if not len(labels):
            return
        model = self._initialized("train_on")
        weights = np.array(model.weights)
        if self._fit_intercept:
            features = np.hstack([features, np.ones((len(features), 1))])
            weights = np.append(weights, model.intercept)
        weights = gradient_descent(
            features,
            labels,
            weights,
            type(self)._gradient,
            step_size=self._step_size,
            num_iterations=self._num_iterations,
            mini_batch_fraction=self._fraction,
            convergence_tol=self._tol,
            reg_param=self._reg_param,
            seed=(self._seed, self._batches),
        )
        self._batches += 1
        if self._fit_intercept:
            self._model = self._model_class(weights[:-1], weights[-1])
        else:
            self._model = self._model_class(weights, 0.0)

    def _predictor(self) -> PartitionFn:
        model = self._initialized("predict_on")

        def predict_features(vectors: Iterable[Any]) -> list[Any]:
            return model.predict_all(as_matrix(vectors, len(model.weights)))

        return predict_features

    def _values_predictor(self) -> PartitionFn:
        model = self._initialized("predict_on_values")

        def predict_values(pairs: Iterable[Any]) -> list[tuple[Any, Any]]:
            keys, vectors = split_pairs(pairs, "(key, features)")
            predictions = model.predict_all(as_matrix(vectors, len(model.weights)))
            return list(zip(keys, predictions, strict=True))

        return predict_values


class StreamingLinearRegression(_StreamingLinearAlgorithm[LinearRegressionModel]):
    """Least-squares linear regression trained on a stream, as MLlib's
    ``StreamingLinearRegressionWithSGD`` (see the module for its exact rules).

    Args:
        step_size: the first gradient step (then ``step_size / sqrt(i)``).
        num_iterations: the most gradient steps per batch.
        mini_batch_fraction: the share of a batch each step samples, in (0, 1].
        convergence_tol: stop a batch's descent when a step moves the weights by
            less than this, relative to their norm (at least 1).
        fit_intercept: fit a constant term too (MLlib's streaming one does not).
        seed: seeds the sampling when ``mini_batch_fraction < 1``.

    Raises:
        ConfigurationError: for an invalid argument.

    >>> reg = StreamingLinearRegression(step_size=0.5, num_iterations=20)
    >>> reg = reg.set_initial_weights([0.0])
    >>> def job(examples):                  # (label, features) pairs
    ...     reg.train_on(examples)
    ...     return reg.predict_on(examples.map(lambda e: e[1]))
    >>> [[round(p, 3) for p in batch] for batch in collect(
    ...     job, [[(2.0, [1.0]), (4.0, [2.0])], [(6.0, [3.0])]])]
    [[0.0, 0.0], [6.004]]
    >>> reg.latest_model().weights.round(3).tolist(), reg.latest_model().intercept
    ([2.0], 0.0)
    """

    _gradient = staticmethod(least_squares_gradient)
    _model_class = LinearRegressionModel

    def __init__(
        self,
        step_size: float = 0.1,
        num_iterations: int = 50,
        mini_batch_fraction: float = 1.0,
        convergence_tol: float = 0.001,
        *,
        fit_intercept: bool = False,
        seed: int = 42,
    ) -> None:
        super().__init__(
            step_size,
            num_iterations,
            mini_batch_fraction,
            convergence_tol,
            0.0,
            fit_intercept,
            seed,
        )


class StreamingLogisticRegression(_StreamingLinearAlgorithm[LogisticRegressionModel]):
    """Binary logistic regression trained on a stream, as MLlib's
    ``StreamingLogisticRegressionWithSGD`` (labels 0 or 1; see the module).

    Args:
        step_size: the first gradient step (then ``step_size / sqrt(i)``).
        num_iterations: the most gradient steps per batch.
        mini_batch_fraction: the share of a batch each step samples, in (0, 1].
        reg_param: the L2 regularisation parameter.
        convergence_tol: stop a batch's descent when a step moves the weights by
            less than this, relative to their norm (at least 1).
        fit_intercept: fit a constant term too (MLlib's streaming one does not).
        seed: seeds the sampling when ``mini_batch_fraction < 1``.

    Raises:
        ConfigurationError: for an invalid argument.
    """

    _gradient = staticmethod(logistic_gradient)
    _model_class = LogisticRegressionModel
    _binary_labels = True

    def __init__(
        self,
        step_size: float = 0.1,
        num_iterations: int = 50,
        mini_batch_fraction: float = 1.0,
        reg_param: float = 0.0,
        convergence_tol: float = 0.001,
        *,
        fit_intercept: bool = False,
        seed: int = 42,
    ) -> None:
        super().__init__(
            step_size,
            num_iterations,
            mini_batch_fraction,
            convergence_tol,
            reg_param,
            fit_intercept,
            seed,
        )
