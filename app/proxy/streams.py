"""Where messages for a client wait to be written: one open POST's answer, or the session's stream."""

from __future__ import annotations

import asyncio
from collections import deque

from app.proxy.jsonrpc import Message, RequestId
from app.proxy.sse import encode as sse_encode


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


RETRY_MS = 1000
"""How long a client waits before reconnecting a dropped stream (the SSE `retry` field)."""


class PostStream:
    """The SSE answer to one client POST (handshake era), kept so that a dropped client can resume it.

    Event ids are `"{stream}-{seq}"`; a `GET` with `Last-Event-ID` naming one replays what followed
    and then goes on with the answers still to come.
    """

    HISTORY = 256

    def __init__(self, number: int, sink: Sink, waiting: set[RequestId]) -> None:
        self.number = number
        self.sink = sink
        self.waiting = waiting
        self.seq = 0
        self.history: deque[tuple[int, bytes]] = deque(maxlen=self.HISTORY)
        self.attached = True

    def priming(self) -> bytes:
        """An empty event with an id: the client can resume even if nothing else arrives first."""
        return sse_encode(b"", event_id=f"{self.number}-0", retry=RETRY_MS)

    def frame(self, raw: bytes) -> bytes:
        self.seq += 1
        data = sse_encode(raw, event_id=f"{self.number}-{self.seq}")
        self.history.append((self.seq, data))
        return data

    def replay_after(self, seq: int) -> list[bytes]:
        return [data for s, data in self.history if s > seq]

    @property
    def done(self) -> bool:
        return not self.waiting
