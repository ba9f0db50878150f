"""Connect the official MCP SDK client (`mcp.Client`, SDK 2.3.0) over every client transport.

    async with connect(url, "streamable-handshake") as client:
        await client.call_tool("echo", {"text": "hi"})

Client transports:
- "streamable-handshake": Streamable HTTP, `initialize` handshake (`Client(mode="legacy")`). The
  SDK always offers 2025-11-25; pass `protocol_version="2024-11-05"` (etc.) to offer an older
  handshake version instead (the outgoing `initialize` is rewritten on its way to the wire).
- "streamable-modern": Streamable HTTP at 2026-07-28 (`Client(mode="2026-07-28")`): no probe,
  no handshake, every POST self-contained (`_meta` envelope + Mcp-Method/Mcp-Name headers).
- "streamable-auto": the SDK default (`mode="auto"`): POST `server/discover` first, fall back to
  `initialize` on any JSON-RPC error (HTTP 4xx bodies are mapped to JSON-RPC errors).
- "sse": legacy HTTP+SSE (`sse_client`), handshake only.
- "stdio": spawn a command line (e.g. `procs.stdio_command()`), handshake by default; pass
  `protocol_version="2026-07-28"` to speak the modern era over stdio.

Callbacks are the SDK's own: sampling_callback(ctx, CreateMessageRequestParams) -> CreateMessageResult,
elicitation_callback(ctx, ElicitRequestParams) -> ElicitResult, logging_callback(
LoggingMessageNotificationParams), message_handler(ServerNotification | Exception) - every server
notification (tools/list_changed, resources/updated, progress, message, ...) is teed to it, and
transport exceptions too. Progress for one call: `client.call_tool(..., progress_callback=cb)`.
"""

from __future__ import annotations

import contextlib
import os
import shlex
from collections.abc import AsyncIterator
from types import TracebackType
from typing import Any, Literal

import httpx2
from mcp.client import Client
from mcp.client.session import ElicitationFnT, ListRootsFnT, LoggingFnT, MessageHandlerFnT, SamplingFnT
from mcp.client.sse import sse_client
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.message import SessionMessage
from mcp_types import Implementation, JSONRPCRequest, LoggingLevel
from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS, MODERN_PROTOCOL_VERSIONS

from tests.support.forks import SOCKET_ENV
from tests.support.procs import REPO_ROOT

ClientTransport = Literal["streamable-handshake", "streamable-modern", "streamable-auto", "sse", "stdio"]
CLIENT_TRANSPORTS: tuple[ClientTransport, ...] = (
    "streamable-handshake",
    "streamable-modern",
    "streamable-auto",
    "sse",
    "stdio",
)
MODERN_VERSION = MODERN_PROTOCOL_VERSIONS[-1]


class _RewriteInitialize:
    """WriteStream proxy that sets `params.protocolVersion` on an outgoing `initialize`.

    The SDK's `ClientSession.initialize()` hard-codes LATEST_HANDSHAKE_VERSION; rewriting the
    message in the caller's task keeps the SDK's contextvar-carrying stream semantics intact.
    """

    def __init__(self, inner: Any, version: str) -> None:
        self._inner = inner
        self._version = version

    async def send(self, item: SessionMessage, /) -> None:
        message = item.message
        if isinstance(message, JSONRPCRequest) and message.method == "initialize" and message.params is not None:
            message.params["protocolVersion"] = self._version
        await self._inner.send(item)

    async def aclose(self) -> None:
        await self._inner.aclose()

    async def __aenter__(self) -> _RewriteInitialize:
        await self._inner.__aenter__()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_val: BaseException | None,
        exc_tb: TracebackType | None,
    ) -> bool | None:
        result: bool | None = await self._inner.__aexit__(exc_type, exc_val, exc_tb)
        return result


class _OfferVersion:
    """A Transport wrapper: the inner transport, with `initialize` offering `version`."""

    def __init__(self, inner: contextlib.AbstractAsyncContextManager[Any], version: str) -> None:
        self._inner = inner
        self._version = version

    async def __aenter__(self) -> Any:
        read_stream, write_stream = await self._inner.__aenter__()
        return read_stream, _RewriteInitialize(write_stream, self._version)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_val: BaseException | None,
        exc_tb: TracebackType | None,
    ) -> bool | None:
        result: bool | None = await self._inner.__aexit__(exc_type, exc_val, exc_tb)
        return result


