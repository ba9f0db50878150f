"""The TUI's secondary screens: add-backend and confirm dialogs, the backend detail screen, help.

Behaviour tests push each screen in a small harness app, over a `LocalControl` on a real router in
the test's own loop (served by uvicorn, so SDK clients reach what the dialog added) with real
backends: the SDK fixture server and the built-in demo server. Snapshots feed a fixed-data control
instead, with a fixed clock, time zone, size and theme.
"""

from __future__ import annotations

import itertools
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from textual.app import App, ComposeResult
from textual.screen import Screen
from textual.widgets import Input, Label, Log, Static

from app.control import ControlError
from app.proxy.config import BackendConfig
from app.proxy.events import Event
from app.proxy.jsonrpc import JSON
from app.screens.add_backend import AddBackendDialog, BackendForm, check_form, parse_env
from app.screens.backend_detail import BackendDetailScreen, history_from_samples
from app.screens.confirm import ConfirmDialog
from app.screens.help import HelpScreen
from app.widgets.health_chart import HealthChart, Probe, Span, down_spans, nice_ceiling
from tests.support.clients import connect
from tests.support.inprocess import served_router
from tests.support.procs import REPO_ROOT, run_fixture, wait_for

SIZE = (120, 36)


class Harness(App[None]):
    """An empty app that pushes one screen and keeps what it is dismissed with."""

    def __init__(self, make_screen: Callable[[], Screen[Any]]) -> None:
        super().__init__()
        self.make_screen = make_screen
        self.results: list[Any] = []

    def compose(self) -> ComposeResult:
        yield Static("the main screen would be here", id="under")

    def on_mount(self) -> None:
        self.theme = "textual-dark"
        self.push_screen(self.make_screen(), callback=self.results.append)


def demo_config(name: str = "demo") -> BackendConfig:
    return BackendConfig(name=name, command=sys.executable, args=["-m", "app.demo_server"], cwd=str(REPO_ROOT))


async def type_into(pilot: Any, selector: str, text: str) -> None:
    """Focus a field and type into it key by key, as a person would."""
    await pilot.click(selector)
    for ch in text:
        await pilot.press(ch)


# ---------------------------------------------------------------------------------------- add


def test_form_rules() -> None:
    assert check_form(BackendForm(name="x", url="127.0.0.1:9000"), set()).spec == {
        "name": "x",
        "url": "http://127.0.0.1:9000",
    }
    assert "already exists" in check_form(BackendForm(name="x", url="h:1"), {"x"}).errors["name"]
    assert "http(s)" in check_form(BackendForm(name="x", url="ftp://h/"), set()).errors["url"]
    assert "not a number" in check_form(BackendForm(name="x", url="h:port"), set()).errors["url"]
    bad_quote = check_form(BackendForm(name="x", kind="command", command="python 'a"), set())
    assert "quotation" in bad_quote.errors["command"]
    assert parse_env("A=1, B=two") == {"A": "1", "B": "two"}
    assert parse_env("A=1,2\nB=x") == {"A": "1,2", "B": "x"}
    with pytest.raises(ValueError, match="KEY=VALUE"):
        parse_env("A=1, oops")


async def test_add_backend_through_the_dialog_and_call_a_tool_through_it() -> None:
    async with run_fixture("streamable") as fx, served_router() as (router, control):
        app = Harness(lambda: AddBackendDialog(control))
        async with app.run_test(size=SIZE) as pilot:
            dialog = app.screen
            assert isinstance(dialog, AddBackendDialog)
            await type_into(pilot, "#name", "fx")
            # Typed as people type a target: host:port/path, no scheme.
            await type_into(pilot, "#url", f"127.0.0.1:{fx.port}/mcp")
            assert not dialog.query_one("#add-error").has_class("-error"), dialog.error_text
            await pilot.press("enter")
            await wait_for(lambda: app.results, message="the dialog to close")
            assert app.results == ["fx"]
            assert not isinstance(app.screen, AddBackendDialog)
        assert router.backends["fx"].config.url == f"http://127.0.0.1:{fx.port}/mcp"
        await router.backends["fx"].wait_up(15)
        async with connect(f"{control.url}/mcp/fx", "streamable-handshake") as client:
            result = await client.call_tool("echo", {"text": "through the dialog"})
        assert "through the dialog" in str(result.content)


