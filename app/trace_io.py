"""Export the trace as shown, and read an exported (or `--trace-file`) trace back into events.

The format is the trace file's (app.proxy.tracefile: one JSON object per line with time, direction,
session, backend, era, method, id, status, latency and the full message), plus `"marked": true` on
the lines the user marked. Messages are exported with secrets masked unless the user asks.
This module never imports Textual.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from app.proxy import jsonrpc
from app.proxy.events import TrafficEvent
from app.proxy.secrets import mask_json
from app.proxy.tracefile import dumps, read_trace, record

ROW_KINDS = {
    "request": "request",
    "server-request": "request",
    "notification": "notification",
    "response": "response",
    "server-response": "response",
}


class Row(Protocol):
    """What export needs of a trace row (app.trace_model.TraceRow)."""

    ts: float
    direction: str
    session: str
    backend: str
    kind: str
    method: str
    msg_id: str | int | None
    status: str
    latency_ms: float | None
    error: str | None
    message: dict[str, Any] | None


def _era(row: Row) -> str | None:
    if row.session.startswith("modern:"):
        return "modern"
    meta = ((row.message or {}).get("params") or {}).get("_meta")
    if isinstance(meta, dict) and meta.get(jsonrpc.META_PROTOCOL_VERSION) in jsonrpc.MODERN_VERSIONS:
        return "modern"
    return None if row.session == "router" else "handshake"


def row_record(row: Row, *, reveal: bool = False, marked: bool = False) -> dict[str, Any] | None:
    """A trace row as a trace-file record (None for a line that is not a message, e.g. a state mark)."""
    kind = ROW_KINDS.get(row.kind)
    if kind is None:
        return None
    if kind == "response" and (row.status.startswith("error") or "error" in (row.message or {})):
        kind = "error"
    ev = TrafficEvent(
        ts=row.ts,
        direction=row.direction,  # type: ignore[arg-type]
        session=row.session,
        backend=row.backend,
        msg_kind=kind,  # type: ignore[arg-type]
        method=row.method or None,
        msg_id=row.msg_id,
        latency_ms=row.latency_ms if kind != "request" and kind != "notification" else None,  # the format: on answers
        error=row.error,
        message=row.message if reveal or row.message is None else mask_json(row.message),
        era=_era(row),
    )
    rec = record(ev)
    if marked:
        rec["marked"] = True
    return rec


def default_export_path(directory: Path | None = None, now: float | None = None) -> Path:
    """`./mcp-trace-20261130-164001.jsonl`: in the folder the user started the TUI from."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(time.time() if now is None else now))
    return (directory or Path.cwd()) / f"mcp-trace-{stamp}.jsonl"


def export_rows(rows: Iterable[Row], path: Path, *, reveal: bool = False, marked: Iterable[Row] = ()) -> int:
    """Write rows (the trace as filtered) to `path`; returns how many lines were written."""
    marks = {id(r) for r in marked}
    n = 0
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    with tmp.open("wb") as fh:
        for row in rows:
            rec = row_record(row, reveal=reveal, marked=id(row) in marks)
            if rec is not None:
                fh.write(dumps(rec))
                n += 1
    tmp.replace(path)
    return n


@dataclass
class OpenedTrace:
    path: Path
    events: list[TrafficEvent] = field(default_factory=list)
    marked: list[int] = field(default_factory=list)  # indexes into events
    skipped: int = 0  # lines that were not trace records


def _event(rec: dict[str, Any]) -> TrafficEvent | None:
    direction = rec.get("direction")
    kind = rec.get("kind")
    if not isinstance(direction, str) or kind not in ("request", "notification", "response", "error"):
        return None
    ts = rec.get("ts")
    message = rec.get("message")
    msg_id = rec.get("id")
    latency = rec.get("latency_ms")
    return TrafficEvent(
        ts=float(ts) if isinstance(ts, int | float) else 0.0,
        direction=direction,  # type: ignore[arg-type]
        session=str(rec.get("session") or ""),
        backend=str(rec.get("backend") or ""),
        msg_kind=kind,
        method=rec.get("method") if isinstance(rec.get("method"), str) else None,
        msg_id=msg_id if isinstance(msg_id, str | int) and not isinstance(msg_id, bool) else None,
        latency_ms=float(latency) if isinstance(latency, int | float) else None,
        error=rec.get("error") if isinstance(rec.get("error"), str) else None,
        message=message if isinstance(message, dict) else None,
        era=rec.get("era") if isinstance(rec.get("era"), str) else None,
    )


def open_trace(path: Path | str) -> OpenedTrace:
    """Read a trace file (an export, or a `--trace-file` and its rotated predecessors) into events."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"no trace file at {p}")
    opened = OpenedTrace(p)
    for rec in read_trace(p, include_rotated=True):
        ev = _event(rec)
        if ev is None:
            opened.skipped += 1
            continue
        if rec.get("marked") is True:
            opened.marked.append(len(opened.events))
        opened.events.append(ev)
    return opened