def stdio_params(command: str, env: dict[str, str] | None = None) -> StdioServerParameters:
    """StdioServerParameters for a shell-style command line.

    The SDK gives a server only a few variables of ours; the fork server's socket is passed on
    (tests/support/forks.py), so that a fixture started by an SDK client starts as fast as one
    started by the router."""
    argv = shlex.split(command)
    if SOCKET_ENV in os.environ:
        env = {SOCKET_ENV: os.environ[SOCKET_ENV], **(env or {})}
    return StdioServerParameters(command=argv[0], args=argv[1:], env=env, cwd=REPO_ROOT)


@contextlib.asynccontextmanager
async def connect(
    target: str,
    transport: ClientTransport,
    *,
    sampling_callback: SamplingFnT | None = None,
    elicitation_callback: ElicitationFnT | None = None,
    logging_callback: LoggingFnT | None = None,
    message_handler: MessageHandlerFnT | None = None,
    list_roots_callback: ListRootsFnT | None = None,
    protocol_version: str | None = None,
    log_level: LoggingLevel | None = None,
    read_timeout_seconds: float | None = 30.0,
    headers: dict[str, str] | None = None,
    terminate_on_close: bool = True,
    client_info: Implementation | None = None,
) -> AsyncIterator[Client]:
    """Yield a connected (handshaken / adopted) SDK `Client` for `target`.

    `target` is the endpoint URL (…/mcp, …/mcp/NAME, …/sse) or, for "stdio", a command line.
    `protocol_version`: the handshake version to offer (handshake transports) or the modern
    version to pin ("streamable-modern", "stdio"). `log_level`: the 2026-07-28 per-request
    logging opt-in (`_meta` "io.modelcontextprotocol/logLevel"); without it a modern-era server
    sends no notifications/message at all. In the handshake era logging is unconditional.
    `headers`: extra HTTP headers on every request (e.g. a foreign Origin).
    `client_info`: the name and version the client gives (default: the SDK's "mcp" "0.1.0").
    The response cache is disabled so that every list call reaches the wire (hot-swap tests).
    """
    inner: contextlib.AbstractAsyncContextManager[Any]
    mode: str = "legacy"
    http_client: httpx2.AsyncClient | None = None
    if headers is not None and transport != "sse":
        # Same timeouts as the SDK's default client (30 s, 300 s read for long-lived SSE streams).
        http_client = httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(30.0, read=300.0))

    if transport in ("streamable-handshake", "streamable-modern", "streamable-auto"):
        inner = streamable_http_client(target, http_client=http_client, terminate_on_close=terminate_on_close)
        if transport == "streamable-modern":
            mode = protocol_version or MODERN_VERSION
        elif transport == "streamable-auto":
            mode = "auto"
    elif transport == "sse":
        inner = sse_client(target, headers=headers)
    elif transport == "stdio":
        inner = stdio_client(stdio_params(target))
        if protocol_version in MODERN_PROTOCOL_VERSIONS:
            mode = protocol_version
    else:
        raise ValueError(f"unknown client transport {transport!r}")

    if mode == "legacy" and protocol_version is not None:
        if protocol_version not in HANDSHAKE_PROTOCOL_VERSIONS:
            raise ValueError(f"{protocol_version!r} is not a handshake protocol version")
        inner = _OfferVersion(inner, protocol_version)

    client = Client(
        inner,
        mode=mode,
        sampling_callback=sampling_callback,
        elicitation_callback=elicitation_callback,
        logging_callback=logging_callback,
        message_handler=message_handler,
        list_roots_callback=list_roots_callback,
        log_level=log_level,
        read_timeout_seconds=read_timeout_seconds,
        cache=None,
        client_info=client_info,
    )
    async with contextlib.AsyncExitStack() as stack:
        if http_client is not None:
            await stack.enter_async_context(http_client)
        yield await stack.enter_async_context(client)
