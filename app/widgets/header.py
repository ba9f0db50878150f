"""The top bar: where to point a client, and how the router is doing."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static


class RouterHeader(Static):
    DEFAULT_CSS = """
    RouterHeader { height: 2; padding: 0 1; background: $panel; }
    """

    def show(
        self,
        url: str | None,
        default: str | None,
        uptime: str,
        backends_up: int,
        backends_total: int,
        sessions: int,
        rate: float,
    ) -> None:
        text = Text(no_wrap=True, overflow="ellipsis")
        text.append("mcp-dev-router ", style="bold")
        if url is None:
            text.append("not listening", style="bold red")
        elif default is None:
            text.append(f"{url}  ", style="bold")
            text.append("no backend yet: press a to add one", style="italic")
        else:
            text.append(f"{url}/mcp", style="bold underline")
            text.append("  ")
            text.append(f"{url}/sse", style="underline")
            text.append(f"  ({default})", style="dim")
            text.append("  per backend: ", style="dim")
            text.append(f"{url}/mcp/NAME  /sse/NAME", style="")
        text.append("\n")
        text.append(f"up {uptime}", style="dim")
        text.append("  backends ")
        text.append(
            f"{backends_up}/{backends_total} up", style="bold green" if backends_up == backends_total else "bold yellow"
        )
        text.append(f"  sessions {sessions}")
        text.append(f"  {rate:.1f} msg/s")
        self.update(text)
