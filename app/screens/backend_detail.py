"""One backend up close: health graph, state history, catalog and log; restart and enable/disable.

Everything comes through the `RouterControl`: the backend's snapshot, probe history and log tail
to start from, then the event feed (health, state, log and list events), drained on an interval
and applied in one go, so that a busy backend costs one refresh per tick, not one per event.
"""

from __future__ import annotations

import re
import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any, ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.markup import escape
from textual.screen import Screen
from textual.widgets import Label, Log, Static

from app.control import ControlError, EventFeed, RouterControl
from app.proxy.drift import lines as drift_lines
from app.proxy.events import BackendListEvent, BackendLogEvent, BackendStateEvent, Event, HealthEvent
from app.proxy.jsonrpc import JSON
from app.widgets.footer import SteadyFooter
from app.widgets.health_chart import HealthChart, Probe

POLL_INTERVAL = 0.25
SNAPSHOT_INTERVAL = 5.0
HISTORY_ROWS = 200
LOG_LINES = 2000
STARTED = "started"  # the detail of the health sample a stdio backend's new process records

STATE_STYLE = {
    "up": "$success",
    "starting": "$warning",
    "restarting": "$warning",
    "down": "$error",
    "failed": "bold $error",
    "disabled": "$text-muted",
    "removed": "$text-muted",
}
CHANGED_NOTE = re.compile(r"^((?:tools|resources|prompts)(?:, (?:tools|resources|prompts))*) changed$")


def clock_time(ts: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(ts))


def styled_state(state: str) -> str:
    """A state word as markup, in the theme's colour for it."""
    return f"[{STATE_STYLE.get(state, '$text')}]● {escape(state)}[/]"


def history_from_samples(samples: Iterable[JSON]) -> list[tuple[float, str, str]]:
    """Down and up moments read from probe history (what there is before the screen was opened)."""
    out: list[tuple[float, str, str]] = []
    ok_before: bool | None = None
    for s in samples:
        ok = bool(s.get("ok"))
        ts = float(s.get("ts") or 0.0)
        detail = s.get("detail")
        if ok_before is not None and ok != ok_before:
            if ok:
                out.append((ts, "up", "a new process started" if detail == STARTED else "probe answered"))
            else:
                out.append((ts, "down", f"probe failed: {detail or 'no answer'}"))
        elif ok_before is None and not ok:
            out.append((ts, "down", f"probe failed: {detail or 'no answer'}"))
        ok_before = ok
    return out


def describe_change(change: Any) -> list[str]:
    """A backend's `last_change` (whatever its shape) as lines of text."""
    if not change:
        return []
    if isinstance(change, dict) and "count" in change:
        return drift_lines(change)  # the router's own shape (app.proxy.drift)
    if isinstance(change, str):
        return [change]
    if isinstance(change, list):
        return [", ".join(str(c) for c in change)]
    if isinstance(change, dict):
        lines: list[str] = []
        for key, value in change.items():
            if isinstance(value, dict):
                parts = [
                    f"{'+' if k in ('added', 'new') else '-' if k in ('removed', 'gone') else '~'}{v}"
                    for k, vs in value.items()
                    for v in (vs if isinstance(vs, list) else [vs])
                ]
                if parts:
                    lines.append(f"{key}: {' '.join(parts)}")
            elif isinstance(value, list):
                if value:
                    lines.append(f"{key}: {', '.join(str(v) for v in value)}")
            elif value not in (None, ""):
                lines.append(f"{key}: {value}")
        return lines
    return [str(change)]


