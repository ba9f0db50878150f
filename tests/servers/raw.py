"""A raw MCP backend for the byte-exactness tests: it answers with the exact bytes it is told to.

    python tests/servers/raw.py --transport streamable|stdio [--host H --port N] --record FILE

Nothing here re-encodes JSON. `initialize`, `ping` and the list methods get canned answers (so
the router's probes see a working server); notifications are accepted. A request with method
`raw/answer` is answered with `params.answer`, a string written out byte for byte (UTF-8), after
replacing `$ID` with the request's id as JSON; over HTTP, `params.delay` seconds later. An answer that is a list of strings is sent as
several messages (stdio: several lines; HTTP: the first is the body). Every message received is
appended to FILE as one JSON line `{"body": <the bytes, latin-1>}`, so a test sees exactly what
arrived. Streamable HTTP answers in JSON (`application/json`), never SSE. Each `initialize` gets a
session id of its own; a delayed answer whose session a DELETE ended meanwhile is a 404 instead.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import sys
from typing import Any

HANDSHAKE = ("2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25")


class Backend:
    def __init__(self, record: str) -> None:
        self.record = open(record, "a", buffering=1, encoding="utf-8")  # kept open for the process lifetime
        self.sessions = itertools.count(1)
        self.ended: set[bytes] = set()  # session ids a DELETE ended

    def received(self, body: bytes) -> None:
        self.record.write(json.dumps({"body": body.decode("latin-1")}) + "\n")

    @staticmethod
    def delay(body: bytes) -> float:
        msg = json.loads(body)
        params = msg.get("params") if isinstance(msg, dict) else None
        delay = params.get("delay") if isinstance(params, dict) else None
        return float(delay) if isinstance(delay, int | float) else 0.0

    def answer(self, body: bytes) -> list[bytes]:
        """The bytes to send back for one received message (none for a notification or a reply)."""
        self.received(body)
        msg = json.loads(body)  # Python reads lone surrogates, big integers and 1e400 alike
        if not isinstance(msg, dict) or "method" not in msg or "id" not in msg:
            return []
        rid = json.dumps(msg["id"])
        method = msg["method"]
        params = msg.get("params") or {}
        if method == "raw/answer":
            answer = params["answer"]
            texts = answer if isinstance(answer, list) else [answer]
            return [t.replace("$ID", rid).encode("utf-8", "surrogatepass") for t in texts]
        result: dict[str, Any]
        if method == "initialize":
            version = params.get("protocolVersion")
            result = {
                "protocolVersion": version if version in HANDSHAKE else HANDSHAKE[-1],
                "capabilities": {"tools": {}},
                "serverInfo": {"name": "raw", "version": "1"},
            }
        elif method == "server/discover":
            result = {
                "supportedVersions": ["2026-07-28"],
                "capabilities": {"tools": {}},
                "serverInfo": {"name": "raw", "version": "1"},
            }
        elif method == "tools/list":
            result = {"tools": []}
        else:
            result = {}
        return [json.dumps({"jsonrpc": "2.0", "id": msg["id"], "result": result}).encode()]


async def serve_stdio(backend: Backend) -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=64 * 1024 * 1024)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    out = sys.stdout.buffer
    while line := await reader.readline():
        line = line.rstrip(b"\n")
        if not line.strip():
            continue
        for reply in backend.answer(line):
            out.write(reply + b"\n")
            out.flush()


def asgi_app(backend: Backend) -> Any:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        method = scope["method"]
        if method == "DELETE":
            backend.ended.add(dict(scope["headers"]).get(b"mcp-session-id", b""))
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b""})
            return
        if method != "POST":
            await send({"type": "http.response.start", "status": 405, "headers": []})
            await send({"type": "http.response.body", "body": b""})
            return
        chunks = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        body = b"".join(chunks)
        replies = backend.answer(body)
        delay = backend.delay(body)
        if delay:
            await asyncio.sleep(delay)  # a slow tool, as the test asked
            if dict(scope["headers"]).get(b"mcp-session-id") in backend.ended:
                # Its session was ended meanwhile (DELETE): as a real server, it answers nothing more.
                await send({"type": "http.response.start", "status": 404, "headers": []})
                await send({"type": "http.response.body", "body": b"session ended"})
                return
        session = b"raw-session-%d" % next(backend.sessions) if b'"initialize"' in body else b""
        headers = [(b"mcp-session-id", session)] if session else []
        if not replies:
            await send({"type": "http.response.start", "status": 202, "headers": headers})
            await send({"type": "http.response.body", "body": b""})
            return
        headers.append((b"content-type", b"application/json"))
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": replies[0]})

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description="raw MCP backend for the byte-exactness tests")
    parser.add_argument("--transport", choices=["streamable", "stdio"], default="streamable")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--record", required=True)
    args = parser.parse_args()
    sys.setrecursionlimit(50_000)  # deeply nested JSON is valid JSON; read it all
    backend = Backend(args.record)
    if args.transport == "stdio":
        asyncio.run(serve_stdio(backend))
        return
    import uvicorn

    config = uvicorn.Config(asgi_app(backend), host=args.host, port=args.port, log_level="warning", lifespan="off")
    asyncio.run(uvicorn.Server(config).serve())


if __name__ == "__main__":
    main()
