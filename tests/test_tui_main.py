"""The terminal UI's main screen (Pilot) against a real router in the test's loop, with real SDK
fixture backends (HTTP and stdio processes) and real SDK clients."""

from __future__ import annotations

import asyncio
import contextlib
import json
import shlex
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import mcp_types as types
import pytest
from mcp.shared.exceptions import MCPError
from textual.pilot import Pilot
from textual.widgets import TextArea
from textual.widgets._footer import FooterKey

from app.control import LocalControl
from app.proxy.config import BackendConfig
from app.proxy.events import TrafficEvent
from app.proxy.router import Router
from app.screens.main import MainScreen
from app.screens.message_detail import MessageDetailScreen
from app.trace_model import TraceRow
from app.tui import RouterTUI
from app.widgets.footer import SteadyFooter
from app.widgets.trace_view import TraceColumns
from tests.hotswap_support import stdio_backend_command, write_stdio_server
from tests.support.clients import connect
from tests.support.inprocess import served_router
from tests.support.procs import pid_alive, run_fixture, stdio_command, wait_for

SIZE = (140, 40)


def stdio_backend(name: str) -> BackendConfig:
    argv = shlex.split(stdio_command(name=name))
    return BackendConfig(name=name, command=argv[0], args=argv[1:])


@contextlib.asynccontextmanager
async def tui(backends: list[BackendConfig]) -> AsyncIterator[tuple[Served, RouterTUI, Pilot[Any]]]:
    async with served_router(*backends) as (router, control):
        await wait_for(lambda: all(b.state == "up" for b in router.backends.values()), 20, message="backends up")
        app = RouterTUI(control)
        async with app.run_test(size=SIZE) as pilot:
            await wait_for(lambda: isinstance(app.screen, MainScreen) and app.main.backends, message="main screen")
            yield Served(router, control), app, pilot


@dataclass
class Served:
    router: Router
    control: LocalControl

    def mcp_url(self, name: str | None = None) -> str:
        return f"{self.control.url}/mcp" + (f"/{name}" if name else "")


def rows(app: RouterTUI) -> list[TraceRow]:
    return list(app.main.model.visible)


def find(app: RouterTUI, **want: Any) -> TraceRow | None:
    for row in rows(app):
        if all(getattr(row, k) == v for k, v in want.items()):
            return row
    return None


async def test_session_and_its_messages_appear_paired() -> None:
    async with run_fixture("streamable") as fx, tui([BackendConfig(name="alpha", url=fx.url)]) as (r, app, pilot):
        async with connect(r.mcp_url(), "streamable-handshake") as client:
            await client.call_tool("echo", {"text": "hello"})
            sid = await wait_for(lambda: app.main.sessions_table.selected_key, message="session row")
            assert sid in r.router.sessions
            request = await wait_for(
                lambda: find(app, kind="request", method="tools/call", subject="echo"), message="request row"
            )
            await wait_for(lambda: request.status == "ok", message="request answered")
            answer = request.partner
            assert answer is not None and answer.kind == "response" and answer.method == "tools/call"
            assert answer.latency_ms is not None and request.latency_ms == answer.latency_ms
            assert request.session == answer.session == sid
            assert find(app, kind="notification", method="notifications/initialized") is not None
            # The backend row counts the session; the session row names its client.
            await wait_for(lambda: app.main.backends["alpha"]["sessions"] == 1, message="session counted")
            cells = [str(c) for c in app.main.sessions_table.get_row(sid)]
            assert any("mcp" in c.lower() for c in cells), cells

            # Selecting the session filters the trace to it; x closes it (after a confirmation).
            async with connect(r.mcp_url(), "streamable-handshake") as other:
                await other.list_tools()
                await wait_for(lambda: len(app.main.sessions) == 2, message="second session")
                app.main.sessions_table.focus()
                app.main.sessions_table.select_key(sid)
                await pilot.press("enter")
                assert app.main.model.filter_text == f"session:{sid[:8]}"
                assert rows(app) and all(row.session == sid for row in rows(app))
                await pilot.press("x")
                from app.screens.confirm import ConfirmDialog

                await wait_for(lambda: isinstance(app.screen, ConfirmDialog), message="confirm dialog")
                await pilot.press("y")
                await wait_for(lambda: sid not in r.router.sessions, message="session closed")
                await wait_for(lambda: app.main.sessions_table.row_count == 1, message="its row gone")


