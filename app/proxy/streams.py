"""Where messages for a client wait to be written: one open POST's answer, or the session's stream."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from typing import Protocol

from app.proxy.jsonrpc import Message, RequestId, notification
from app.proxy.sse import encode as sse_encode

# What a client's answer stream may fall behind by before the router gives up on it. A message is
# costed at its bytes plus what its parsed form and bookkeeping take (about 1 KB).
SINK_BYTES = 8 * 1024 * 1024
MESSAGE_OVERHEAD = 1024


def message_cost(msg: Message) -> int:
    return len(msg.raw) + MESSAGE_OVERHEAD


class _CostedQueue(asyncio.Queue[tuple[Message, int | None]]):
    """An asyncio.Queue that knows what it holds, in bytes."""

    def __init__(self) -> None:
        super().__init__()
        self.bytes = 0

    def _put(self, item: tuple[Message, int | None]) -> None:
        super()._put(item)
        self.bytes += message_cost(item[0])

    def _get(self) -> tuple[Message, int | None]:
        item = super()._get()
        self.bytes -= message_cost(item[0])
        return item


class Sink:
    """Messages for one open client POST: its JSON answer or its SSE response stream.

    Bounded: a client that stops reading its stream while the backend keeps sending (progress, logs)
    would otherwise grow it without end. Past SINK_BYTES waiting the sink closes itself and calls
    `on_overflow` (the endpoint ends the stream and cancels its requests upstream). A message that
    finds the sink empty always fits, however large.
    """

    __slots__ = ("closed", "limit", "on_overflow", "overflowed", "queue")

    def __init__(self, limit: int = SINK_BYTES) -> None:
        self.queue = _CostedQueue()
        self.closed = False
        self.limit = limit
        self.overflowed = 0  # bytes waiting when it overflowed
        self.on_overflow: Callable[[int], None] | None = None

    def put(self, msg: Message, status: int | None = None) -> None:
        if self.closed:
            return
        if self.queue.bytes > self.limit and msg.method != "$closed":
            self._overflow()
            return
        self.queue.put_nowait((msg, status))

    def _overflow(self) -> None:
        self.closed = True
        self.overflowed = self.queue.bytes
        while not self.queue.empty():
            self.queue.get_nowait()
        # What the stream's writer finds once its stuck write returns: the end. (Under the router's
        # own protocol the connection is dropped first; under any other server the client that
        # reads again gets the stream's proper end, not a stream that never ends.)
        self.queue.put_nowait((notification("$closed"), None))
        if self.on_overflow is not None:
            self.on_overflow(self.overflowed)


INBOX_MESSAGES = 1000


class Inbox:
    """What a legacy SSE client posted (`/messages/`) and the router has not finished handing on.

    Posts are answered 202 at once and handled in tasks of their own (a held request waits there
    for its backend, up to --hold), so without a bound a client posting faster than its backend
    takes would grow the router without end. Bounded like a Sink: SINK_BYTES and INBOX_MESSAGES;
    a post that finds the inbox empty always fits, however large (--max-body bounds it).
    """

    __slots__ = ("bytes", "count", "max_bytes", "max_messages")

    def __init__(self, max_bytes: int = SINK_BYTES, max_messages: int = INBOX_MESSAGES) -> None:
        self.bytes = 0
        self.count = 0
        self.max_bytes = max_bytes
        self.max_messages = max_messages

    def admit(self, messages: list[Message]) -> list[int] | None:
        """Take a post's messages in whole (their costs, to `release` each) or not at all (None)."""
        costs = [message_cost(m) for m in messages]
        total = sum(costs)
        if self.count and (self.bytes + total > self.max_bytes or self.count + len(costs) > self.max_messages):
            return None
        self.bytes += total
        self.count += len(costs)
        return costs

    def release(self, cost: int) -> None:
        self.bytes -= cost
        self.count -= 1


class DirectReply(Protocol):
    """How the hot path answers a request with no task of its own (the router's uvicorn protocol)."""

    def respond(self, status: int, body: bytes) -> None:
        """Write the whole JSON answer now."""

    def hand_over(self) -> None:
        """Serve the request through the ASGI app after all (its scope says what was already done)."""


