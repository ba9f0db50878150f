"""A minimal MCP server for load generation: Streamable HTTP with JSON answers, no SDK.

    python bench/rawserver.py --port N [--host 127.0.0.1] [--delay-ms MS]

The SDK's server spends about 2.8 ms of CPU per `tools/call` on this machine. The paced TUI
measurement sends three streams of 250 calls/s at once (bench/run.py says why), which through the
SDK's server alone would need two cores. This one answers the same exchange in tens of µs, so the
machine is left to the routers under test, and their share of a call's latency is larger: a ratio
between two of them is stricter than behind a slow server. With `--delay-ms` a `tools/call` is
answered that much later, without the CPU: a server that takes as long as the SDK's to answer.

What it speaks, as bench/rawclient.py and the router use it, in the handshake era only:
`initialize` (a session id of its own per call, the client's protocol version if it is one of
the handshake era's), notifications (202), `ping`, `tools/list` (one tool, `echo`), `tools/call`
of `echo` (the text back), and JSON-RPC -32601 for any other method. GET has no stream (405); DELETE ends nothing (200). Every
request is answered in JSON (`application/json`), never SSE.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
from typing import Any, cast

import httptools

HANDSHAKE = ("2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25")
ECHO_TOOL = {
    "name": "echo",
    "description": "Echo the text back.",
    "inputSchema": {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]},
    "annotations": {"readOnlyHint": True},
}
SESSIONS = itertools.count(1)


def _answer(message: dict[str, Any]) -> tuple[dict[str, Any] | None, str | None]:
    """The JSON-RPC answer to one message (None for a notification), and a new session id if any."""
    if "id" not in message:
        return None, None
    method = message.get("method")
    params = message.get("params") or {}
    if method == "tools/call" and params.get("name") == "echo":
        text = str((params.get("arguments") or {}).get("text", ""))
        return {"jsonrpc": "2.0", "id": message["id"], "result": {"content": [{"type": "text", "text": text}]}}, None
    if method == "initialize":
        asked = params.get("protocolVersion")
        result: dict[str, Any] = {
            "protocolVersion": asked if asked in HANDSHAKE else HANDSHAKE[-1],
            "capabilities": {"tools": {}},
            "serverInfo": {"name": "bench-rawserver", "version": "1.0"},
        }
        return {"jsonrpc": "2.0", "id": message["id"], "result": result}, f"raw-{next(SESSIONS)}"
    if method == "ping":
        return {"jsonrpc": "2.0", "id": message["id"], "result": {}}, None
    if method == "tools/list":
        return {"jsonrpc": "2.0", "id": message["id"], "result": {"tools": [ECHO_TOOL]}}, None
    error = {"code": -32601, "message": f"Method not found: {method}"}
    return {"jsonrpc": "2.0", "id": message["id"], "error": error}, None


class _Connection(asyncio.Protocol):
    """One kept-alive HTTP/1.1 connection: each request answered as soon as its body is complete
    (a `tools/call`, `delay` s later)."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.transport: asyncio.WriteTransport | None = None
        self.parser = httptools.HttpRequestParser(self)
        self.body = bytearray()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.WriteTransport, transport)  # uvloop's are not registered subclasses

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self._write(400, b"text/plain", b"bad request", None)
            assert self.transport is not None
            self.transport.close()

    def on_message_begin(self) -> None:
        self.body = bytearray()

    def on_body(self, body: bytes) -> None:
        self.body += body

    def on_message_complete(self) -> None:
        method = self.parser.get_method()
        if method == b"DELETE":
            self._write(200, b"text/plain", b"", None)
            return
        if method != b"POST":
            self._write(405, b"text/plain", b"no stream here", None)
            return
        try:
            message = json.loads(self.body)
        except ValueError:
            self._write(400, b"text/plain", b"not JSON", None)
            return
        if not isinstance(message, dict):
            self._write(400, b"text/plain", b"one JSON-RPC message per POST", None)
            return
        answer, session = _answer(message)
        if answer is None:
            self._write(202, b"text/plain", b"", None)
            return
        body = json.dumps(answer, separators=(",", ":")).encode()
        if self.delay > 0 and message.get("method") == "tools/call":
            asyncio.get_running_loop().call_later(self.delay, self._write, 200, b"application/json", body, session)
        else:
            self._write(200, b"application/json", body, session)

    def _write(self, status: int, ctype: bytes, body: bytes, session: str | None) -> None:
        assert self.transport is not None
        if self.transport.is_closing():
            return  # the client left while a delayed answer waited
        head = b"HTTP/1.1 %d X\r\nContent-Type: %s\r\nContent-Length: %d\r\n" % (status, ctype, len(body))
        if session is not None:
            head += b"Mcp-Session-Id: " + session.encode() + b"\r\n"
        self.transport.write(head + b"\r\n" + body)


async def serve(host: str, port: int, delay: float = 0.0) -> None:
    parent = os.getppid()
    server = await asyncio.get_running_loop().create_server(lambda: _Connection(delay), host, port)
    async with server:
        # Stopped by pid by whoever started it; and if that one died first, it stops by itself
        # (a parent's death sends no event to wait for).
        while os.getppid() == parent:  # noqa: ASYNC110
            await asyncio.sleep(1.0)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--delay-ms", type=float, default=0.0, help="answer a tools/call this much later")
    args = parser.parse_args(argv)
    try:
        import uvloop  # the same loop the router runs on, so the two are served alike

        uvloop.install()
    except ImportError:
        pass
    try:
        asyncio.run(serve(args.host, args.port, args.delay_ms / 1000.0))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
