"""The one interface a view (the TUI, the control CLI) uses to read and drive a router.

Reading: `subscribe()` gives a feed of the core's events (drained on an interval), and a few async
queries give the state a view starts from (the same JSON the management API serves). Acting: add,
remove, enable, disable, restart a backend; close a session. Failures are `ControlError` with the
router's own message, so a view can show it as is.

`LocalControl` is the router in this process. A second implementation over the management API
(`/events` and the REST routes) serves a router running elsewhere; views cannot tell them apart.
This module never imports Textual.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol

from app.proxy.backend import OUTCOME_STATUS, Backend, CommandResult
from app.proxy.config import BackendConfig, ConfigError
from app.proxy.events import EVENT_TYPES, Event, Subscription
from app.proxy.jsonrpc import JSON
from app.proxy.replay import ReplayRefused, replay, router_call
from app.proxy.router import Router, UnknownBackend


class ControlError(Exception):
    """The router refused an action or a query; the message is the router's own, fit to show."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


class EventFeed(Protocol):
    """Events published since the feed was opened: `drain()` them on an interval."""

    dropped: int  # events lost because the view fell behind (reset by the view once shown)
    closed: bool

    def drain(self) -> list[Event]: ...

    def close(self) -> None: ...


class RouterControl(Protocol):
    """What a view may know of a router and do to it."""

    @property
    def url(self) -> str | None:
        """Where the router listens (`http://127.0.0.1:8090`), for the URLs a client is given."""
        ...

    def subscribe(self, kinds: Iterable[str] | None = None) -> EventFeed:
        """A feed of events of these types (`traffic`, `session`, `backend_state`, `backend_log`,
        `health`, `backend_list`, `router`; None: all)."""
        ...

    async def status(self, reveal: bool = False) -> JSON:
        """As `GET /status`: the router and every backend's snapshot (secrets masked unless `reveal`)."""
        ...

    async def backend(self, name: str, reveal: bool = False) -> JSON:
        """As `GET /backends/{name}`, with `last_change`: what the last restart changed in its catalog."""
        ...

    async def catalog(self, name: str) -> JSON:
        """As `GET /backends/{name}/catalog`: `{"tools": [...], "resources": [...], "prompts": [...]}`
        as the backend lists them (empty when it has not been reached yet)."""
        ...

    async def ack_change(self, name: str) -> JSON:
        """The user has seen the backend's `last_change` (views drop the badge); its snapshot."""
        ...

    async def call(self, name: str, method: str, params: JSON | None = None) -> JSON:
        """Send one request to the backend on a session of the router's own (as `POST
        /backends/{name}/call`). Returns `{"request", "response", "error", "latency_ms", "asked",
        "needs_client", ...}`: `response` is the JSON-RPC answer as the backend sent it, `error` why
        there is none."""
        ...

    async def replay(self, name: str, message: JSON, direction: str | None = None) -> JSON:
        """Send a request from the trace again to the backend as it is now (as `call`). A request
        that needs the client's session is a ControlError (409) saying why."""
        ...

    async def health(self, name: str) -> list[JSON]:
        """As `GET /backends/{name}/health`'s samples, oldest first."""
        ...

    async def log(self, name: str) -> list[str]:
        """As `GET /backends/{name}/log`'s lines, oldest first."""
        ...

    async def sessions(self) -> list[JSON]:
        """As `GET /sessions`."""
        ...

    async def add_backend(self, spec: JSON) -> JSON:
        """As `POST /backends` (`{"name","url"}` or `{"name","command","args","env","cwd","watch"}`);
        returns the new backend's snapshot."""
        ...

    async def remove_backend(self, name: str) -> None: ...

    async def enable(self, name: str) -> JSON: ...

    async def disable(self, name: str) -> JSON: ...

    async def restart(self, name: str) -> JSON:
        """Blue/green restart; returns the backend's snapshot, raises ControlError if it failed."""
        ...

    async def close_session(self, session_id: str) -> None: ...