async def test_add_a_stdio_backend_with_env_and_cwd(tmp_path: Any) -> None:
    async with served_router() as (router, control):
        app = Harness(lambda: AddBackendDialog(control))
        async with app.run_test(size=SIZE) as pilot:
            dialog = app.screen
            assert isinstance(dialog, AddBackendDialog)
            await type_into(pilot, "#name", "demo2")
            await pilot.click("#kind-command")
            assert dialog.query_one(".command-only").display and not dialog.query_one(".url-only").display
            dialog.query_one("#command", Input).value = f"{sys.executable} -m app.demo_server"
            dialog.query_one("#cwd", Input).value = str(REPO_ROOT)
            await type_into(pilot, "#env", "DEMO_FLAG=1, OTHER=x")
            await pilot.click("#add")
            await wait_for(lambda: app.results, message="the dialog to close")
        assert app.results == ["demo2"]
        cfg = router.backends["demo2"].config
        assert (cfg.command, cfg.args, cfg.cwd) == (sys.executable, ["-m", "app.demo_server"], str(REPO_ROOT))
        assert cfg.env == {"DEMO_FLAG": "1", "OTHER": "x"}
        assert await router.backends["demo2"].wait_up(15)
        async with connect(f"{control.url}/mcp/demo2", "streamable-handshake") as client:
            result = await client.call_tool("add", {"a": 2, "b": 3})
        assert "5" in str(result.content)


async def test_add_dialog_shows_errors_and_adds_nothing_until_valid() -> None:
    async with served_router(demo_config("taken")) as (router, control):
        app = Harness(lambda: AddBackendDialog(control))
        async with app.run_test(size=SIZE) as pilot:
            dialog = app.screen
            assert isinstance(dialog, AddBackendDialog)
            await wait_for(lambda: dialog.existing == {"taken"}, message="the current backends")
            error = dialog.query_one("#add-error")

            await type_into(pilot, "#name", "bad name")
            assert error.has_class("-error") and "invalid backend name" in dialog.error_text
            assert dialog.query_one("#name").has_class("-invalid")

            dialog.query_one("#name", Input).value = ""
            await type_into(pilot, "#name", "taken")
            assert "already exists" in dialog.error_text

            dialog.query_one("#name", Input).value = ""
            await type_into(pilot, "#name", "new")
            assert not error.has_class("-error")
            await pilot.press("enter")  # no URL yet: submit shows what is missing
            assert "a URL is needed" in dialog.error_text
            assert dialog.query_one("#url").has_class("-invalid")

            # The core's own refusal: another client adds "late" while the dialog is open.
            dialog.query_one("#name", Input).value = "late"
            await type_into(pilot, "#url", "127.0.0.1:9/mcp")
            assert not error.has_class("-error"), dialog.error_text
            await control.add_backend({"name": "late", "url": "http://127.0.0.1:9/mcp"})
            await pilot.press("enter")
            await wait_for(lambda: "backend 'late' already exists" in dialog.error_text, message="the core's error")
            assert app.screen is dialog and app.results == []
            assert list(router.backends) == ["taken", "late"]
            assert router.backends["late"].config.url == "http://127.0.0.1:9/mcp"


async def test_cancel_adds_nothing() -> None:
    async with served_router() as (router, control):
        app = Harness(lambda: AddBackendDialog(control))
        async with app.run_test(size=SIZE) as pilot:
            await type_into(pilot, "#name", "ghost")
            await type_into(pilot, "#url", "127.0.0.1:9")
            await pilot.press("escape")
            assert app.results == [None]
        assert router.backends == {}


# ---------------------------------------------------------------------------------------- confirm