async def test_filter_by_method_and_by_error_status() -> None:
    async with run_fixture("streamable") as fx, tui([BackendConfig(name="alpha", url=fx.url)]) as (r, app, pilot):
        async with connect(r.mcp_url(), "streamable-handshake") as client:
            await client.call_tool("echo", {"text": "one"})
            with pytest.raises(MCPError):
                await client.read_resource("nowhere://nothing")
            await wait_for(lambda: find(app, kind="response", subject="nowhere://nothing"), message="error answer")
            everything = footer_keys(app)
            assert {"Add", "Restart", "Filter", "Pause", "Quit"} <= set(everything)
            composed = count_compositions(app.screen.query_one(SteadyFooter))
            await pilot.press("slash")
            assert app.focused is app.screen.query_one("#filter")
            await pilot.pause()
            # Letters go to the filter, so the footer offers only what still works there. It is
            # composed once for that (Textual's Footer: twice, a layout of the screen each time).
            assert footer_keys(app) == ["Filter", "palette"]
            assert composed == [1]
            await pilot.press(*"method:tools/list")
            assert rows(app) and all(row.method == "tools/list" for row in rows(app))
            await pilot.press(*["backspace"] * len("method:tools/list"), *"status:error")
            errors = rows(app)
            assert errors and all(row.status.startswith("error") for row in errors)
            assert {row.kind for row in errors} == {"request", "response"}
            await pilot.press(*["backspace"] * len("status:error"), *"!status:error method:tools/call")
            await pilot.pause()
            assert rows(app) and all(r_.subject == "echo" for r_ in rows(app))
            await pilot.press("escape")
            assert app.focused is app.main.trace
            await pilot.pause()
            assert footer_keys(app) == everything
            assert composed == [2]


def footer_keys(app: RouterTUI) -> list[str]:
    return [key.description for key in app.screen.query(FooterKey)]


def count_compositions(footer: SteadyFooter) -> list[int]:
    """A counter (its one item) of the footer's compositions from now on."""
    count = [0]
    original = footer.recompose

    async def counted() -> None:
        count[0] += 1
        await original()

    footer.recompose = counted  # type: ignore[method-assign]
    return count


async def test_pause_keeps_counting_and_resume_shows_what_waited() -> None:
    async with run_fixture("streamable") as fx, tui([BackendConfig(name="alpha", url=fx.url)]) as (r, app, pilot):
        async with connect(r.mcp_url(), "streamable-handshake") as client:
            await client.call_tool("echo", {"text": "before"})
            await wait_for(lambda: find(app, subject="echo", kind="response"), message="first call")
            await pilot.press("p")
            assert app.main.paused
            shown = len(rows(app))
            await client.call_tool("add", {"a": 1, "b": 2})
            # Its answer drained into the waiting list (not just any two events: the request and
            # a probe's could come in one drain and the answer in the next).
            await wait_for(
                lambda: any(
                    isinstance(e, TrafficEvent) and e.msg_kind == "response" and e.method == "tools/call"
                    for e in app.main.waiting
                ),
                message="the call's answer waiting while paused",
            )
            assert len(rows(app)) == shown and find(app, subject="add") is None
            assert "paused, " in str(app.main.query_one("#trace-panel").border_subtitle)
            await pilot.press("p")
            assert not app.main.paused and not app.main.waiting
            request = find(app, subject="add", kind="request")
            assert request is not None and request.status == "ok"
            # Scrolled up (a message selected), new traffic is counted, not followed; end follows again.
            app.main.trace.focus()
            await pilot.press("up")
            assert not app.main.trace.follow
            await client.call_tool("echo", {"text": "while away"})
            await wait_for(lambda: app.main.trace.new_while_away >= 2, message="new lines counted")
            await wait_for(
                lambda: "new (end)" in str(app.main.query_one("#trace-panel").border_subtitle), message="N new marker"
            )
            await pilot.press("end")
            assert app.main.trace.follow and app.main.trace.scroll_y == app.main.trace.max_scroll_y
            # The counts follow the traffic at most once a second, and catch up when it stops.
            columns = app.main.query_one("#trace-columns", TraceColumns)
            total = len(app.main.model.rows)
            await wait_for(lambda: columns.counts == f"{total}/{total} rows", 3, message="counts caught up")
            # What the user does shows at once: no waiting for the next second.
            await pilot.press("c")
            assert rows(app) == [] and columns.counts == "0/0 rows"


