"""Snapshots of the terminal UI (SVGs in snapshots/). Deterministic: a fixed size, theme and clock,
and a fake control that serves fixed state and one batch of synthetic events (fixed ids). The
behaviour itself is tested against the real router in test_tui_main.py."""

from __future__ import annotations

import copy
import time
from collections.abc import Iterable
from typing import Any

import pytest
from textual._compositor import Compositor
from textual.pilot import Pilot

from app.control import ControlError
from app.proxy.events import BackendStateEvent, Event, TrafficEvent
from app.proxy.jsonrpc import JSON
from app.screens.main import MainScreen
from app.tui import RouterTUI
from app.widgets.compositor import LeanCompositor
from app.widgets.trace_view import TraceColumns, TraceView
from tests.support.procs import wait_for

T0 = 1_750_000_000.0  # the fixed "now" of every snapshot
URL = "http://127.0.0.1:8090"
S1 = "3f2a9c10e4b54d0c9a8e7f6a5b4c3d2e"
S2 = "9b8c7d6e5f4a4b3c8d2e1f0a9b8c7d6e"


def fixed_time(ts: float) -> str:
    return time.strftime("%H:%M:%S", time.gmtime(ts)) + f".{int(ts * 1000) % 1000:03d}"


def backend(name: str, **over: Any) -> JSON:
    snap: JSON = {
        "name": name,
        "enabled": True,
        "kind": "stdio",
        "target": f"python {name}_server.py",
        "transport": "stdio",
        "state": "up",
        "reason": None,
        "sessions": 0,
        "restarts": 0,
        "latency_ms": 1.3,
        "protocol_version": "2025-11-25",
        "default": False,
        "pids": [],
    }
    snap.update(over)
    return snap


BACKENDS = [
    backend("demo", sessions=2, restarts=2, default=True, latency_ms=0.9),
    backend(
        "weather",
        kind="http",
        transport="streamable-http",
        target="http://127.0.0.1:8000/mcp",
        protocol_version="2026-07-28",
        latency_ms=3.4,
    ),
    backend("files", state="down", reason="process exited with code 1", latency_ms=None),
    backend(
        "legacy", kind="http", transport="sse", target="http://127.0.0.1:9000/sse", state="disabled", enabled=False
    ),
]
SESSIONS = [
    {
        "id": S1,
        "backend": "demo",
        "era": "handshake",
        "transport": "streamable-http",
        "client": {"name": "claude-code", "version": "2.1.0"},
        "protocol_version": "2025-11-25",
        "connected": True,
        "state": "connected",
        "pending": 1,
        "created": T0 - 754,
    },
    {
        "id": S2,
        "backend": "demo",
        "era": "handshake",
        "transport": "sse",
        "client": {"name": "mcp-inspector", "version": "0.17.2"},
        "protocol_version": "2025-06-18",
        "connected": True,
        "state": "connected",
        "pending": 0,
        "created": T0 - 42,
    },
]
PROBES = {"demo": [1.1, 0.9, 1.0, 2.5, 0.8, 0.9, 1.2, 0.9], "weather": [3.0, 3.4, 4.1, 3.2], "files": [1.0, None, None]}


def traffic(
    dt: float, direction: str, session: str, kind: str, method: str | None, msg_id: Any, **kw: Any
) -> TrafficEvent:
    msg: dict[str, Any] = {"jsonrpc": "2.0"}
    if msg_id is not None:
        msg["id"] = msg_id
    if kind in ("request", "notification"):
        msg["method"] = method
        msg["params"] = kw.pop("params", {})
    elif kind == "error":
        msg["error"] = {"code": kw.pop("code"), "message": kw.get("error", "")}
    else:
        msg["result"] = kw.pop("result", {})
    return TrafficEvent(
        ts=T0 - 30 + dt,
        direction=direction,  # type: ignore[arg-type]
        session=session,
        backend=kw.pop("backend", "demo"),
        msg_kind=kind,  # type: ignore[arg-type]
        method=method,
        msg_id=msg_id,
        message=msg,
        **kw,
    )


