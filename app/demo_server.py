"""Built-in demo MCP server, spoken over stdio (`python -m app.demo_server`).

`mcp-router-tui --demo` spawns this as a stdio backend so that a newcomer's first command shows a
working router with live traffic. It deliberately uses the standard library only: the `mcp` SDK is a
test dependency of the router, not a runtime one.

Wire format: newline-delimited JSON-RPC 2.0 on stdin/stdout; stdout carries protocol messages and
nothing else, diagnostics go to stderr.

Both protocol eras are served on the same process, decided per message:
- handshake era (2024-11-05 … 2025-11-25): `initialize`, `notifications/initialized`, `ping`,
  `logging/setLevel`, `resources/subscribe` / `unsubscribe`;
- modern era (2026-07-28): self-contained requests whose `params._meta` names the protocol version,
  `server/discover`, `subscriptions/listen`, and results tagged with `resultType` (plus the cache
  hints `ttlMs` / `cacheScope` on cacheable results), which the 2026-07-28 schema requires.
Deciding per message (instead of locking the era on the first request) suits a router, which may
replay an `initialize` for one client session while forwarding modern requests for another.
"""

from __future__ import annotations

import asyncio
import json
import math
import random
import sys
import threading
import traceback
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, TypeGuard
from urllib.parse import unquote

from app import __version__

JsonObj = dict[str, Any]
RequestId = str | int

SERVER_NAME: Final = "mcp-dev-router-demo"
SERVER_INFO: Final[JsonObj] = {"name": SERVER_NAME, "title": "mcp-dev-router demo", "version": __version__}

HANDSHAKE_VERSIONS: Final = ("2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25")
MODERN_VERSIONS: Final = ("2026-07-28",)
SUPPORTED_VERSIONS: Final = (*HANDSHAKE_VERSIONS, *MODERN_VERSIONS)
LATEST_HANDSHAKE_VERSION: Final = HANDSHAKE_VERSIONS[-1]

# `_meta` keys reserved by the 2026-07-28 revision (same strings as the SDK's mcp_types constants).
PROTOCOL_VERSION_META_KEY: Final = "io.modelcontextprotocol/protocolVersion"
LOG_LEVEL_META_KEY: Final = "io.modelcontextprotocol/logLevel"
SERVER_INFO_META_KEY: Final = "io.modelcontextprotocol/serverInfo"
SUBSCRIPTION_ID_META_KEY: Final = "io.modelcontextprotocol/subscriptionId"

# JSON-RPC / MCP error codes.
PARSE_ERROR: Final = -32700
INVALID_REQUEST: Final = -32600
METHOD_NOT_FOUND: Final = -32601
INVALID_PARAMS: Final = -32602
INTERNAL_ERROR: Final = -32603
RESOURCE_NOT_FOUND: Final = -32002  # handshake era only; 2026-07-28 retired it in favour of -32602
UNSUPPORTED_PROTOCOL_VERSION: Final = -32022

LOG_LEVELS: Final = ("debug", "info", "notice", "warning", "error", "critical", "alert", "emergency")

# Results the 2026-07-28 schema marks cacheable: they must carry `ttlMs` and `cacheScope`.
CACHEABLE_METHODS: Final = frozenset(
    {
        "server/discover",
        "tools/list",
        "resources/list",
        "resources/templates/list",
        "resources/read",
        "prompts/list",
    }
)
# Requests that only exist in one era; the other era has a replacement (listen streams, `_meta` log
# level) or nothing at all, so they answer "method not found" there.
HANDSHAKE_ONLY_METHODS: Final = frozenset({"logging/setLevel", "resources/subscribe", "resources/unsubscribe"})
MODERN_ONLY_METHODS: Final = frozenset({"subscriptions/listen"})

# On stdin EOF, requests still running get this long to answer before they are cancelled. It stays
# below the SDK stdio client's 2 s grace before it kills the process.
EOF_GRACE_SECONDS: Final = 1.0

