"""uvicorn's httptools protocol, writing each response's head and first body chunk in one syscall.

uvicorn writes the status line and headers as soon as the app sends `http.response.start`, then
the body separately: two socket writes per JSON answer. On the router's hot path that second write
is a measurable share of the per-call cost, so the head waits for the first body chunk.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle

from app.proxy.asgi import ABORT_HOOK, DISCONNECT_HOOKS

COALESCE_MAX = 64 * 1024


class _CoalescingTransport:
    """Holds the response head until the first body write (or close), then writes both at once."""

    __slots__ = ("_held", "_started", "_transport")

    def __init__(self, transport: asyncio.Transport) -> None:
        self._transport = transport
        self._held: bytes | None = None
        self._started = False

    def write(self, data: bytes) -> None:
        if not self._started:
            # The first write of a cycle is always its head (uvicorn writes it in one piece).
            self._started = True
            self._held = data
            return
        if self._held is not None:
            if len(data) > COALESCE_MAX:
                self._flush()  # joining would copy a large body once more for no gain
            else:
                data = self._held + data
                self._held = None
        self._transport.write(data)

    def _flush(self) -> None:
        if self._held is not None:
            held, self._held = self._held, None
            self._transport.write(held)

    def close(self) -> None:
        self._flush()
        self._transport.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class CoalescingHttpToolsProtocol(HttpToolsProtocol):
    """Also tells the app at once when a client goes away (see `app.proxy.asgi.watch_disconnect`)."""

    def _start_asgi_task(self, cycle: RequestResponseCycle, app: Any) -> None:
        cycle.transport = _CoalescingTransport(cycle.transport)  # type: ignore[assignment]
        cycle.scope[DISCONNECT_HOOKS] = []  # type: ignore[literal-required]
        cycle.scope[ABORT_HOOK] = self.transport.abort  # type: ignore[literal-required]
        super()._start_asgi_task(cycle, app)

    def connection_lost(self, exc: Exception | None) -> None:
        cycle = self.cycle
        super().connection_lost(exc)
        if cycle is not None and cycle.disconnected:
            hooks: list[Callable[[], None]] = cycle.scope.get(DISCONNECT_HOOKS) or []  # type: ignore[assignment]
            for hook in list(hooks):
                hook()
