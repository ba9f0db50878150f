"""A real MCP backend for the test suite, built on the official SDK's `MCPServer`.

    python tests/servers/fixture.py --transport streamable|sse|stdio \
        [--host 127.0.0.1] [--port N] [--variant v1|v2] [--name NAME]

Streamable HTTP serves `/mcp` in both protocol eras at once: the SDK's session manager routes a
request whose `MCP-Protocol-Version` header is not a handshake version (2026-07-28) to its
stateless "modern" entry and everything else to the stateful handshake transport, so no option
is needed. Legacy SSE serves `GET /sse` + `POST /messages/?session_id=`. stdio speaks
newline-delimited JSON on stdin/stdout; all logging goes to stderr.

Sampling and elicitation use the SDK's `Resolve(...)` markers rather than `ctx.elicit()`:
the markers are sent as server-to-client requests in the handshake era and become an
`InputRequiredResult` round trip in the 2026-07-28 era, so the same tool works in both.
"""

from __future__ import annotations

if __name__ == "__main__" and "__fork_server__" not in globals():  # the suite: served by a fork (fork_server.py)
    import os as _os
    import sys as _sys

    _sys.path.insert(0, _os.path.dirname(_os.path.abspath(__file__)))  # also when run by runpy
    import fork_client

    fork_client.serve_forked("fixture")

import argparse
import asyncio
import itertools
import json
import logging
import os
import sys
import warnings
from typing import Annotated, Any

# Importing the SDK never prints, but keep every import above `main()` free of stdout output:
# in stdio mode stdout carries only protocol frames.
import anyio
import mcp_types as types
from mcp.server.context import ServerRequestContext
from mcp.server.mcpserver import (
    Context,
    Elicit,
    ElicitationResult,
    ListRoots,
    MCPServer,
    Resolve,
    Sample,
)
from mcp.shared.exceptions import MCPDeprecationWarning
from pydantic import BaseModel

# What a backend may be sent twice (the router re-sends them when the backend dies mid-request).
READ_METHODS = (
    "tools/list",
    "resources/list",
    "resources/templates/list",
    "resources/read",
    "prompts/list",
    "prompts/get",
    "completion/complete",
    "server/discover",
    "ping",
)
STATIC_URI = "test://static"
BLOB_PATTERN = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ+/"


def blob_text(size: int) -> str:
    """`size` characters of a fixed pattern: cheap to make at 64 MiB, and checkable by length and hash."""
    whole, rest = divmod(size, len(BLOB_PATTERN))
    return BLOB_PATTERN * whole + BLOB_PATTERN[:rest]


COUNTER_URI = "test://counter"


class Answer(BaseModel):
    """The form the `elicit` tool asks the client to fill in."""

    answer: str


def _ask_llm(prompt: str) -> Sample:
    """Resolver for `sample`: module level, because the tool's string annotations must resolve here."""
    return Sample(
        [types.SamplingMessage(role="user", content=types.TextContent(type="text", text=prompt))],
        max_tokens=64,
    )


def _ask_user(question: str) -> Elicit[Answer]:
    """Resolver for `elicit`."""
    return Elicit(question, Answer)


def _ask_roots() -> ListRoots:
    """Resolver for `roots`."""
    return ListRoots()


def _hanging(handler: Any, maybe_hang: Any) -> Any:
    async def wrapped(ctx: Any, params: Any) -> Any:
        await maybe_hang()
        return await handler(ctx, params)

    return wrapped


KNOWN_PID: int | None = None
"""The pid this server's starter knows, when that is not its own: a fork serving for a stand-in
(fork_server.py) says the stand-in's, the process the router started and lists."""