def events() -> list[Event]:
    c2b, b2c, r2c = "client->backend", "backend->client", "router->client"
    return [
        traffic(0.0, c2b, S1, "request", "initialize", 1, params={"protocolVersion": "2025-11-25"}),
        traffic(0.212, b2c, S1, "response", "initialize", 1, latency_ms=212.3, result={"serverInfo": {"name": "demo"}}),
        traffic(0.220, c2b, S1, "notification", "notifications/initialized", None),
        traffic(0.231, c2b, S1, "request", "tools/list", 2),
        traffic(0.233, b2c, S1, "response", "tools/list", 2, latency_ms=1.8, result={"tools": []}),
        traffic(1.5, c2b, S1, "request", "tools/call", 3, params={"name": "echo", "arguments": {"text": "hi"}}),
        traffic(1.502, b2c, S1, "response", "tools/call", 3, latency_ms=1.4, result={"content": []}),
        traffic(2.0, c2b, S2, "request", "tools/call", 7, params={"name": "add", "arguments": {"a": "x"}}),
        traffic(2.003, b2c, S2, "error", "tools/call", 7, latency_ms=2.9, code=-32602, error="Invalid params"),
        traffic(3.0, c2b, S1, "request", "tools/call", 4, params={"name": "ask_llm", "arguments": {}}),
        traffic(3.01, b2c, S1, "request", "sampling/createMessage", 1, params={"messages": []}),
        traffic(3.8, c2b, S1, "response", "sampling/createMessage", 1, result={"role": "assistant"}),
        traffic(3.81, b2c, S1, "notification", "notifications/message", None, params={"level": "info"}),
        traffic(3.82, b2c, S1, "response", "tools/call", 4, latency_ms=820.0, result={"content": []}),
        BackendStateEvent(
            ts=T0 - 20, backend="demo", state="restarting", previous="up", reason="src/server.py changed"
        ),
        traffic(10.1, c2b, S2, "request", "tools/call", 8, params={"name": "slow_count", "arguments": {"n": 5}}),
        traffic(10.2, r2c, S1, "notification", "notifications/tools/list_changed", None),
        traffic(11.0, c2b, S1, "request", "tools/call", 5, params={"name": "echo", "arguments": {}}),
        traffic(11.4, c2b, S1, "notification", "notifications/cancelled", None, params={"requestId": 5}),
        traffic(12.0, c2b, S2, "request", "tools/call", 1, params={"name": "read_file"}, backend="files"),
    ]


class FakeFeed:
    def __init__(self, batch: list[Event]) -> None:
        self.batch = batch
        self.dropped = 0
        self.closed = False

    def drain(self) -> list[Event]:
        batch, self.batch = self.batch, []
        return batch

    def close(self) -> None:
        self.closed = True


class FakeControl:
    """Fixed state and one batch of events; actions are refused (snapshots press no action keys)."""

    url = URL

    def subscribe(self, kinds: Iterable[str] | None = None) -> FakeFeed:
        return FakeFeed(events())

    async def status(self) -> JSON:
        return {"url": URL, "uptime_s": 3725.0, "default": "demo", "backends": BACKENDS, "sessions": len(SESSIONS)}

    async def backend(self, name: str) -> JSON:
        return next(b for b in BACKENDS if b["name"] == name)

    async def health(self, name: str) -> list[JSON]:
        return [{"ts": T0, "ok": v is not None, "latency_ms": v, "detail": None} for v in PROBES.get(name, [])]

    async def log(self, name: str) -> list[str]:
        return []

    async def sessions(self) -> list[JSON]:
        return SESSIONS

    async def _refuse(self, *args: Any) -> Any:
        raise ControlError("not in a snapshot")

    add_backend = remove_backend = enable = disable = restart = close_session = _refuse


def make_app(theme: str = "textual-dark") -> RouterTUI:
    app = RouterTUI(FakeControl(), clock=lambda: T0, time_text=fixed_time)
    app.theme = theme
    return app


async def settled(pilot: Pilot[Any]) -> None:
    app = pilot.app
    assert isinstance(app, RouterTUI)
    await wait_for(
        lambda: (
            isinstance(app.screen, MainScreen)
            and len(app.main.model.rows) == len(events())
            and app.main.trace_title_current
        )  # the counts of a second batch are shown within a second
    )
    await pilot.pause()
    await pilot.pause()


def test_main_screen_up_down_disabled(snap_compare: Any) -> None:
    assert snap_compare(make_app(), terminal_size=(150, 42), run_before=settled)


def test_main_screen_light_theme(snap_compare: Any) -> None:
    assert snap_compare(make_app("textual-light"), terminal_size=(150, 42), run_before=settled)


def test_main_screen_80x24(snap_compare: Any) -> None:
    assert snap_compare(make_app(), terminal_size=(80, 24), run_before=settled)


def test_message_detail(snap_compare: Any) -> None:
    async def open_detail(pilot: Pilot[Any]) -> None:
        await settled(pilot)
        app = pilot.app
        assert isinstance(app, RouterTUI)
        app.main.trace.focus()
        app.main.trace.cursor = next(r for r in app.main.model.rows if r.subject == "ask_llm" and r.kind == "request")
        await pilot.press("enter")
        await pilot.pause()

    assert snap_compare(make_app(), terminal_size=(120, 36), run_before=open_detail)


