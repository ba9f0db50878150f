"""The workbench in the terminal UI (Pilot on RouterTUI) against a real in-process router with the
SDK workbench backend and SDK clients: R replays and diffs after a rebuild, the drift badge and
view, marks, y and o, secrets masked on screen until revealed, the palette's "Call tool…".
"""

from __future__ import annotations

import contextlib
import json
import stat
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from textual.command import CommandList, CommandPalette
from textual.pilot import Pilot
from textual.widgets import TextArea

from app.control_file import FileControl
from app.proxy.secrets import MASK
from app.runtime import run_trace_file
from app.screens.call import CallScreen
from app.screens.diff import DiffScreen, ReplayScreen
from app.screens.drift import DriftScreen
from app.screens.main import MainScreen
from app.screens.message_detail import MessageDetailScreen
from app.settings import parse_args
from app.trace_model import TraceRow
from app.tui import RouterTUI
from tests.support.clients import connect
from tests.support.procs import wait_for
from tests.test_workbench_core import Served, local_router, workbench_backend

SIZE = (150, 44)


@contextlib.asynccontextmanager
async def workbench_tui(tmp_path: Path) -> AsyncIterator[tuple[Served, RouterTUI, Pilot[Any], Path]]:
    build = tmp_path / "build"
    build.write_text("v1")
    async with local_router(workbench_backend(build)) as r:
        app = RouterTUI(r.control)
        async with app.run_test(size=SIZE) as pilot:
            await wait_for(lambda: isinstance(app.screen, MainScreen) and app.main.backends, message="main screen")
            yield r, app, pilot, build


def find(app: RouterTUI, **want: Any) -> TraceRow | None:
    for row in app.main.model.visible:
        if all(getattr(row, k) == v for k, v in want.items()):
            return row
    return None


async def select(app: RouterTUI, pilot: Pilot[Any], row: TraceRow) -> None:
    app.main.trace.focus()
    app.main.trace.cursor = row
    await pilot.pause()


async def test_replay_after_a_rebuild_and_the_drift_badge(tmp_path: Path) -> None:
    async with workbench_tui(tmp_path) as (r, app, pilot, build):
        async with connect(r.mcp_url("wb"), "streamable-handshake") as client:
            await client.call_tool("version", {})
        request = await wait_for(lambda: find(app, kind="request", subject="version", status="ok"), message="call")
        build.write_text("v2")
        await r.control.restart("wb")
        # The row carries a badge until the change is looked at.
        await wait_for(lambda: "3 changes" in str(app.main.backends_table.get_row("wb")[0]), message="badge")

        await select(app, pilot, request)
        await pilot.press("R")
        screen = await wait_for(lambda: isinstance(app.screen, ReplayScreen) and app.screen, message="replay screen")
        await wait_for(lambda: screen.outcome is not None, 20, message="the replay's answer")
        assert {"result.structuredContent.build", "result.structuredContent.major"} <= {c.where for c in screen.changes}
        await pilot.press("escape")
        # The replay is in the trace as the router's, request and answer paired.
        mine = await wait_for(
            lambda: find(app, direction="router->backend", subject="version", status="ok"), message="replay row"
        )
        assert mine.kind == "request" and mine.partner is not None and mine.partner.direction == "backend->router"

        app.main.backends_table.focus()
        await pilot.press("w")
        drift = await wait_for(lambda: isinstance(app.screen, DriftScreen) and app.screen, message="drift view")
        await wait_for(lambda: drift.change is not None, message="drift loaded")
        await pilot.press("escape")
        await wait_for(lambda: "change" not in str(app.main.backends_table.get_row("wb")[0]), message="badge gone")


