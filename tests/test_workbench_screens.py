"""The workbench screens (tool form, replay diff, drift view), driven with Pilot in a small harness
App over a LocalControl of a real in-process router with a real SDK backend
(tests/servers/workbench.py over stdio), and snapshot SVGs of each with deterministic data.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from textual.app import App, ComposeResult
from textual.screen import Screen
from textual.widgets import Input, Select, Static, Switch, TextArea

from app.control import RouterControl
from app.proxy.events import TrafficEvent
from app.proxy.secrets import MASK
from app.screens.call import CallScreen
from app.screens.diff import DiffScreen, ReplayScreen
from app.screens.drift import DriftScreen
from tests.servers.workbench import PIXEL
from tests.support.procs import wait_for
from tests.test_workbench_core import Served, version_call_then_rebuild, workbench_router

SIZE = (110, 40)


class Harness(App[None]):
    """Just the screen under test, on top of an empty default screen."""

    def __init__(self, make: Callable[[], Screen[Any]]) -> None:
        super().__init__()
        self.make = make

    def compose(self) -> ComposeResult:
        yield Static("harness")

    def on_mount(self) -> None:
        self.push_screen(self.make())


def text_of(screen: Screen[Any], selector: str) -> str:
    return str(screen.query_one(selector, Static).visual)


@pytest.fixture
async def wb(tmp_path: Path) -> AsyncIterator[tuple[Served, Path]]:
    async with workbench_router(tmp_path) as pair:
        yield pair


async def tool(control: RouterControl, name: str) -> dict[str, Any]:
    catalog = await control.catalog("wb")
    found: dict[str, Any] = next(t for t in catalog["tools"] if t["name"] == name)
    return found


# ---------------------------------------------------------------------- the tool form


async def test_a_tool_with_inputs_of_every_kind_called_through_the_form(wb: tuple[Served, Path]) -> None:
    lr, _ = wb
    form = await tool(lr.control, "form")
    feed = lr.control.subscribe(["traffic"])
    app = Harness(lambda: CallScreen(lr.control, "wb", "tool", form))
    async with app.run_test(size=SIZE) as pilot:
        screen = app.screen
        assert isinstance(screen, CallScreen)
        kinds = {f.name: (f.kind, f.required) for f in screen.fields}
        assert kinds == {
            "text": ("string", True),
            "tags": ("json", True),
            "count": ("integer", False),
            "ratio": ("number", False),
            "flag": ("boolean", False),
            "color": ("enum", False),
            "settings": ("json", False),
        }
        # Defaults filled in, in the widget each kind gets.
        assert screen.query_one("#field-2", Input).value == "3"
        assert screen.query_one("#field-3", Input).value == "0.5"
        assert screen.query_one("#field-4", Switch).value is False
        assert screen.query_one("#field-5", Select).value == "green"
        assert screen.query_one("#field-6", TextArea).text == ""

        # Sent empty: the schema's own errors, and nothing reaches the backend.
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert screen.errors == ["'text' is a required property", "'tags' is a required property"]
        assert "'text' is a required property" in text_of(screen, "#call-errors")

        # Typed in: too short, out of range, not JSON.
        await pilot.click("#field-0")
        await pilot.press("a")
        screen.query_one("#field-1", TextArea).text = '["x", "y"]'
        count = screen.query_one("#field-2", Input)
        count.value = "101"
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert screen.errors == ["count: 101 is greater than the maximum of 100", "text: 'a' is too short"]
        screen.query_one("#field-6", TextArea).text = "{depth: 2}"
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert len(screen.errors) == 1 and screen.errors[0].startswith("settings: not JSON")
        assert screen.outcome is None
        assert not [e for e in feed.drain() if isinstance(e, TrafficEvent) and e.method == "tools/call"]

        # Fixed: sent, and the answer is shown as the client would see it.
        await pilot.press("b", "c")
        count.value = "7"
        screen.query_one("#field-3", Input).value = "1.25"
        screen.query_one("#field-4", Switch).focus()
        await pilot.press("space")
        screen.query_one("#field-5", Select).value = "blue"
        screen.query_one("#field-6", TextArea).text = '{"depth": 2, "verbose": true}'
        await pilot.press("ctrl+s")
        await wait_for(lambda: screen.outcome is not None, 20, message="the call's answer")
        await pilot.pause()
        assert screen.errors == []
        expected = {
            "text": "abc",
            "tags": ["x", "y"],
            "count": 7,
            "ratio": 1.25,
            "flag": True,
            "color": "blue",
            "settings": {"depth": 2, "verbose": True},
        }
        assert screen.sent == {"name": "form", "arguments": expected}
        assert screen.outcome is not None
        assert screen.outcome["response"]["result"]["structuredContent"] == expected
        shown = text_of(screen, "#call-result-text")
        assert "structured content" in shown and '"color": "blue"' in shown
        # The call went through the router, on its own session, and is in the trace as the router's.
        mine = [e for e in feed.drain() if isinstance(e, TrafficEvent) and e.method == "tools/call"]
        assert [e.direction for e in mine] == ["router->backend", "backend->router"]


async def test_images_errors_prompts_and_resources_are_shown_as_a_client_sees_them(
    wb: tuple[Served, Path],
) -> None:
    lr, _ = wb
    picture, fail = await tool(lr.control, "picture"), await tool(lr.control, "fail")
    catalog = await lr.control.catalog("wb")
    [review] = catalog["prompts"]
    [readme] = catalog["resources"]
    cases: list[tuple[Any, dict[str, Any], str]] = [
        ("tool", picture, f"[image: image/png, {len(PIXEL)} B]"),
        ("tool", fail, "The tool reported an error (isError: true)"),
        ("prompt", review, "Review this (short): x = 1"),
        ("resource", readme, "workbench v1"),
    ]
    for kind, item, expected in cases:
        app = Harness(lambda kind=kind, item=item: CallScreen(lr.control, "wb", kind, item))
        async with app.run_test(size=SIZE) as pilot:
            screen = app.screen
            assert isinstance(screen, CallScreen)
            if kind == "prompt":
                await pilot.press("ctrl+s")
                await pilot.pause()
                assert screen.errors == ["code: required"]
                screen.query_one("#field-0", Input).value = "x = 1"
            await pilot.press("ctrl+s")
            await wait_for(lambda screen=screen: screen.outcome is not None, 20, message=f"{kind} answer")
            await pilot.pause()
            assert expected in text_of(screen, "#call-result-text")


async def test_secrets_in_an_answer_are_masked_until_revealed(wb: tuple[Served, Path]) -> None:
    lr, _ = wb
    login = await tool(lr.control, "login")
    app = Harness(lambda: CallScreen(lr.control, "wb", "tool", login))
    async with app.run_test(size=SIZE) as pilot:
        screen = app.screen
        assert isinstance(screen, CallScreen)
        assert screen.query_one("#field-1", Input).password  # the password field does not echo
        screen.query_one("#field-0", Input).value = "alice"
        screen.query_one("#field-1", Input).value = "s3cret-pw"
        await pilot.press("ctrl+s")
        await wait_for(lambda: screen.outcome is not None, 20, message="the login answer")
        await pilot.pause()
        shown = text_of(screen, "#call-result-text")
        assert "tok-alice-9" not in shown and MASK in shown
        await pilot.press("ctrl+r")
        await pilot.pause()
        assert "tok-alice-9" in text_of(screen, "#call-result-text")


# ---------------------------------------------------------------------- replay and diff


async def test_replay_after_a_rebuild_names_the_changed_field(wb: tuple[Served, Path]) -> None:
    lr, build = wb
    request, answer = await version_call_then_rebuild(lr, build)
    app = Harness(lambda: ReplayScreen(lr.control, "wb", request.message or {}, answer.message, request.direction))
    async with app.run_test(size=SIZE) as pilot:
        screen = app.screen
        assert isinstance(screen, ReplayScreen)
        await wait_for(lambda: screen.outcome is not None, 20, message="the replay")
        await pilot.pause()
        where = {c.where for c in screen.changes}
        assert {"result.structuredContent.build", "result.structuredContent.major"} <= where
        summary = text_of(screen, "#diff-summary")
        assert 'result.structuredContent.build: "v1" → "v2"' in summary
        assert '"build": "v1"' in text_of(screen, "#diff-old-text")
        assert '"build": "v2"' in text_of(screen, "#diff-new-text")


async def test_a_request_that_needs_the_client_says_why_it_cannot_be_replayed(wb: tuple[Served, Path]) -> None:
    lr, _ = wb
    sampling = {"jsonrpc": "2.0", "id": 1, "method": "sampling/createMessage", "params": {}}
    app = Harness(lambda: ReplayScreen(lr.control, "wb", sampling, None, "backend->client"))
    async with app.run_test(size=SIZE) as pilot:
        screen = app.screen
        assert isinstance(screen, ReplayScreen)
        await wait_for(lambda: screen.refused is not None, 10, message="the refusal")
        await pilot.pause()
        assert "Cannot replay: sampling/createMessage is a request the backend sent to the client" in text_of(
            screen, "#replay-status"
        )


# ---------------------------------------------------------------------- drift


async def test_schema_drift_across_a_restart_in_the_drift_view(wb: tuple[Served, Path]) -> None:
    lr, build = wb
    build.write_text("v2")
    await lr.control.restart("wb")
    assert (await lr.control.backend("wb"))["last_change"]["seen"] is False
    app = Harness(lambda: DriftScreen(lr.control, "wb"))
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(lambda: lr.router.backends["wb"].last_change["seen"], 10, message="the change seen")  # type: ignore[index]
        await pilot.pause()
        body = text_of(app.screen, "#drift-text")
        assert "3 changes" in body
        assert "\n+ tool extra\n" in body and "\n- tool legacy\n" in body
        assert "\n~ tool search: description, inputSchema\n" in body
        assert 'inputSchema.properties.exact {"default":false,"title":"Exact","type":"boolean"}' in body


# ---------------------------------------------------------------------- snapshots (deterministic data)

V1_ANSWER = {
    "jsonrpc": "2.0",
    "id": 3,
    "result": {
        "content": [{"type": "text", "text": '{"build": "v1", "major": 1}'}],
        "structuredContent": {"build": "v1", "major": 1, "features": ["search"], "token": "tok-1"},
        "isError": False,
    },
}
V2_ANSWER = {
    "jsonrpc": "2.0",
    "id": "mcp-router-7",
    "result": {
        "content": [{"type": "text", "text": '{"build": "v2", "major": 2}'}],
        "structuredContent": {"build": "v2", "major": 2, "features": ["search", "exact"], "token": "tok-2"},
        "isError": False,
    },
}
FORM_TOOL = {
    "name": "form",
    "description": "Echo every argument back, typed.",
    "inputSchema": {
        "type": "object",
        "properties": {
            "text": {"description": "Some text", "minLength": 2, "title": "Text", "type": "string"},
            "tags": {"items": {"type": "string"}, "title": "Tags", "type": "array"},
            "count": {"default": 3, "maximum": 100, "minimum": 0, "title": "Count", "type": "integer"},
            "ratio": {"default": 0.5, "title": "Ratio", "type": "number"},
            "flag": {"default": False, "title": "Flag", "type": "boolean"},
            "color": {"default": "green", "enum": ["red", "green", "blue"], "title": "Color", "type": "string"},
            "settings": {"anyOf": [{"$ref": "#/$defs/Settings"}, {"type": "null"}], "default": None},
        },
        "required": ["text", "tags"],
        "$defs": {
            "Settings": {
                "type": "object",
                "properties": {"depth": {"type": "integer", "default": 1}, "verbose": {"type": "boolean"}},
            }
        },
    },
}
DRIFT = {
    "ts": 1796402401.0,
    "reason": "source changed: server.py",
    "count": 3,
    "seen": False,
    "added": {"tools": ["extra"]},
    "removed": {"tools": ["legacy"]},
    "changed": [
        {
            "kind": "tools",
            "name": "search",
            "fields": ["description", "inputSchema"],
            "diff": [
                {"op": "changed", "path": "description", "old": "Search the index.", "new": "Search the index (exact or fuzzy)."},
                {"op": "added", "path": "inputSchema.properties.exact", "new": {"default": False, "title": "Exact", "type": "boolean"}},
                {"op": "removed", "path": "inputSchema.required[1]", "old": "limit"},
            ],
        }
    ],
}  # fmt: skip


class FixedControl:
    """Only what the drift view reads, with fixed data: the snapshot must not depend on a clock."""

    def __init__(self) -> None:
        self.acked = False

    async def backend(self, name: str, reveal: bool = False) -> dict[str, Any]:
        return {"name": name, "last_change": DRIFT}

    async def ack_change(self, name: str) -> dict[str, Any]:
        self.acked = True
        return {"name": name}


@pytest.fixture
def utc(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The drift view shows local time: pin the zone so the snapshot is the same everywhere."""
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def test_snapshot_replay_diff(snap_compare: Any) -> None:
    app = Harness(
        lambda: DiffScreen(V1_ANSWER, V2_ANSWER, "answer in the trace", "answer now", "Replay tools/call version on wb")
    )
    assert snap_compare(app, terminal_size=SIZE)


def test_snapshot_tool_form_with_validation_errors(snap_compare: Any) -> None:
    app = Harness(lambda: CallScreen(None, "wb", "tool", FORM_TOOL))
    assert snap_compare(app, terminal_size=(110, 48), press=["ctrl+s"])


def test_snapshot_drift_view(snap_compare: Any, utc: None) -> None:
    app = Harness(lambda: DriftScreen(FixedControl(), "wb"))  # type: ignore[arg-type]
    assert snap_compare(app, terminal_size=SIZE)
