"""The 2026-07-28-era clients a router has seen. That era has no handshake and no session of its
own: every request names its client in `_meta` ("io.modelcontextprotocol/clientInfo"), and all of
a backend's modern requests travel in one shared session. So the sessions list shows one entry per
(backend, client name, client version) instead: when it was first and last seen, how many requests.

`seen` runs once per modern request: one dict lookup (a record is created on first sight only).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from app.proxy.jsonrpc import JSON

CLIENT_INFO = "io.modelcontextprotocol/clientInfo"
MAX_CLIENTS = 256  # a client that invents a new version per request must not grow the table forever


@dataclass(slots=True)
class ModernClient:
    backend: str
    name: str | None
    version: str | None
    protocol_version: str
    first_seen: float
    last_seen: float
    requests: int = 1

    def snapshot(self, pending: int = 0) -> JSON:
        return {
            "id": f"modern:{self.backend}:{self.name or '?'}@{self.version or '?'}",
            # Its requests travel in this shared session (the trace's session column).
            "session": f"modern:{self.backend}",
            "backend": self.backend,
            "era": "modern",
            "transport": "streamable-http",
            "client": {"name": self.name, "version": self.version} if self.name is not None else None,
            "protocol_version": self.protocol_version,
            "connected": False,
            "state": "seen",  # no session of its own: a client the router has seen
            "pending": pending,  # its requests in flight in the shared session
            "rebuilds": 0,
            "created": self.first_seen,
            "last_activity": self.last_seen,
            "requests": self.requests,
        }


def identity(meta: object) -> tuple[str | None, str | None]:
    """The client's name and version from a request's `_meta`, as far as they are text."""
    info = meta.get(CLIENT_INFO) if isinstance(meta, dict) else None
    if not isinstance(info, dict):
        return None, None
    # Self-reported and unverified: only text is kept (and anything else is no dict key).
    name, version = info.get("name"), info.get("version")
    return (name if isinstance(name, str) else None, version if isinstance(version, str) else None)


class ModernClients:
    def __init__(self) -> None:
        self._clients: dict[tuple[str, Any, Any], ModernClient] = {}

    def seen(self, backend: str, meta: object, protocol_version: str) -> None:
        """A request from a client: `meta` is its `_meta` (what its params hold there, if anything)."""
        name, version = identity(meta)
        now = time.time()
        key = (backend, name, version)
        client = self._clients.get(key)
        if client is not None:
            client.last_seen = now
            client.requests += 1
            client.protocol_version = protocol_version
            return
        if len(self._clients) >= MAX_CLIENTS:
            del self._clients[min(self._clients, key=lambda k: self._clients[k].last_seen)]
        self._clients[key] = ModernClient(backend, name, version, protocol_version, now, now)

    def snapshot(
        self,
        backends: set[str] | dict[str, Any],
        idle_timeout: float,
        pending: Mapping[tuple[str, str | None, str | None], int] | None = None,
    ) -> list[JSON]:
        """Clients of backends that still exist and seen within `idle_timeout` (older ones are dropped).

        `pending`: requests in flight by (backend, client name, client version).
        """
        cutoff = time.time() - idle_timeout
        for key in [k for k, c in self._clients.items() if c.last_seen < cutoff or c.backend not in backends]:
            del self._clients[key]
        counts = pending or {}
        return [c.snapshot(counts.get(key, 0)) for key, c in self._clients.items()]