@pytest.mark.parametrize(
    ("keys", "click", "expected"),
    [
        (["y"], None, True),
        (["enter"], None, True),
        (["n"], None, False),
        (["escape"], None, False),
        ([], "#confirm", True),
        ([], "#cancel", False),
        (["tab", "enter"], None, False),  # focus moved to Cancel: enter presses it
    ],
)
async def test_confirm_dialog(keys: list[str], click: str | None, expected: bool) -> None:
    app = Harness(lambda: ConfirmDialog("Remove backend 'fx'?", "It ends 2 client sessions.", "Remove"))
    async with app.run_test(size=SIZE) as pilot:
        assert isinstance(app.screen, ConfirmDialog)
        assert "It ends 2 client sessions." in str(app.screen.query_one("#confirm-body", Static).content)
        if keys:
            await pilot.press(*keys)
        if click:
            await pilot.click(click)
        await pilot.pause()
        assert app.results == [expected]
        assert not isinstance(app.screen, ConfirmDialog)


# ---------------------------------------------------------------------------------------- detail


async def test_detail_shows_state_catalog_log_and_graph_of_a_stdio_backend() -> None:
    async with served_router(demo_config(), health_interval=0.2) as (router, control):
        assert await router.backends["demo"].wait_up(15)
        app = Harness(lambda: BackendDetailScreen(control, "demo"))
        async with app.run_test(size=SIZE):
            screen = app.screen
            assert isinstance(screen, BackendDetailScreen)
            await wait_for(lambda: screen.loaded, message="the first queries")
            header = str(screen.query_one("#detail-header", Static).content)
            pid = router.backends["demo"].pids[0]
            assert "demo" in header and "stdio" in header and "up" in header and f"pid {pid}" in header
            assert "mcp-dev-router-demo" in header and "protocol 2025-11-25" in header
            catalog = str(screen.query_one("#catalog", Static).content)
            for tool in ("echo", "add", "time", "slow_count", "random_number"):
                assert tool in catalog
            assert "Resources" in catalog and "Prompts" in catalog
            log = screen.query_one("#log", Log)
            assert any(f"[{pid}]" in ln and "ready on stdio" in ln for ln in log.lines)

            chart = screen.query_one(HealthChart)
            before = chart.points
            await wait_for(lambda: chart.points >= before + 3, message="new probes in the graph")

            # A line the backend writes to stderr later shows up too (the demo logs each handshake).
            async with connect(f"{control.url}/mcp/demo", "streamable-handshake") as client:
                await client.call_tool("echo", {"text": "hi"})
            await wait_for(
                lambda: any("session initialized" in ln for ln in log.lines[-20:]), message="a new stderr line"
            )


async def test_restart_from_the_detail_screen_shows_restarting_then_up() -> None:
    async with served_router(demo_config(), health_interval=0.5) as (router, control):
        assert await router.backends["demo"].wait_up(15)
        app = Harness(lambda: BackendDetailScreen(control, "demo"))
        async with app.run_test(size=SIZE) as pilot:
            screen = app.screen
            assert isinstance(screen, BackendDetailScreen)
            await wait_for(lambda: screen.loaded, message="the first queries")
            old_pid = router.backends["demo"].pids[0]
            await pilot.press("r")

            def restarted() -> bool:
                states = [line.split()[2] for line in screen.history_lines]
                # Newest first: "up" above "restarting".
                return states[:2] == ["up", "restarting"]

            await wait_for(restarted, timeout=20, message="restarting then up in the state history")
            await wait_for(lambda: "restarts 1" in str(screen.query_one("#detail-header", Static).content))
            header = str(screen.query_one("#detail-header", Static).content)
            assert "● up" in header and f"pid {old_pid}" not in header
            assert any("restarting" in ln for ln in screen.query_one("#log", Log).lines)

            await pilot.press("space")
            await wait_for(lambda: router.backends["demo"].state == "disabled", message="disabled")
            await wait_for(lambda: "● disabled" in str(screen.query_one("#detail-header", Static).content))
            await pilot.press("space")
            await wait_for(lambda: router.backends["demo"].state == "up", timeout=15, message="enabled again")

            await pilot.press("escape")
            assert not isinstance(app.screen, BackendDetailScreen)


