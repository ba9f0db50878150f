"""The terminal UI: `RouterTUI`, a Textual app over one `RouterControl`.

The app adds no proxy logic: it shows what the control's event feed says and acts through the
control's methods, so the same app can drive a router in this process or one elsewhere.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable
from functools import partial
from typing import ClassVar

from textual.app import App
from textual.binding import Binding, BindingType
from textual.command import DiscoveryHit, Hit, Hits, Provider

from app.control import RouterControl
from app.screens.main import MainScreen
from app.screens.workbench import WorkbenchCommands
from app.trace_model import DEFAULT_CAPACITY
from app.widgets.trace_view import clock_text


class BackendCommands(Provider):
    """The command palette's backend and trace actions, one hit per backend and action."""

    def _commands(self) -> list[tuple[str, Callable[[], object], str]]:
        app = self.app
        if not isinstance(app, RouterTUI):
            return []
        main = app.main
        cmds: list[tuple[str, Callable[[], object], str]] = [
            ("Add backend…", main.action_add_backend, "add a backend: URL or command"),
            ("Clear trace", main.action_clear, "forget the messages shown"),
            ("Resume trace" if main.paused else "Pause trace", main.action_pause, "traffic is kept while paused"),
            ("Filter trace…", main.action_filter, "method: backend: session: dir: kind: status: id:"),
            ("Connect a client…", main.action_connect_client, "what to paste or run in each client"),
        ]
        for name, snap in main.backends.items():
            cmds.append((f"Restart backend {name}", partial(main.action_restart_backend, name), "blue/green"))
            if snap.get("enabled", True):
                cmds.append((f"Disable backend {name}", partial(main.action_toggle_backend, name), "hold its requests"))
            else:
                cmds.append((f"Enable backend {name}", partial(main.action_toggle_backend, name), "start it again"))
            cmds.append((f"Remove backend {name}…", partial(main.action_remove_backend, name), "asks first"))
        return cmds

    async def discover(self) -> Hits:
        for text, callback, help_text in self._commands():
            yield DiscoveryHit(text, callback, help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for text, callback, help_text in self._commands():
            score = matcher.match(text)
            if score > 0:
                yield Hit(score, matcher.highlight(text), callback, help=help_text)


class RouterTUI(App[int]):
    CSS_PATH = "tui.tcss"
    TITLE = "mcp-dev-router"
    COMMANDS = App.COMMANDS | {BackendCommands, WorkbenchCommands}
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (170, "-wide")]  # noqa: RUF012
    VERTICAL_BREAKPOINTS = [(0, "-short"), (32, "-tall")]  # noqa: RUF012
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("q", "quit", "Quit"),
        Binding("ctrl+c", "quit", "Quit", show=False, priority=True),
        Binding("question_mark", "help", "Help"),
    ]

    def __init__(
        self,
        control: RouterControl,
        *,
        trace_buffer: int = DEFAULT_CAPACITY,
        clock: Callable[[], float] = time.time,
        time_text: Callable[[float], str] = clock_text,
        freeze_heap: bool = False,
    ) -> None:
        super().__init__()
        self.control = control
        self.main = MainScreen(control, trace_buffer=trace_buffer, clock=clock, time_text=time_text)
        self.freeze_heap = freeze_heap

    def on_mount(self) -> None:
        self.push_screen(self.main)

    def on_ready(self) -> None:
        if self.freeze_heap:
            # Everything loaded so far (modules, the app, its screen) lives as long as the program:
            # the cyclic GC need not walk it again. Its full collections then scan the trace alone,
            # and their pauses (100-250 ms at 500 messages/s) stop holding up proxied calls. A
            # program's own choice: not in tests, where many apps come and go in one process.
            gc.freeze()

    async def action_quit(self) -> None:
        self.exit(0)

    def action_help(self) -> None:
        from app.screens.help import HelpScreen

        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen(self.main.help_sections()))