def event_kinds(names: Iterable[str] | None) -> list[type[Event]] | None:
    """Event classes for the given type names (None: all); an unknown name is a ControlError."""
    if names is None:
        return None
    wanted = set(names)
    known = set(EVENT_TYPES.values())
    if not wanted <= known:
        raise ControlError(f"unknown event types {sorted(wanted - known)}; known: {sorted(known)}")
    return [k for k, name in EVENT_TYPES.items() if name in wanted]


class LocalControl:
    """The router in this process, driven directly."""

    def __init__(self, router: Router, *, feed_size: int = 50_000) -> None:
        self.router = router
        self.feed_size = feed_size

    @property
    def url(self) -> str | None:
        return self.router.listen_url

    def subscribe(self, kinds: Iterable[str] | None = None) -> Subscription:
        return self.router.bus.subscribe(maxsize=self.feed_size, kinds=event_kinds(kinds))

    def _backend(self, name: str) -> Any:
        try:
            return self.router.resolve(name)
        except UnknownBackend as exc:
            raise ControlError(str(exc), 404) from None

    async def status(self, reveal: bool = False) -> JSON:
        return self.router.status(reveal)

    async def backend(self, name: str, reveal: bool = False) -> JSON:
        snap: JSON = self._backend(name).snapshot(reveal)
        return snap

    async def catalog(self, name: str) -> JSON:
        return dict(self._backend(name).catalog or {})

    async def ack_change(self, name: str) -> JSON:
        b = self._backend(name)
        b.ack_change()
        snap: JSON = b.snapshot()
        return snap

    async def call(self, name: str, method: str, params: JSON | None = None) -> JSON:
        return (await router_call(self._backend(name), method, params)).to_dict()

    async def replay(self, name: str, message: JSON, direction: str | None = None) -> JSON:
        try:
            outcome = await replay(self._backend(name), message, direction)
        except ReplayRefused as exc:
            raise ControlError(str(exc), 409) from None
        return outcome.to_dict()

    async def health(self, name: str) -> list[JSON]:
        return [s.to_dict() for s in self._backend(name).health]

    async def log(self, name: str) -> list[str]:
        return list(self._backend(name).log_tail)

    async def sessions(self) -> list[JSON]:
        return self.router.sessions_snapshot()

    async def add_backend(self, spec: JSON) -> JSON:
        try:
            config = BackendConfig.from_dict(spec)
            snap: JSON = self.router.add_backend(config).snapshot()
        except ConfigError as exc:
            raise ControlError(str(exc), 409 if "already exists" in str(exc) else 400) from None
        return snap

    async def remove_backend(self, name: str) -> None:
        try:
            await self.router.remove_backend(name)
        except UnknownBackend as exc:
            raise ControlError(str(exc), 404) from None

    # The same commands as the management API, through the same router methods: applied in order,
    # and a command that lost to another (a restart to a removal) says so.
    async def enable(self, name: str) -> JSON:
        try:
            b, result = self.router.enable(name)
        except UnknownBackend as exc:
            raise ControlError(str(exc), 404) from None
        return _answer(b, result, "enabled")

    async def disable(self, name: str) -> JSON:
        try:
            b, result = await self.router.disable(name)
        except UnknownBackend as exc:
            raise ControlError(str(exc), 404) from None
        return _answer(b, result, "disabled")

    async def restart(self, name: str) -> JSON:
        try:
            b, result = await self.router.restart(name, "restart requested from the terminal UI")
        except UnknownBackend as exc:
            raise ControlError(str(exc), 404) from None
        return _answer(b, result, "restarted")

    async def close_session(self, session_id: str) -> None:
        session = self.router.sessions.get(session_id)
        if session is None:
            raise ControlError(f"unknown session '{session_id[:12]}'", 404)
        await session.close("closed from the terminal UI")


def _answer(backend: Backend, result: CommandResult, wanted: str) -> JSON:
    """The backend's snapshot if the command did what was asked; else the router's own refusal."""
    if result.outcome != wanted:
        raise ControlError(result.detail, OUTCOME_STATUS.get(result.outcome, 409))
    snap: JSON = backend.snapshot()
    return snap
