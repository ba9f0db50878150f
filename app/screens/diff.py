"""Two JSON values side by side with their differences marked, and the replay screen built on it.

The diff is structural (app.jsondiff): the summary names each changed field by its path, and the
lines of that field are marked on both sides (`~` changed, `-` only in the old, `+` only in the
new). Secrets are shown as `•••` until `v` reveals them on this screen.
"""

from __future__ import annotations

from typing import Any, ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, VerticalScroll
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import Label, Static

from app.control import ControlError, RouterControl
from app.jsondiff import Change, diff, line_marks, pretty_lines
from app.proxy.secrets import MASK, has_secrets, mask_json, secret_key
from app.widgets.footer import SteadyFooter

MARK_STYLE = {"changed": "bold yellow", "removed": "bold red", "added": "bold green"}
MARK_GUTTER = {"changed": "~", "removed": "-", "added": "+", None: "│"}
SUMMARY_LINES = 8


def without_id(message: Any) -> Any:
    """A JSON-RPC message without its id: a replay has the router's own id, never a difference."""
    if isinstance(message, dict):
        return {k: v for k, v in message.items() if k not in ("id", "jsonrpc")}
    return message


def _secret_path(change: Change) -> bool:
    return any(isinstance(p, str) and secret_key(p) for p in change.path)


def render_side(value: Any, changes: list[Change], side: str, reveal: bool) -> Text:
    shown = value if reveal else mask_json(value)
    lines = pretty_lines(shown)
    marks = line_marks(lines, changes, "old" if side == "old" else "new")
    text = Text(no_wrap=True, overflow="ellipsis")
    for n, (line, mark) in enumerate(zip(lines, marks, strict=True)):
        if n:
            text.append("\n")
        body = line.text.lstrip(" ")
        indent = line.text[: len(line.text) - len(body)]
        # The gutter and the indentation are one run that starts with a visible character: some
        # SVG viewers drop a run's leading spaces, which would flatten the snapshot's indentation.
        text.append(MARK_GUTTER[mark] + " " + indent, style=MARK_STYLE.get(mark or "", "dim"))
        text.append(body, style=MARK_STYLE.get(mark or "", ""))
    return text


def render_summary(changes: list[Change], reveal: bool) -> Text:
    text = Text()
    if not changes:
        text.append("No differences: the answers are the same.", style="bold green")
        return text
    n = len(changes)
    more = f" (the first {SUMMARY_LINES} listed)" if n > SUMMARY_LINES else ""
    text.append(f"{n} difference{'' if n == 1 else 's'}{more}:\n", style="bold")
    for n, c in enumerate(changes[:SUMMARY_LINES]):
        if n:
            text.append("\n")
        text.append(f"{MARK_GUTTER[c.op]} ", style=MARK_STYLE[c.op])
        if _secret_path(c) and not reveal:
            text.append(f"{c.where}: {c.op} ({MASK})")
        else:
            text.append(c.describe(48))
    return text


