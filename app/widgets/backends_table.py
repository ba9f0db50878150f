"""The backends panel: one row per backend, state as colour and word, probe latency sparkline."""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping

from rich.text import Text

from app.proxy.drift import count_label
from app.proxy.jsonrpc import JSON
from app.widgets.formatting import sparkline, transport_text
from app.widgets.tables import Cell, SnapshotTable

STATE_STYLES = {
    "up": "bold green",
    "starting": "bold yellow",
    "restarting": "bold yellow",
    "down": "bold red",
    "failed": "bold red reverse",
    "disabled": "dim",
}


class BackendsTable(SnapshotTable):
    COLUMNS = (
        ("name", "backend"),
        ("transport", "transport"),
        ("target", "target"),
        ("state", "state"),
        ("sessions", "sess"),
        ("restarts", "rst"),
        ("latency", "probe"),
        ("spark", "recent"),
    )

    def show(self, snaps: list[JSON], probes: Mapping[str, deque[float | None]]) -> None:
        rows: list[tuple[str, tuple[Cell, ...]]] = []
        for snap in snaps:
            name = str(snap["name"])
            state = str(snap.get("state") or "?")
            latency = snap.get("latency_ms")
            target = str(snap.get("target") or "")
            if len(target) > 28:
                target = "…" + target[-27:]  # the end of a command or URL says more than its start
            label = Text(name + (" *" if snap.get("default") else ""), style="bold")
            badge = count_label(snap.get("last_change"))  # a rebuild changed the catalog; unseen
            if badge:
                label.append(f" {badge}", style="bold black on yellow")
            rows.append(
                (
                    name,
                    (
                        label,
                        transport_text(snap),
                        target,
                        Text(state, style=STATE_STYLES.get(state, "")),
                        str(snap.get("sessions", 0)),
                        str(snap.get("restarts", 0)),
                        f"{latency:.1f} ms" if isinstance(latency, int | float) else "–",
                        sparkline(probes.get(name, ())),
                    ),
                )
            )
        self.show_rows(rows)