def build_server(variant: str, name: str) -> MCPServer[Any]:
    """Build the fixture server; `variant` v2 adds `extra_tool` (the hot-swap tests look for it)."""
    mcp: MCPServer[Any] = MCPServer(name, version=variant, instructions=f"fixture {name} {variant}")
    identity = f"pid={KNOWN_PID or os.getpid()} variant={variant} name={name}"
    counter = itertools.count(1)
    state = {"counter": 0, "sleeps_started": 0, "sleeps_cancelled": 0, "hung": 0}
    # Set by `hang_reads`: this process stops answering reads (a backend that dies with them in flight).
    hanging = asyncio.Event()
    # Handshake-era resources/subscribe bookkeeping: the sessions to notify per URI.
    subscribers: dict[str, list[Any]] = {}

    @mcp.tool()
    def echo(text: str) -> str:
        """Return the text unchanged."""
        return text

    @mcp.tool()
    def add(a: int, b: int) -> int:
        """Add two integers."""
        return a + b

    @mcp.tool(structured_output=False)  # the text once, not also as structuredContent
    def blob(size: int) -> str:
        """Return `size` characters (large-message tests)."""
        return blob_text(size)

    @mcp.tool()
    async def flood(ctx: Context, count: int, size: int = 10_000) -> str:
        """Send `count` progress notifications with a `size`-character message each, then answer."""
        text = blob_text(size)
        for i in range(count):
            await ctx.report_progress(i + 1, count, text)
        return "flooded"

    @mcp.tool()
    async def slow(ctx: Context, steps: int = 3, delay: float = 0.05) -> str:
        """Report progress once per step, then return "done"."""
        for i in range(steps):
            await asyncio.sleep(delay)
            await ctx.report_progress(i + 1, steps, f"step {i + 1}/{steps}")
        return "done"

    # Set when a cancelled `linger` has sent all it still had to say, by the key both calls name.
    wound_down: dict[str, asyncio.Event] = {}

    @mcp.tool()
    async def linger(ctx: Context, key: str, after: int = 3) -> str:
        """Report progress once and run until cancelled; then report `after` steps more (a server
        still winding down a call its client gave up) before it stops. It never answers."""
        done = wound_down.setdefault(key, asyncio.Event())
        await ctx.report_progress(1, None, "started")
        try:
            await asyncio.Event().wait()
        finally:
            # Shielded: every await in the cancelled request's scope would be cancelled again.
            # Bounded: over HTTP the cancelled call's stream is gone, and a write would wait forever.
            with anyio.move_on_after(5, shield=True):
                for i in range(after):
                    await ctx.report_progress(2 + i, None, f"winding down {i + 1}/{after}")
            done.set()
        return "never"

    @mcp.tool()
    async def await_linger(ctx: Context, key: str) -> str:
        """Report progress, wait until the `linger` call of `key` has wound down, report again, return.

        On stdio its answer comes after everything `linger` sent once cancelled (one pipe, in order)."""
        await ctx.report_progress(1, 2, "waiting")
        await wound_down.setdefault(key, asyncio.Event()).wait()
        await ctx.report_progress(2, 2, "wound down")
        return "lingered"

    @mcp.tool()
    async def sleep(seconds: float) -> str:
        """Sleep, for long-running-call tests (cancellation, backend death mid-call)."""
        state["sleeps_started"] += 1
        try:
            await asyncio.sleep(seconds)
        except asyncio.CancelledError:
            state["sleeps_cancelled"] += 1
            raise
        return f"slept {seconds}"

    @mcp.tool()
    def sleeps() -> str:
        """`sleep` calls this process has started and seen cancelled: "STARTED CANCELLED"."""
        return f"{state['sleeps_started']} {state['sleeps_cancelled']}"

    @mcp.tool()
    def roots(listing: Annotated[types.ListRootsResult, Resolve(_ask_roots)]) -> str:
        """Ask the client for its roots (roots/list) and return their URIs, comma-separated."""
        return ",".join(str(root.uri) for root in listing.roots)

    @mcp.tool()
    def sample(prompt: str, reply: Annotated[types.CreateMessageResult, Resolve(_ask_llm)]) -> str:
        """Ask the client's LLM (sampling/createMessage) and return its text."""
        content = reply.content
        return content.text if isinstance(content, types.TextContent) else str(content)

    @mcp.tool()
    def elicit(question: str, outcome: Annotated[ElicitationResult[Answer], Resolve(_ask_user)]) -> str:
        """Ask the user (elicitation/create); return "accept:<answer>", "decline" or "cancel"."""
        if outcome.action == "accept":
            return f"accept:{outcome.data.answer}"
        return outcome.action

    @mcp.tool()
    async def log(message: str, ctx: Context) -> str:
        """Send a notifications/message (level info), then return "logged"."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", MCPDeprecationWarning)
            await ctx.log("info", message, logger_name="fixture")
        return "logged"

    @mcp.tool()
    def whoami() -> str:
        """Identify this backend process: pid, variant and name."""
        return f"{identity} call={next(counter)}"

    @mcp.tool()
    async def bump(ctx: Context) -> int:
        """Change test://counter and tell subscribers (both eras), returning the new value."""
        state["counter"] += 1
        for session in list(subscribers.get(COUNTER_URI, [])):
            try:
                await session.send_resource_updated(COUNTER_URI)
            except Exception:  # a subscriber whose session has gone away must not fail the call
                subscribers[COUNTER_URI].remove(session)
        await ctx.notify_resource_updated(COUNTER_URI)  # subscriptions/listen streams (2026-07-28)
        return state["counter"]

    @mcp.tool()
    async def announce(ctx: Context) -> str:
        """Say that the tool, prompt and resource lists changed (both eras), without changing them."""
        session = ctx.request_context.session
        try:  # handshake era: notifications on the session's stream
            await session.send_tool_list_changed()
            await session.send_prompt_list_changed()
            await session.send_resource_list_changed()
        except Exception:  # the 2026-07-28 era has no session stream; listen streams get the events
            pass
        await ctx.notify_tools_changed()
        await ctx.notify_prompts_changed()
        await ctx.notify_resources_changed()
        return "announced"

    if variant == "v2":

        @mcp.tool()
        def extra_tool() -> str:
            """Only in variant v2."""
            return "extra"

    @mcp.resource(STATIC_URI, name="static", mime_type="text/plain")
    def static_resource() -> str:
        return "static resource"

    @mcp.resource(COUNTER_URI, name="counter", mime_type="text/plain")
    def counter_resource() -> str:
        return f"counter={state['counter']}"

    @mcp.prompt()
    def greet(name: str) -> str:
        """Greet someone."""
        return f"Hello, {name}!"

    # MCPServer has no decorator for resources/subscribe (removed in 2026-07-28); register the
    # handshake-era handlers on the low-level server so `resources.subscribe` is advertised.
    async def on_subscribe(ctx: ServerRequestContext[Any], params: types.SubscribeRequestParams) -> Any:
        subscribers.setdefault(str(params.uri), []).append(ctx.session)
        return types.EmptyResult()

    async def on_unsubscribe(ctx: ServerRequestContext[Any], params: types.UnsubscribeRequestParams) -> Any:
        sessions = subscribers.get(str(params.uri), [])
        if ctx.session in sessions:
            sessions.remove(ctx.session)
        return types.EmptyResult()

    async def on_set_level(ctx: ServerRequestContext[Any], params: types.SetLevelRequestParams) -> Any:
        return types.EmptyResult()

    @mcp.tool(annotations=types.ToolAnnotations(readOnlyHint=True))
    async def look(text: str, delay: float = 0.0) -> str:
        """Read-only: return the text after `delay` seconds (hangs after `hang_reads`)."""
        await _maybe_hang()
        await asyncio.sleep(delay)
        return text

    @mcp.tool(annotations=types.ToolAnnotations(readOnlyHint=False, idempotentHint=True))
    async def put(key: str) -> str:
        """Idempotent: store a key (hangs after `hang_reads`)."""
        await _maybe_hang()
        return f"stored {key}"

    @mcp.tool()
    def hang_reads() -> str:
        """From now on this process never answers a read method, `look` or `put`."""
        hanging.set()
        return "hanging"

    @mcp.tool()
    def hung() -> int:
        """How many requests this process has left hanging (they are all in flight)."""
        return state["hung"]

    async def _maybe_hang() -> None:
        if hanging.is_set():
            state["hung"] += 1
            await asyncio.Event().wait()  # until the process is killed

    @mcp.resource("test://item/{name}", name="item", mime_type="text/plain")
    def item(name: str) -> str:
        return f"item {name}"

    @mcp.completion()
    async def complete(ref: Any, argument: Any, context: Any) -> types.Completion:
        return types.Completion(values=[f"{argument.value}-done"])

    low = mcp._lowlevel_server
    for method in READ_METHODS:
        entry = low._request_handlers.get(method)
        if entry is not None:
            low._request_handlers[method] = type(entry)(entry.params_type, _hanging(entry.handler, _maybe_hang))
    low.add_request_handler("resources/subscribe", types.SubscribeRequestParams, on_subscribe)
    low.add_request_handler("resources/unsubscribe", types.UnsubscribeRequestParams, on_unsubscribe)
    low.add_request_handler("logging/setLevel", types.SetLevelRequestParams, on_set_level)
    return mcp