class JsonDiffView(Widget):
    """Old and new side by side, a summary of the changes above them."""

    DEFAULT_CSS = """
    JsonDiffView { height: 1fr; }
    JsonDiffView #diff-summary { height: auto; max-height: 10; padding: 0 1; border-bottom: solid $primary-darken-2; }
    JsonDiffView Horizontal { height: 1fr; }
    JsonDiffView .diff-side { width: 1fr; height: 1fr; border: round $primary-darken-1; padding: 0 1; }
    JsonDiffView .diff-side Static { width: auto; text-wrap: nowrap; }
    """

    def __init__(self, old_label: str = "before", new_label: str = "after", *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.old_label = old_label
        self.new_label = new_label
        self.old: Any = None
        self.new: Any = None
        self.changes: list[Change] = []
        self.reveal = False

    def compose(self) -> ComposeResult:
        yield Static(id="diff-summary")
        with Horizontal():
            with VerticalScroll(classes="diff-side", id="diff-old") as old:
                old.border_title = self.old_label
                yield Static(id="diff-old-text")
            with VerticalScroll(classes="diff-side", id="diff-new") as new:
                new.border_title = self.new_label
                yield Static(id="diff-new-text")

    def show(self, old: Any, new: Any) -> list[Change]:
        self.old, self.new = old, new
        self.changes = diff(old, new)
        self._paint()
        return self.changes

    def toggle_reveal(self) -> None:
        self.reveal = not self.reveal
        self._paint()

    @property
    def has_secrets(self) -> bool:
        return has_secrets(self.old) or has_secrets(self.new)

    def _paint(self) -> None:
        self.query_one("#diff-summary", Static).update(render_summary(self.changes, self.reveal))
        self.query_one("#diff-old-text", Static).update(render_side(self.old, self.changes, "old", self.reveal))
        self.query_one("#diff-new-text", Static).update(render_side(self.new, self.changes, "new", self.reveal))


class DiffScreen(Screen[None]):
    """Two messages (two answers from a trace, say) compared."""

    DEFAULT_CSS = """
    DiffScreen #diff-title { padding: 0 1; text-style: bold; }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q", "app.pop_screen", "Back"),
        Binding("v", "reveal", "Reveal secrets"),
    ]

    def __init__(
        self, old: Any, new: Any, old_label: str = "before", new_label: str = "after", title: str = "Diff"
    ) -> None:
        super().__init__()
        self.old = old
        self.new = new
        self.old_label = old_label
        self.new_label = new_label
        self.title_text = title

    def compose(self) -> ComposeResult:
        yield Label(self.title_text, id="diff-title")
        yield JsonDiffView(self.old_label, self.new_label, id="diff-view")
        yield SteadyFooter()

    def on_mount(self) -> None:
        self.query_one(JsonDiffView).show(without_id(self.old), without_id(self.new))

    def action_reveal(self) -> None:
        self.query_one(JsonDiffView).toggle_reveal()


class ReplayScreen(Screen[None]):
    """`R` on a request: send it again to its backend as it is now and diff the two answers."""

    DEFAULT_CSS = """
    ReplayScreen #replay-status { height: auto; padding: 0 1; }
    ReplayScreen #replay-status.error { color: $error; text-style: bold; }
    ReplayScreen #diff-title { padding: 0 1; text-style: bold; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q", "app.pop_screen", "Back"),
        Binding("v", "reveal", "Reveal secrets"),
        Binding("R", "replay", "Replay again"),
    ]

    def __init__(
        self,
        control: RouterControl,
        backend: str,
        request: dict[str, Any],
        old_response: dict[str, Any] | None,
        direction: str | None = None,
    ) -> None:
        super().__init__()
        self.control = control
        self.backend = backend
        self.request = request
        self.old_response = old_response
        self.direction = direction
        self.outcome: dict[str, Any] | None = None
        self.refused: str | None = None
        self.changes: list[Change] = []

    def compose(self) -> ComposeResult:
        method = self.request.get("method", "?")
        name = (self.request.get("params") or {}).get("name") or (self.request.get("params") or {}).get("uri") or ""
        yield Label(f"Replay {method} {name} on {self.backend}".replace("  ", " "), id="diff-title")
        yield Static("replaying…", id="replay-status")
        yield JsonDiffView("answer in the trace", "answer now", id="diff-view")
        yield SteadyFooter()

    def on_mount(self) -> None:
        self.action_replay()

    def action_replay(self) -> None:
        self.query_one("#replay-status", Static).update("replaying…")
        self.run_worker(self._replay(), exclusive=True, group="replay")

    async def _replay(self) -> None:
        status = self.query_one("#replay-status", Static)
        try:
            outcome = await self.control.replay(self.backend, self.request, self.direction)
        except ControlError as exc:
            self.refused = exc.message
            status.set_class(True, "error")
            status.update(f"Cannot replay: {exc.message}")
            return
        self.outcome = outcome
        if outcome.get("response") is None:
            status.set_class(True, "error")
            status.update(f"No answer: {outcome.get('error')}")
            return
        status.set_class(False, "error")
        notes = [f"answered in {outcome['latency_ms']:.1f} ms on a session of the router's own"]
        if outcome.get("needs_client"):
            notes.append(str(outcome["needs_client"]))
        status.update("; ".join(notes))
        self.changes = self.query_one(JsonDiffView).show(without_id(self.old_response), without_id(outcome["response"]))

    def action_reveal(self) -> None:
        self.query_one(JsonDiffView).toggle_reveal()
