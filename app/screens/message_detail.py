"""A message's full JSON: the request and its answer together, pretty and highlighted, read-only."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import orjson
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.widgets import Static, TextArea

from app.proxy.secrets import mask_json
from app.trace_model import DIRECTION_SHORT, TraceRow
from app.widgets.footer import SteadyFooter
from app.widgets.trace_view import clock_text

CUT = 200_000  # characters shown before "show all": a 64 MiB body must not freeze the screen


def pretty(message: dict[str, Any] | None, reveal: bool = False) -> str:
    if message is None:
        return "null"
    shown = message if reveal else mask_json(message)  # secrets as ••• until `v`
    return orjson.dumps(shown, option=orjson.OPT_INDENT_2, default=str).decode()


def describe(row: TraceRow, time_text: Callable[[float], str]) -> str:
    ident = "" if row.msg_id is None else f"  id {row.msg_id}"
    latency = "" if row.latency_ms is None else f"  {row.latency_ms:.1f} ms"
    return (
        f"{time_text(row.ts)}  {DIRECTION_SHORT.get(row.direction, row.direction)}  {row.kind}  "
        f"{row.method or '(answer)'}{ident}  {row.status}{latency}  session {row.session[:8]}  backend {row.backend}"
    )


def detail_text(row: TraceRow, time_text: Callable[[float], str] = clock_text, reveal: bool = False) -> str:
    """The request first, then its answer (whichever of the two `row` is), each under a comment."""
    request, answer = (row, row.partner) if not row.kind.endswith("response") else (row.partner, row)
    parts: list[str] = []
    if request is not None:
        parts.append(f"// {describe(request, time_text)}\n{pretty(request.message, reveal)}")
    if answer is not None:
        parts.append(f"// {describe(answer, time_text)}\n{pretty(answer.message, reveal)}")
    elif request is not None and request.is_request:
        parts.append(f"// no answer yet ({request.status})")
    return "\n\n".join(parts) + "\n"


class MessageDetailScreen(Screen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "app.pop_screen", "Back"),
        Binding("q", "app.pop_screen", "Back", show=False),
        Binding("s", "show_all", "Show all", show=False),
        Binding("v", "reveal", "Reveal secrets", show=False),
    ]

    def __init__(self, row: TraceRow, *, time_text: Callable[[float], str] = clock_text) -> None:
        super().__init__()
        self.row = row
        self.time_text = time_text
        self.revealed = False
        self.full = detail_text(row, time_text)

    def compose(self) -> ComposeResult:
        title = f"{self.row.method or '(answer)'}  ·  {self.row.status or self.row.kind}"
        yield Static(title, id="detail-title")
        text = self.full
        if len(text) > CUT:
            text = text[:CUT] + f"\n// … {len(self.full) - CUT:,} more characters: press s to show all\n"
        area = TextArea(text, language="json", read_only=True, show_line_numbers=True, id="detail-json")
        area.cursor_blink = False
        yield area
        yield SteadyFooter()

    def on_mount(self) -> None:
        self.query_one(TextArea).focus()

    def action_reveal(self) -> None:
        """Show this message's secret values (masked as ••• until asked), or hide them again."""
        self.revealed = not self.revealed
        self.full = detail_text(self.row, self.time_text, self.revealed)
        area = self.query_one(TextArea)
        area.load_text(self.full if len(self.full) <= CUT else self.full[:CUT])

    def action_show_all(self) -> None:
        area = self.query_one(TextArea)
        if len(area.text) < len(self.full):
            area.load_text(self.full)