async def test_message_detail_shows_request_and_response() -> None:
    async with run_fixture("streamable") as fx, tui([BackendConfig(name="alpha", url=fx.url)]) as (r, app, pilot):
        async with connect(r.mcp_url(), "streamable-handshake") as client:
            await client.call_tool("echo", {"text": "look at me"})
            request = await wait_for(lambda: find(app, subject="echo", kind="request", status="ok"), message="call")
            app.main.trace.focus()
            app.main.trace.cursor = request
            await pilot.press("enter")
            assert isinstance(app.screen, MessageDetailScreen)
            text = app.screen.query_one("#detail-json").text  # type: ignore[attr-defined]
            assert '"method": "tools/call"' in text and '"look at me"' in text
            assert '"result"' in text and text.index('"method"') < text.index('"result"')
            await pilot.press("escape")
            assert isinstance(app.screen, MainScreen)


async def test_restart_disable_enable_remove_a_stdio_backend() -> None:
    async with tui([stdio_backend("one"), stdio_backend("two")]) as (r, app, pilot):
        table = app.main.backends_table
        table.focus()
        table.select_key("one")
        old_pids = list(r.router.backends["one"].pids)
        await pilot.press("r")
        await wait_for(
            lambda: find(app, kind="mark", backend="one", status="restarting"), 20, message="restarting mark"
        )
        await wait_for(lambda: app.main.backends["one"]["restarts"] == 1, 20, message="restart counted")
        await wait_for(
            lambda: any("swapped" in n.message for n in app._notifications), message="a toast says it was swapped"
        )
        assert app.main.backends["one"]["state"] == "up"
        assert find(app, kind="mark", backend="one", status="up") is not None
        await wait_for(lambda: not any(pid_alive(p) for p in old_pids), message="old process gone")

        await pilot.press("space")
        await wait_for(lambda: app.main.backends["one"]["state"] == "disabled", message="disabled")
        assert "disabled" in str(table.get_row("one"))
        await pilot.press("space")
        await wait_for(lambda: app.main.backends["one"]["state"] == "up", 20, message="enabled again")

        table.select_key("two")
        two_pids = list(r.router.backends["two"].pids)
        await pilot.press("d")
        from app.screens.confirm import ConfirmDialog

        await wait_for(lambda: isinstance(app.screen, ConfirmDialog), message="confirm dialog")
        app.screen.dismiss(True)
        await wait_for(lambda: "two" not in app.main.backends, message="removed")
        assert "two" not in r.router.backends and table.row_count == 1
        await wait_for(lambda: not any(pid_alive(p) for p in two_pids), message="removed backend's process gone")


async def test_add_a_backend_with_the_dialog_then_call_it() -> None:
    from app.screens.add_backend import AddBackendDialog

    async with run_fixture("streamable") as fx, tui([stdio_backend("one")]) as (r, app, pilot):
        await pilot.press("a")
        dialog = await wait_for(lambda: isinstance(app.screen, AddBackendDialog) and app.screen, message="dialog")
        dialog.query_one("#name").focus()
        await pilot.press(*"web")
        dialog.query_one("#url").focus()
        await pilot.press(*f"127.0.0.1:{fx.port}/mcp", "enter")
        await wait_for(lambda: isinstance(app.screen, MainScreen), message="dialog closed")
        await wait_for(lambda: app.main.backends.get("web", {}).get("state") == "up", 20, message="added, up")
        await wait_for(lambda: app.main.backends_table.selected_key == "web", message="new row selected")
        async with connect(r.mcp_url("web"), "streamable-handshake") as client:
            result = await client.call_tool("echo", {"text": "via the dialog"})
            block = result.content[0]
            assert isinstance(block, types.TextContent) and block.text == "via the dialog"
        assert await wait_for(lambda: find(app, backend="web", subject="echo"), message="its traffic in the trace")