async def test_secrets_masked_on_screen_and_marks(tmp_path: Path) -> None:
    async with workbench_tui(tmp_path) as (r, app, pilot, _build):
        async with connect(r.mcp_url("wb"), "streamable-handshake") as client:
            await client.call_tool("login", {"user": "alice", "password": "hunter2-secret"})
            await client.call_tool("search", {"query": "q"})
        login = await wait_for(lambda: find(app, kind="request", subject="login", status="ok"), message="login")
        await wait_for(lambda: find(app, kind="request", subject="search", status="ok"), message="search")

        # Secrets on screen: masked in the detail until v.
        await select(app, pilot, login)
        await pilot.press("enter")
        detail = await wait_for(lambda: isinstance(app.screen, MessageDetailScreen) and app.screen, message="detail")
        area = detail.query_one(TextArea)
        assert "hunter2-secret" not in area.text and f'"password": "{MASK}"' in area.text
        assert "tok-alice" not in area.text  # the answer's token too, also where the text repeats it
        await pilot.press("v")
        assert "hunter2-secret" in area.text
        await pilot.press("escape")

        # m marks; M shows only marked ones; marks survive filtering.
        await select(app, pilot, login)
        await pilot.press("m")
        assert login.marked
        app.main.set_filter_text("method:search")
        await pilot.pause()
        assert login not in app.main.model.visible
        app.main.set_filter_text("")
        await pilot.pause()
        await pilot.press("M")
        assert list(app.main.model.visible) == [login]
        await pilot.press("M")
        assert len(app.main.model.visible) > 1 and login.marked


