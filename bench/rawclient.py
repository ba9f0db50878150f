"""A minimal MCP client for load generation: one kept-alive HTTP connection, no SDK.

The SDK's client spends a few milliseconds of CPU per call (pydantic, anyio streams, httpx). At
250 calls a second that is most of a core on a 2-core machine: the load generator, not the path
under test, then sets the latency. This client speaks the same Streamable HTTP exchange (a
handshake-era session: `initialize`, `notifications/initialized`, then calls) with raw bytes on
asyncio streams and httptools, so the machine keeps the capacity to carry the load it is asked for.

Same shape as `tests.support.clients.connect` for what the benchmark uses:
`async with connect(url, "streamable-handshake") as client: await client.call_tool(name, args)`.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit

import httptools

PROTOCOL_VERSION = "2025-11-25"


class CallFailed(RuntimeError):
    pass


class _Answer:
    """httptools callbacks: the status, two headers and the body of one response."""

    def __init__(self) -> None:
        self.headers: dict[str, str] = {}
        self.body = bytearray()
        self.done = False

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_body(self, body: bytes) -> None:
        self.body += body

    def on_message_complete(self) -> None:
        self.done = True


class RawClient:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, host: str, path: str) -> None:
        self._reader = reader
        self._writer = writer
        self._host = host
        self._path = path
        self._session: str | None = None
        self._ids = itertools.count(1)

    async def _send(self, method: str, headers: list[str], body: bytes = b"") -> tuple[int, _Answer]:
        """One HTTP exchange on the kept-alive connection: the status and the whole answer."""
        head = [
            f"{method} {self._path} HTTP/1.1",
            f"Host: {self._host}",
            f"MCP-Protocol-Version: {PROTOCOL_VERSION}",
            f"Content-Length: {len(body)}",
            *headers,
        ]
        if self._session is not None:
            head.append(f"Mcp-Session-Id: {self._session}")
        self._writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body)
        answer = _Answer()
        parser = httptools.HttpResponseParser(answer)
        while not answer.done:
            data = await self._reader.read(65536)
            if not data:
                raise CallFailed("the server closed the connection")
            parser.feed_data(data)
        return parser.get_status_code(), answer

    async def _post(self, message: dict[str, Any]) -> tuple[int, _Answer]:
        body = json.dumps(message, separators=(",", ":")).encode()
        return await self._send(
            "POST", ["Accept: application/json, text/event-stream", "Content-Type: application/json"], body
        )

    async def request(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        rid = next(self._ids)
        status, answer = await self._post({"jsonrpc": "2.0", "id": rid, "method": method, "params": params})
        if status != 200:
            raise CallFailed(f"{method}: HTTP {status}: {bytes(answer.body[:200])!r}")
        if answer.headers.get("content-type", "").startswith("text/event-stream"):
            # The answer as an SSE stream: the `data:` line that carries this id's response.
            for line in bytes(answer.body).splitlines():
                if line.startswith(b"data:"):
                    reply = json.loads(line[5:])
                    if reply.get("id") == rid:
                        break
            else:
                raise CallFailed(f"{method}: no answer in the stream")
        else:
            reply = json.loads(answer.body)
        if "error" in reply:
            raise CallFailed(f"{method}: {reply['error']}")
        if self._session is None:
            self._session = answer.headers.get("mcp-session-id")
        result: dict[str, Any] = reply["result"]
        return result

    async def initialize(self) -> None:
        await self.request(
            "initialize",
            {
                "protocolVersion": PROTOCOL_VERSION,
                "capabilities": {},
                "clientInfo": {"name": "bench-raw", "version": "1"},
            },
        )
        status, _ = await self._post({"jsonrpc": "2.0", "method": "notifications/initialized"})
        if status != 202:
            raise CallFailed(f"notifications/initialized: HTTP {status}")

    async def close(self) -> None:
        """End the session as the SDK's client does (DELETE), so that it does not linger on the server."""
        if self._session is not None:
            await self._send("DELETE", [])

    async def call_tool(self, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
        result = await self.request("tools/call", {"name": name, "arguments": arguments})
        if result.get("isError"):
            raise CallFailed(f"tools/call {name}: {result}")
        return result


@contextlib.asynccontextmanager
async def connect(url: str, transport: str = "streamable-handshake") -> AsyncIterator[RawClient]:
    if transport != "streamable-handshake":
        raise ValueError(f"the raw client speaks only streamable-handshake, not {transport}")
    parts = urlsplit(url)
    assert parts.hostname is not None and parts.port is not None
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    try:
        client = RawClient(reader, writer, parts.netloc, parts.path or "/")
        await client.initialize()
        yield client
        with contextlib.suppress(OSError, httptools.HttpParserError, CallFailed):
            await client.close()
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