INSTRUCTIONS: Final = (
    "Demo backend shipped with mcp-dev-router. Try the tools echo, add, time, slow_count (reports "
    "progress) and random_number, the resource demo://readme and the prompt explain."
)

README_TEXT: Final = """# mcp-dev-router demo backend

You are talking to the demo MCP server that ships with **mcp-dev-router**, through the router.

The router sits between an MCP client and the servers you are developing. It forwards every
JSON-RPC message 1:1, shows the traffic live in its terminal UI, and lets you stop, restart,
rebuild, add or remove backends while your client stays connected and keeps its session.

Things to try:
- call `slow_count` and watch the progress notifications stream through the trace;
- restart this backend from the TUI while a client is connected: the client never notices;
- add your own server with `-b NAME=URL` or `-b "NAME=COMMAND ARGS"`.
"""

ECHO_TEMPLATE: Final = "demo://echo/{text}"
ECHO_PREFIX: Final = "demo://echo/"


def _diag(message: str) -> None:
    """Diagnostics go to stderr: stdout belongs to the protocol."""
    print(f"[{SERVER_NAME}] {message}", file=sys.stderr, flush=True)


class RpcError(Exception):
    """A JSON-RPC error answer for the current request."""

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.data = data

    def to_json(self) -> JsonObj:
        error: JsonObj = {"code": self.code, "message": self.message}
        if self.data is not None:
            error["data"] = self.data
        return error


class ToolError(Exception):
    """Bad tool input: reported in-band as a `CallToolResult` with `isError: true`, per the spec."""


@dataclass(frozen=True)
class RequestContext:
    request_id: RequestId
    method: str
    params: JsonObj
    modern: bool
    progress_token: RequestId | None
    log_level: str | None
    """Lowest level the client wants to see for this request; None means no log notifications."""


# --------------------------------------------------------------------------------------- helpers


def _error_response(request_id: RequestId | None, error: RpcError) -> JsonObj:
    return {"jsonrpc": "2.0", "id": request_id, "error": error.to_json()}


def _is_request_id(value: Any) -> TypeGuard[RequestId]:
    # bool is an int subclass but never a valid id.
    return isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool))


def _id_key(request_id: RequestId) -> tuple[str, RequestId]:
    # 1 and "1" are different ids.
    return (type(request_id).__name__, request_id)


def _reject_constant(name: str) -> Any:
    # NaN/Infinity are not JSON; accepting them would let them leak into answers we cannot encode.
    raise ValueError(f"invalid JSON constant {name}")


def _check_arguments(arguments: JsonObj, schema: JsonObj) -> None:
    """Enforce the parts of the input schema the handlers rely on: required keys, no unknown keys."""
    properties: JsonObj = schema.get("properties", {})
    unknown = sorted(set(arguments) - set(properties))
    if unknown:
        raise ToolError(f"unknown argument(s): {', '.join(unknown)}")
    missing = [key for key in schema.get("required", []) if key not in arguments]
    if missing:
        raise ToolError(f"missing required argument(s): {', '.join(missing)}")


def _number(arguments: JsonObj, key: str, default: float | None = None) -> float:
    value = arguments.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ToolError(f"argument {key!r} must be a number")
    if not math.isfinite(value):
        raise ToolError(f"argument {key!r} must be finite")
    return value


def _integer(arguments: JsonObj, key: str, default: int | None = None) -> int:
    value = arguments.get(key, default)
    # JSON has one number type: accept 3.0 as the integer 3, as JSON Schema's "integer" does.
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ToolError(f"argument {key!r} must be an integer")
    return value


def _format_number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() and abs(value) < 2**53 else repr(value)


# ----------------------------------------------------------------------------------- the catalogue

ToolHandler = Callable[["DemoServer", RequestContext, JsonObj], Awaitable[str]]


@dataclass(frozen=True)
class DemoTool:
    definition: JsonObj
    handler: ToolHandler


async def _tool_echo(_server: DemoServer, _ctx: RequestContext, arguments: JsonObj) -> str:
    text = arguments["text"]
    if not isinstance(text, str):
        raise ToolError("argument 'text' must be a string")
    return text


