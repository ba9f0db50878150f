"""What the last rebuild changed in a backend's catalog (schema drift), with each change's diff.

Opening it marks the change seen (RouterControl.ack_change), which drops the backend row's badge.
"""

from __future__ import annotations

from typing import Any, ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Label, Static

from app.control import ControlError, RouterControl
from app.proxy.drift import describe, lines
from app.widgets.footer import SteadyFooter

MARK_STYLE = {"+": "bold green", "-": "bold red", "~": "bold yellow"}


def render_drift(backend: str, change: dict[str, Any] | None) -> Text:
    text = Text()
    if change is None:
        text.append(
            f"No rebuild of {backend} compared yet: the catalog first seen is the baseline; "
            "the next restart or swap is compared with it.",
            style="dim",
        )
        return text
    head, *rest = lines(change, 70)
    text.append(head + "\n", style="bold")
    if not change.get("count"):
        text.append("The catalog is the same as before.", style="dim")
        return text
    text.append(describe(change) + "\n", style="dim")
    for line in rest:
        body = line.lstrip(" ")
        # The mark and the indentation are one run that starts with a visible character (some SVG
        # viewers drop a run's leading spaces).
        mark = body[:1]
        text.append("\n" + mark + line[: len(line) - len(body)] + " ", style=MARK_STYLE.get(mark, ""))
        text.append(body[2:], style="bold" if line == body else "")
    return text


class DriftScreen(Screen[None]):
    DEFAULT_CSS = """
    DriftScreen #drift-title { padding: 0 1; text-style: bold; }
    DriftScreen #drift-body { height: 1fr; border: round $primary-darken-1; padding: 0 1; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape,q", "app.pop_screen", "Back")]

    def __init__(self, control: RouterControl, backend: str) -> None:
        super().__init__()
        self.control = control
        self.backend = backend
        self.change: dict[str, Any] | None = None

    def compose(self) -> ComposeResult:
        yield Label(f"What changed in the last rebuild of {self.backend}", id="drift-title")
        with VerticalScroll(id="drift-body"):
            yield Static("loading…", id="drift-text")
        yield SteadyFooter()

    async def on_mount(self) -> None:
        body = self.query_one("#drift-text", Static)
        try:
            snap = await self.control.backend(self.backend)
        except ControlError as exc:
            body.update(Text(exc.message, style="bold red"))
            return
        change = snap.get("last_change")
        self.change = change if isinstance(change, dict) else None
        body.update(render_drift(self.backend, self.change))
        if self.change is not None and not self.change.get("seen"):
            await self.control.ack_change(self.backend)