class BackendDetailScreen(Screen[None]):
    """The detail screen of backend `name`; escape goes back."""

    DEFAULT_CSS = """
    BackendDetailScreen {
        layout: vertical;
    }
    BackendDetailScreen #detail-header {
        height: auto;
        padding: 0 1;
        background: $boost;
    }
    BackendDetailScreen #detail-upper {
        height: 3fr;
        min-height: 10;
    }
    BackendDetailScreen #detail-lower {
        height: 2fr;
        min-height: 6;
    }
    BackendDetailScreen .pane {
        border: round $foreground 30%;
        border-title-color: $text-accent;
        border-title-style: bold;
        padding: 0 1;
    }
    BackendDetailScreen .pane:focus-within {
        border: round $accent;
    }
    BackendDetailScreen #health-pane {
        width: 2fr;
    }
    BackendDetailScreen #health-legend {
        color: $text-muted;
        width: 1fr;
    }
    BackendDetailScreen #catalog-pane {
        width: 1fr;
        min-width: 28;
    }
    BackendDetailScreen #history-pane {
        width: 5fr;
        padding: 0 1;
    }
    BackendDetailScreen #log-pane {
        width: 7fr;
        padding: 0;
    }
    BackendDetailScreen #history {
        width: 1fr;
    }
    BackendDetailScreen Log {
        height: 1fr;
        background: transparent;
        overflow: auto auto;
        scrollbar-size-vertical: 1;
        scrollbar-background: $surface;
    }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("r", "restart", "Restart"),
        Binding("space", "toggle_enabled", "Enable/Disable"),
        Binding("escape", "back", "Back"),
    ]

    def __init__(self, control: RouterControl, name: str, *, clock: Callable[[], float] = time.time) -> None:
        super().__init__()
        self.control = control
        self.backend_name = name
        self.clock = clock
        self.snapshot: JSON = {}
        self.removed = False
        self.history: deque[tuple[float, str, str]] = deque(maxlen=HISTORY_ROWS)
        self.feed: EventFeed | None = None
        self.loaded = False
        self._last_snapshot = 0.0
        self._want_snapshot = False
        self._log_notes: list[str] = []

    # ------------------------------------------------------------------ layout
    def compose(self) -> ComposeResult:
        yield Static(f"[b]{escape(self.backend_name)}[/b]  loading…", id="detail-header")
        with Horizontal(id="detail-upper"):
            with Vertical(id="health-pane", classes="pane"):
                yield Label(
                    "probe latency (ms) · [$error]░ down[/] · [$success]▲ up again / new process[/] · x: seconds ago",
                    id="health-legend",
                )
                yield HealthChart(id="health-chart", clock=self.clock)
            with VerticalScroll(id="catalog-pane", classes="pane"):
                yield Static("", id="catalog")
        with Horizontal(id="detail-lower"):
            with VerticalScroll(id="history-pane", classes="pane"):
                yield Static("", id="history")
            with Vertical(id="log-pane", classes="pane"):
                yield Log(id="log", max_lines=LOG_LINES, auto_scroll=True)
        yield SteadyFooter()

    def on_mount(self) -> None:
        self.query_one("#health-pane").border_title = "Health"
        self.query_one("#catalog-pane").border_title = "Catalog"
        self.query_one("#history-pane").border_title = "State history"
        self.query_one("#log-pane").border_title = "Log (stderr and router notes)"
        self.query_one("#log", Log).focus()
        # Subscribe before the first queries: nothing published in between is lost (what the
        # queries already include is dropped from the feed once they have answered).
        self.feed = self.control.subscribe(["health", "backend_state", "backend_log", "backend_list"])
        self.run_worker(self._load(), group="load", exclusive=True)
        self.set_interval(POLL_INTERVAL, self._poll)

    def on_unmount(self) -> None:
        if self.feed is not None:
            self.feed.close()

    # ------------------------------------------------------------------ reading
    async def _load(self) -> None:
        name = self.backend_name
        try:
            snap = await self.control.backend(name)
            samples = await self.control.health(name)
            lines = await self.control.log(name)
        except ControlError as exc:
            self.removed = True
            self.query_one("#detail-header", Static).update(
                f"[b]{escape(name)}[/b]  {styled_state('removed')}  {escape(exc.message)}"
            )
            self.loaded = True
            return
        if self.feed is not None:
            self.feed.drain()  # already in what the queries answered
        self.snapshot = snap
        self._last_snapshot = self.clock()
        self.history.extend(history_from_samples(samples))
        state, since = str(snap.get("state")), float(snap.get("since") or 0.0)
        if not self.history or self.history[-1][1] != state:
            self.history.append((since, state, str(snap.get("reason") or "")))
        chart = self.query_one(HealthChart)
        states = [(ts, st) for ts, st, _ in self.history]
        chart.replace(
            (Probe(float(s["ts"]), bool(s["ok"]), s.get("latency_ms"), s.get("detail") == STARTED) for s in samples),
            states,
        )
        chart.redraw()
        self._remember_notes(lines)
        self.query_one("#log", Log).write_lines(lines)
        self._render_all()
        self.loaded = True

    async def _refresh_snapshot(self) -> None:
        try:
            self.snapshot = await self.control.backend(self.backend_name)
        except ControlError:
            return
        self._last_snapshot = self.clock()
        self._render_header()
        self._render_catalog()

    def _poll(self) -> None:
        if self.feed is None or not self.loaded:
            return
        events = self.feed.drain()
        mine = [e for e in events if getattr(e, "backend", None) == self.backend_name]
        if mine:
            self._apply(mine)
        if not self.removed and (self._want_snapshot or self.clock() - self._last_snapshot >= SNAPSHOT_INTERVAL):
            self._want_snapshot = False
            self.run_worker(self._refresh_snapshot(), group="snapshot", exclusive=True)

    def _apply(self, events: list[Event]) -> None:
        chart = self.query_one(HealthChart)
        lines: list[str] = []
        history_changed = False
        for ev in events:
            if isinstance(ev, HealthEvent):
                chart.add_probe(Probe(ev.ts, ev.ok, ev.latency_ms, ev.detail == STARTED))
            elif isinstance(ev, BackendStateEvent):
                self.history.append((ev.ts, ev.state, ev.reason or ""))
                chart.add_state(ev.ts, ev.state)
                self.snapshot = {**self.snapshot, "state": ev.state, "reason": ev.reason, "since": ev.ts}
                history_changed = True
                self._want_snapshot = True
            elif isinstance(ev, BackendLogEvent):
                lines.append(ev.line)
            elif isinstance(ev, BackendListEvent):
                self.removed = ev.action == "removed"
                if self.removed:
                    self.history.append((ev.ts, "removed", "the backend was removed"))
                    history_changed = True
                else:
                    self._want_snapshot = True
        if lines:
            self._remember_notes(lines)
            self.query_one("#log", Log).write_lines(lines)
            self._render_catalog()
        if history_changed:
            self._render_history()
            self._render_header()
        chart.redraw()

    def _remember_notes(self, lines: Iterable[str]) -> None:
        self._log_notes.extend(ln for ln in lines if CHANGED_NOTE.match(ln))
        del self._log_notes[:-5]

    # ------------------------------------------------------------------ rendering
    @property
    def state(self) -> str:
        return "removed" if self.removed else str(self.snapshot.get("state", "unknown"))

    def _render_all(self) -> None:
        self._render_header()
        self._render_catalog()
        self._render_history()

    def _render_header(self) -> None:
        s = self.snapshot
        target = escape(str(s.get("target") or ""))
        transport = escape(str(s.get("transport") or s.get("kind") or "?"))
        reason = s.get("reason")
        since = s.get("since")
        first = f"[b]{escape(self.backend_name)}[/b]  {transport}  {target}"
        state = f"{styled_state(self.state)}"
        if since:
            state += f" since {clock_time(float(since))}"
        if reason and not self.removed:
            state += f" [$text-muted]({escape(str(reason))})[/]"
        facts: list[str] = []
        pids = s.get("pids") or []
        if pids:
            facts.append(f"pid{'s' if len(pids) > 1 else ''} {', '.join(str(p) for p in pids)}")
        elif s.get("kind") == "stdio":
            facts.append("no process")
        if s.get("protocol_version"):
            facts.append(f"protocol {escape(str(s['protocol_version']))}")
        server = s.get("server") or {}
        if isinstance(server, dict) and server.get("name"):
            facts.append(f"server {escape(str(server['name']))} {escape(str(server.get('version') or ''))}".rstrip())
        facts.append(f"sessions {s.get('sessions', 0)}")
        facts.append(f"restarts {s.get('restarts', 0)}")
        if s.get("latency_ms") is not None:
            facts.append(f"probe {float(s['latency_ms']):.1f} ms")
        if s.get("enabled") is False and self.state != "disabled":
            facts.append("disabled")
        self.query_one("#detail-header", Static).update(f"{first}\n{state}\n[$text-muted]{' · '.join(facts)}[/]")

    def _render_catalog(self) -> None:
        s = self.snapshot
        parts: list[str] = []
        for key, title in (("tools", "Tools"), ("resources", "Resources"), ("prompts", "Prompts")):
            names = [str(n) for n in (s.get(key) or []) if n]
            if key not in s:
                continue
            parts.append(f"[b]{title}[/b] ({len(names)})")
            parts.append(escape(", ".join(names)) if names else "[$text-muted]none[/]")
            parts.append("")
        change_lines = describe_change(s.get("last_change"))
        parts.append("[b]Last restart changed[/b]")
        if change_lines:
            parts.extend(escape(ln) for ln in change_lines)
        elif self._log_notes:
            parts.append(escape(self._log_notes[-1]))
        else:
            parts.append("[$text-muted]nothing recorded[/]")
        self.query_one("#catalog", Static).update("\n".join(parts))

    def _render_history(self) -> None:
        """Newest first: the current state on top, each line when, what and why."""
        lines = [
            f"[$text-muted]{clock_time(ts)}[/]  {styled_state(state)}" + (f"  {escape(why)}" if why else "")
            for ts, state, why in reversed(self.history)
        ]
        self.query_one("#history", Static).update("\n".join(lines) or "[$text-muted]no change seen yet[/]")

    @property
    def history_lines(self) -> list[str]:
        """The state history, newest first, as plain text lines."""
        return [
            f"{clock_time(ts)}  ● {state}" + (f"  {why}" if why else "") for ts, state, why in reversed(self.history)
        ]

    # ------------------------------------------------------------------ acting
    def action_back(self) -> None:
        self.app.pop_screen()

    def action_restart(self) -> None:
        if self.removed:
            self.notify(f"backend '{self.backend_name}' was removed", severity="warning")
            return
        # An app worker: leaving the screen must not cancel a restart half-way.
        self.app.run_worker(self._act("restart"), group=f"act:{self.backend_name}")

    def action_toggle_enabled(self) -> None:
        if self.removed:
            self.notify(f"backend '{self.backend_name}' was removed", severity="warning")
            return
        action = "enable" if self.snapshot.get("enabled") is False or self.state == "disabled" else "disable"
        self.app.run_worker(self._act(action), group=f"act:{self.backend_name}")

    async def _act(self, action: str) -> None:
        name = self.backend_name
        call = {"restart": self.control.restart, "enable": self.control.enable, "disable": self.control.disable}
        if action == "restart":
            self.app.notify(f"restarting '{name}'…", timeout=2)
        try:
            snap = await call[action](name)
        except ControlError as exc:
            self.app.notify(exc.message, title=f"{action} '{name}' failed", severity="error")
            return
        done = {"restart": "restarted", "enable": "enabled", "disable": "disabled"}[action]
        self.app.notify(f"'{name}' {done}", timeout=3)
        if self.is_attached:
            self.snapshot = snap
            self._render_header()
            self._render_catalog()
