"""Machine learning on streams: MLlib's streaming algorithms, and River's models.

- :class:`StreamingKMeans`, :class:`StreamingLinearRegression` and
  :class:`StreamingLogisticRegression` are MLlib's streaming k-means and
  streaming regressions with SGD, their update rules and defaults included,
  vectorized with numpy (``pip install 'streamio[ml]'``).
- Any online model with River's ``learn_one`` / ``predict_one`` (``pip install
  'streamio[river]'``) trains and predicts through the DStream methods
  ``learn(model)``, ``predict(model)`` and ``evaluate(model, metric)``.

Whatever order the streams were registered in, the predictions of batch *t* use
the model as it was after batch *t - 1*, before batch *t*'s training.

The names are loaded when first used, so River users need no numpy.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .kmeans import StreamingKMeans, StreamingKMeansModel
    from .linear import (
        LinearRegressionModel,
        LogisticRegressionModel,
        StreamingLinearRegression,
        StreamingLogisticRegression,
    )

__all__ = [
    "LinearRegressionModel",
    "LogisticRegressionModel",
    "StreamingKMeans",
    "StreamingKMeansModel",
    "StreamingLinearRegression",
    "StreamingLogisticRegression",
]

_MODULES = {
    "StreamingKMeans": "kmeans",
    "StreamingKMeansModel": "kmeans",
    "LinearRegressionModel": "linear",
    "LogisticRegressionModel": "linear",
    "StreamingLinearRegression": "linear",
    "StreamingLogisticRegression": "linear",
}


def __getattr__(name: str) -> Any:
    module = _MODULES.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