async def test_detail_of_a_backend_that_goes_away() -> None:
    async with served_router(demo_config()) as (router, control):
        app = Harness(lambda: BackendDetailScreen(control, "demo"))
        async with app.run_test(size=SIZE) as pilot:
            screen = app.screen
            assert isinstance(screen, BackendDetailScreen)
            await wait_for(lambda: screen.loaded)
            await control.remove_backend("demo")
            await wait_for(lambda: screen.state == "removed", message="the removal seen")
            await pilot.press("r")  # refused with a note, nothing raised
            assert "demo" not in router.backends


# ---------------------------------------------------------------------------------------- help

HELP: list[tuple[str, list[tuple[str, str]]]] = [
    (
        "Backends",
        [("a", "add a backend"), ("d", "remove the selected backend"), ("space", "enable / disable"), ("r", "restart")],
    ),
    ("Trace", [("/", "filter"), ("p", "pause / resume"), ("c", "clear"), ("enter", "message detail")]),
    ("Anywhere", [("?", "this help"), ("ctrl+p", "command palette"), ("q", "quit")]),
]


@pytest.mark.parametrize("close", ["escape", "question_mark", "q"])
async def test_help_lists_keys_and_closes(close: str) -> None:
    app = Harness(lambda: HelpScreen(HELP))
    async with app.run_test(size=SIZE) as pilot:
        screen = app.screen
        assert isinstance(screen, HelpScreen)
        shown = [str(label.content) for label in screen.query(Label)]
        pairs = list(itertools.pairwise(shown))
        for title, rows in HELP:
            assert title in shown
            for row in rows:
                assert row in pairs
        await pilot.press(close)
        assert app.results == [None]
        assert not isinstance(app.screen, HelpScreen)


# ---------------------------------------------------------------------------------------- chart


def test_history_read_from_probes() -> None:
    samples = [
        {"ts": 1.0, "ok": True, "latency_ms": 1.0, "detail": None},
        {"ts": 2.0, "ok": False, "latency_ms": None, "detail": "exited with code 1"},
        {"ts": 3.0, "ok": True, "latency_ms": 90.0, "detail": "started"},
    ]
    assert history_from_samples(samples) == [
        (2.0, "down", "probe failed: exited with code 1"),
        (3.0, "up", "a new process started"),
    ]


def test_down_spans_merge_probes_and_states() -> None:
    probes = [Probe(0, True, 1.0), Probe(5, False, None), Probe(6, False, None), Probe(10, True, 2.0)]
    assert down_spans(probes, []) == [Span(5, 10)]
    assert down_spans(probes, [(4, "down"), (7, "up"), (20, "failed")]) == [Span(4, 10), Span(20, None)]
    assert nice_ceiling(3.2) == 5.0 and nice_ceiling(0.3) == 0.5 and nice_ceiling(11) == 20.0


# ---------------------------------------------------------------------------------------- snapshots

NOW = 1_800_000_000.0  # a fixed "now" for the snapshots


class _NoEvents:
    dropped = 0
    closed = False

    def drain(self) -> list[Event]:
        return []

    def close(self) -> None:
        self.closed = True


