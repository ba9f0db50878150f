"""The router: backends by name, client sessions by id, the event bus, one HTTP client pool."""

from __future__ import annotations

import asyncio
import time
from collections import Counter, deque
from typing import Literal

from app import __version__
from app.proxy.backend import Backend, CommandResult
from app.proxy.config import BackendConfig, ConfigError, quote
from app.proxy.events import BackendListEvent, EventBus, RouterEvent, SessionEvent
from app.proxy.http_client import HTTPClient
from app.proxy.jsonrpc import JSON, msg_meta
from app.proxy.limits import DEFAULT_MAX_MESSAGE
from app.proxy.modern_clients import ModernClients, identity
from app.proxy.session import ClientTransport, Era, Session

DEFAULT_MAX_BODY = DEFAULT_MAX_MESSAGE  # a request body is one message (or one batch of them)


DEFAULT_MAX_SESSIONS = 32


class SessionLimit(Exception):
    """A backend has --max-sessions client sessions, all of them active: a new one cannot start."""


class UnknownBackend(LookupError):
    def __init__(self, name: str | None) -> None:
        super().__init__(name)
        self.name = name

    def __str__(self) -> str:
        if self.name is None:
            return "no backend is configured: add one with -b NAME=URL, POST /backends, or start with --demo"
        return f"unknown backend {quote(self.name)}"


NOTICES_KEPT = 50
DEFAULT_PARK_AFTER = 30.0