async def test_copy_and_open_in_the_editor(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "seen-by-editor.json"
    editor = tmp_path / "editor.sh"
    editor.write_text(f'#!/bin/sh\ncp "$1" {out}\n')
    editor.chmod(editor.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("VISUAL", str(editor))
    async with workbench_tui(tmp_path) as (r, app, pilot, _build):
        async with connect(r.mcp_url("wb"), "streamable-handshake") as client:
            await client.call_tool("login", {"user": "bob", "password": "pw-in-clipboard"})
        login = await wait_for(lambda: find(app, kind="request", subject="login"), message="login row")
        await select(app, pilot, login)
        await pilot.press("y")
        await pilot.pause()
        assert json.loads(app.clipboard)["params"]["arguments"] == {"user": "bob", "password": MASK}
        await pilot.press("o")
        await wait_for(out.exists, 10, message="the editor to run")
        assert json.loads(out.read_text())["params"]["name"] == "login"
        await wait_for(lambda: not list(Path(tempfile.gettempdir()).glob("mcp-message-*.json")), message="temp gone")


async def test_call_tool_from_the_palette(tmp_path: Path) -> None:
    async with workbench_tui(tmp_path) as (_r, app, pilot, _build):
        await pilot.press("ctrl+p")
        await pilot.pause()
        for ch in "Call tool search on wb":
            await pilot.press("space" if ch == " " else ch)
        await wait_for(
            lambda: isinstance(app.screen, CommandPalette) and app.screen.query_one(CommandList).option_count,
            message="palette hits",
        )
        await pilot.press("enter")
        screen = await wait_for(lambda: isinstance(app.screen, CallScreen) and app.screen, message="call screen")
        assert screen.item_name == "search" and [f.name for f in screen.fields] == ["query", "limit"]


async def test_export_as_filtered_with_marks_and_open_it_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    async with workbench_tui(tmp_path) as (r, app, pilot, _build):
        async with connect(r.mcp_url("wb"), "streamable-handshake") as client:
            await client.call_tool("login", {"user": "alice", "password": "hunter2-secret"})
            await client.call_tool("search", {"query": "q"})
            await client.list_tools()
        login = await wait_for(lambda: find(app, kind="request", subject="login", status="ok"), message="login")
        await wait_for(lambda: find(app, kind="response", method="tools/list"), message="tools/list answered")

        # Secrets on screen: masked in the detail until v.
        await select(app, pilot, login)
        await pilot.press("enter")
        detail = await wait_for(lambda: isinstance(app.screen, MessageDetailScreen) and app.screen, message="detail")
        area = detail.query_one(TextArea)
        assert "hunter2-secret" not in area.text and f'"password": "{MASK}"' in area.text
        await pilot.press("v")
        assert "hunter2-secret" in area.text
        await pilot.press("escape")

        # Mark the login call, filter to tools/call, export.
        await select(app, pilot, login)
        await pilot.press("m")
        assert login.marked
        app.main.set_filter_text("method:tools/call")
        await pilot.pause()
        shown = list(app.main.model.visible)
        assert login in shown and all(row.method == "tools/call" for row in shown)
        await pilot.press("e")
        files = await wait_for(lambda: list(tmp_path.glob("mcp-trace-*.jsonl")), message="export file")
        [path] = files
        assert any(str(path) in str(n.message) for n in app._notifications)  # the path is shown

        records = [json.loads(line) for line in path.read_text().splitlines()]
        assert [(rec["direction"], rec["method"], rec["id"], rec["status"]) for rec in records] == [
            (row.direction, row.method, row.msg_id, "ok" if row.kind.endswith("response") else None) for row in shown
        ]
        assert all(rec["backend"] == "wb" and rec["era"] == "handshake" for rec in records)
        assert [rec.get("marked", False) for rec in records] == [row.marked for row in shown]
        text = path.read_text()
        assert "hunter2-secret" not in text and "tok-alice" not in text and MASK in text

        # M: only the marked one, whatever the filter says.
        await pilot.press("M")
        assert list(app.main.model.visible) == [login]
        await pilot.press("M")

    # --open: the same rows, read-only, with filter, detail and marks working.
    assert parse_args(["--open", str(path)]).open_trace == str(path)
    opened = RouterTUI(FileControl.open(path))
    async with opened.run_test(size=SIZE) as pilot:
        await wait_for(lambda: isinstance(opened.screen, MainScreen) and opened.main.model.rows, message="rows")
        rows = list(opened.main.model.visible)
        assert [(row.direction, row.method, row.msg_id, row.status) for row in rows] == [
            (rec["direction"], rec["method"], rec["id"], rec["status"] or "ok") for rec in records
        ]
        request = next(row for row in rows if row.kind == "request" and row.subject == "login")
        assert request.marked and request.partner is not None  # paired again, mark kept
        opened.main.set_filter_text("method:search")
        await pilot.pause()
        assert {row.subject for row in opened.main.model.visible} == {"search"}
        await select(opened, pilot, opened.main.model.visible[0])
        await pilot.press("enter")
        await wait_for(lambda: isinstance(opened.screen, MessageDetailScreen), message="detail of an opened trace")
        await pilot.press("escape")
        await pilot.press("r")  # actions are refused, not crashed
        await pilot.pause()
        assert isinstance(opened.screen, MainScreen)


async def test_open_compares_an_answer_with_an_earlier_one(tmp_path: Path) -> None:
    records = []
    for n, build in enumerate(["v1", "v2"]):
        req = {"jsonrpc": "2.0", "id": n + 1, "method": "tools/call", "params": {"name": "version", "arguments": {}}}
        ans = {"jsonrpc": "2.0", "id": n + 1, "result": {"structuredContent": {"build": build}, "isError": False}}
        base = {"session": f"s{n}", "backend": "wb", "era": "handshake", "method": "tools/call", "id": n + 1}
        records.append(
            {**base, "ts": 100.0 + n, "direction": "client->backend", "kind": "request", "status": None, "message": req}
        )
        records.append({**base, "ts": 100.5 + n, "direction": "backend->client", "kind": "response", "status": "ok", "latency_ms": 5.0, "message": ans})  # fmt: skip
    path = tmp_path / "two.jsonl"
    path.write_text("".join(json.dumps(rec) + "\n" for rec in records) + "not json\n")
    app = RouterTUI(FileControl.open(path))
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(lambda: isinstance(app.screen, MainScreen) and len(app.main.model.rows) == 4, message="rows")
        await select(app, pilot, app.main.model.visible[-1])
        await pilot.press("R")  # read-only: R compares with the earlier answer to the same call
        screen = await wait_for(lambda: isinstance(app.screen, DiffScreen) and app.screen, message="diff")
        await pilot.pause()
        [change] = screen.query_one("#diff-view").changes  # type: ignore[attr-defined]
        assert change.where == "result.structuredContent.build" and (change.old, change.new) == ("v1", "v2")


async def test_open_refuses_a_missing_file_before_any_ui(tmp_path: Path) -> None:
    settings = parse_args(["--open", str(tmp_path / "nope.jsonl")])
    assert await run_trace_file(settings) == 1
    with pytest.raises(SystemExit):
        parse_args(["--open", "x.jsonl", "--no-ui"])