async def _tool_add(_server: DemoServer, _ctx: RequestContext, arguments: JsonObj) -> str:
    total = _number(arguments, "a") + _number(arguments, "b")
    if not math.isfinite(total):
        raise ToolError("the sum is not a finite number")
    return _format_number(total)


async def _tool_time(_server: DemoServer, _ctx: RequestContext, _arguments: JsonObj) -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


async def _tool_slow_count(server: DemoServer, ctx: RequestContext, arguments: JsonObj) -> str:
    count = _integer(arguments, "count", 5)
    delay = _number(arguments, "delay", 0.5)
    if not 1 <= count <= 1000:
        raise ToolError("argument 'count' must be between 1 and 1000")
    if not 0 <= delay <= 60:
        raise ToolError("argument 'delay' must be between 0 and 60 seconds")
    for step in range(1, count + 1):
        await asyncio.sleep(delay)
        if ctx.progress_token is not None:
            await server.send_notification(
                "notifications/progress",
                {
                    "progressToken": ctx.progress_token,
                    "progress": step,
                    "total": count,
                    "message": f"counted {step} of {count}",
                },
            )
        await server.log(ctx, "debug", f"slow_count step {step}/{count}")
    return f"Counted to {count}."


async def _tool_random_number(_server: DemoServer, _ctx: RequestContext, arguments: JsonObj) -> str:
    low = _integer(arguments, "min")
    high = _integer(arguments, "max")
    if low > high:
        raise ToolError("argument 'min' must not be greater than 'max'")
    return str(random.randint(low, high))


TOOLS: Final[dict[str, DemoTool]] = {
    "echo": DemoTool(
        {
            "name": "echo",
            "title": "Echo",
            "description": "Return the given text unchanged.",
            "inputSchema": {
                "type": "object",
                "properties": {"text": {"type": "string", "description": "Text to echo back."}},
                "required": ["text"],
                "additionalProperties": False,
            },
            "annotations": {"readOnlyHint": True, "idempotentHint": True, "openWorldHint": False},
        },
        _tool_echo,
    ),
    "add": DemoTool(
        {
            "name": "add",
            "title": "Add two numbers",
            "description": "Return a + b.",
            "inputSchema": {
                "type": "object",
                "properties": {
                    "a": {"type": "number", "description": "First addend."},
                    "b": {"type": "number", "description": "Second addend."},
                },
                "required": ["a", "b"],
                "additionalProperties": False,
            },
            "annotations": {"readOnlyHint": True, "idempotentHint": True, "openWorldHint": False},
        },
        _tool_add,
    ),
    "time": DemoTool(
        {
            "name": "time",
            "title": "Current time",
            "description": "Return the current UTC time (ISO 8601).",
            "inputSchema": {"type": "object", "properties": {}, "additionalProperties": False},
            "annotations": {"readOnlyHint": True, "openWorldHint": False},
        },
        _tool_time,
    ),
    "slow_count": DemoTool(
        {
            "name": "slow_count",
            "title": "Slow count",
            "description": "Count from 1 to `count`, waiting `delay` seconds per step and reporting "
            "progress (notifications/progress) at each step when the request carries a progressToken.",
            "inputSchema": {
                "type": "object",
                "properties": {
                    "count": {
                        "type": "integer",
                        "minimum": 1,
                        "maximum": 1000,
                        "default": 5,
                        "description": "How far to count.",
                    },
                    "delay": {
                        "type": "number",
                        "minimum": 0,
                        "maximum": 60,
                        "default": 0.5,
                        "description": "Seconds to wait per step.",
                    },
                },
                "additionalProperties": False,
            },
            "annotations": {"readOnlyHint": True, "openWorldHint": False},
        },
        _tool_slow_count,
    ),
    "random_number": DemoTool(
        {
            "name": "random_number",
            "title": "Random number",
            "description": "Return a random integer N with min <= N <= max.",
            "inputSchema": {
                "type": "object",
                "properties": {
                    "min": {"type": "integer", "description": "Lowest possible value."},
                    "max": {"type": "integer", "description": "Highest possible value."},
                },
                "required": ["min", "max"],
                "additionalProperties": False,
            },
            "annotations": {"readOnlyHint": True, "openWorldHint": False},
        },
        _tool_random_number,
    ),
}

