"""The key reference: sections of (key, what it does), in a scrollable modal."""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Label

Sections = list[tuple[str, list[tuple[str, str]]]]


class HelpScreen(ModalScreen[None]):
    """Closed with escape, ? or q; arrows, page keys and the mouse wheel scroll it."""

    DEFAULT_CSS = """
    HelpScreen {
        align: center middle;
    }
    HelpScreen > Vertical {
        width: 76;
        max-width: 95%;
        height: auto;
        max-height: 90%;
        border: thick $primary 60%;
        background: $surface;
        padding: 0 1;
    }
    HelpScreen #help-title {
        width: 1fr;
        text-align: center;
        text-style: bold;
        padding: 1 0 0 0;
    }
    HelpScreen VerticalScroll {
        height: auto;
        max-height: 1fr;
        padding: 0 1;
    }
    HelpScreen .help-section {
        color: $accent;
        text-style: bold;
        margin-top: 1;
    }
    HelpScreen .help-row {
        height: auto;
    }
    HelpScreen .help-key {
        width: 14;
        text-style: bold;
        color: $text-accent;
    }
    HelpScreen .help-what {
        width: 1fr;
    }
    HelpScreen #help-hint {
        width: 1fr;
        text-align: center;
        color: $text-muted;
        padding: 1 0;
    }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "close", "Close", show=False),
        Binding("question_mark", "close", "Close", show=False),
        Binding("q", "close", "Close", show=False),
    ]

    def __init__(self, sections: Sections) -> None:
        super().__init__()
        self.sections = sections

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label("Keys", id="help-title")
            with VerticalScroll(id="help-body"):
                for title, rows in self.sections:
                    yield Label(title, classes="help-section", markup=False)
                    for key, description in rows:
                        with Horizontal(classes="help-row"):
                            yield Label(key, classes="help-key", markup=False)
                            yield Label(description, classes="help-what", markup=False)
            yield Label("escape, ? or q closes", id="help-hint")

    def on_mount(self) -> None:
        self.query_one(VerticalScroll).focus()

    def action_close(self) -> None:
        self.dismiss(None)
