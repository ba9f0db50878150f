"""The sessions panel: one row per client session, and per 2026-07-28-era client (by name and version)."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from rich.text import Text

from app.proxy.jsonrpc import JSON
from app.widgets.formatting import client_text, duration
from app.widgets.tables import Cell, SnapshotTable

HOLDING = frozenset({"starting", "down", "failed", "disabled"})
STATE_STYLES = {"connected": "green", "held": "bold yellow", "idle": "dim"}


class SessionsTable(SnapshotTable):
    COLUMNS = (
        ("session", "session"),
        ("client", "client"),
        ("version", "protocol"),
        ("transport", "via"),
        ("backend", "backend"),
        ("state", "state"),
        ("age", "age"),
        ("messages", "msgs"),
    )

    def show(
        self,
        sessions: list[JSON],
        backend_states: Mapping[str, str],
        counts: Mapping[str, int],
        now: Callable[[], float],
    ) -> None:
        rows: list[tuple[str, tuple[Cell, ...]]] = []
        t = now()
        for s in sessions:
            sid = str(s["id"])
            backend = str(s.get("backend", ""))
            modern = s.get("era") == "modern"  # a 2026-07-28 client: no session of its own, last seen
            if modern:
                state = Text(f"seen {duration(t - float(s.get('last_activity') or t))} ago", style="dim")
            else:
                word = str(s.get("state") or "idle")  # the core's word (`Session.state`)
                if word != "connected" and backend_states.get(backend) in HOLDING:
                    word = "held"  # the backend went down since the sessions were read
                state = Text(word, style=STATE_STYLES.get(word, "dim"))
            transport = {"streamable-http": "http", "sse": "sse"}.get(str(s.get("transport")), str(s.get("transport")))
            rows.append(
                (
                    sid,
                    (
                        "modern" if modern else sid[:8],
                        client_text(s.get("client")),
                        str(s.get("protocol_version") or "–"),
                        transport,
                        backend,
                        state,
                        duration(t - float(s.get("created") or t)),
                        str(s.get("requests", 0) if modern else counts.get(sid, 0)),
                    ),
                )
            )
        self.show_rows(rows)