class FixedControl:
    """A RouterControl with fixed answers: what a snapshot needs to be the same every time."""

    url = "http://127.0.0.1:8090"

    def __init__(self, backends: list[JSON], health: list[JSON] | None = None, log: list[str] | None = None) -> None:
        self.backends = backends
        self._health = health or []
        self._log = log or []

    def subscribe(self, kinds: Any = None) -> _NoEvents:
        return _NoEvents()

    async def status(self) -> JSON:
        return {"backends": self.backends}

    async def backend(self, name: str) -> JSON:
        for b in self.backends:
            if b["name"] == name:
                return b
        raise ControlError(f"unknown backend '{name}'", 404)

    async def health(self, name: str) -> list[JSON]:
        return self._health

    async def log(self, name: str) -> list[str]:
        return self._log

    async def sessions(self) -> list[JSON]:
        return []

    async def add_backend(self, spec: JSON) -> JSON:
        raise ControlError("this control is read-only")

    async def remove_backend(self, name: str) -> None:
        raise ControlError("this control is read-only")

    async def enable(self, name: str) -> JSON:
        raise ControlError("this control is read-only")

    async def disable(self, name: str) -> JSON:
        raise ControlError("this control is read-only")

    async def restart(self, name: str) -> JSON:
        raise ControlError("this control is read-only")

    async def close_session(self, session_id: str) -> None:
        raise ControlError("this control is read-only")


@pytest.fixture
def utc(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


WEATHER: JSON = {
    "name": "weather",
    "enabled": True,
    "command": "python",
    "args": ["weather_server.py"],
    "kind": "stdio",
    "target": "python weather_server.py",
    "transport": "stdio",
    "state": "up",
    "reason": "pid 4242",
    "since": NOW - 118.0,
    "sessions": 2,
    "restarts": 1,
    "latency_ms": 2.9,
    "server": {"name": "weather-server", "version": "1.4.0"},
    "protocol_version": "2025-11-25",
    "tools": ["alerts", "forecast", "forecast_hourly", "geocode"],
    "resources": ["weather://stations", "weather://units"],
    "prompts": ["plan_trip"],
    "pids": [4242, 4250],
}


def weather_health() -> list[JSON]:
    samples: list[JSON] = []
    t = NOW - 300.0
    while t <= NOW:
        down = NOW - 170.0 <= t < NOW - 118.0
        lat = None if down else round(2.0 + 1.5 * ((int(t) // 5) % 7) / 6 + (0.8 if NOW - 60 < t else 0.0), 3)
        detail = "process exited with code 1" if down else None
        samples.append({"ts": t, "ok": not down, "latency_ms": lat, "detail": detail})
        t += 1.0 if down else 5.0
    samples.append({"ts": NOW - 118.0, "ok": True, "latency_ms": 3.1, "detail": "started"})
    samples.sort(key=lambda s: s["ts"])
    return samples


WEATHER_LOG = [
    "[4101] weather-server 1.3.0 listening on stdio",
    "restarting: source changed: weather_server.py",
    "[4101] Traceback (most recent call last):",
    "[4101] ImportError: cannot import name 'forecast_v2'",
    "restart failed, keeping the running version: exited with code 1",
    "[4242] weather-server 1.4.0 listening on stdio",
    "tools changed",
    "[4250] weather-server 1.4.0 listening on stdio",
]


def test_snapshot_add_dialog_with_a_validation_error(snap_compare: Any) -> None:
    control = FixedControl([{**WEATHER}])

    async def type_duplicate(pilot: Any) -> None:
        await pilot.pause()
        await type_into(pilot, "#name", "weather")
        await pilot.click("#kind-command")
        await type_into(pilot, "#command", "python server.py")
        await pilot.pause()

    app = Harness(lambda: AddBackendDialog(control))
    assert snap_compare(app, terminal_size=SIZE, run_before=type_duplicate)


def test_snapshot_backend_detail_with_a_down_period(snap_compare: Any, utc: None) -> None:
    control = FixedControl([{**WEATHER}], weather_health(), WEATHER_LOG)

    async def loaded(pilot: Any) -> None:
        screen = pilot.app.screen
        await wait_for(lambda: screen.loaded)
        await pilot.pause()

    app = Harness(lambda: BackendDetailScreen(control, "weather", clock=lambda: NOW))
    assert snap_compare(app, terminal_size=SIZE, run_before=loaded)


def test_snapshot_help(snap_compare: Any) -> None:
    app = Harness(lambda: HelpScreen(HELP))
    assert snap_compare(app, terminal_size=SIZE)