def test_filtered_and_paused(snap_compare: Any) -> None:
    async def filter_and_pause(pilot: Pilot[Any]) -> None:
        await settled(pilot)
        await pilot.press("slash", *"status:error", "enter", "p")
        await pilot.pause()

    assert snap_compare(make_app(), terminal_size=(150, 42), run_before=filter_and_pause)


def test_connect_a_client(snap_compare: Any) -> None:
    async def open_connect(pilot: Pilot[Any]) -> None:
        await settled(pilot)
        app = pilot.app
        assert isinstance(app, RouterTUI)
        app.main.backends_table.focus()
        app.main.backends_table.select_key("weather")
        await pilot.press("k")
        await wait_for(lambda: app.screen.query("#connect-tabs"))
        await pilot.pause()
        await pilot.pause()

    assert snap_compare(make_app(), terminal_size=(120, 36), run_before=open_connect)


@pytest.mark.parametrize("width", [100, 120, 150, 200])
async def test_the_row_counts_keep_their_place_on_the_column_line(width: int) -> None:
    # At 120 columns the method column used to take the whole line and the counts were dropped.
    async with make_app().run_test(size=(width, 36)) as pilot:
        await settled(pilot)
        line = pilot.app.screen.query_one("#trace-columns", TraceColumns).render_line(0).text
        assert line.rstrip().endswith(f"{len(events())}/{len(events())} rows"), line
        assert line.lstrip().startswith("time") and " method " in line, line


@pytest.mark.parametrize("width", [100, 160])
async def test_the_row_counts_stay_when_rows_were_dropped(width: int) -> None:
    kept = len(events()) - 3
    app = RouterTUI(FakeControl(), trace_buffer=kept, clock=lambda: T0, time_text=fixed_time)
    async with app.run_test(size=(width, 36)) as pilot:
        await wait_for(lambda: app.main.model.dropped == 3 and app.main.trace_title_current)
        await pilot.pause()
        columns = app.screen.query_one("#trace-columns", TraceColumns)
        line = columns.render_line(0).text
        assert f" {kept}/{kept} rows" in line, line  # with " · 3 dropped" where there is room
        panel = app.screen.query_one("#trace-panel")
        await wait_for(lambda: "3 dropped" in str(panel.border_subtitle))  # updated once a second
        # Seen in a real terminal after a load run: "10000/10000 rows · 19324 dropped" did not fit
        # the room kept for the counts, so they went altogether. The dropped number is in the
        # panel's border too: the rows stay.
        columns.show(app.main.trace.header_text(), "10000/10000 rows · 19324 dropped")
        line = columns.render_line(0).text
        assert line.rstrip().endswith(" 10000/10000 rows"), line
        assert line.lstrip().startswith("time") and " method " in line, line


async def test_a_partial_update_of_the_trace_draws_the_same_lines_from_fewer_widgets() -> None:
    """The main screen's compositor (LeanCompositor) against Textual's own, on the same screen."""
    async with make_app().run_test(size=(150, 42)) as pilot:
        await settled(pilot)
        lean = pilot.app.screen._compositor
        assert isinstance(lean, LeanCompositor)
        stock = copy.copy(lean)
        stock.__class__ = Compositor  # the same layout, drawn by Textual's code
        trace = pilot.app.screen.query_one(TraceView)
        panel = pilot.app.screen.query_one("#trace-panel")
        # What a new batch of trace lines redraws; and the whole panel, borders and column line too.
        for crop in (trace.region, panel.region):
            lean_renders = list(lean._get_renders(crop))
            stock_renders = list(stock._get_renders(crop))
            # Textual's asks the header, the footer, the tables, the screen behind...: ours fewer.
            assert 0 < len(lean_renders) < len(stock_renders)
            everything = lambda y: True  # noqa: E731
            ours, theirs = lean._render_chops(crop, everything), stock._render_chops(crop, everything)
            for y in crop.line_range:
                # Every piece of the line that reaches into the area, as the terminal is sent it.
                ends = lean.cuts[y][1:]
                shown = [
                    (x, strip)
                    for end, (x, strip) in zip(ends, theirs[y].items(), strict=True)
                    if x < crop.right and end > crop.x
                ]
                assert shown and [(x, ours[y][x]) for x, _ in shown] == shown, y
        # For the trace's own area, the trace alone.
        assert [region for region, _, _ in lean._get_renders(trace.region)] == [trace.region]
