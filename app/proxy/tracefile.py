"""Trace files: every JSON-RPC message that crossed the router, one JSON object per line.

The record format (also the workbench's export format):

    {"time": "2026-11-30T16:40:01.123Z", "ts": 1796402401.123, "direction": "client->backend",
     "session": "…", "backend": "demo", "era": "handshake", "kind": "request", "method": "tools/call",
     "id": 3, "status": null, "error": null, "latency_ms": null, "message": {…the JSON-RPC message…}}

`status` is "ok" for a response, "error" for an error response, null for requests and
notifications; `latency_ms` is set on responses (time since their request). `TraceFileWriter`
appends records and rotates at a size cap (`path`, `path.1`, `path.2`: three files by default);
`read_trace` reads them back, oldest first. No Textual here: the workbench reuses this module.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any

import orjson

from app.proxy.events import EventBus, TrafficEvent

FLUSH_INTERVAL = 0.05


def _iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts)) + f".{int(ts * 1000) % 1000:03d}Z"


def record(ev: TrafficEvent) -> dict[str, Any]:
    """One traffic event as a trace record."""
    status = "ok" if ev.msg_kind == "response" else "error" if ev.msg_kind == "error" else None
    return {
        "time": _iso(ev.ts),
        "ts": ev.ts,
        "direction": ev.direction,
        "session": ev.session,
        "backend": ev.backend,
        "era": ev.era,
        "kind": ev.msg_kind,
        "method": ev.method,
        "id": ev.msg_id,
        "status": status,
        "error": ev.error,
        "latency_ms": ev.latency_ms,
        "message": ev.message,
        # Where the decoded message only approximates what crossed (odd JSON), the exact text too.
        **({"raw": ev.raw.decode("utf-8", "replace")} if not ev.exact and ev.raw is not None else {}),
    }


def dumps(rec: dict[str, Any]) -> bytes:
    """A record as one line. Any RFC 8259 JSON passes the router, so a message may hold what orjson
    refuses (integers past 64 bits, lone surrogates): those lines are written by the json module."""
    try:
        return orjson.dumps(rec) + b"\n"
    except (orjson.JSONEncodeError, TypeError):
        return json.dumps(rec, ensure_ascii=True, default=str).encode() + b"\n"


def rotated(path: Path, keep: int = 3) -> list[Path]:
    """The files of a trace, oldest first: path.{keep-1} … path.1, path (those that exist)."""
    files = [path.with_name(f"{path.name}.{i}") for i in range(keep - 1, 0, -1)] + [path]
    return [f for f in files if f.exists()]


def read_trace(path: Path | str, include_rotated: bool = True, keep: int = 3) -> Iterator[dict[str, Any]]:
    """The records of a trace file (and its rotated predecessors), oldest first; lines that are not
    a JSON object are skipped (a file cut off mid-line by a crash ends with one)."""
    p = Path(path)
    for f in rotated(p, keep) if include_rotated else [p]:
        with f.open("rb") as fh:
            for line in fh:
                if not line.strip():
                    continue
                try:
                    rec = orjson.loads(line)
                except orjson.JSONDecodeError:
                    try:
                        rec = json.loads(line)
                    except ValueError:
                        continue
                if isinstance(rec, dict):
                    yield rec


class TraceFileWriter:
    """Appends trace records to `path`, rotating at `max_bytes` and keeping `keep` files in all."""

    def __init__(self, path: Path | str, max_bytes: int = 50 * 1024 * 1024, keep: int = 3) -> None:
        self.path = Path(path)
        self.max_bytes = max_bytes
        self.keep = max(1, keep)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fh: IO[bytes] = self.path.open("ab")
        self._size = self._fh.tell()
        self.written = 0

    def _rotate(self) -> None:
        self._fh.close()
        oldest = self.path.with_name(f"{self.path.name}.{self.keep - 1}")
        with contextlib.suppress(FileNotFoundError):
            oldest.unlink()
        for i in range(self.keep - 2, 0, -1):
            src = self.path.with_name(f"{self.path.name}.{i}")
            if src.exists():
                src.rename(self.path.with_name(f"{self.path.name}.{i + 1}"))
        if self.keep > 1:
            self.path.rename(self.path.with_name(f"{self.path.name}.1"))
        else:
            self.path.unlink()
        self._fh = self.path.open("ab")
        self._size = 0

    def write(self, records: Iterable[dict[str, Any]]) -> None:
        for rec in records:
            line = dumps(rec)
            if self._size and self._size + len(line) > self.max_bytes:
                self._fh.flush()
                self._rotate()
            self._fh.write(line)
            self._size += len(line)
            self.written += 1
        self._fh.flush()

    def close(self) -> None:
        self._fh.close()

    async def follow(self, bus: EventBus) -> None:
        """Write the bus's traffic until the bus closes (run it as a task)."""
        sub = bus.subscribe(maxsize=100_000, kinds=[TrafficEvent])
        try:
            while True:
                batch = await sub.next_batch()
                if not batch and sub.closed:
                    return
                self.write(record(ev) for ev in batch if isinstance(ev, TrafficEvent))
                if sub.dropped:
                    sub.dropped = 0
                if not sub.closed:
                    # Batch the writes under load: one write call per interval, not one per message.
                    await asyncio.sleep(FLUSH_INTERVAL)
        finally:
            sub.close()
            self.close()