README_RESOURCE: Final[JsonObj] = {
    "uri": "demo://readme",
    "name": "readme",
    "title": "About the mcp-dev-router demo",
    "description": "A short text about the router and this demo backend.",
    "mimeType": "text/markdown",
    "size": len(README_TEXT.encode()),
}

ECHO_RESOURCE_TEMPLATE: Final[JsonObj] = {
    "uriTemplate": ECHO_TEMPLATE,
    "name": "echo",
    "title": "Echo resource",
    "description": "A text resource whose content is the (URL-decoded) last path segment.",
    "mimeType": "text/plain",
}

EXPLAIN_PROMPT: Final[JsonObj] = {
    "name": "explain",
    "title": "Explain a topic",
    "description": "Ask the model to explain a topic simply, with an example.",
    "arguments": [{"name": "topic", "description": "What to explain.", "required": True}],
}


# ------------------------------------------------------------------------------------- the server


class DemoServer:
    """Protocol logic; transport-agnostic apart from the `write` callable (one framed message)."""

    def __init__(self, write: Callable[[bytes], None]) -> None:
        self._write = write
        self._write_lock = asyncio.Lock()
        # Blocking writes run off the event loop so a slow reader cannot stall request handling;
        # one worker plus the lock keeps messages whole and in order.
        self._write_executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="demo-stdout")
        self._write_failed = False
        self._inflight: dict[tuple[str, RequestId], asyncio.Task[JsonObj | None]] = {}
        self._background: set[asyncio.Task[None]] = set()
        self._closing = asyncio.Event()
        self._log_level: str | None = None
        self._subscriptions: set[str] = set()
        self._client: str | None = None

    # --------------------------------------------------------------------------------- output

    async def send(self, message: JsonObj | list[JsonObj]) -> None:
        try:
            data = json.dumps(message, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
        except (TypeError, ValueError) as exc:
            _diag(f"cannot encode outgoing message: {exc}")
            return
        payload = data.encode("utf-8") + b"\n"
        async with self._write_lock:
            if self._write_failed:
                return
            try:
                await asyncio.get_running_loop().run_in_executor(self._write_executor, self._write, payload)
            except (OSError, ValueError) as exc:
                # The client went away; stdin EOF will follow and end the process.
                self._write_failed = True
                _diag(f"stdout closed: {exc}")

    async def send_notification(self, method: str, params: JsonObj) -> None:
        await self.send({"jsonrpc": "2.0", "method": method, "params": params})

    async def log(self, ctx: RequestContext, level: str, text: str) -> None:
        """Send a `notifications/message` if the client asked for this level (setLevel or `_meta`)."""
        if ctx.log_level is None or LOG_LEVELS.index(level) < LOG_LEVELS.index(ctx.log_level):
            return
        await self.send_notification("notifications/message", {"level": level, "logger": "demo", "data": text})

    def _spawn(self, coro: Awaitable[None]) -> None:
        async def run() -> None:
            await coro

        task = asyncio.get_running_loop().create_task(run())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # ---------------------------------------------------------------------------------- input

    def feed_line(self, line: bytes) -> None:
        """Handle one line from stdin. Synchronous on purpose: a cancellation takes effect before
        the next line is read, and requests are spawned as tasks so none blocks another."""
        text = line.strip()
        if not text:
            return
        try:
            message = json.loads(text, parse_constant=_reject_constant)
        except (ValueError, UnicodeDecodeError) as exc:
            self._spawn(self.send(_error_response(None, RpcError(PARSE_ERROR, f"Parse error: {exc}"))))
            return
        if isinstance(message, list):
            self._feed_batch(message)
            return
        invalid = self._invalid(message)
        if invalid is not None:
            self._spawn(self.send(invalid))
            return
        if "method" not in message:
            return  # a response to a server-to-client request; this server never sends any
        if "id" not in message:
            self._handle_notification(message)
            return
        task = self._start_request(message)
        if task is not None:
            self._spawn(self._answer(task))

    def _feed_batch(self, batch: list[Any]) -> None:
        # Batches exist only in 2025-03-26; answering them costs little and a router may forward one.
        if not batch:
            self._spawn(self.send(_error_response(None, RpcError(INVALID_REQUEST, "Empty batch"))))
            return
        immediate: list[JsonObj] = []
        tasks: list[asyncio.Task[JsonObj | None]] = []
        for message in batch:
            invalid = self._invalid(message)
            if invalid is not None:
                immediate.append(invalid)
            elif "method" not in message:
                continue
            elif "id" not in message:
                self._handle_notification(message)
            elif (task := self._start_request(message)) is not None:
                tasks.append(task)

        async def answer_batch() -> None:
            answers = [answer for answer in await asyncio.gather(*tasks) if answer is not None]
            if immediate or answers:
                await self.send(immediate + answers)

        self._spawn(answer_batch())

    @staticmethod
    def _invalid(message: Any) -> JsonObj | None:
        """The error answer for a structurally invalid message, or None if it is well-formed."""
        if not isinstance(message, dict):
            return _error_response(None, RpcError(INVALID_REQUEST, "Invalid Request: not a JSON object"))
        request_id = message.get("id")
        answer_id = request_id if _is_request_id(request_id) else None
        if message.get("jsonrpc") != "2.0":
            return _error_response(answer_id, RpcError(INVALID_REQUEST, 'Invalid Request: jsonrpc must be "2.0"'))
        if "method" in message:
            if not isinstance(message["method"], str):
                return _error_response(answer_id, RpcError(INVALID_REQUEST, "Invalid Request: bad method"))
            if "id" in message and not _is_request_id(request_id):
                return _error_response(None, RpcError(INVALID_REQUEST, "Invalid Request: bad id"))
        elif "result" not in message and "error" not in message:
            return _error_response(answer_id, RpcError(INVALID_REQUEST, "Invalid Request: no method"))
        return None

    def _handle_notification(self, message: JsonObj) -> None:
        method: str = message["method"]
        params = message.get("params")
        if method == "notifications/cancelled":
            request_id = params.get("requestId") if isinstance(params, dict) else None
            if _is_request_id(request_id):
                task = self._inflight.get(_id_key(request_id))
                if task is not None:
                    task.cancel()
        elif method == "notifications/initialized":
            _diag(f"session initialized ({self._client or 'unknown client'})")
        # Every other notification (progress, roots/list_changed, unknown ones) needs nothing from us.

    def _start_request(self, message: JsonObj) -> asyncio.Task[JsonObj | None] | None:
        request_id: RequestId = message["id"]
        key = _id_key(request_id)
        if key in self._inflight:
            error = RpcError(INVALID_REQUEST, f"Request id {request_id!r} is already in use")
            self._spawn(self.send(_error_response(request_id, error)))
            return None
        task = asyncio.get_running_loop().create_task(self._process(message))
        self._inflight[key] = task
        task.add_done_callback(lambda _t: self._inflight.pop(key, None))
        return task

    async def _answer(self, task: asyncio.Task[JsonObj | None]) -> None:
        try:
            answer = await task
        except asyncio.CancelledError:
            return  # cancelled by the client (or at shutdown): no response, per the spec
        if answer is not None:
            await self.send(answer)

    # ------------------------------------------------------------------------------- dispatch

    async def _process(self, message: JsonObj) -> JsonObj | None:
        request_id: RequestId = message["id"]
        try:
            result = await self._dispatch(message)
        except RpcError as error:
            return _error_response(request_id, error)
        except asyncio.CancelledError:
            return None
        except Exception:
            _diag(f"internal error handling {message.get('method')!r}:\n{traceback.format_exc()}")
            return _error_response(request_id, RpcError(INTERNAL_ERROR, "Internal error"))
        return {"jsonrpc": "2.0", "id": request_id, "result": result}

    async def _dispatch(self, message: JsonObj) -> JsonObj:
        method: str = message["method"]
        raw_params = message.get("params", {})
        if raw_params is None:
            raw_params = {}
        if not isinstance(raw_params, dict):
            raise RpcError(INVALID_PARAMS, "params must be an object")
        params: JsonObj = raw_params
        meta = params.get("_meta")
        meta = meta if isinstance(meta, dict) else {}
        version = meta.get(PROTOCOL_VERSION_META_KEY)

        if method == "initialize":
            return self._initialize(params)
        # A version in `_meta` marks a 2026-07-28-style self-contained request; `server/discover` is
        # answered in the modern shape even without one, since it only exists in that era.
        modern = version is not None or method == "server/discover"
        if version is not None and version not in MODERN_VERSIONS:
            raise RpcError(
                UNSUPPORTED_PROTOCOL_VERSION,
                "Unsupported protocol version",
                {"supported": list(SUPPORTED_VERSIONS), "requested": str(version)},
            )
        if (modern and method in HANDSHAKE_ONLY_METHODS) or (not modern and method in MODERN_ONLY_METHODS):
            raise RpcError(METHOD_NOT_FOUND, f"Method not found: {method} (not available in this protocol era)")

        token = meta.get("progressToken")
        requested_level = meta.get(LOG_LEVEL_META_KEY) if modern else self._log_level
        ctx = RequestContext(
            request_id=message["id"],
            method=method,
            params=params,
            modern=modern,
            progress_token=token if _is_request_id(token) else None,
            log_level=requested_level if requested_level in LOG_LEVELS else None,
        )
        handler = self._handlers.get(method)
        if handler is None:
            raise RpcError(METHOD_NOT_FOUND, f"Method not found: {method}")
        result = await handler(self, ctx)
        if modern:
            # The 2026-07-28 schema requires `resultType` on every result and cache hints on the
            # cacheable ones; the SDK client validates both. ttlMs 0 = "immediately stale": the
            # router may swap this backend for another at any time.
            result["resultType"] = result.get("resultType", "complete")
            result["_meta"] = {**result.get("_meta", {}), SERVER_INFO_META_KEY: SERVER_INFO}
            if method in CACHEABLE_METHODS:
                result.setdefault("ttlMs", 0)
                result.setdefault("cacheScope", "private")
        return result

    # ------------------------------------------------------------------------------- handlers

    @staticmethod
    def _capabilities() -> JsonObj:
        return {
            "tools": {"listChanged": True},
            "resources": {"subscribe": True, "listChanged": True},
            "prompts": {"listChanged": True},
            "logging": {},
        }

    def _initialize(self, params: JsonObj) -> JsonObj:
        requested = params.get("protocolVersion")
        version = requested if requested in HANDSHAKE_VERSIONS else LATEST_HANDSHAKE_VERSION
        client_info = params.get("clientInfo")
        if isinstance(client_info, dict):
            self._client = f"{client_info.get('name', '?')} {client_info.get('version', '')}".strip()
        _diag(f"initialize from {self._client or 'unknown client'}: asked {requested!r}, answering {version}")
        return {
            "protocolVersion": version,
            "capabilities": self._capabilities(),
            "serverInfo": dict(SERVER_INFO),
            "instructions": INSTRUCTIONS,
        }

    async def _ping(self, _ctx: RequestContext) -> JsonObj:
        return {}

    async def _discover(self, _ctx: RequestContext) -> JsonObj:
        # serverInfo travels as the `_meta` stamp added in _dispatch: DiscoverResult has no such field.
        return {
            "supportedVersions": list(SUPPORTED_VERSIONS),
            "capabilities": self._capabilities(),
            "instructions": INSTRUCTIONS,
        }

    async def _set_level(self, ctx: RequestContext) -> JsonObj:
        level = ctx.params.get("level")
        if level not in LOG_LEVELS:
            raise RpcError(INVALID_PARAMS, f"Invalid log level {level!r}", {"valid": list(LOG_LEVELS)})
        self._log_level = level
        return {}

    async def _list_tools(self, _ctx: RequestContext) -> JsonObj:
        return {"tools": [tool.definition for tool in TOOLS.values()]}

    async def _call_tool(self, ctx: RequestContext) -> JsonObj:
        name = ctx.params.get("name")
        if not isinstance(name, str):
            raise RpcError(INVALID_PARAMS, "tools/call requires a string 'name'")
        tool = TOOLS.get(name)
        if tool is None:
            raise RpcError(INVALID_PARAMS, f"Unknown tool: {name}", {"name": name})
        arguments = ctx.params.get("arguments")
        if arguments is None:
            arguments = {}
        try:
            if not isinstance(arguments, dict):
                raise ToolError("arguments must be an object")
            _check_arguments(arguments, tool.definition["inputSchema"])
            await self.log(ctx, "info", f"tools/call {name}")
            text = await tool.handler(self, ctx, arguments)
        except ToolError as exc:
            return {"content": [{"type": "text", "text": f"Error: {exc}"}], "isError": True}
        return {"content": [{"type": "text", "text": text}], "isError": False}

    async def _list_resources(self, _ctx: RequestContext) -> JsonObj:
        return {"resources": [dict(README_RESOURCE)]}

    async def _list_resource_templates(self, _ctx: RequestContext) -> JsonObj:
        return {"resourceTemplates": [dict(ECHO_RESOURCE_TEMPLATE)]}

    @staticmethod
    def _known_uri(uri: str) -> bool:
        return uri == README_RESOURCE["uri"] or (uri.startswith(ECHO_PREFIX) and len(uri) > len(ECHO_PREFIX))

    def _uri_param(self, ctx: RequestContext) -> str:
        uri = ctx.params.get("uri")
        if not isinstance(uri, str):
            raise RpcError(INVALID_PARAMS, f"{ctx.method} requires a string 'uri'")
        if not self._known_uri(uri):
            # -32002 "resource not found" was retired in 2026-07-28, which uses invalid params.
            code = INVALID_PARAMS if ctx.modern else RESOURCE_NOT_FOUND
            raise RpcError(code, f"Resource not found: {uri}", {"uri": uri})
        return uri

    async def _read_resource(self, ctx: RequestContext) -> JsonObj:
        uri = self._uri_param(ctx)
        if uri == README_RESOURCE["uri"]:
            content: JsonObj = {"uri": uri, "mimeType": "text/markdown", "text": README_TEXT}
        else:
            content = {"uri": uri, "mimeType": "text/plain", "text": unquote(uri[len(ECHO_PREFIX) :])}
        return {"contents": [content]}

    async def _subscribe(self, ctx: RequestContext) -> JsonObj:
        self._subscriptions.add(self._uri_param(ctx))
        return {}

    async def _unsubscribe(self, ctx: RequestContext) -> JsonObj:
        self._subscriptions.discard(self._uri_param(ctx))
        return {}

    async def _list_prompts(self, _ctx: RequestContext) -> JsonObj:
        return {"prompts": [EXPLAIN_PROMPT]}

    async def _get_prompt(self, ctx: RequestContext) -> JsonObj:
        name = ctx.params.get("name")
        if name != EXPLAIN_PROMPT["name"]:
            raise RpcError(INVALID_PARAMS, f"Unknown prompt: {name}", {"name": name})
        arguments = ctx.params.get("arguments") or {}
        topic = arguments.get("topic") if isinstance(arguments, dict) else None
        if not isinstance(topic, str) or not topic.strip():
            raise RpcError(INVALID_PARAMS, "Prompt 'explain' requires the argument 'topic'")
        text = (
            f"Explain {topic} to a developer who has never met it. Start with a one-sentence "
            "summary, then give a short concrete example, then list two common pitfalls."
        )
        return {
            "description": f"Explain {topic}",
            "messages": [{"role": "user", "content": {"type": "text", "text": text}}],
        }

    async def _listen(self, ctx: RequestContext) -> JsonObj:
        """`subscriptions/listen`: acknowledge what we can honour, then hold the stream open.

        The demo's catalogue never changes, so no events follow; the stream ends when the client
        cancels it, or gracefully (with a result) when the server shuts down.
        """
        wanted = ctx.params.get("notifications")
        wanted = wanted if isinstance(wanted, dict) else {}
        honored: JsonObj = {
            key: True
            for key in ("toolsListChanged", "resourcesListChanged", "promptsListChanged")
            if wanted.get(key) is True
        }
        uris = wanted.get("resourceSubscriptions")
        if isinstance(uris, list):
            known = [uri for uri in uris if isinstance(uri, str) and self._known_uri(uri)]
            if known:
                honored["resourceSubscriptions"] = known
        subscription_meta = {SUBSCRIPTION_ID_META_KEY: ctx.request_id}
        await self.send_notification(
            "notifications/subscriptions/acknowledged", {"notifications": honored, "_meta": subscription_meta}
        )
        await self._closing.wait()
        return {"_meta": subscription_meta}

    _handlers: Final[dict[str, Callable[[DemoServer, RequestContext], Awaitable[JsonObj]]]] = {
        "ping": _ping,
        "server/discover": _discover,
        "logging/setLevel": _set_level,
        "tools/list": _list_tools,
        "tools/call": _call_tool,
        "resources/list": _list_resources,
        "resources/templates/list": _list_resource_templates,
        "resources/read": _read_resource,
        "resources/subscribe": _subscribe,
        "resources/unsubscribe": _unsubscribe,
        "prompts/list": _list_prompts,
        "prompts/get": _get_prompt,
        "subscriptions/listen": _listen,
    }

    # ------------------------------------------------------------------------------- shutdown

    async def shutdown(self) -> None:
        """stdin closed: end listen streams gracefully, give running requests a short grace, then
        cancel what is left (its answer could no longer matter) and flush."""
        self._closing.set()
        pending = list(self._inflight.values())
        if pending:
            _done, still_running = await asyncio.wait(pending, timeout=EOF_GRACE_SECONDS)
            for task in still_running:
                task.cancel()
        while self._background:
            await asyncio.gather(*self._background, return_exceptions=True)
        self._write_executor.shutdown(wait=True)


# ------------------------------------------------------------------------------------ entry point


def _start_stdin_pump(loop: asyncio.AbstractEventLoop, queue: asyncio.Queue[bytes | None]) -> None:
    """Read stdin in a daemon thread: works for pipes, files and ttys alike on every platform
    (asyncio pipe transports do not), and never keeps the process alive after the loop ends."""

    def put(item: bytes | None) -> None:
        try:
            loop.call_soon_threadsafe(queue.put_nowait, item)
        except RuntimeError:
            pass  # the loop is already closed

    def pump() -> None:
        try:
            for line in iter(sys.stdin.buffer.readline, b""):
                put(line)
        except (OSError, ValueError) as exc:
            _diag(f"stdin read failed: {exc}")
        finally:
            put(None)

    threading.Thread(target=pump, name="demo-stdin", daemon=True).start()


async def serve(write: Callable[[bytes], None]) -> None:
    server = DemoServer(write)
    queue: asyncio.Queue[bytes | None] = asyncio.Queue()
    _start_stdin_pump(asyncio.get_running_loop(), queue)
    _diag(f"{SERVER_NAME} {__version__} ready on stdio (protocol versions: {', '.join(SUPPORTED_VERSIONS)})")
    while (line := await queue.get()) is not None:
        server.feed_line(line)
    await server.shutdown()
    _diag("stdin closed, exiting")


def main() -> int:
    stdout = sys.stdout.buffer

    def write(data: bytes) -> None:
        stdout.write(data)
        stdout.flush()  # one message per flush: the client reads line by line

    # Anything printed by accident must never corrupt the protocol stream.
    sys.stdout = sys.stderr
    try:
        asyncio.run(serve(write))
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
