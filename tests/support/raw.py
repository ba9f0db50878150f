"""Raw HTTP clients of the router, one per client transport, that send and receive exact bytes.

    async with httpx.AsyncClient() as http, RawClient(http, router, "sse", "backend") as client:
        answer_bytes = await client.exchange(body_bytes)

Transports: "streamable-handshake" (initialize, then requests on its Mcp-Session-Id),
"streamable-modern" (2026-07-28: every POST self-contained; the body must carry the `_meta`
envelope) and "sse" (legacy HTTP+SSE: GET the stream, POST to its endpoint, answers on the
stream). SSE is parsed by the letter of the spec (lines end at CR, LF or CRLF), independently of
the router's own decoder. `run_raw_http` runs the raw backend (tests/servers/raw.py) they talk to.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Protocol

import httpx

from tests.support.procs import HOST, REPO_ROOT, SyncRouter, free_port, stop_popen

MODERN = "2026-07-28"
HANDSHAKE = "2025-11-25"


class _RawStream(Protocol):
    def aiter_raw(self) -> AsyncIterator[bytes]: ...


def sse_lines(buffer: bytearray, final: bool = False) -> list[bytes]:
    """Complete lines in `buffer` (removed from it), split at CR, LF or CRLF as SSE says."""
    out: list[bytes] = []
    while True:
        m = re.search(rb"\r\n|\r|\n", buffer)
        if m is None or (m.group() == b"\r" and m.end() == len(buffer) and not final):
            return out  # a CR at the end may be half of a CRLF
        out.append(bytes(buffer[: m.start()]))
        del buffer[: m.end()]


async def sse_events(resp: _RawStream) -> AsyncIterator[tuple[str, bytes]]:
    """(event, data) of each event on an SSE response, parsed by the letter of the spec."""
    buffer = bytearray()
    event, data = "message", list[bytes]()
    async for chunk in resp.aiter_raw():
        buffer += chunk
        for line in sse_lines(buffer):
            if not line:
                if data:
                    yield event, b"\n".join(data)
                event, data = "message", []
                continue
            name, _, value = line.partition(b":")
            value = value[1:] if value.startswith(b" ") else value
            if name == b"data":
                data.append(value)
            elif name == b"event":
                event = value.decode()


class RawClient:
    """One client session on one transport, sending raw bodies and returning the raw answer."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        router: SyncRouter,
        transport: str,
        backend: str,
        capabilities: dict[str, object] | None = None,
    ) -> None:
        self.capabilities = capabilities or {}
        self.http = http
        self.transport = transport
        self.base = router.url
        self.url = router.sse_url(backend) if transport == "sse" else router.mcp_url(backend)
        self.headers = {"content-type": "application/json", "accept": "application/json"}
        self.init_answer: bytes | None = None
        self._stack = contextlib.AsyncExitStack()
        self._events: AsyncIterator[tuple[str, bytes]] | None = None
        self._endpoint = ""

    async def __aenter__(self) -> RawClient:
        init = json.dumps(
            {
                "jsonrpc": "2.0",
                "id": 0,
                "method": "initialize",
                "params": {
                    "protocolVersion": HANDSHAKE,
                    "capabilities": self.capabilities,
                    "clientInfo": {"name": "raw", "version": "1"},
                },
            }
        ).encode()
        initialized = b'{"jsonrpc":"2.0","method":"notifications/initialized"}'
        if self.transport == "streamable-modern":
            self.headers["mcp-protocol-version"] = MODERN
        elif self.transport == "streamable-handshake":
            resp = await self.http.post(self.url, content=init, headers=self.headers)
            assert resp.status_code == 200, resp.text
            self.init_answer = resp.content
            self.headers["mcp-session-id"] = resp.headers["mcp-session-id"]
            self.headers["mcp-protocol-version"] = HANDSHAKE
            assert (await self.http.post(self.url, content=initialized, headers=self.headers)).status_code == 202
        else:
            resp = await self._stack.enter_async_context(
                self.http.stream("GET", self.url, headers={"accept": "text/event-stream"})
            )
            self._events = sse_events(resp)
            event, data = await anext(self._events)
            assert event == "endpoint"
            self._endpoint = self.base + data.decode()
            self.init_answer = await self.exchange(init)
            await self.post(initialized)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._stack.aclose()

    async def post(self, body: bytes, accept: str | None = None) -> httpx.Response:
        if self.transport == "sse":
            resp = await self.http.post(self._endpoint, content=body, headers={"content-type": "application/json"})
            assert resp.status_code == 202, resp.text
            return resp
        headers = {**self.headers, "accept": accept} if accept else self.headers
        return await self.http.post(self.url, content=body, headers=headers)

    async def next_message(self, timeout: float = 20.0) -> bytes:
        """The next `message` event on the session's stream (a stdio backend may take seconds to start)."""
        assert self._events is not None
        async with asyncio.timeout(timeout):
            while True:
                event, data = await anext(self._events)
                if event == "message":
                    return data

    async def exchange(self, body: bytes) -> bytes:
        """POST one request; the raw bytes of the message that answers it."""
        resp = await self.post(body)
        if self.transport == "sse":
            return await self.next_message()
        assert resp.status_code == 200, resp.text
        assert resp.headers["content-type"].startswith("application/json")
        return resp.content


RAW_SERVER = REPO_ROOT / "tests" / "servers" / "raw.py"


@contextlib.contextmanager
def run_raw_http(record: Path) -> Iterator[str]:
    """Run tests/servers/raw.py (Streamable HTTP, recording what it receives to `record`); yield its URL."""
    port = free_port()
    argv = [sys.executable, str(RAW_SERVER), "--transport", "streamable", "--port", str(port), "--record", str(record)]
    popen = subprocess.Popen(argv, stdin=subprocess.DEVNULL, cwd=REPO_ROOT, start_new_session=True)
    try:
        deadline = time.monotonic() + 15
        while True:
            assert popen.poll() is None, "raw backend exited"
            with socket.socket() as sock:
                if sock.connect_ex((HOST, port)) == 0:
                    break
            assert time.monotonic() < deadline, "raw backend did not listen"
            time.sleep(0.02)  # a blocking poll interval: no event loop here
        yield f"http://{HOST}:{port}/mcp"
    finally:
        stop_popen(popen)
