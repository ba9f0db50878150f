"""Small pure-ASGI helpers shared by the client-facing endpoints."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from app.proxy import jsonrpc
from app.proxy.jsonrpc import Message, RequestId
from app.proxy.limits import fmt_size

Scope = MutableMapping[str, Any]
ASGIMessage = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[ASGIMessage]]
Send = Callable[[ASGIMessage], Awaitable[None]]

SSE_HEADERS = [
    (b"content-type", b"text/event-stream"),
    (b"cache-control", b"no-cache, no-transform"),
    (b"x-accel-buffering", b"no"),
]


WRITE_CHUNK = 1024 * 1024


class BodyTooLarge(Exception):
    pass


class ClientDisconnected(Exception):
    pass


def header(scope: Scope, name: bytes) -> str | None:
    for k, v in scope["headers"]:
        if k == name:
            return str(v.decode("latin-1"))
    return None


def headers_with_prefix(scope: Scope, names: frozenset[bytes], prefixes: tuple[bytes, ...]) -> dict[str, str]:
    out: dict[str, str] = {}
    for k, v in scope["headers"]:
        if k in names or k.startswith(prefixes):
            out[k.decode("latin-1")] = v.decode("latin-1")
    return out


async def read_body(receive: Receive, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnected
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks) if len(chunks) != 1 else chunks[0]


DISCONNECT_HOOKS = "mcp_router.disconnect_hooks"
"""Scope key under which our uvicorn protocol keeps callbacks to run when the client goes away."""


ABORT_HOOK = "mcp_router.abort"
"""Scope key under which our uvicorn protocol offers to drop the connection at once (a client that
stopped reading: closing would wait for a buffer it never drains)."""


HANDED_OVER = "mcp_router.handed_over"
"""Scope key of a request the hot path forwarded, then handed to the ASGI app (its answer streams)."""


def watch_disconnect(scope: Scope, receive: Receive) -> asyncio.Future[None]:
    """A future resolved when the client disconnects; cancel it to stop watching.

    Under the router's own protocol this is a callback on the connection, not a task per request
    (the hot path's cost); under any other ASGI server a task waits for `http.disconnect`.
    """
    fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def fire() -> None:
        if not fut.done():
            fut.set_result(None)

    hooks: list[Callable[[], None]] | None = scope.get(DISCONNECT_HOOKS)
    if hooks is not None:
        hooks.append(fire)

        def unhook(_f: asyncio.Future[None]) -> None:
            if fire in hooks:
                hooks.remove(fire)

        fut.add_done_callback(unhook)
        return fut
    task = asyncio.ensure_future(wait_disconnect(receive))
    task.add_done_callback(lambda t: None if t.cancelled() else fire())
    fut.add_done_callback(lambda _f: task.cancel())
    return fut


async def read_messages(receive: Receive, send: Send, limit: int) -> tuple[list[Message], bool] | None:
    """Read and decode a POSTed JSON-RPC body; on bad input answer the error and return None."""
    try:
        body = await read_body(receive, limit)
    except BodyTooLarge:
        await respond_error(
            send,
            413,
            jsonrpc.INVALID_REQUEST,
            f"Payload Too Large: the limit is {limit} bytes ({fmt_size(limit)}, --max-body)",
        )
        return None
    except ClientDisconnected:
        return None
    try:
        return jsonrpc.parse_body(body)
    except jsonrpc.ProtocolError as exc:
        await respond_error(send, exc.http_status, exc.code, exc.message, exc.msg_id)
        return None


async def wait_disconnect(receive: Receive) -> None:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return


async def respond(
    send: Send,
    status: int,
    body: bytes = b"",
    content_type: bytes | None = b"application/json",
    headers: list[tuple[bytes, bytes]] | None = None,
) -> None:
    hdrs = list(headers or [])
    if content_type is not None and body:
        hdrs.append((b"content-type", content_type))
    hdrs.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": hdrs})
    if len(body) <= WRITE_CHUNK:
        await send({"type": "http.response.body", "body": body})
        return
    # A large body goes in slices (views, not copies), each written when the client has taken
    # the last: the socket's buffer then never holds a second copy of the whole message.
    view = memoryview(body)
    for start in range(0, len(body), WRITE_CHUNK):
        end = start + WRITE_CHUNK
        await send({"type": "http.response.body", "body": view[start:end], "more_body": end < len(body)})


async def respond_error(
    send: Send,
    status: int,
    code: int,
    text: str,
    msg_id: RequestId | None = None,
    headers: list[tuple[bytes, bytes]] | None = None,
    data: Any = None,
) -> None:
    await respond(send, status, jsonrpc.error(msg_id, code, text, data).raw, headers=headers)
