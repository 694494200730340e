"""In-process sources that belong to the core (``queue_stream`` is a graph node)."""

from __future__ import annotations

from collections.abc import AsyncIterable
from typing import TypeVar

from .receiver import Receiver, ReceiverOutput

__all__ = ["AsyncIterableReceiver"]

T = TypeVar("T")


class AsyncIterableReceiver(Receiver[T]):
    """Stores every item of an async iterable, in order, as one record.

    An iterator that raised cannot be resumed, so this receiver is not restarted:
    its error stops the context. When the context stops, an async generator is
    closed (its ``finally`` blocks run).
    """

    restartable = False

    def __init__(self, iterable: AsyncIterable[T]) -> None:
        self._iterator = aiter(iterable)

    async def run(self, output: ReceiverOutput[T]) -> None:
        put = output.put
        async for item in self._iterator:
            await put(item)

    async def aclose(self) -> None:
        close = getattr(self._iterator, "aclose", None)
        if close is not None:
            await close()