class TraceMiddleware:
    """ASGI middleware writing every HTTP exchange to a JSONL file (`--trace FILE`).

    One line per event: the request (method, path, query, headers, body) and each response
    start/body chunk, tagged with a per-connection number. For debugging and the wire notes.
    """

    def __init__(self, app: Any, path: str) -> None:
        self.app = app
        self.file = open(path, "a", buffering=1, encoding="utf-8")  # kept open for the server lifetime
        self.seq = itertools.count(1)

    def _write(self, **record: Any) -> None:
        self.file.write(json.dumps(record) + "\n")

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        n = next(self.seq)
        headers = [[k.decode("latin-1"), v.decode("latin-1")] for k, v in scope["headers"]]
        self._write(
            n=n,
            ev="request",
            method=scope["method"],
            path=scope["path"],
            query=scope["query_string"].decode("latin-1"),
            headers=headers,
        )

        async def traced_receive() -> Any:
            message = await receive()
            if message["type"] == "http.request" and message.get("body"):
                self._write(n=n, ev="request.body", body=message["body"].decode("utf-8", "replace"))
            elif message["type"] == "http.disconnect":
                self._write(n=n, ev="disconnect")
            return message

        async def traced_send(message: Any) -> None:
            if message["type"] == "http.response.start":
                self._write(
                    n=n,
                    ev="response",
                    status=message["status"],
                    headers=[[k.decode("latin-1"), v.decode("latin-1")] for k, v in message["headers"]],
                )
            elif message["type"] == "http.response.body" and message.get("body"):
                self._write(n=n, ev="response.body", body=message["body"].decode("utf-8", "replace"))
            await send(message)

        await self.app(scope, traced_receive, traced_send)


