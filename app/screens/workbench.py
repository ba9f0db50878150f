"""The workbench's keys on the main screen and its command-palette entries.

The main screen binds the keys (R replay, y copy, o open, m mark, M only marked, w the drift
view) and calls these functions with itself, so its own code grows by a line per key.
Everything here acts through the screen's `RouterControl` and its trace model.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shlex
import tempfile
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from textual.app import SuspendNotSupported
from textual.command import DiscoveryHit, Hit, Hits, Provider

from app.control import ControlError
from app.control_file import FileControl
from app.proxy.drift import count_label
from app.proxy.events import CatalogChangeEvent
from app.proxy.secrets import mask_json
from app.trace_io import default_export_path, export_rows
from app.widgets.header import RouterHeader

if TYPE_CHECKING:
    from app.screens.main import MainScreen
    from app.trace_model import TraceRow


def is_read_only(control: Any) -> bool:
    """A control with no router behind it (a trace opened from a file): nothing to replay or call."""
    return bool(getattr(control, "read_only", False))


def selected_row(main: MainScreen) -> TraceRow | None:
    trace = main.trace
    return trace.cursor or (main.model.visible[-1] if main.model.visible else None)


def request_and_answer(row: TraceRow) -> tuple[TraceRow | None, TraceRow | None]:
    if row.kind.endswith("response"):
        return row.partner, row
    return row, row.partner


def replay(main: MainScreen) -> None:
    """R: send the selected request (or the request of the selected answer) again, and diff."""
    from app.screens.diff import ReplayScreen

    row = selected_row(main)
    if row is None:
        main.notify("no message selected", severity="warning")
        return
    if is_read_only(main.control):
        compare(main)
        return
    request, answer = request_and_answer(row)
    if request is None or request.message is None:
        main.notify("the request this answers is no longer in the trace", severity="warning")
        return
    main.app.push_screen(
        ReplayScreen(
            main.control,
            request.backend,
            request.message,
            answer.message if answer is not None else None,
            request.direction,
        )
    )


def compare(main: MainScreen) -> None:
    """Diff the selected answer with the previous answer to the same method and subject (in a trace
    opened from a file, where nothing can be replayed: the original and a replay are both there)."""
    from app.screens.diff import DiffScreen

    row = selected_row(main)
    if row is None:
        return
    _request, answer = request_and_answer(row)
    if answer is None:
        main.notify("no answer to compare", severity="warning")
        return
    rows = list(main.model.visible)
    before_it = rows[: rows.index(answer)] if answer in rows else rows
    earlier = [
        r
        for r in before_it
        if r.kind.endswith("response") and r.method == answer.method and r.subject == answer.subject
    ]
    if not earlier:
        main.notify(f"no earlier answer to {answer.method} {answer.subject} in the trace", severity="warning")
        return
    before = earlier[-1]
    main.app.push_screen(
        DiffScreen(
            before.message,
            answer.message,
            f"{main.time_text(before.ts)} {before.session[:8]}",
            f"{main.time_text(answer.ts)} {answer.session[:8]}",
            f"Compare {answer.method} {answer.subject}".strip(),
        )
    )


def export(main: MainScreen, path: Path | None = None, reveal: bool = False) -> Path | None:
    """e: the trace as filtered (marks included) to a JSON-lines file in the current directory; its
    path is shown. Secrets are masked unless `reveal`."""
    rows = list(main.model.visible)
    target = path or default_export_path()
    try:
        n = export_rows(rows, target, reveal=reveal, marked=[r for r in rows if r.marked])
    except OSError as exc:
        main.notify(f"cannot write {target}: {exc.strerror or exc}", title="export failed", severity="error")
        return None
    main.notify(f"{n} messages written to {target}", title="trace exported", timeout=10)
    return target


def load_trace_file(main: MainScreen) -> None:
    """A trace opened from a file: its messages at once (not on the next tick), its marks restored,
    and the header says which file this is."""
    control = main.control
    if not isinstance(control, FileControl) or main.feed is None:
        return
    events = main.feed.drain()
    main._add_to_trace(events)
    rows = list(main.model.rows)
    offset = len(events) - len(rows)  # the oldest fall out of a buffer smaller than the file
    for i in control.marked_indexes():
        if 0 <= i - offset < len(rows):
            rows[i - offset].marked = True
    main.query_one(RouterHeader).read_only_file = str(control.path)
    main.app.sub_title = f"{control.path.name} (read-only)"


def message_json(row: TraceRow, reveal: bool = False) -> str:
    message = row.message if reveal or row.message is None else mask_json(row.message)
    return json.dumps(message, indent=2, ensure_ascii=False)


def copy(main: MainScreen) -> str | None:
    """y: the selected message's JSON to the clipboard (OSC 52), secrets masked."""
    row = selected_row(main)
    if row is None or row.message is None:
        main.notify("no message selected", severity="warning")
        return None
    text = message_json(row)
    main.app.copy_to_clipboard(text)
    main.notify(f"copied {row.method or 'the answer'} ({len(text):,} characters; secrets masked)")
    return text