async def test_a_request_to_a_disabled_backend_shows_held_then_answered() -> None:
    async with tui([stdio_backend("one")]) as (r, app, pilot):
        async with connect(r.mcp_url("one"), "streamable-handshake") as client:
            await client.list_tools()
            app.main.backends_table.focus()
            await pilot.press("space")
            await wait_for(lambda: app.main.backends["one"]["state"] == "disabled", message="disabled")
            call = asyncio.create_task(client.call_tool("echo", {"text": "waited"}))
            held = await wait_for(lambda: find(app, subject="echo", kind="request"), message="the call in the trace")
            assert held.status == "held"
            await pilot.press("space")
            result = await asyncio.wait_for(call, 20)
            block = result.content[0]
            assert isinstance(block, types.TextContent) and block.text == "waited"
            await wait_for(lambda: held.status == "ok" and held.partner is not None, message="answered")


async def test_a_failed_build_is_announced_and_the_old_one_keeps_serving(tmp_path: Path) -> None:
    script = write_stdio_server(tmp_path, "v1")
    argv = shlex.split(stdio_backend_command(script))
    async with tui([BackendConfig(name="dev", command=argv[0], args=argv[1:])]) as (r, app, pilot):
        old_pids = list(r.router.backends["dev"].pids)
        script.write_text("import sys\nsys.exit('SyntaxError: the build is broken')\n")
        app.main.backends_table.focus()
        await pilot.press("r")
        await wait_for(
            lambda: any(n.title == "build failed" for n in app._notifications),
            20,
            message="a toast says the build failed",
        )
        assert app.main.backends["dev"]["state"] == "up"
        assert all(pid_alive(p) for p in old_pids)
        assert not any(n.title == "refused" for n in app._notifications)  # announced once


async def test_help_and_palette_and_quit() -> None:
    async with tui([stdio_backend("one")]) as (_r, app, pilot):
        await pilot.press("question_mark")
        from app.screens.help import HelpScreen

        assert isinstance(app.screen, HelpScreen)
        await pilot.press("escape")
        assert isinstance(app.screen, MainScreen)
        from app.tui import BackendCommands

        titles = [text for text, _cb, _help in BackendCommands(app.screen, None)._commands()]
        assert {"Restart backend one", "Disable backend one", "Remove backend one…", "Add backend…"} <= set(titles)
        assert {"Clear trace", "Pause trace"} <= set(titles)
        # Through the palette itself, as a user would.
        from textual.command import CommandList, CommandPalette

        await pilot.press("ctrl+p")
        await wait_for(lambda: isinstance(app.screen, CommandPalette), message="palette open")
        await pilot.press(*"Pause trace")
        await wait_for(lambda: app.screen.query_one(CommandList).option_count > 0, message="palette hits")
        await pilot.press("enter")
        await wait_for(lambda: app.main.paused, message="paused from the palette")
        await pilot.press("q")
        await wait_for(lambda: app.return_code == 0, message="app exits")


async def test_connect_a_client_shows_and_copies_the_selected_backends_snippets() -> None:
    async with tui([stdio_backend("one"), stdio_backend("two")]) as (r, app, pilot):
        from app.screens.connect import ConnectScreen
        from app.tui import BackendCommands

        assert "Connect a client…" in [text for text, _cb, _help in BackendCommands(app.screen, None)._commands()]
        app.main.backends_table.focus()
        app.main.backends_table.select_key("two")
        await pilot.press("k")
        await wait_for(lambda: isinstance(app.screen, ConnectScreen), message="connect screen")
        screen = app.screen
        assert isinstance(screen, ConnectScreen)
        assert screen.client == "claude-desktop"
        await pilot.press("right")
        await wait_for(lambda: screen.client == "claude-code", message="Claude Code tab")
        shown = screen.query_one("#claude-code-text", TextArea).text
        assert shlex.split(shown) == ["claude", "mcp", "add", "--transport", "http", "two", r.mcp_url("two")]
        await pilot.press("c")
        await wait_for(lambda: app.clipboard == shown, message="copied")
        await pilot.press("right", "right", "right")
        await wait_for(lambda: screen.client == "mcp-remote", message="bridge tab")
        await pilot.press("c")
        await wait_for(lambda: app.clipboard == f"npx -y mcp-remote {r.mcp_url('two')}", message="bridge copied")
        await pilot.press("escape")
        await wait_for(lambda: isinstance(app.screen, MainScreen), message="closed")


