"""What every backend transport offers the session layer: send a message, hear messages back."""

from __future__ import annotations

import itertools
from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Literal, Protocol

from app.proxy.jsonrpc import Message, RequestId
from app.proxy.limits import DEFAULT_MAX_MESSAGE, oversized_answer, too_large_text

ChannelMode = Literal["handshake", "modern"]

_channel_ids = itertools.count(1)


class BackendUnavailable(Exception):
    """The backend could not be reached, or its connection broke; the reason says how."""


class NotAnEndpoint(BackendUnavailable):
    """Something answered at the URL, but not as this MCP transport (a probe tries the next candidate)."""


class ChannelListener(Protocol):
    def on_backend_message(self, channel: Channel, msg: Message, related: RequestId | None, status: int | None) -> None:
        """A message from the backend. `related` names the request whose response stream carried it."""

    def on_channel_lost(self, channel: Channel, reason: str) -> None:
        """The channel is dead: the backend went away or forgot the session."""

    def on_backend_log(self, channel: Channel, line: str, garbage: bool = False) -> None:
        """A line the backend wrote to stderr (stdio), or (`garbage`) something it sent that is not MCP."""


class Channel(ABC):
    """One connection to a backend. Messages from it go to the listener, in order of arrival."""

    transport: str = "?"
    # The largest message taken from the backend (`--max-message`; set by Backend.new_channel).
    max_message: int = DEFAULT_MAX_MESSAGE

    def __init__(self, backend: str, listener: ChannelListener, mode: ChannelMode) -> None:
        self.backend = backend
        self.listener = listener
        self.mode = mode
        self.id = next(_channel_ids)
        self.alive = False
        self.closing = False
        self.protocol_version: str | None = None

    @abstractmethod
    async def open(self) -> None:
        """Connect (spawn, open the stream). Raises BackendUnavailable."""

    @abstractmethod
    async def send(self, msg: Message, headers: Mapping[str, str] | None = None) -> None:
        """Send one message. Raises BackendUnavailable if it cannot be delivered."""

    def cancel(self, request_id: RequestId) -> None:
        """Abort a request in flight (modern era: closing its response stream is the cancellation)."""

    @abstractmethod
    async def close(self) -> None:
        """End the connection; no listener callbacks after this returns."""

    def lost(self, reason: str) -> None:
        if self.alive and not self.closing:
            self.alive = False
            self.listener.on_channel_lost(self, reason)
        self.alive = False

    def oversized(
        self, size: int, related: RequestId | None, head: bytes = b"", tail: bytes = b"", exact: bool = True
    ) -> Message | None:
        """A backend message over `max_message`, not carried: logged, and the error that answers
        its request in its place (None when it answers no request: a notification, a request)."""
        self.listener.on_backend_log(
            self, too_large_text(size, self.max_message, exact=exact, what="a message from the backend")
        )
        return oversized_answer(head, tail, size, self.max_message, related, exact=exact, backend=self.backend)

    @property
    def describe(self) -> str:
        return f"{self.transport} channel #{self.id} to {self.backend}"