class DirectSink(Sink):
    """The sink of a hot-path request: its JSON answer is written the moment it arrives.

    Anything else arriving first (a notification, a request from the server) needs the endpoint's
    answer stream: the sink hands the exchange over and from then on queues like any other. Its
    queue is made only then: the common case never needs one.
    """

    __slots__ = ("reply", "request_id", "status_of")

    def __init__(
        self, reply: DirectReply, request_id: RequestId | None, status_of: Callable[[Message, int | None], int]
    ) -> None:  # no super().__init__(): the queue waits for a hand-over
        self.closed = False
        self.limit = SINK_BYTES
        self.overflowed = 0
        self.on_overflow = None
        self.reply: DirectReply | None = reply
        self.request_id = request_id
        self.status_of = status_of

    def put(self, msg: Message, status: int | None = None) -> None:
        reply = self.reply
        if reply is None:
            if not self.closed:
                super().put(msg, status)
            return
        self.reply = None
        data = msg.data
        if "method" not in data and ("result" in data or "error" in data) and msg.id == self.request_id:
            self.closed = True  # (`msg.is_response`, without its frame: every hot-path answer)
            # The backend's status as it is (what `status_of` gives when there is one).
            reply.respond(status if status is not None else self.status_of(msg, status), msg.raw)
            return
        self.queue = _CostedQueue()
        super().put(msg, status)
        reply.hand_over()


class Outbox:
    """The session's own stream (Streamable HTTP GET, legacy SSE): numbered, bounded, replayable.

    Event ids are consecutive integers, so a client reconnecting with `Last-Event-ID` gets exactly
    the messages it missed, as long as they are still within the bound.
    """

    def __init__(self, limit: int = 1000, max_bytes: int = SINK_BYTES) -> None:
        self.history: deque[tuple[int, Message]] = deque()
        self.limit = limit
        self.max_bytes = max_bytes  # the newest message is kept whatever its size
        self.bytes = 0
        self.next_id = 1
        self.readers = 0
        self.delivered = 0  # highest id written to a reader; a new stream starts after it
        self.closed = False
        self._changed = asyncio.Event()

    def put(self, msg: Message) -> None:
        history = self.history
        history.append((self.next_id, msg))
        self.bytes += message_cost(msg)
        self.next_id += 1
        while len(history) > 1 and (self.bytes > self.max_bytes or len(history) > self.limit):
            self.bytes -= message_cost(history.popleft()[1])
        self._changed.set()

    def after(self, last_id: int) -> list[tuple[int, Message]]:
        if not self.history:
            return []
        first = self.history[0][0]
        start = max(0, last_id - first + 1)
        return list(self.history)[start:] if start < len(self.history) else []

    async def read(self, last_id: int) -> list[tuple[int, Message]]:
        """Wait for messages newer than `last_id`; an empty list means the outbox closed.

        A message over `max_bytes` (kept as the newest) leaves the history once a reader has it:
        kept for a replay it would hold its bytes and decoded text until the next message, which
        on a quiet session may be never. A client that drops the stream while it is being written
        misses it, as it would miss any message that fell out of the bound.
        """
        while True:
            items = self.after(last_id)
            if items and self.bytes > self.max_bytes:
                self.history.clear()
                self.bytes = 0
            if items or self.closed:
                return items
            self._changed.clear()
            await self._changed.wait()

    def close(self) -> None:
        self.closed = True
        self._changed.set()


RETRY_MS = 1000
"""How long a client waits before reconnecting a dropped stream (the SSE `retry` field)."""

PRIMING_SINCE = "2025-11-25"
"""The first revision whose clients expect the empty-data priming event. Clients of older ones may
parse every `data` as JSON (SDK 1.8 logs an error and hands its session an exception per stream);
the SDK's own server primes only from this revision on, so a client sees the same through us."""


def primes(protocol_version: str | None) -> bool:
    """Whether a stream to a client of this revision opens with the priming event (dates sort as text)."""
    return protocol_version is not None and protocol_version >= PRIMING_SINCE


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
        self.history: deque[tuple[int, bytes]] = deque()
        self.history_bytes = 0
        self.attached = True

    def priming(self) -> bytes:
        """An empty event with an id: the client can resume even if nothing else arrives first."""
        return sse_encode(b"", event_id=f"{self.number}-0", retry=RETRY_MS)

    def frame(self, raw: bytes) -> bytes:
        self.seq += 1
        data = sse_encode(raw, event_id=f"{self.number}-{self.seq}")
        history = self.history
        history.append((self.seq, data))
        self.history_bytes += len(data)
        while len(history) > 1 and (self.history_bytes > SINK_BYTES or len(history) > self.HISTORY):
            self.history_bytes -= len(history.popleft()[1])
        return data

    def replay_after(self, seq: int) -> list[bytes]:
        return [data for s, data in self.history if s > seq]

    @property
    def done(self) -> bool:
        return not self.waiting