class RequireBearer:
    """Answers 401 to any request without `Authorization: Bearer TOKEN` (a server behind an API key)."""

    def __init__(self, app: Any, token: str) -> None:
        self.app = app
        self.expected = f"Bearer {token}".encode()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and dict(scope["headers"]).get(b"authorization") != self.expected:
            body = b'{"error": "missing or wrong bearer token"}'
            await send(
                {
                    "type": "http.response.start",
                    "status": 401,
                    "headers": [(b"content-type", b"application/json"), (b"www-authenticate", b"Bearer")],
                }
            )
            await send({"type": "http.response.body", "body": body})
            return
        await self.app(scope, receive, send)


async def serve_http(
    mcp: MCPServer[Any], transport: str, host: str, port: int, trace: str | None, bearer: str | None = None
) -> None:
    import uvicorn

    app: Any = mcp.streamable_http_app(host=host) if transport == "streamable" else mcp.sse_app(host=host)
    if trace:
        app = TraceMiddleware(app, trace)
    if bearer:
        app = RequireBearer(app, bearer)
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="on", access_log=False)
    await uvicorn.Server(config).serve()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="MCP fixture server for the mcp-dev-router tests")
    parser.add_argument("--transport", choices=["streamable", "sse", "stdio"], default="streamable")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--variant", choices=["v1", "v2"], default="v1")
    parser.add_argument("--name", default="fixture")
    parser.add_argument("--trace", default=None, help="append every HTTP exchange to this JSONL file")
    parser.add_argument("--require-bearer", default=None, metavar="TOKEN", help="answer 401 without this token")
    parser.add_argument(
        "--no-fork", action="store_true", help="start as a new interpreter even in the test suite (fork_client.py)"
    )
    args = parser.parse_args(argv)

    # Everything diagnostic goes to stderr; MCPServer's own logging setup already uses stderr.
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    mcp = build_server(args.variant, args.name)
    logging.getLogger().setLevel(logging.WARNING)
    try:
        if args.transport == "stdio":
            asyncio.run(mcp.run_stdio_async())
        else:
            asyncio.run(serve_http(mcp, args.transport, args.host, args.port, args.trace, args.require_bearer))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__" and "__fork_server__" not in globals():  # loaded by fork_server.py: run nothing
    main()