def editor_command() -> list[str]:
    for var in ("VISUAL", "EDITOR", "PAGER"):
        value = os.environ.get(var, "").strip()
        if value:
            return shlex.split(value)
    return ["less"]


async def open_in_editor(main: MainScreen) -> int | None:
    """o: the selected message in $EDITOR (or $PAGER), the TUI suspended meanwhile.

    The editor runs as a child process that is awaited, so the router in this loop keeps serving."""
    row = selected_row(main)
    if row is None or row.message is None:
        main.notify("no message selected", severity="warning")
        return None
    fd, name = tempfile.mkstemp(prefix="mcp-message-", suffix=".json")
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(message_json(row) + "\n")
    argv = [*editor_command(), name]
    app = main.app
    try:
        with app.batch_update():  # nothing is drawn while the editor owns the terminal
            try:
                with app.suspend():
                    return await _run(argv)
            except SuspendNotSupported:
                return await _run(argv)  # no terminal to hand over (tests, Textual Web)
    except OSError as exc:
        main.notify(f"cannot run {argv[0]}: {exc.strerror or exc}", severity="error")
        return None
    finally:
        with contextlib.suppress(OSError):
            os.unlink(name)


async def _run(argv: list[str]) -> int:
    proc = await asyncio.create_subprocess_exec(*argv)
    return await proc.wait()


def toggle_mark(main: MainScreen) -> None:
    """m: mark or unmark the selected message (marks survive filtering and go into the export)."""
    row = selected_row(main)
    if row is None:
        return
    row.marked = not row.marked
    row.version += 1
    main.trace.refresh()


def toggle_only_marked(main: MainScreen) -> None:
    """M: show only the marked messages (with the filter), or everything again."""
    main.model.only_marked = not main.model.only_marked
    main.apply_filter(main.model.filter_text)


def show_drift(main: MainScreen, name: str | None = None) -> None:
    from app.screens.drift import DriftScreen

    name = name or main.selected_backend()
    if name is None:
        main.notify("no backend selected", severity="warning")
        return
    main.app.push_screen(DriftScreen(main.control, name))


def announce_change(main: MainScreen, ev: CatalogChangeEvent) -> None:
    """A toast when a rebuild changed the catalog (the row keeps a badge until the change is seen)."""
    if ev.seen or not ev.count:
        return
    main.notify(
        f"{ev.summary} — w shows the diff", title=f"{ev.backend}: {count_label({'count': ev.count})}", timeout=8
    )


class WorkbenchCommands(Provider):
    """Palette: "Call tool NAME on BACKEND…", "Read resource…", "Get prompt…", "What changed in…",
    "Export trace"."""

    async def _commands(self) -> list[tuple[str, Callable[[], object], str]]:
        from app.screens.call import CallScreen

        main = getattr(self.app, "main", None)
        if main is None:
            return []
        cmds: list[tuple[str, Callable[[], object], str]] = [
            ("Show only marked messages", partial(toggle_only_marked, main), "m marks a message"),
        ]
        if is_read_only(main.control):
            return cmds
        for name in main.backends:
            try:
                catalog = await main.control.catalog(name)
            except ControlError:
                continue
            for tool in catalog.get("tools", []):
                screen = partial(CallScreen, main.control, name, "tool", tool)
                cmds.append(
                    (f"Call tool {tool.get('name')} on {name}…", partial(_push, main, screen), "a form from its schema")
                )
            for res in catalog.get("resources", []):
                screen = partial(CallScreen, main.control, name, "resource", res)
                cmds.append(
                    (
                        f"Read resource {res.get('uri')} on {name}",
                        partial(_push, main, screen),
                        str(res.get("name") or ""),
                    )
                )
            for prompt in catalog.get("prompts", []):
                screen = partial(CallScreen, main.control, name, "prompt", prompt)
                cmds.append(
                    (
                        f"Get prompt {prompt.get('name')} on {name}…",
                        partial(_push, main, screen),
                        "its arguments as a form",
                    )
                )
            cmds.append(
                (f"What changed in {name}", partial(show_drift, main, name), "the last rebuild's catalog changes")
            )
        return cmds

    async def discover(self) -> Hits:
        for text, callback, help_text in await self._commands():
            yield DiscoveryHit(text, callback, help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for text, callback, help_text in await self._commands():
            score = matcher.match(text)
            if score > 0:
                yield Hit(score, matcher.highlight(text), callback, help=help_text)


def _push(main: MainScreen, make: Callable[[], Any]) -> None:
    main.app.push_screen(make())