class Router:
    def __init__(
        self,
        *,
        hold: float = 30.0,
        resend: bool = True,
        health_interval: float = 5.0,
        max_body: int | None = None,
        max_message: int = DEFAULT_MAX_MESSAGE,
        default: str | None = None,
        session_idle_timeout: float = 1800.0,
        max_sessions: int = DEFAULT_MAX_SESSIONS,
        probe_timeout: float = 5.0,
        park_after: float = DEFAULT_PARK_AFTER,
    ) -> None:
        self.bus = EventBus()
        self.backends: dict[str, Backend] = {}
        self.sessions: dict[str, Session] = {}
        self.hold = hold
        # Re-send requests safe to send twice when their backend dies with them in flight.
        self.resend = resend
        self.health_interval = health_interval
        self.max_message = max_message
        # A client's request body; by default the same limit as any message (--max-message).
        self.max_body = max_body if max_body is not None else max_message
        self._default = default
        self.started = time.time()
        self.listen_url: str | None = None
        self._http: HTTPClient | None = None
        self.running = False
        # A client that vanished without DELETE would otherwise keep its backend session (and, for
        # stdio, its process) forever.
        self.session_idle_timeout = session_idle_timeout
        # Client sessions per backend (for stdio each is a process): a client stuck in a reconnect
        # loop must not start hundreds.
        self.max_sessions = max_sessions
        # How long a probe waits for an answer; also how long a silent backend goes unremarked.
        self.probe_timeout = probe_timeout
        # Seconds a handshake-era session with no stream open must have been idle for a swap to
        # leave its backend side to its next request (`Session.parkable`); negative: never.
        self.park_after = park_after
        self._reaper: asyncio.Task[None] | None = None
        # Orders the commands applied to backends (add, remove, enable, disable, restart), so a
        # script firing them concurrently can tell from the answers which one took effect last.
        self.command_seq = 0
        # Warnings kept for a view that subscribes later: the TUI's feed starts after the startup notes.
        self.notices: deque[RouterEvent] = deque(maxlen=NOTICES_KEPT)
        # 2026-07-28-era clients share one session per backend: the sessions list shows them from this.
        self.modern_clients = ModernClients()

    @property
    def http(self) -> HTTPClient:
        if self._http is None:
            raise RuntimeError("router not started")
        return self._http

    @property
    def default_name(self) -> str | None:
        if self._default is not None and self._default in self.backends:
            return self._default
        return next(iter(self.backends), None)

    async def start(self) -> None:
        self._http = HTTPClient()
        self.running = True
        for b in self.backends.values():
            b.start()
        self._reaper = asyncio.create_task(self._reap_idle_sessions())

    async def _reap_idle_sessions(self) -> None:
        period = min(60.0, max(self.session_idle_timeout / 4, 0.05))
        while True:
            await asyncio.sleep(period)  # a housekeeping period, not a synchronisation
            now = time.time()
            for s in list(self.sessions.values()):
                idle = now - s.last_activity
                if idle > self.session_idle_timeout and not s.pending and s.outbox.readers == 0:
                    await s.close(f"idle for {idle:.0f} s without an open stream")

    async def stop(self) -> None:
        self.running = False
        if self._reaper is not None:
            self._reaper.cancel()
        await asyncio.gather(*(b.stop() for b in self.backends.values()), return_exceptions=True)
        for s in list(self.sessions.values()):
            await s.close("router stopped")
        if self._http is not None:
            await self._http.close()
            self._http = None
        self.bus.close()

    # ------------------------------------------------------------------ backends
    def _next_seq(self) -> int:
        self.command_seq += 1
        return self.command_seq

    def add_backend(self, config: BackendConfig) -> Backend:
        if config.name in self.backends:
            raise ConfigError(f"backend '{config.name}' already exists")
        backend = Backend(self, config)
        backend.added_seq = self._next_seq()
        self.backends[config.name] = backend
        if self.running:
            backend.start()
        self.bus.publish(BackendListEvent(action="added", backend=config.name))
        return backend

    async def remove_backend(self, name: str) -> CommandResult:
        """Remove at once (the name is free again now); returns when its processes are gone."""
        backend = self.backends.pop(name, None)
        if backend is None:
            raise UnknownBackend(name)
        seq = self._next_seq()
        if self._default == name:
            self._default = None
        self.bus.publish(BackendListEvent(action="removed", backend=name))
        await backend.stop(f"backend '{name}' was removed")
        return CommandResult("removed", f"backend '{name}' was removed", seq)

    def enable(self, name: str) -> tuple[Backend, CommandResult]:
        backend = self.resolve(name)
        return backend, backend.enable(self._next_seq())

    async def disable(self, name: str) -> tuple[Backend, CommandResult]:
        backend = self.resolve(name)
        return backend, await backend.disable(self._next_seq())

    async def restart(self, name: str, reason: str) -> tuple[Backend, CommandResult]:
        backend = self.resolve(name)
        return backend, await backend.restart(reason, self._next_seq())

    def resolve(self, name: str | None) -> Backend:
        key = name if name is not None else self.default_name
        backend = self.backends.get(key) if key is not None else None
        if backend is None:
            raise UnknownBackend(name)
        return backend

    # ------------------------------------------------------------------ sessions
    def new_session(self, backend: Backend, era: Era, transport: ClientTransport) -> Session:
        session = Session(self, backend, era=era, client_transport=transport)
        self.sessions[session.id] = session
        backend.sessions.add(session)
        self.bus.publish(
            SessionEvent(action="opened", session=session.id, backend=backend.name, transport=transport, era=era)
        )
        return session

    async def open_session(self, backend: Backend, era: Era, transport: ClientTransport) -> Session:
        """A new client session, within --max-sessions: the least recently active idle one makes room.

        Raises SessionLimit when every session of the backend is active (an open stream or a
        request in flight): those are never closed under a client.
        """
        while len(backend.sessions) >= self.max_sessions:
            idle = [s for s in backend.sessions if s.idle]
            if not idle:
                n = len(backend.sessions)
                raise SessionLimit(
                    f"backend '{backend.name}' has {n} client sessions, all active (--max-sessions {self.max_sessions});"
                    " end one or raise the limit"
                )
            victim = min(idle, key=lambda s: s.last_activity)
            quiet = time.time() - victim.last_activity
            await victim.close(
                f"closed to make room: backend '{backend.name}' is at --max-sessions {self.max_sessions}"
                f" and this session was the least recently active (idle {quiet:.0f} s)"
            )
        return self.new_session(backend, era, transport)

    def modern_session(self, backend: Backend) -> Session:
        """The one session that carries every modern-era request for a backend."""
        if backend.modern_session is None or backend.modern_session.closed:
            backend.modern_session = Session(
                self, backend, era="modern", client_transport="streamable-http", shared=True
            )
        return backend.modern_session

    def forget_session(self, session: Session) -> None:
        self.sessions.pop(session.id, None)
        session.backend.sessions.discard(session)
        if session.backend.modern_session is session:
            session.backend.modern_session = None

    # ------------------------------------------------------------------ reporting
    def log(self, backend: str, line: str) -> None:
        b = self.backends.get(backend)
        if b is not None:
            b.note(line)

    def status(self, reveal: bool = False) -> JSON:
        """The router and its backends; secrets masked unless `reveal`."""
        return {
            "router": "mcp-dev-router",
            "version": __version__,
            "url": self.listen_url,
            "uptime_s": round(time.time() - self.started, 3),
            "default": self.default_name,
            "hold_s": self.hold,
            "max_sessions": self.max_sessions,
            "max_message": self.max_message,
            "probe_timeout_s": self.probe_timeout,
            "resend": self.resend,
            "health_interval_s": self.health_interval,
            "backends": [b.snapshot(reveal) for b in self.backends.values()],
            "sessions": len(self.sessions),
            # For leak checks: tasks alive in the router's loop and connections in its HTTP pool.
            "tasks": len(asyncio.all_tasks()),
            "notices": [n.to_dict() for n in self.notices],
        }

    def notice(self, level: Literal["info", "warning", "error"], text: str) -> None:
        """Tell every view (a warning about the config, the saved state, the trace file, ...)."""
        event = RouterEvent(level=level, text=text)
        self.notices.append(event)
        self.bus.publish(event)

    def sessions_snapshot(self) -> list[JSON]:
        handshake = [s.snapshot() for s in self.sessions.values()]
        # A modern client has no session of its own: its requests in flight are counted in its
        # backend's shared session, by the client each names in its `_meta`.
        pending: Counter[tuple[str, str | None, str | None]] = Counter()
        for backend in self.backends.values():
            shared = backend.modern_session
            if shared is not None and not shared.closed:
                for p in shared.pending.values():
                    pending[(backend.name, *identity(msg_meta(p.msg)))] += 1
        return handshake + self.modern_clients.snapshot(self.backends, self.session_idle_timeout, pending)

    def __repr__(self) -> str:
        return f"Router(backends={list(self.backends)}, sessions={len(self.sessions)})"