async def test_startup_notices_reach_the_tui(tmp_path: Path) -> None:
    """A warning given before the TUI subscribed (one config entry skipped) is a toast and a trace line."""
    from app.runtime import load_state, make_router, services
    from app.settings import parse_args

    config = tmp_path / "mcp.json"
    argv = shlex.split(stdio_command(name="good"))
    config.write_text(
        json.dumps({"mcpServers": {"good": {"command": argv[0], "args": argv[1:]}, "broken": {"serverUrl": 5}}})
    )
    settings = parse_args(["--config", str(config), "--no-persist", "--port", "0"])
    persistence = load_state(settings)
    router = make_router(settings)
    await router.start()
    try:
        async with services(settings, router, persistence):
            app = RouterTUI(LocalControl(router))
            async with app.run_test(size=SIZE) as pilot:
                await wait_for(lambda: isinstance(app.screen, MainScreen) and app.main.backends, message="main screen")
                await pilot.pause()
                toasts = [n.message for n in app._notifications if n.severity == "warning"]
                assert any("skipped mcpServers entry broken" in t for t in toasts), toasts
                marks = [r.text for r in app.main.model.rows if r.kind == "mark" and "broken" in r.text]
                assert len(marks) == 1 and marks[0].startswith("router warning:"), marks
                assert "good" in app.main.backends
    finally:
        await router.stop()


async def test_modern_era_clients_are_listed_by_name_and_version() -> None:
    """2026-07-28 clients share one backend session; the sessions list shows each by its `_meta` clientInfo."""
    async with run_fixture("streamable") as fx, tui([BackendConfig(name="alpha", url=fx.url)]) as (r, app, pilot):
        ide = types.Implementation(name="my-ide", version="3.1.4")
        agent = types.Implementation(name="agent", version="0.9")
        async with (
            connect(r.mcp_url("alpha"), "streamable-modern", client_info=ide) as c1,
            connect(r.mcp_url("alpha"), "streamable-modern", client_info=agent) as c2,
        ):
            await c1.call_tool("echo", {"text": "one"})
            await c1.call_tool("echo", {"text": "two"})
            await c2.list_tools()
            listed = {s["id"]: s for s in await r.control.sessions() if s["era"] == "modern"}
            mine = listed["modern:alpha:my-ide@3.1.4"]
            assert mine["client"] == {"name": "my-ide", "version": "3.1.4"} and mine["backend"] == "alpha"
            assert mine["protocol_version"] == "2026-07-28" and mine["session"] == "modern:alpha"
            assert mine["requests"] >= 2 and mine["last_activity"] >= mine["created"]
            assert listed["modern:alpha:agent@0.9"]["requests"] >= 1
            async with httpx.AsyncClient() as http:
                api = (await http.get(f"{r.control.url}/sessions")).json()
            assert {"modern:alpha:my-ide@3.1.4", "modern:alpha:agent@0.9"} <= {s["id"] for s in api}

            # The panel shows them (read at most once a second while modern traffic flows).
            table = app.main.sessions_table
            await wait_for(lambda: table.row_count == 2, message="two modern rows")
            cells = [str(c) for c in table.get_row("modern:alpha:my-ide@3.1.4")]
            assert cells[:2] == ["modern", "my-ide 3.1.4"] and "2026-07-28" in cells
            assert cells[-1] == str(mine["requests"])
            # Enter filters the trace to the backend's shared session; x explains there is nothing to close.
            table.focus()
            table.select_key("modern:alpha:my-ide@3.1.4")
            await pilot.press("enter")
            assert app.main.model.filter_text == "session:modern:alpha"
            assert rows(app) and all(row.session == "modern:alpha" for row in rows(app))
            await pilot.press("x")
            assert isinstance(app.screen, MainScreen)
            assert any("no session to close" in n.message for n in app._notifications)
