"""The main screen: where to point a client, the backends, the sessions and the live trace.

Everything comes from one `RouterControl`: the state to start from (`status()`, `sessions()`,
`health()`), then its event feed, drained on an interval and shown in one batch per tick.
"""

from __future__ import annotations

import time
from collections import Counter, deque
from collections.abc import Callable
from typing import Any, ClassVar

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.notifications import SeverityLevel
from textual.screen import Screen
from textual.widgets import DataTable, Input

from app.control import ControlError, EventFeed, RouterControl
from app.proxy.events import (
    BackendListEvent,
    BackendStateEvent,
    CatalogChangeEvent,
    Event,
    HealthEvent,
    RouterEvent,
    SessionEvent,
    TrafficEvent,
    event_from_dict,
)
from app.proxy.jsonrpc import JSON
from app.screens import workbench
from app.trace_model import DEFAULT_CAPACITY, FilterError, TraceModel
from app.widgets.backends_table import BackendsTable
from app.widgets.compositor import LeanCompositor
from app.widgets.footer import SteadyFooter
from app.widgets.formatting import duration
from app.widgets.header import RouterHeader
from app.widgets.sessions_table import SessionsTable
from app.widgets.trace_view import TraceColumns, TraceView, clock_text

TICK = 0.1  # the trace is drawn at most this often, whatever the traffic
# The trace's counts (rows, dropped, waiting, new) follow the traffic at most this often: nobody
# reads a number that changes ten times a second, and redrawing its line at every batch cost about
# 9% of a busy frame's instructions. What a person does (filter, pause, clear, follow) shows at once.
TITLE_EVERY = 1.0
PROBES_KEPT = 30

# Every key of the main screen, for the help screen (section, [(key, what)]).
HELP: list[tuple[str, list[tuple[str, str]]]] = [
    (
        "Backends",
        [
            ("a", "add a backend"),
            ("d", "remove the selected backend (asks first)"),
            ("space", "enable / disable the selected backend"),
            ("r", "restart the selected backend (blue/green)"),
            ("enter", "the backend's detail: health graph, history, catalog, log"),
            ("k", "connect a client: what to paste or run in each client, to copy"),
        ],
    ),
    (
        "Sessions",
        [
            ("enter", "filter the trace to the selected session (again: all sessions)"),
            ("x", "close the selected session (asks first)"),
        ],
    ),
    (
        "Trace",
        [
            ("/", "filter: text, method: backend: session: dir: kind: status: id:, ! negates"),
            ("escape", "leave the filter (it stays applied)"),
            ("p", "pause / resume (traffic is kept and counted)"),
            ("c", "clear the trace"),
            ("up, down", "select a message"),
            ("end", "follow the newest messages again"),
            ("enter", "the selected message's full JSON, request and response"),
        ],
    ),
    (
        "Workbench",
        [
            ("R", "replay the selected request on its backend now and diff the answers"),
            ("w", "what the selected backend's last rebuild changed (schema drift)"),
            ("y", "copy the selected message's JSON (secrets masked)"),
            ("o", "open the selected message in $EDITOR / $PAGER"),
            ("e", "export the trace as filtered (marks included) to a JSON-lines file"),
            ("m / M", "mark the selected message / show only marked ones"),
            ("v", "in a message's detail, a diff or a call's answer: reveal its secrets (shown as •••)"),
            ("ctrl+p", "Call tool…, Read resource…, Get prompt… from the palette"),
        ],
    ),
    (
        "Everywhere",
        [
            ("tab", "next panel (shift+tab: previous); the mouse works too"),
            ("ctrl+p", "command palette: every backend action"),
            ("?", "this help"),
            ("q, ctrl+c", "quit (sessions closed, backends stopped)"),
        ],
    ),
]


