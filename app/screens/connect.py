"""Connect a client: for one backend, what the user pastes or runs in each MCP client, one tab per
client, with a key to copy it. The text comes from `app.client_config` (the CLI's `client-config`)."""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Label, Static, TabbedContent, TabPane, Tabs, TextArea

from app.client_config import CLIENTS, WHERE, client_url, snippets

TITLES = {
    "claude-desktop": "Claude Desktop",
    "claude-code": "Claude Code",
    "cursor": "Cursor",
    "vscode": "VS Code",
    "mcp-remote": "mcp-remote",
    "inspector": "MCP Inspector",
}


class ConnectScreen(ModalScreen[None]):
    """Closed with escape or q; left/right (or the mouse) switch clients; c copies the one shown."""

    DEFAULT_CSS = """
    ConnectScreen {
        align: center middle;
    }
    ConnectScreen > Vertical {
        width: 96;
        max-width: 95%;
        height: auto;
        max-height: 90%;
        border: thick $primary 60%;
        background: $surface;
        padding: 0 1;
    }
    ConnectScreen #connect-title {
        width: 1fr;
        text-align: center;
        text-style: bold;
        padding: 1 0 0 0;
    }
    ConnectScreen #connect-url {
        width: 1fr;
        text-align: center;
        color: $text-muted;
    }
    ConnectScreen TabbedContent {
        height: auto;
    }
    ConnectScreen .connect-where {
        width: 1fr;
        padding: 1 0 0 0;
    }
    ConnectScreen TextArea {
        height: auto;
        max-height: 14;
        margin: 1 0 0 0;
    }
    ConnectScreen #connect-hint {
        width: 1fr;
        text-align: center;
        color: $text-muted;
        padding: 1 0;
    }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "close", "Close", show=False),
        Binding("q", "close", "Close", show=False),
        Binding("c", "copy", "Copy", show=False),
        Binding("left", "switch(-1)", "Previous client", show=False),
        Binding("right", "switch(1)", "Next client", show=False),
    ]

    def __init__(self, router_url: str, backend: str | None, token: str | None = None) -> None:
        super().__init__()
        self.router_url = router_url
        self.backend = backend
        self.snippets = snippets(router_url, backend, token)

    def compose(self) -> ComposeResult:
        what = f"backend {self.backend}" if self.backend else "the default backend"
        with Vertical():
            yield Label(f"Connect a client to {what}", id="connect-title", markup=False)
            yield Label(client_url(self.router_url, self.backend), id="connect-url", markup=False)
            with TabbedContent(id="connect-tabs"):
                for client in CLIENTS:
                    with TabPane(TITLES[client], id=client):
                        yield Static(WHERE[client], classes="connect-where", markup=False)
                        yield TextArea(
                            self.snippets[client], read_only=True, show_line_numbers=False, id=f"{client}-text"
                        )
            yield Label("c copies · left/right: another client · escape closes", id="connect-hint")

    def on_mount(self) -> None:
        self.query_one(Tabs).focus()  # left/right switch clients; the text is selectable with the mouse

    @property
    def client(self) -> str:
        """The client whose tab is shown."""
        return self.query_one(TabbedContent).active or CLIENTS[0]

    def show_client(self, client: str) -> None:
        self.query_one(TabbedContent).active = client

    def action_switch(self, step: int) -> None:
        at = CLIENTS.index(self.client) if self.client in CLIENTS else 0
        self.show_client(CLIENTS[(at + step) % len(CLIENTS)])

    def action_copy(self) -> None:
        self.app.copy_to_clipboard(self.snippets[self.client])
        self.notify(f"{TITLES[self.client]} snippet copied", timeout=2)

    def action_close(self) -> None:
        self.dismiss(None)
