"""The top bar: where to point a client, and how the router is doing."""

from __future__ import annotations

from textual.markup import escape
from textual.widgets import Static


class RouterHeader(Static):
    DEFAULT_CSS = """
    RouterHeader { height: 2; padding: 0 1; background: $panel; text-wrap: nowrap; text-overflow: ellipsis; }
    """

    _shown = ""
    read_only_file: str | None = None  # a trace opened with --open: no router, nothing to point a client at

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
        if self.read_only_file is not None:
            where = f"[b]trace file {escape(self.read_only_file)}[/]  [i](read-only: no router is running)[/]"
        elif url is None:
            where = "[b $error]not listening[/]"
        elif default is None:
            where = f"[b]{escape(url)}[/]  [i]no backend yet: press a to add one[/]"
        else:
            u = escape(url)
            where = f"[b u]{u}/mcp[/]  [u]{u}/sse[/]  [dim]({escape(default)})   per backend:[/] /mcp/NAME  /sse/NAME"
        health = "$success" if backends_up == backends_total else "$warning"
        text = (
            f"[b]mcp-dev-router[/]  {where}\n"
            f"[dim]up {uptime}[/]   backends [b {health}]{backends_up}/{backends_total} up[/]"
            f"   sessions [b]{sessions}[/]   [b]{rate:.1f}[/] msg/s"
        )
        if text != self._shown:  # parsing markup and repainting the bar only when it says something new
            self._shown = text
            self.update(text, layout=False)  # two lines, always: no layout needed
