"""Online models on streams: River's ``learn_one`` / ``predict_one`` protocol.

Any object with those methods works (a River model, or one's own); neither River
nor numpy is imported here. The DStream methods ``learn``, ``predict`` and
``evaluate`` delegate to the functions of this module.

- ``learn(model)`` is an output operation: each ``(x, y)`` record is learnt with
  ``learn_one(x, y)``, in order; a record whose ``x`` is a frame (a pandas or
  polars DataFrame, with ``y`` its Series of labels) is learnt at once with
  ``learn_many(X, y)``.
- ``predict(model)`` gives ``(x, y_pred)`` for every ``x`` (``predict_many(X)``
  for a frame), with the model as it was before the batch's learning.
- ``evaluate(model, metric)`` is progressive validation (test-then-train) of the
  batch's records in order, exactly River's ``progressive_val_score`` (a River
  model is run through River's own ``iter_progressive_val_score``, batch after
  batch), and gives one record per batch: a copy of the metric so far.
"""

from __future__ import annotations

import copy
import importlib
import itertools
import sys
from functools import partial
from typing import TYPE_CHECKING, Any

from ..batch import Batch, PartitionFn
from ..errors import ConfigurationError, OperatorError
from ..functions import check_function, describe
from .streams import (
    LearnOutput,
    ModelNode,
    PredictNode,
    node_of,
    predict_first,
    restore_attributes,
    wrap,
)

if TYPE_CHECKING:
    from collections.abc import Iterable

    from ..dstream import DStream
    from ..graph import Node

__all__ = ["evaluate", "learn", "predict"]


def learn(stream: DStream[Any], model: Any, name: str | None) -> None:
    """Train ``model`` on every ``(x, y)`` record of ``stream`` (an output operation)."""
    node = node_of(stream, "learn")
    _check_method(model, "learn_one", "learn", 2)
    LearnOutput(node, model, _as_they_are, partial(_learn_batch, model), "learn", name)


def predict(stream: DStream[Any], model: Any, name: str | None) -> DStream[tuple[Any, Any]]:
    """``(x, model's prediction)`` for every ``x`` of ``stream``."""
    node = node_of(stream, "predict")
    _check_method(model, "predict_one", "predict", 1)
    return wrap(stream, PredictNode(node, model, partial(_predictor, model), "predict", name))


def evaluate(stream: DStream[Any], model: Any, metric: Any, name: str | None) -> DStream[Any]:
    """Test-then-train ``model`` on every ``(x, y)`` record of ``stream``, updating
    ``metric``; one record per batch: a copy of the metric after the batch."""
    node = node_of(stream, "evaluate")
    _check_method(model, "predict_one", "evaluate", 1)
    _check_method(model, "learn_one", "evaluate", 2)
    if not callable(getattr(metric, "update", None)):
        msg = (
            f"evaluate() needs a metric with update(y_true, y_pred) (a River metric, for "
            f"one), not {type(metric).__name__}"
        )
        raise ConfigurationError(msg)
    works_with = getattr(metric, "works_with", None)
    if callable(works_with) and not works_with(model):
        msg = (
            f"evaluate(): the metric {type(metric).__name__} does not work with the model "
            f"{type(model).__name__} (metric.works_with(model) is false); pick a metric "
            "made for this kind of model"
        )
        raise ConfigurationError(msg)
    return wrap(stream, EvaluateNode(node, model, metric, name))


class EvaluateNode(ModelNode):
    """Progressive validation: the stream learns as its batches are computed."""

    kind = "evaluate"
    learns = True

    def __init__(self, parent: Node, model: Any, metric: Any, name: str | None) -> None:
        super().__init__(parent.graph, (parent,), name)
        self.owner = model
        self.metric = metric

    def state_to_save(self) -> Any:
        return {"model": vars(self.owner), "metric": vars(self.metric)}

    def restore_saved(self, saved: Any) -> None:
        restore_attributes(self.owner, saved["model"])
        restore_attributes(self.metric, saved["metric"])

    async def compute(self, time: float) -> Batch[Any] | None:
        parts = await self.parents[0].partitions(time)
        if parts is None:
            return None
        await predict_first(self.graph, self.owner, time)
        records = list(itertools.chain.from_iterable(parts))
        try:
            _test_then_train(self.owner, self.metric, records)
        except Exception as exc:
            msg = f"{describe(type(self.owner))} raised {type(exc).__name__}: {exc}"
            raise OperatorError(self.label, time, msg) from exc
        return Batch(time, [[copy.deepcopy(self.metric)]])


def _test_then_train(model: Any, metric: Any, records: list[Any]) -> None:
    river = sys.modules.get("river")  # a River model means River is imported already
    if river is not None and isinstance(model, importlib.import_module("river.base").Estimator):
        if records:
            validation = importlib.import_module("river.evaluate")
            for _ in validation.iter_progressive_val_score(
                records, model, metric, step=len(records)
            ):
                pass
        return
    for record in records:
        x, y = _pair(record, "evaluate")
        y_pred = model.predict_one(x)
        if y_pred is not None and y_pred != {}:  # no opinion yet: not scored, as River does
            metric.update(y, y_pred)
        model.learn_one(x, y)


def _as_they_are() -> None:
    """The partitions are learnt from as they are: nothing runs per partition."""


def _learn_batch(model: Any, time: float, parts: list[Iterable[Any]]) -> None:
    for part in parts:
        for record in part:
            x, y = _pair(record, "learn")
            if _is_frame(x):
                learn_many = getattr(model, "learn_many", None)
                if learn_many is None:
                    kind = type(model).__name__
                    msg = f"a frame of examples needs a model with learn_many(), not a {kind}"
                    raise ValueError(msg)
                learn_many(x, y)
            else:
                model.learn_one(x, y)


def _predictor(model: Any) -> PartitionFn:
    def predict_records(records: Iterable[Any]) -> list[tuple[Any, Any]]:
        predict_many = getattr(model, "predict_many", None)
        return [
            (
                x,
                predict_many(x)
                if predict_many is not None and _is_frame(x)
                else model.predict_one(x),
            )
            for x in records
        ]

    return predict_records


def _pair(record: Any, operator: str) -> tuple[Any, Any]:
    try:
        x, y = record
    except (TypeError, ValueError):
        raise ValueError(f"{operator}() needs (x, y) records, got {record!r}") from None
    return x, y


def _is_frame(x: Any) -> bool:
    """Whether ``x`` is a data frame (pandas, polars, ...) rather than one example."""
    return not isinstance(x, dict) and hasattr(x, "columns") and hasattr(x, "shape")


def _check_method(model: Any, method: str, operator: str, arity: int) -> None:
    fn = getattr(model, method, None)
    if not callable(fn):
        msg = (
            f"{operator}() needs a model with {method}() (a River model, for one), but "
            f"{type(model).__name__} has none"
        )
        raise ConfigurationError(msg)
    check_function(fn, operator, arity)
