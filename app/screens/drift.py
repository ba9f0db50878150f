"""What the last rebuild changed in a backend's catalog (schema drift), with each change's diff.

Opening it marks the change seen (RouterControl.ack_change), which drops the backend row's badge.
"""

from __future__ import annotations

import time
from typing import Any, ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Label, Static

from app.control import ControlError, RouterControl
from app.jsondiff import short
from app.proxy.drift import describe

OP_MARK = {"added": ("+", "bold green"), "removed": ("-", "bold red"), "changed": ("~", "bold yellow")}
SINGULAR = {"tools": "tool", "resources": "resource", "prompts": "prompt"}


def render_drift(backend: str, change: dict[str, Any] | None) -> Text:
    text = Text()
    if change is None:
        text.append(
            f"No rebuild of {backend} compared yet: the catalog first seen is the baseline; "
            "the next restart or swap is compared with it.",
            style="dim",
        )
        return text
    when = time.strftime("%H:%M:%S", time.localtime(change.get("ts", 0)))
    reason = change.get("reason") or "restart"
    count = int(change.get("count") or 0)
    # Spaces end a span rather than start the next: some SVG viewers drop a text run's leading space.
    text.append(f"{count} change{'' if count == 1 else 's'} ", style="bold")
    text.append(f"at {when} ({reason})\n")
    if not count:
        text.append("The catalog is the same as before.", style="dim")
        return text
    text.append(describe(change) + "\n", style="dim")
    for section, (mark, style) in (("added", OP_MARK["added"]), ("removed", OP_MARK["removed"])):
        for kind, names in (change.get(section) or {}).items():
            for name in names:
                text.append(f"\n{mark} ", style=style)
                text.append(f"{SINGULAR.get(kind, kind)} {name} {section}")
    for item in change.get("changed") or []:
        text.append("\n~ ", style=OP_MARK["changed"][1])
        text.append(f"{SINGULAR.get(item['kind'], item['kind'])} {item['name']} ", style="bold")
        text.append(f"changed: {', '.join(item.get('fields') or [])}")
        for entry in item.get("diff") or []:
            mark, style = OP_MARK.get(entry.get("op"), ("?", ""))
            text.append(f"\n    {mark} ", style=style)
            text.append(f"{entry.get('path')}  ", style="bold")
            if entry.get("op") == "added":
                text.append(short(entry.get("new"), 70))
            elif entry.get("op") == "removed":
                text.append(f"was {short(entry.get('old'), 70)}")
            else:
                text.append(f"{short(entry.get('old'), 40)} → {short(entry.get('new'), 40)}")
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
        yield Footer()

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
