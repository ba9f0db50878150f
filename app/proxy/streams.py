"""Where messages for a client wait to be written: one open POST's answer, or the session's stream."""

from __future__ import annotations

import asyncio
from collections import deque

from app.proxy.jsonrpc import Message


class Sink:
    """Messages for one open client POST: its JSON answer or its SSE response stream."""

    __slots__ = ("closed", "queue")

    def __init__(self) -> None:
        self.queue: asyncio.Queue[tuple[Message, int | None]] = asyncio.Queue()
        self.closed = False

    def put(self, msg: Message, status: int | None = None) -> None:
        if not self.closed:
            self.queue.put_nowait((msg, status))


class Outbox:
    """The session's own stream (Streamable HTTP GET, legacy SSE): numbered, bounded, replayable.

    Event ids are consecutive integers, so a client reconnecting with `Last-Event-ID` gets exactly
    the messages it missed, as long as they are still within the bound.
    """

    def __init__(self, limit: int = 1000) -> None:
        self.history: deque[tuple[int, Message]] = deque(maxlen=limit)
        self.next_id = 1
        self.readers = 0
        self.delivered = 0  # highest id written to a reader; a new stream starts after it
        self.closed = False
        self._changed = asyncio.Event()

    def put(self, msg: Message) -> None:
        self.history.append((self.next_id, msg))
        self.next_id += 1
        self._changed.set()

    def after(self, last_id: int) -> list[tuple[int, Message]]:
        if not self.history:
            return []
        first = self.history[0][0]
        start = max(0, last_id - first + 1)
        return list(self.history)[start:] if start < len(self.history) else []

    async def read(self, last_id: int) -> list[tuple[int, Message]]:
        """Wait for messages newer than `last_id`; an empty list means the outbox closed."""
        while True:
            items = self.after(last_id)
            if items or self.closed:
                return items
            self._changed.clear()
            await self._changed.wait()

    def close(self) -> None:
        self.closed = True
        self._changed.set()
