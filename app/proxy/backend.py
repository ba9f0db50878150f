"""A configured backend: its state, health history, catalog, supervision and restarts."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, TypeVar
from urllib.parse import urlparse

from app import __version__
from app.proxy import jsonrpc
from app.proxy.calls import RouterCallError, RouterCalls, RouterCallTimeout, catalog_changes, list_catalog
from app.proxy.channels.base import BackendUnavailable, Channel, ChannelListener, ChannelMode, NotAnEndpoint
from app.proxy.channels.sse_legacy import LegacySSEChannel
from app.proxy.channels.stdio import StdioChannel
from app.proxy.channels.streamable import StreamableHTTPChannel
from app.proxy.config import BackendConfig
from app.proxy.drift import catalog_drift, describe
from app.proxy.events import BackendListEvent, BackendLogEvent, BackendStateEvent, CatalogChangeEvent, HealthEvent
from app.proxy.jsonrpc import JSON, Message, RequestId
from app.proxy.limits import cut_line
from app.proxy.secrets import mask_backend

if TYPE_CHECKING:
    from app.proxy.router import Router
    from app.proxy.session import Session

State = Literal["starting", "up", "down", "restarting", "disabled", "failed"]
Outcome = Literal["restarted", "failed", "enabled", "disabled", "removed"]
T = TypeVar("T")

DOWN_PROBE_INTERVAL = 0.2
PROBE_TIMEOUT = 5.0  # the default of --probe-timeout
START_TIMEOUT = 15.0
CRASH_WINDOW = 60.0
CRASH_LIMIT = 5
HEALTH_HISTORY = 600

PROBE_INIT_PARAMS: JSON = {
    "protocolVersion": jsonrpc.LATEST_HANDSHAKE_VERSION,
    "capabilities": {},
    "clientInfo": {"name": "mcp-dev-router-probe", "version": __version__},
}


@dataclass(frozen=True, slots=True)
class CommandResult:
    """What a command on a backend actually did: `outcome` says it, `detail` says it to a person.

    A restart that lost to a later disable or remove answers "disabled" or "removed", not
    "restarted"; `seq` orders the commands the router applied (None: refused, nothing changed).
    """

    outcome: Outcome
    detail: str
    seq: int | None = None


# The HTTP status (and ControlError status) of a command that did not do what was asked.
OUTCOME_STATUS = {"removed": 404, "disabled": 409, "failed": 502}


class Superseded(Exception):
    """A later command (disable, remove) changed what should run while this step was under way."""


@dataclass(slots=True)
class HealthSample:
    ts: float
    ok: bool
    latency_ms: float | None
    detail: str | None = None

    def to_dict(self) -> JSON:
        return {"ts": self.ts, "ok": self.ok, "latency_ms": self.latency_ms, "detail": self.detail}


class _RouterListener:
    """Listener for the router's own connections (probes, a stdio backend's main process, replays)."""

    def __init__(self, backend: Backend, calls: RouterCalls, on_lost: Any = None) -> None:
        self.backend = backend
        self.calls = calls
        self.on_lost = on_lost
        self.asked: list[str] = []  # what the backend asked of a client here (refused): a replay says so

    def on_backend_message(self, channel: Channel, msg: Message, related: RequestId | None, status: int | None) -> None:
        self.backend.heard()
        if self.calls.take(msg):
            return
        if msg.is_request and msg.id is not None:
            if len(self.asked) < 20:
                self.asked.append(msg.method or "?")
            # The router's own connection declares no client capabilities; refuse politely.
            reply = jsonrpc.error(
                msg.id, jsonrpc.METHOD_NOT_FOUND, "the router's probe connection has no client features"
            )
            task = asyncio.ensure_future(channel.send(reply))
            task.add_done_callback(lambda t: t.cancelled() or t.exception())

    def on_channel_lost(self, channel: Channel, reason: str) -> None:
        self.calls.fail_on(channel, reason)
        if self.on_lost is not None:
            self.on_lost(channel, reason)

    def on_backend_log(self, channel: Channel, line: str, garbage: bool = False) -> None:
        self.backend.log(line, channel, garbage=garbage)


RouterListener = _RouterListener  # the workbench's calls (app.proxy.replay) listen the same way


class Backend:
    def __init__(self, router: Router, config: BackendConfig) -> None:
        self.router = router
        self.config = config
        self.name = config.name
        self.transport: str | None = None
        # The URL that answered MCP: the configured one, or for a URL with no path the first of
        # as given, /mcp, /sse that did (see `_candidates`).
        self.endpoint: str | None = None
        if config.kind == "stdio":
            self.transport = "stdio"
        elif urlparse(config.url or "").path.rstrip("/").endswith("/sse"):
            self.transport = "sse"
            self.endpoint = config.url
        elif urlparse(config.url or "").path not in ("", "/"):
            self.endpoint = config.url
        self.state: State = "starting"
        self.state_reason: str | None = None
        self.state_since = time.time()
        self._up = asyncio.Event()
        self._kick = asyncio.Event()
        self._enabled = asyncio.Event()
        self.catalog: dict[str, list[JSON]] | None = None
        # What the last restart or swap changed in the catalog (app.proxy.drift), until the next one.
        self.last_change: JSON | None = None
        self.server_info: JSON | None = None
        self.capabilities: JSON | None = None
        self.protocol_version: str | None = None
        self.health: deque[HealthSample] = deque(maxlen=HEALTH_HISTORY)
        self.latency_ms: float | None = None
        self.restarts = 0
        self.log_tail: deque[str] = deque(maxlen=200)
        self.sessions: set[Session] = set()
        self.modern_session: Session | None = None
        self._main: StdioChannel | None = None
        self._main_calls = RouterCalls()
        self._crashes: deque[float] = deque()
        self._failures_in_row = 0
        # Commands on this backend are applied in order against one state: those that change what
        # should run (disable, remove) bump the generation at once and set `_changed`; every
        # lifecycle step that starts a process (first start, crash restart, restart by API, key or
        # watcher) holds `_restart_lock`, captures the generation first and gives up, stopping what
        # it started, when the generation moved. Disable and remove then take the lock themselves
        # to stop what runs, so nothing started before them survives them.
        self._restart_lock = asyncio.Lock()
        self._gen = 0
        self._changed = asyncio.Event()
        self._superseded_by: Outcome = "disabled"
        self._tasks: list[asyncio.Task[None]] = []
        self._stopped = False
        self.added_seq: int | None = None
        # Silence: when a message last came from the backend, and since when a probe has gone
        # unanswered (perf_counter, like Pending.started).
        self.last_heard = 0.0
        self._unanswered_since: float | None = None
        self._silence_noted = False
        self._last_probe_silent = False

    # ------------------------------------------------------------------ describing
    @property
    def accepting(self) -> bool:
        return self.state in ("up", "restarting")

    @property
    def pids(self) -> list[int]:
        pids = []
        for s in self.all_sessions():
            ch = s.channel
            if isinstance(ch, StdioChannel) and ch.pid is not None and ch.alive:
                pids.append(ch.pid)
        if self._main is not None and self._main.pid is not None and self._main.alive:
            pids.insert(0, self._main.pid)
        return pids

    def all_sessions(self) -> list[Session]:
        out = list(self.sessions)
        if self.modern_session is not None:
            out.append(self.modern_session)
        return out

    def heard(self) -> None:
        """A message came from the backend: it is answering."""
        self.last_heard = time.perf_counter()

    def not_answering(self) -> float | None:
        """Seconds a probe or a request has waited with not a word from the backend since, once
        that is longer than --probe-timeout (a breakpoint, a deadlock, SIGSTOP); else None."""
        if not self.accepting:
            return None  # a backend that is down says why in its state reason
        since = self._unanswered_since
        for session in self.all_sessions():
            for p in session.pending.values():
                if p.channel is not None and not p.listen and (since is None or p.started < since):
                    since = p.started
        if since is None:
            return None
        silent = time.perf_counter() - max(since, self.last_heard)
        return silent if silent > self.router.probe_timeout else None

    def snapshot(self, reveal: bool = False) -> JSON:
        """The backend as views and the API show it; secrets masked unless `reveal`."""
        last = self.health[-1] if self.health else None
        silent = self.not_answering()
        snap: JSON = {
            **self.config.to_dict(secrets=reveal),  # headers masked by the config unless revealed
            "kind": self.config.kind,
            "target": self.config.target,
            "transport": self.transport,
            "endpoint": self.endpoint,
            "state": self.state,
            "reason": self.state_reason,
            "since": self.state_since,
            "sessions": len(self.sessions),
            "restarts": self.restarts,
            "latency_ms": self.latency_ms,
            "last_probe": last.to_dict() if last else None,
            "server": self.server_info,
            "protocol_version": self.protocol_version,
            "tools": [t.get("name") for t in (self.catalog or {}).get("tools", [])],
            "resources": [r.get("uri") or r.get("name") for r in (self.catalog or {}).get("resources", [])],
            "prompts": [p.get("name") for p in (self.catalog or {}).get("prompts", [])],
            "pids": self.pids,
            "default": self.router.default_name == self.name,
            # Still "up" (its calls are kept and answered when it resumes), but silent this long.
            "not_answering_s": None if silent is None else round(silent, 1),
            "detail": None if silent is None else f"not answering for {silent:.0f} s",
            "last_change": self.last_change,
        }
        return snap if reveal else mask_backend(snap)

    def ack_change(self) -> None:
        """The user has looked at the last catalog change: views drop its badge."""
        change = self.last_change
        if change is None or change.get("seen"):
            return
        change["seen"] = True
        self.router.bus.publish(
            CatalogChangeEvent(backend=self.name, count=int(change["count"]), seen=True, summary=describe(change))
        )

    def down_message(self, hold: float) -> str:
        why = f": {self.state_reason}" if self.state_reason else ""
        return f"backend '{self.name}' is {self.state}{why} (the request waited {hold:g} s for it)"

    # ------------------------------------------------------------------ state
    def _set_state(self, state: State, reason: str | None = None) -> None:
        if state == self.state and reason == self.state_reason:
            return
        previous = self.state
        self.state = state
        self.state_reason = reason
        self.state_since = time.time()
        if self.accepting:
            self._up.set()
        else:
            self._up.clear()
        if state != previous:
            self.router.bus.publish(BackendStateEvent(backend=self.name, state=state, previous=previous, reason=reason))

    async def wait_up(self, timeout: float) -> bool:
        if self._up.is_set():
            return True
        try:
            await asyncio.wait_for(self._up.wait(), timeout)
        except TimeoutError:
            return False
        return True

    def report_failure(self, reason: str, channel: Channel | None = None) -> None:
        """A session's connection failed: look again now (an HTTP failure is itself evidence)."""
        if self.config.kind == "http" and self.state == "up":
            self._set_state("down", reason)
        self._kick.set()

    def log(
        self,
        line: str,
        channel: Channel | None = None,
        stream: Literal["stderr", "stdout", "router"] = "stderr",
        garbage: bool = False,
    ) -> None:
        if garbage:
            stream = "stdout"
            if not self.accepting and self.state not in ("disabled", "failed"):
                # It answers, but not in MCP: say so now rather than after the start timeout.
                self._set_state("down", f"speaks something other than MCP: {line[:120]}")
        if isinstance(channel, StdioChannel) and channel.pid is not None and stream != "router":
            line = f"[{channel.pid}] {line}"
        line = cut_line(line)
        self.log_tail.append(line)
        self.router.bus.publish(BackendLogEvent(backend=self.name, line=line, stream=stream))

    def note(self, line: str) -> None:
        self.log(line, stream="router")

    # ------------------------------------------------------------------ channels
    def new_channel(self, listener: ChannelListener, mode: ChannelMode) -> Channel:
        ch = self._new_channel(listener, mode)
        ch.max_message = self.router.max_message
        return ch

    def _new_channel(self, listener: ChannelListener, mode: ChannelMode) -> Channel:
        cfg = self.config
        if cfg.kind == "stdio":
            assert cfg.command is not None
            return StdioChannel(self.name, listener, mode, cfg.command, cfg.args, cfg.env, cfg.cwd)
        url = self.endpoint or cfg.url
        assert url is not None
        if self.transport == "sse":
            if mode == "modern":
                raise BackendUnavailable(f"backend '{self.name}' speaks legacy HTTP+SSE, which has no 2026-07-28 era")
            return LegacySSEChannel(self.name, listener, mode, self.router.http, url, cfg.headers)
        return StreamableHTTPChannel(self.name, listener, mode, self.router.http, url, cfg.headers)

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        self._stopped = False
        if self.config.enabled:
            self._enabled.set()
        else:
            self._set_state("disabled")
        monitor = self._monitor_stdio() if self.config.kind == "stdio" else self._monitor_http()
        self._tasks.append(asyncio.create_task(monitor, name=f"monitor:{self.name}"))
        self._tasks.append(asyncio.create_task(self._watch_silence(), name=f"silence:{self.name}"))
        if self.config.watch:
            self._tasks.append(asyncio.create_task(self._watch(), name=f"watch:{self.name}"))

    def _supersede(self, by: Outcome) -> None:
        """A command changed what should run: steps under way see it and stop what they started."""
        self._gen += 1
        self._superseded_by = by
        self._changed.set()
        self._changed = asyncio.Event()

    async def _unless_superseded(self, changed: asyncio.Event, step: Awaitable[T]) -> T:
        """Await `step` unless `changed` fires first: then cancel it and raise Superseded. The step's
        own clean-up (closing the process it started) is over before this returns or raises."""
        task = asyncio.ensure_future(step)
        watch = asyncio.ensure_future(changed.wait())
        try:
            await asyncio.wait({task, watch}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            watch.cancel()
            if not task.done():
                task.cancel()
                while not task.done():
                    # Even if we are cancelled too: what the step started must be stopped first.
                    with contextlib.suppress(asyncio.CancelledError):
                        await asyncio.wait({task})
        if task.cancelled():
            raise Superseded(self._superseded_by)
        return task.result()

    def _lost(self, what: str) -> CommandResult:
        by = "removed" if self._stopped else self._superseded_by
        detail = f"backend '{self.name}' was {by} while {what}; what it started was stopped"
        self.note(detail)
        return CommandResult(by, detail)

    async def stop(self, reason: str = "router stopped") -> CommandResult:
        """Remove: no process of this backend outlives this call."""
        self._stopped = True
        self._supersede("removed")
        async with self._restart_lock:  # a step under way gives up and stops what it started
            for t in self._tasks:
                t.cancel()
            for t in self._tasks:
                with contextlib.suppress(BaseException):
                    await t
            self._tasks.clear()
            await asyncio.gather(*(s.close(reason) for s in self.all_sessions()), return_exceptions=True)
            if self._main is not None:
                main, self._main = self._main, None
                main.closing = True
                await main.close()
            self._up.clear()
        return CommandResult("removed", reason)

    def enable(self, seq: int | None = None) -> CommandResult:
        if self._stopped:
            return CommandResult("removed", f"backend '{self.name}' was removed")
        self.config.enabled = True
        self._enabled.set()
        if self.state == "disabled":
            self._set_state("starting", "enabled")
        self._kick.set()
        self.router.bus.publish(BackendListEvent(action="changed", backend=self.name))
        return CommandResult("enabled", f"backend '{self.name}' is enabled", seq)

    async def disable(self, seq: int | None = None) -> CommandResult:
        """Disabled means not running: wins over a restart under way, and returns once the
        processes are gone. The client sessions stay (their requests are held) and are rebuilt
        on fresh processes when the backend is enabled."""
        if self._stopped:
            return CommandResult("removed", f"backend '{self.name}' was removed")
        self.config.enabled = False
        self._enabled.clear()
        self._supersede("disabled")
        self._set_state("disabled")
        self.router.bus.publish(BackendListEvent(action="changed", backend=self.name))
        if self.config.kind == "stdio":
            async with self._restart_lock:
                if self._stopped:
                    # Removed while this waited for the lock: the removal, next in line, ends the
                    # processes. "Disabled" now would claim they are gone while they still run.
                    return CommandResult("removed", f"backend '{self.name}' was removed")
                await self._stop_processes("backend disabled")
        return CommandResult("disabled", f"backend '{self.name}' is disabled", seq)

    async def _stop_processes(self, reason: str) -> None:
        """With the lock held: end the main process and the sessions' backend processes."""
        main, self._main = self._main, None
        await asyncio.gather(*(s.release_channels(reason) for s in self.all_sessions()))
        if main is not None:
            main.closing = True
            await main.close()
        if self.config.enabled and not self._stopped:
            # Enabled again while the processes were being stopped: start afresh at once.
            self._set_state("starting", "enabled")
            self._kick.set()

    async def _pause(self, seconds: float) -> None:
        """Wait for the next probe time, or less if someone asks for a look now."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._kick.wait(), seconds)
        self._kick.clear()

    def _record(self, ok: bool, latency: float | None, detail: str | None) -> None:
        ms = None if latency is None else round(latency * 1000, 3)
        if ok:
            self.latency_ms = ms
        self.health.append(HealthSample(time.time(), ok, ms, detail))
        self.router.bus.publish(HealthEvent(backend=self.name, ok=ok, latency_ms=ms, detail=detail))

    def _came_up(self, catalog: dict[str, list[JSON]] | None, reason: str | None) -> None:
        old = self.catalog
        if catalog is not None:
            self.catalog = catalog
            drift = catalog_drift(old, catalog, reason or "came back up")
            if drift is not None:
                self.last_change = drift
                if drift["count"]:
                    self.note(f"catalog: {describe(drift)}")
                self.router.bus.publish(
                    CatalogChangeEvent(
                        backend=self.name, count=drift["count"], seen=drift["seen"], summary=describe(drift)
                    )
                )
        changed = catalog_changes(old, self.catalog)
        if changed:
            self.note(f"{', '.join(changed)} changed")
        self._failures_in_row = 0
        self._set_state("up", reason)
        for s in self.all_sessions():
            s.check_catalog()

    async def _watch_silence(self) -> None:
        """Say in the log when the backend stops and starts answering again (the views refresh on it)."""
        while True:
            await asyncio.sleep(1.0)  # a housekeeping period: the snapshot computes the figure itself
            silent = self.not_answering()
            if silent is not None and not self._silence_noted:
                self._silence_noted = True
                self.note(f"not answering for {silent:.0f} s (its calls are kept until it does)")
            elif silent is None and self._silence_noted:
                self._silence_noted = False
                self.note("answering again")

    def _probe_started(self) -> None:
        if self._unanswered_since is None:
            self._unanswered_since = time.perf_counter()

    def _probe_ended(self, silent: bool) -> None:
        self._last_probe_silent = silent
        if not silent:
            self._unanswered_since = None

    def _interval(self) -> float:
        return self.router.health_interval if self.state == "up" else DOWN_PROBE_INTERVAL

    # ------------------------------------------------------------------ HTTP backends
    async def _monitor_http(self) -> None:
        while not self._stopped:
            await self._enabled.wait()
            gen = self._gen
            want_catalog = self.state != "up"
            started = time.perf_counter()
            ok, detail, catalog = await self._probe_http(want_catalog)
            latency = time.perf_counter() - started
            if not self.config.enabled or gen != self._gen:
                continue  # disabled (and maybe enabled again) meanwhile: this look is stale
            self._record(ok, latency if ok else None, detail)
            if ok and self.state != "up":
                self._came_up(catalog, None)
            elif not ok and self.state == "up" and self._last_probe_silent:
                pass  # paused, not gone: it stays up, shown as not answering, its calls kept
            elif not ok and self.state in ("up", "starting"):
                self._set_state("down", detail)
            elif not ok and self.state == "down" and detail != self.state_reason:
                self._set_state("down", detail)
            await self._pause(self._interval())

    def _candidates(self) -> list[tuple[str, str]]:
        """(URL, transport) pairs a probe tries, in order. Once one answered MCP, only that one.

        A URL with no path is what people type for "the server on that port": it is tried as
        given (Streamable HTTP, then legacy SSE), then at /mcp (Streamable HTTP), then at /sse.
        """
        url = self.config.url
        assert url is not None
        if self.endpoint is not None and self.transport is not None:
            return [(self.endpoint, self.transport)]
        if self.endpoint is not None:
            return [(self.endpoint, "streamable-http"), (self.endpoint, "sse")]
        base = url.rstrip("/")
        return [(url, "streamable-http"), (url, "sse"), (base + "/mcp", "streamable-http"), (base + "/sse", "sse")]

    async def _probe_http(self, want_catalog: bool) -> tuple[bool, str | None, dict[str, list[JSON]] | None]:
        """A real MCP exchange: initialize (and list the catalog) on a connection of its own."""
        first_error: str | None = None
        headers = self.config.headers
        timeout = self.router.probe_timeout
        self._probe_started()
        for url, transport in self._candidates():
            calls = RouterCalls()
            listener = _RouterListener(self, calls)
            ch: Channel
            if transport == "sse":
                ch = LegacySSEChannel(self.name, listener, "handshake", self.router.http, url, headers)
            else:
                ch = StreamableHTTPChannel(self.name, listener, "handshake", self.router.http, url, headers)
            try:
                try:
                    await asyncio.wait_for(ch.open(), timeout)
                except TimeoutError:
                    raise RouterCallTimeout("GET", timeout) from None
                res = await calls.call(ch, "initialize", PROBE_INIT_PARAMS, timeout=timeout)
                version = res.get("protocolVersion")
                ch.protocol_version = version if isinstance(version, str) else None
                await ch.send(jsonrpc.notification("notifications/initialized"))
                caps = res.get("capabilities") if isinstance(res.get("capabilities"), dict) else {}
                catalog = await list_catalog(calls, ch, caps or {}) if want_catalog else None
                self.server_info = res.get("serverInfo") if isinstance(res.get("serverInfo"), dict) else None
                self.capabilities = caps
                self.protocol_version = ch.protocol_version
                if self.transport != transport or self.endpoint != url:
                    self.transport = transport
                    where = f" at {url}" if url != self.config.url else ""
                    self.endpoint = url
                    self.note(f"speaks {transport}{where}")
                self._probe_ended(False)
                return True, None, catalog
            except NotAnEndpoint as exc:
                first_error = first_error or str(exc)
            except BackendUnavailable as exc:
                # Unreachable is unreachable: no point trying the other transport.
                self._probe_ended(False)
                return False, str(exc), None
            except RouterCallTimeout as exc:
                # It took the connection and said nothing: silent on one transport, silent on all.
                self._probe_ended(True)
                return False, str(exc), None
            except (RouterCallError, TimeoutError) as exc:
                first_error = first_error or str(exc) or "timed out"
            finally:
                await ch.close()
        tried = list(dict.fromkeys(u for u, _ in self._candidates()))
        if len(tried) > 1:
            first_error = f"{first_error} (no MCP answer at {', '.join(tried)})"
        self._probe_ended(False)
        return False, first_error, None

    # ------------------------------------------------------------------ stdio backends
    async def _spawn_main(self) -> tuple[StdioChannel, dict[str, list[JSON]], JSON]:
        """Start the command and complete a handshake with it; raise with its stderr if it fails."""
        calls = RouterCalls()
        cfg = self.config
        assert cfg.command is not None
        exit_code: list[int | None] = []
        listener = _RouterListener(self, calls, on_lost=self._main_lost)
        ch = StdioChannel(
            self.name,
            listener,
            "handshake",
            cfg.command,
            cfg.args,
            cfg.env,
            cfg.cwd,
            on_exit=lambda _c, code: exit_code.append(code),
        )
        tail_mark = len(self.log_tail)
        await ch.open()
        try:
            res = await calls.call(ch, "initialize", PROBE_INIT_PARAMS, timeout=START_TIMEOUT)
            ch.protocol_version = res.get("protocolVersion") if isinstance(res.get("protocolVersion"), str) else None
            await ch.send(jsonrpc.notification("notifications/initialized"))
            caps = res.get("capabilities") if isinstance(res.get("capabilities"), dict) else {}
            catalog = await list_catalog(calls, ch, caps or {})
        except (RouterCallError, BackendUnavailable) as exc:
            await ch.close()
            stderr = list(self.log_tail)[tail_mark:] if len(self.log_tail) >= tail_mark else []
            detail = f"exited with code {exit_code[0]}" if exit_code else str(exc)
            tail = " | ".join(stderr[-5:])
            raise BackendUnavailable(f"{detail}" + (f"; stderr: {tail}" if tail else "")) from None
        except BaseException:
            ch.closing = True
            await ch.close()  # superseded or cancelled mid-handshake: the process goes with it
            raise
        self._main_calls = calls
        return ch, catalog, res

    def _main_lost(self, channel: Channel, reason: str) -> None:
        if channel is not self._main:
            return
        self._main = None
        self._crashes.append(time.monotonic())
        if self.state in ("up", "restarting"):
            self._set_state("down", reason)
        self._kick.set()

    def _adopt_main(self, ch: StdioChannel, res: JSON) -> None:
        self._main = ch
        self.server_info = res.get("serverInfo") if isinstance(res.get("serverInfo"), dict) else None
        caps = res.get("capabilities")
        self.capabilities = caps if isinstance(caps, dict) else {}
        self.protocol_version = ch.protocol_version

    async def _monitor_stdio(self) -> None:
        while not self._stopped:
            await self._enabled.wait()
            gen, changed = self._gen, self._changed
            main = self._main
            if main is None or not main.alive:
                if self.state == "failed":
                    await self._pause(3600)  # until a restart request or a source change
                    if self.state == "failed":
                        continue
                if await self._start_main(gen, changed):
                    await self._pause(self._interval())
                continue
            started = time.perf_counter()
            self._probe_started()
            try:
                await self._main_calls.call(main, "ping", None, timeout=self.router.probe_timeout)
                ok, detail = True, None
                self._probe_ended(False)
            except (RouterCallError, BackendUnavailable) as exc:
                ok, detail = False, str(exc)
                self._probe_ended(isinstance(exc, RouterCallTimeout))
            if gen == self._gen and main is self._main:  # else a command replaced it meanwhile
                self._record(ok, time.perf_counter() - started if ok else None, detail)
                if ok and not self.accepting:
                    self._came_up(None, f"pid {main.pid}")
            await self._pause(self._interval())

    async def _start_main(self, gen: int, changed: asyncio.Event) -> bool:
        """First start or crash restart of the main process, unless a command supersedes it."""
        started = time.perf_counter()
        async with self._restart_lock:
            if gen != self._gen or self._stopped or (self._main is not None and self._main.alive):
                return False
            try:
                ch, catalog, res = await self._unless_superseded(changed, self._spawn_main())
            except Superseded:
                return False
            except BackendUnavailable as exc:
                if gen == self._gen:
                    self._record(False, None, str(exc))
                    self._crashes.append(time.monotonic())
                    self._start_failed(str(exc))
                return False
            if gen != self._gen or self._stopped or not self.config.enabled:
                await ch.close()  # disabled or removed the moment it was up
                return False
            self._record(True, time.perf_counter() - started, "started")
            self._adopt_main(ch, res)
            self._came_up(catalog, f"pid {ch.pid}")
            return True

    def _start_failed(self, reason: str) -> None:
        now = time.monotonic()
        while self._crashes and now - self._crashes[0] > CRASH_WINDOW:
            self._crashes.popleft()
        self._failures_in_row += 1
        if len(self._crashes) >= CRASH_LIMIT:
            self._set_state(
                "failed", f"crash loop: {len(self._crashes)} failures in {CRASH_WINDOW:g} s; last: {reason}"
            )
            self.note(f"stopped retrying after {len(self._crashes)} failures; waiting for a change or a restart")
            self._crashes.clear()
            return
        self._set_state("down", reason)
        backoff = min(0.1 * 2 ** (self._failures_in_row - 1), 5.0)
        self._tasks.append(asyncio.create_task(self._kick_after(backoff)))

    async def _kick_after(self, seconds: float) -> None:
        await asyncio.sleep(seconds)  # the crash backoff itself, not a synchronisation
        self._kick.set()

    # ------------------------------------------------------------------ restarts
    async def restart(self, reason: str = "restart requested", seq: int | None = None) -> CommandResult:
        """Blue/green: bring up the new backend first; move traffic only when it answers.

        A disable or remove that arrives meanwhile wins: the new process is stopped, the state is
        theirs, and the answer says so."""
        gen, changed = self._gen, self._changed
        if self._stopped:
            return CommandResult("removed", f"backend '{self.name}' was removed")
        if not self.config.enabled:
            self.note(f"not restarting ({reason}): the backend is disabled; enable it first")
            return CommandResult("disabled", f"backend '{self.name}' is disabled: enable it to start it again")
        async with self._restart_lock:
            if gen != self._gen:
                return self._lost("the restart waited for its turn")
            self.note(f"restarting: {reason}")
            previous: State = self.state
            if self.accepting:
                self._set_state("restarting", reason)
            if self.config.kind == "stdio":
                try:
                    ch, catalog, res = await self._unless_superseded(changed, self._spawn_main())
                except Superseded:
                    return self._lost("it restarted")
                except BackendUnavailable as exc:
                    if gen != self._gen:
                        return self._lost("it restarted")
                    self.note(f"restart failed, keeping the running version: {exc}")
                    if previous in ("up", "restarting") and self._main is not None and self._main.alive:
                        self._set_state("up", f"restart failed: {exc}")
                    elif previous == "failed":
                        self._set_state("failed", f"restart failed: {exc}")
                    else:
                        self._set_state("down", f"restart failed: {exc}")
                    return CommandResult("failed", f"restart failed: {exc}", seq)
                if gen != self._gen:
                    await ch.close()
                    return self._lost("it restarted")
                old = self._main
                self._adopt_main(ch, res)
                if old is not None:
                    old.closing = True
                    await old.close()
                self._crashes.clear()
            else:
                try:
                    ok, detail, probed = await self._unless_superseded(changed, self._probe_http(True))
                except Superseded:
                    return self._lost("it restarted")
                if gen != self._gen:
                    return self._lost("it restarted")
                if not ok or probed is None:
                    self.note(f"restart failed: {detail}")
                    self._set_state("down" if previous != "up" else "up", detail)
                    return CommandResult("failed", f"restart failed: {detail}", seq)
                catalog = probed
            await asyncio.gather(*(s.migrate() for s in self.all_sessions()))
            if gen != self._gen:
                # Disabled or removed while the sessions moved: that command, waiting for this
                # lock, stops the new processes; the state is already its own.
                return self._lost("its sessions moved to the new process")
            self.restarts += 1
            self._came_up(catalog, reason)
            self._kick.set()
            return CommandResult("restarted", f"backend '{self.name}' restarted: {reason}", seq)

    # ------------------------------------------------------------------ watching sources
    async def _watch(self) -> None:
        import watchfiles  # imported here: only backends with watch paths need it

        paths = [p for p in self.config.watch]
        self.note(f"watching {', '.join(paths)}")
        try:
            async for changes in watchfiles.awatch(*paths, debounce=300, step=50, recursive=True):
                files = sorted({c[1] for c in changes})
                shown = ", ".join(f.rsplit("/", 1)[-1] for f in files[:3]) + (" …" if len(files) > 3 else "")
                await self.restart(f"source changed: {shown}")
        except FileNotFoundError as exc:
            self.note(f"cannot watch: {exc}")
