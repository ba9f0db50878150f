"""`FileControl`: the `RouterControl` of a trace file opened with `mcp-router-tui --open FILE.jsonl`.

No router runs: the feed yields the file's messages once, the queries answer "nothing here", and
every action is refused with a message that says why, so the same screens show a trace from a
colleague or a CI run with filter, detail and diff working, read-only. No Textual here.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from app import __version__
from app.control import ControlError, event_kinds
from app.proxy.events import Event
from app.proxy.jsonrpc import JSON
from app.trace_io import OpenedTrace, open_trace


class FileFeed:
    """The file's events, once."""

    def __init__(self, events: list[Event]) -> None:
        self._events = events
        self.dropped = 0
        self.closed = False

    def drain(self) -> list[Event]:
        events, self._events = self._events, []
        return events

    def close(self) -> None:
        self.closed = True


class FileControl:
    def __init__(self, trace: OpenedTrace) -> None:
        self.trace = trace
        self.path = trace.path
        self.read_only = True

    @classmethod
    def open(cls, path: Path | str) -> FileControl:
        return cls(open_trace(path))

    def _refuse(self, what: str) -> ControlError:
        return ControlError(f"read-only: {self.path.name} is a trace file, not a running router ({what})", 409)

    @property
    def url(self) -> str | None:
        return None

    def subscribe(self, kinds: Iterable[str] | None = None) -> FileFeed:
        wanted = event_kinds(kinds)
        events: list[Event] = [e for e in self.trace.events if wanted is None or type(e) in wanted]
        return FileFeed(events)

    async def status(self, reveal: bool = False) -> JSON:
        return {
            "router": "mcp-dev-router",
            "version": __version__,
            "url": None,
            "file": str(self.path),
            "uptime_s": 0,
            "default": None,
            "backends": [],
            "sessions": 0,
        }

    async def backend(self, name: str, reveal: bool = False) -> JSON:
        raise ControlError(f"no backend '{name}': {self.path.name} is a trace file", 404)

    async def health(self, name: str) -> list[JSON]:
        return []

    async def log(self, name: str) -> list[str]:
        return []

    async def sessions(self) -> list[JSON]:
        return []

    async def catalog(self, name: str) -> JSON:
        return {}

    async def ack_change(self, name: str) -> JSON:
        raise self._refuse("no catalog")

    async def add_backend(self, spec: JSON) -> JSON:
        raise self._refuse("cannot add a backend")

    async def remove_backend(self, name: str) -> None:
        raise self._refuse("cannot remove a backend")

    async def enable(self, name: str) -> JSON:
        raise self._refuse("cannot enable a backend")

    async def disable(self, name: str) -> JSON:
        raise self._refuse("cannot disable a backend")

    async def restart(self, name: str) -> JSON:
        raise self._refuse("cannot restart a backend")

    async def close_session(self, session_id: str) -> None:
        raise self._refuse("no sessions")

    async def call(self, name: str, method: str, params: JSON | None = None) -> JSON:
        raise self._refuse("nothing to call")

    async def replay(self, name: str, message: JSON, direction: str | None = None) -> JSON:
        raise self._refuse("no backend to replay against; compare two answers with d instead")

    def marked_indexes(self) -> list[int]:
        return list(self.trace.marked)

    def __repr__(self) -> str:
        return f"FileControl({self.path})"