class MainScreen(Screen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("a", "add_backend", "Add"),
        Binding("d", "remove_backend", "Remove"),
        Binding("space", "toggle_backend", "On/off"),
        Binding("r", "restart_backend", "Restart"),
        Binding("k", "connect_client", "Connect", show=False),
        Binding("x", "close_session", "Close session", show=False),
        Binding("slash", "filter", "Filter"),
        Binding("p", "pause", "Pause"),
        Binding("c", "clear", "Clear"),
        Binding("end", "follow", "Follow", show=False),
        Binding("R", "replay", "Replay", show=False),
        Binding("w", "drift", "Changes", show=False),
        Binding("y", "copy_message", "Copy", show=False),
        Binding("o", "open_message", "Open", show=False),
        Binding("m", "mark", "Mark", show=False),
        Binding("M", "only_marked", "Marked", show=False),
        Binding("e", "export", "Export", show=False),
    ]

    def __init__(
        self,
        control: RouterControl,
        *,
        trace_buffer: int = DEFAULT_CAPACITY,
        clock: Callable[[], float] = time.time,
        time_text: Callable[[float], str] = clock_text,
    ) -> None:
        super().__init__()
        self._compositor = LeanCompositor()  # the trace redraws often: only what a frame can show
        self.control = control
        self.clock = clock
        self.model = TraceModel(trace_buffer)
        self.time_text = time_text
        self.feed: EventFeed | None = None
        self.backends: dict[str, JSON] = {}
        self.sessions: list[JSON] = []
        self.default: str | None = None
        self.probes: dict[str, deque[float | None]] = {}
        self.session_counts: Counter[str] = Counter()
        self.paused = False
        self.waiting: deque[Event] = deque(maxlen=max(1, trace_buffer))
        self.waiting_dropped = 0
        self.filter_error: str | None = None
        self._uptime_base = 0.0
        self._uptime_at = clock()
        self._rate = 0.0
        self._rate_count = 0
        self._rate_at = clock()
        self._state_dirty = True
        self._refreshing = False
        self._dropped_shown = 0  # in the panel's border, updated once a second (a repaint of the panel)
        self._title_at = float("-inf")  # when the trace's subtitle and counts were last shown
        self._title_stale = False  # a batch came since, its counts not shown yet
        self._notices_read = False  # the router's notices from before the feed: read with the first status
        self._notices_shown: set[tuple[float, str]] = set()
        self._modern_traffic = False

    # ------------------------------------------------------------------ layout
    def compose(self) -> ComposeResult:
        yield RouterHeader(id="header")
        with Horizontal(id="top"):
            with Vertical(id="backends-panel", classes="panel"):
                yield BackendsTable(id="backends")
            with Vertical(id="sessions-panel", classes="panel"):
                yield SessionsTable(id="sessions")
        with Vertical(id="trace-panel", classes="panel"):
            yield TraceColumns(id="trace-columns")
            yield TraceView(self.model, clock=self.time_text, id="trace")
            yield Input(
                placeholder="filter: text  method:  backend:  session:  dir:  kind:  status:error  id:  (! negates)",
                id="filter",
            )
        yield SteadyFooter()

    def on_trace_view_columns_changed(self) -> None:
        self._show_trace_title()

    @property
    def trace(self) -> TraceView:
        return self.query_one(TraceView)

    @property
    def backends_table(self) -> BackendsTable:
        return self.query_one(BackendsTable)

    @property
    def sessions_table(self) -> SessionsTable:
        return self.query_one(SessionsTable)

    async def on_mount(self) -> None:
        self.query_one("#backends-panel").border_title = "Backends"
        self.query_one("#sessions-panel").border_title = "Sessions"
        self.query_one("#trace-panel").border_title = "Trace"
        # Subscribe before asking for the state: nothing that happens in between is lost.
        # Backend log lines are the detail screen's business: not drained here at all.
        self.feed = self.control.subscribe(
            ["traffic", "session", "backend_state", "health", "backend_list", "router", "catalog_change"]
        )
        await self._refresh_state()
        for name in self.backends:
            await self._seed_probes(name)
        self._show_trace_title()
        workbench.load_trace_file(self)
        self.set_interval(TICK, self._tick)
        self.set_interval(1.0, self._each_second)
        self.trace.focus()
        self.backends_table.focus()

    async def _seed_probes(self, name: str) -> None:
        try:
            samples = await self.control.health(name)
        except ControlError:
            samples = []
        probes = self.probes.setdefault(name, deque(maxlen=PROBES_KEPT))
        for s in samples[-PROBES_KEPT:]:
            probes.append(s.get("latency_ms") if s.get("ok") else None)

    def on_unmount(self) -> None:
        if self.feed is not None:
            self.feed.close()

    # ------------------------------------------------------------------ state from the control
    async def _refresh_state(self) -> None:
        if self._refreshing:
            return
        self._refreshing = True
        try:
            status = await self.control.status()
            self.sessions = await self.control.sessions()
        except ControlError as exc:
            self.notify(f"cannot read the router's state: {exc.message}", severity="error")
            return
        finally:
            self._refreshing = False
        self._state_dirty = False
        if not self._notices_read:
            self._notices_read = True
            self._show_startup_notices(status.get("notices") or [])
        self.default = status.get("default")
        self._uptime_base = float(status.get("uptime_s") or 0.0)
        self._uptime_at = self.clock()
        self.backends = {str(b["name"]): b for b in status.get("backends", [])}
        for name, snap in self.backends.items():
            self.model.backend_states.setdefault(name, str(snap.get("state")))
        with self.app.batch_update():
            self.backends_table.show(list(self.backends.values()), self.probes)
            self.sessions_table.show(self.sessions, self.model.backend_states, self.session_counts, self.clock)
            self._show_header()

    def _show_startup_notices(self, notices: list[JSON]) -> None:
        """What the router said before this screen subscribed (a config entry skipped, a state file
        moved aside, ...): toasts and trace lines, as if it came through the feed."""
        events = [ev for ev in map(event_from_dict, notices) if isinstance(ev, RouterEvent)]
        self._notices_shown = {(ev.ts, ev.text) for ev in events}
        for ev in events:
            self._toast_notice(ev)
        if events:
            self._add_to_trace(list(events))

    def _toast_notice(self, ev: RouterEvent) -> None:
        severity: SeverityLevel = (
            "information" if ev.level == "info" else "warning" if ev.level == "warning" else "error"
        )
        self.notify(ev.text, severity=severity, timeout=10 if ev.level != "info" else 5)

    def _show_header(self) -> None:
        up = sum(1 for b in self.backends.values() if b.get("state") == "up")
        self.query_one(RouterHeader).show(
            self.control.url,
            self.default,
            duration(self._uptime_base + self.clock() - self._uptime_at),
            up,
            len(self.backends),
            len(self.sessions),
            self._rate,
        )

    async def _each_second(self) -> None:
        now = self.clock()
        elapsed = now - self._rate_at
        if elapsed > 0:
            self._rate = self._rate_count / elapsed
        self._rate_count, self._rate_at = 0, now
        dropped = self.model.dropped + self.waiting_dropped
        if dropped != self._dropped_shown or self._title_stale:
            self._dropped_shown = dropped
            self._show_trace_title()
        if self._modern_traffic:  # 2026-07-28 clients are listed by the router: read them at most once a second
            self._modern_traffic = False
            self._state_dirty = True
        if self._state_dirty:
            await self._refresh_state()
        else:
            with self.app.batch_update():
                self.sessions_table.show(self.sessions, self.model.backend_states, self.session_counts, self.clock)
                self._show_header()

    # ------------------------------------------------------------------ the feed
    async def _tick(self) -> None:
        feed = self.feed
        if feed is None:
            return
        events = feed.drain()
        if feed.dropped:
            self.model.dropped += feed.dropped
            feed.dropped = 0
        if not events:
            if self._state_dirty:
                await self._refresh_state()
            return
        trace_events: list[Event] = []
        new_backends: list[str] = []
        for ev in events:
            if isinstance(ev, TrafficEvent):
                self._rate_count += 1
                self.session_counts[ev.session] += 1
                if ev.session.startswith("modern:"):
                    self._modern_traffic = True
                trace_events.append(ev)
            elif isinstance(ev, BackendStateEvent):
                trace_events.append(ev)
                self._announce(ev)
                self._state_dirty = True
            elif isinstance(ev, HealthEvent):
                self.probes.setdefault(ev.backend, deque(maxlen=PROBES_KEPT)).append(ev.latency_ms if ev.ok else None)
                self._state_dirty = True
            elif isinstance(ev, BackendListEvent):
                if ev.action == "added":
                    new_backends.append(ev.backend)
                elif ev.action == "removed":
                    self.probes.pop(ev.backend, None)
                    self.model.backend_states.pop(ev.backend, None)
                self._state_dirty = True
            elif isinstance(ev, RouterEvent):
                if (ev.ts, ev.text) in self._notices_shown:
                    continue  # a startup notice, already shown from the router's status
                # Also an attached UI's connection: "lost …: reconnecting", then "reconnected" (info).
                self._toast_notice(ev)
                trace_events.append(ev)
                self._state_dirty = True  # after a reconnect: read what the router holds now
            elif isinstance(ev, SessionEvent):
                if ev.action in ("closed", "ended"):
                    self.session_counts.pop(ev.session, None)
                self._state_dirty = True
            elif isinstance(ev, CatalogChangeEvent):
                workbench.announce_change(self, ev)
                self._state_dirty = True
        for name in new_backends:
            await self._seed_probes(name)
        if self._state_dirty:
            await self._refresh_state()
        if trace_events:
            if self.paused:
                for ev in trace_events:
                    if len(self.waiting) == self.waiting.maxlen:
                        self.waiting_dropped += 1
                    self.waiting.append(ev)
                self._show_trace_title(batch=True)
            else:
                self._add_to_trace(trace_events)

    def _add_to_trace(self, events: list[Event]) -> None:
        before_len = len(self.model.visible)
        before_dropped = self.model.visible_dropped
        self.model.add(events)
        dropped_front = self.model.visible_dropped - before_dropped
        with self.app.batch_update():
            self.trace.rows_changed(len(self.model.visible) - before_len + dropped_front, dropped_front)
            self._show_trace_title(batch=True)

    def _announce(self, ev: BackendStateEvent) -> None:
        """A toast for what a developer must not miss: down, back, a failed build, a swap."""
        name, state, previous, reason = ev.backend, ev.state, ev.previous, ev.reason or ""
        if state in ("down", "failed") and previous in ("up", "restarting", "starting"):
            if reason.startswith("restart failed"):
                self.notify(f"{name}: the new build failed to start — {reason}", title="build failed", severity="error")
            elif previous != "starting" or state == "failed":
                why = f": {reason}" if reason else ""
                self.notify(f"backend {name} is {state}{why}", title=f"{name} {state}", severity="error")
        elif state == "up" and previous == "restarting":
            if reason.startswith("restart failed"):
                self.notify(
                    f"{name}: the new build failed; the running version keeps serving — {reason}",
                    title="build failed",
                    severity="error",
                    timeout=10,
                )
            else:
                self.notify(f"backend {name} swapped to the new version", title=f"{name} swapped")
        elif state == "up" and previous in ("down", "failed"):
            self.notify(f"backend {name} is back up", title=f"{name} up")

    @property
    def trace_title_current(self) -> bool:
        """Whether the trace's subtitle and counts show every batch so far (see TITLE_EVERY)."""
        return not self._title_stale

    def _show_trace_title(self, *, batch: bool = False) -> None:
        """The trace panel's subtitle and its column line's counts. `batch`: for a batch of
        traffic, shown at most every TITLE_EVERY (the rest is caught up by `_each_second`)."""
        if batch:
            now = time.monotonic()
            if now - self._title_at < TITLE_EVERY:
                self._title_stale = True
                return
            self._title_at = now
        self._title_stale = False
        parts: list[str] = []
        if self.model.filter_text.strip():
            parts.append(f"filter: {self.model.filter_text.strip()}")
        if self.filter_error:
            parts.append(f"[b $error]{self.filter_error}[/]")
        if self.paused:
            parts.append(f"[b $warning]paused, {len(self.waiting)} waiting[/]")
        trace = self.trace
        if not trace.follow and trace.new_while_away:
            parts.append(f"[b $accent]{trace.new_while_away} new (end)[/]")
        if self._dropped_shown:
            parts.append(f"{self._dropped_shown:,} dropped")
        subtitle = " · ".join(parts)
        panel = self.query_one("#trace-panel")
        if panel.border_subtitle != subtitle:  # a new subtitle repaints the whole panel: only on change
            panel.border_subtitle = subtitle
        # The counts change with every batch: they live on the one-line column header instead.
        dropped = self.model.dropped + self.waiting_dropped
        counts = f"{len(self.model.visible)}/{len(self.model.rows)} rows" + (f" · {dropped} dropped" if dropped else "")
        self.query_one("#trace-columns", TraceColumns).show(self.trace.header_text(), counts)

    # ------------------------------------------------------------------ trace keys
    def action_filter(self) -> None:
        box = self.query_one("#filter", Input)
        box.add_class("-shown")
        box.focus()

    @on(Input.Changed, "#filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        self.apply_filter(event.value)

    @on(Input.Submitted, "#filter")
    def _filter_done(self) -> None:
        self._leave_filter()

    def _leave_filter(self) -> None:
        box = self.query_one("#filter", Input)
        if not box.value.strip():
            box.remove_class("-shown")
        self.trace.focus()

    def apply_filter(self, text: str) -> None:
        try:
            self.model.set_filter(text)
        except FilterError as exc:
            self.filter_error = str(exc)
            self.query_one("#filter", Input).add_class("-invalid")
        else:
            self.filter_error = None
            self.query_one("#filter", Input).remove_class("-invalid")
            with self.app.batch_update():
                self.trace.reset()
        self._show_trace_title()

    def set_filter_text(self, text: str) -> None:
        box = self.query_one("#filter", Input)
        box.value = text  # Input.Changed applies it
        box.set_class(bool(text), "-shown")
        self.apply_filter(text)

    def key_escape(self) -> None:
        if self.focused is self.query_one("#filter", Input):
            self._leave_filter()

    def action_pause(self) -> None:
        if self.paused:
            self.paused = False
            waiting = list(self.waiting)
            self.waiting.clear()
            if waiting:
                self._add_to_trace(waiting)
        else:
            self.paused = True
        self._show_trace_title()

    def action_clear(self) -> None:
        self.model.clear()
        self.waiting.clear()
        self.model.dropped = 0
        self.waiting_dropped = 0
        self._dropped_shown = 0
        self.trace.reset()
        self._show_trace_title()

    def action_follow(self) -> None:
        self.trace.action_follow()
        self._show_trace_title()

    @on(TraceView.Open)
    def _open_message(self, event: TraceView.Open) -> None:
        from app.screens.message_detail import MessageDetailScreen

        self.app.push_screen(MessageDetailScreen(event.row, time_text=self.time_text))

    # ------------------------------------------------------------------ backend keys
    def selected_backend(self) -> str | None:
        return self.backends_table.selected_key

    def action_add_backend(self) -> None:
        from app.screens.add_backend import AddBackendDialog

        def added(name: str | None) -> None:
            if name:
                self.notify(f"backend {name} added")
                self._state_dirty = True
                self._select_after_refresh(name)

        self.app.push_screen(AddBackendDialog(self.control), added)

    @work(group="select")
    async def _select_after_refresh(self, name: str) -> None:
        await self._refresh_state()
        self.backends_table.select_key(name)

    def action_remove_backend(self, name: str | None = None) -> None:
        from app.screens.confirm import ConfirmDialog

        name = name or self.selected_backend()
        if name is None:
            self.notify("no backend selected", severity="warning")
            return
        sessions = int(self.backends.get(name, {}).get("sessions") or 0)
        ends = (
            "No client session uses it."
            if sessions == 0
            else f"This ends {sessions} client session{'s' if sessions != 1 else ''}."
        )

        def confirmed(yes: bool | None) -> None:
            if yes:
                self._act(name, "remove")

        self.app.push_screen(
            ConfirmDialog(f"Remove backend {name}?", f"{ends} Its processes are stopped.", "Remove"), confirmed
        )

    def action_toggle_backend(self, name: str | None = None) -> None:
        name = name or self.selected_backend()
        if name is None:
            return
        enabled = self.backends.get(name, {}).get("enabled", True)
        self._act(name, "disable" if enabled else "enable")

    def action_restart_backend(self, name: str | None = None) -> None:
        name = name or self.selected_backend()
        if name is None:
            return
        self.notify(f"restarting {name}…", timeout=2)
        self._act(name, "restart")

    @work(group="actions")
    async def _act(self, name: str, action: str) -> None:
        """Run one backend action off the key handler: a blue/green restart can take seconds."""
        try:
            if action == "remove":
                await self.control.remove_backend(name)
                self.notify(f"backend {name} removed")
            elif action == "enable":
                await self.control.enable(name)
            elif action == "disable":
                await self.control.disable(name)
            elif action == "restart":
                await self.control.restart(name)
        except ControlError as exc:
            # A build that failed is announced by its state change (as for a restart on file change).
            if not (action == "restart" and exc.message.startswith("restart failed")):
                self.notify(f"{action} {name}: {exc.message}", title="refused", severity="error")
        self._state_dirty = True

    def action_connect_client(self, name: str | None = None) -> None:
        from app.screens.connect import ConnectScreen

        url = self.control.url
        if url is None:
            self.notify("the router is not listening yet", severity="warning")
            return
        self.app.push_screen(ConnectScreen(url, name or self.selected_backend() or self.default))

    @on(DataTable.RowSelected, "#backends")
    def _backend_selected(self, event: DataTable.RowSelected) -> None:
        from app.screens.backend_detail import BackendDetailScreen

        name = event.row_key.value
        if name is not None:
            self.app.push_screen(BackendDetailScreen(self.control, name))

    # ------------------------------------------------------------------ session keys
    @on(DataTable.RowSelected, "#sessions")
    def _session_selected(self, event: DataTable.RowSelected) -> None:
        sid = event.row_key.value
        if sid is None:
            return
        # A 2026-07-28 client's requests travel in its backend's shared session: filter to that one.
        shared = next((s.get("session") for s in self.sessions if s.get("id") == sid), None)
        token = f"session:{shared or sid[:8]}"
        self.set_filter_text("" if self.model.filter_text.strip() == token else token)

    def action_close_session(self) -> None:
        from app.screens.confirm import ConfirmDialog

        sid = self.sessions_table.selected_key
        if sid is None:
            self.notify("no session selected", severity="warning")
            return
        snap: dict[str, Any] = next((s for s in self.sessions if s.get("id") == sid), {})
        if snap.get("era") == "modern":
            self.notify("a 2026-07-28 client has no session to close", severity="warning")
            return
        client = (snap.get("client") or {}).get("name") or "the client"

        def confirmed(yes: bool | None) -> None:
            if yes:
                self._close_session(sid)

        self.app.push_screen(
            ConfirmDialog(
                f"Close session {sid[:8]}?",
                f"{client} loses its session; its next request gets 404 and it must initialize again.",
                "Close",
            ),
            confirmed,
        )

    @work(group="actions")
    async def _close_session(self, sid: str) -> None:
        try:
            await self.control.close_session(sid)
        except ControlError as exc:
            self.notify(exc.message, title="refused", severity="error")
        self._state_dirty = True

    def help_sections(self) -> list[tuple[str, list[tuple[str, str]]]]:
        return HELP

    # ------------------------------------------------------------------ workbench keys (app/screens/workbench.py)
    def action_replay(self) -> None:
        workbench.replay(self)

    def action_drift(self) -> None:
        workbench.show_drift(self)

    def action_copy_message(self) -> None:
        workbench.copy(self)

    @work(group="editor")
    async def action_open_message(self) -> None:
        await workbench.open_in_editor(self)

    def action_mark(self) -> None:
        workbench.toggle_mark(self)

    def action_only_marked(self) -> None:
        workbench.toggle_only_marked(self)

    def action_export(self) -> None:
        workbench.export(self)
