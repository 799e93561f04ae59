"""The node's signal hub: events fanned out to local listeners (the API's WebSocket stream).

Each listener has a bounded queue; a listener that falls behind loses its oldest events (and is
told how many it lost), never slows the node down.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

QUEUE_SIZE = 256


class Listener:
    def __init__(self, size: int) -> None:
        self.queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(size)
        self.dropped = 0

    def offer(self, event: dict[str, Any]) -> None:
        while True:
            try:
                self.queue.put_nowait(event)
                return
            except asyncio.QueueFull:
                with contextlib.suppress(asyncio.QueueEmpty):
                    self.queue.get_nowait()
                    self.dropped += 1

    async def next(self) -> dict[str, Any]:
        event = await self.queue.get()
        if self.dropped:
            event = {**event, "dropped_before": self.dropped}
            self.dropped = 0
        return event


class SignalHub:
    def __init__(self, queue_size: int = QUEUE_SIZE) -> None:
        self._listeners: set[Listener] = set()
        self._size = queue_size
        self.published = 0

    def publish(self, event: dict[str, Any]) -> None:
        self.published += 1
        for listener in list(self._listeners):
            listener.offer(event)

    @contextlib.asynccontextmanager
    async def listen(self) -> AsyncIterator[Listener]:
        listener = Listener(self._size)
        self._listeners.add(listener)
        try:
            yield listener
        finally:
            self._listeners.discard(listener)

    @property
    def listeners(self) -> int:
        return len(self._listeners)
