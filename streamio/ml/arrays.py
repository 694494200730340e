"""Records to numpy arrays: the vectors and labeled examples of MLlib's algorithms.

A vector is a sequence of floats (list, tuple) or a one-dimensional numpy array;
a batch of them becomes one ``(n, dim)`` float array, so that an update is a few
numpy operations over the whole batch rather than a Python loop per point.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from ..errors import ConfigurationError

try:
    import numpy as np
except ImportError as exc:  # pragma: no cover - exercised without the extra
    msg = "streamio.ml's k-means and linear models need numpy: pip install 'streamio[ml]'"
    raise ImportError(msg) from exc

__all__ = ["as_matrix", "as_vector", "check_vectors", "split_pairs"]


def as_vector(vector: Any, dim: int) -> np.ndarray:
    """One vector as a float array of ``dim`` values."""
    array = np.asarray(vector, dtype=float)
    if array.shape != (dim,):
        msg = f"expected a vector of {dim} floats, got {_shape_of(vector)}"
        raise ValueError(msg)
    return array


def as_matrix(vectors: Iterable[Any], dim: int) -> np.ndarray:
    """Vectors as an ``(n, dim)`` float array (a copy; the records stay as they are)."""
    rows = vectors if isinstance(vectors, list) else list(vectors)
    if not rows:
        return np.empty((0, dim))
    try:
        matrix = np.array(rows, dtype=float)  # faster than np.stack, for arrays too
    except (ValueError, TypeError) as exc:
        bad = next((row for row in rows if _shape_of(row) != f"{dim} values"), rows[0])
        msg = f"expected vectors of {dim} floats, got {_shape_of(bad)}: {exc}"
        raise ValueError(msg) from exc
    if matrix.ndim != 2 or matrix.shape[1] != dim:
        bad = next((row for row in rows if _shape_of(row) != f"{dim} values"), rows[0])
        msg = f"expected vectors of {dim} floats, got {_shape_of(bad)}"
        raise ValueError(msg)
    return matrix


def split_pairs(pairs: Iterable[Any], what: str) -> tuple[list[Any], list[Any]]:
    """``(first, second)`` records as two lists: keys and values, or labels and features."""
    firsts: list[Any] = []
    seconds: list[Any] = []
    for pair in pairs:
        try:
            first, second = pair
        except (TypeError, ValueError):
            msg = f"records must be {what} pairs, got {pair!r}"
            raise ValueError(msg) from None
        firsts.append(first)
        seconds.append(second)
    return firsts, seconds


def check_vectors(vectors: Any, what: str) -> np.ndarray:
    """A user's vectors (at build time) as a two-dimensional float array."""
    try:
        matrix = np.array(vectors, dtype=float)
    except (ValueError, TypeError) as exc:
        msg = f"{what} must be vectors of floats of one length: {exc}"
        raise ConfigurationError(msg) from None
    if matrix.ndim != 2 or matrix.shape[1] == 0 or not np.isfinite(matrix).all():
        msg = f"{what} must be non-empty vectors of finite floats, not {vectors!r}"
        raise ConfigurationError(msg)
    return matrix


def _shape_of(value: Any) -> str:
    if isinstance(value, (str, bytes)) or not isinstance(value, (Sequence, np.ndarray)):
        return f"{type(value).__name__} {value!r}"
    shape = np.shape(value) if isinstance(value, np.ndarray) else (len(value),)
    return f"{shape[0]} values" if len(shape) == 1 else f"an array of shape {shape}"
