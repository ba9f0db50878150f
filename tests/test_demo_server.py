"""The built-in demo backend (app/demo_server.py), driven by the official SDK client over stdio in
both protocol eras, plus raw-subprocess tests for what an SDK client never sends."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import mcp_types as types
import pytest
from mcp import Client, StdioServerParameters
from mcp.shared.exceptions import MCPError

REPO = Path(__file__).resolve().parents[1]
SERVER_CMD = [sys.executable, "-m", "app.demo_server"]
MODERN = "2026-07-28"

# "legacy" = initialize handshake; a version string = modern era adopted directly; "auto" = the SDK
# default, which probes server/discover and must land on the modern era with this server.
MODES = ["legacy", MODERN, "auto"]


def _params() -> StdioServerParameters:
    return StdioServerParameters(command=SERVER_CMD[0], args=SERVER_CMD[1:], cwd=str(REPO))


async def _wait(event: asyncio.Event) -> None:
    # The SDK client runs progress and logging callbacks as spawned tasks, so they may still be
    # pending when the request's result has been returned: wait for them, with a deadline.
    async with asyncio.timeout(5):
        await event.wait()


def _text(result: types.CallToolResult) -> str:
    block = result.content[0]
    assert isinstance(block, types.TextContent)
    return block.text


@pytest.fixture(params=MODES)
def mode(request: pytest.FixtureRequest) -> str:
    # The client itself is opened inside each test: the SDK's anyio cancel scopes must be entered
    # and exited in the same task, which an async-generator fixture does not guarantee.
    mode: str = request.param
    return mode


def _client(mode: str) -> Client:
    return Client(_params(), mode=mode, read_timeout_seconds=10)


# ------------------------------------------------------------------------------ SDK client, both eras


async def test_negotiated_era(mode: str) -> None:
    async with _client(mode) as client:
        if client.session.initialize_result is not None:
            assert client.protocol_version == "2025-11-25"
            assert client.server_info is not None and client.server_info.name == "mcp-dev-router-demo"
        else:
            assert client.protocol_version == MODERN
        caps = client.server_capabilities
        if mode == MODERN:
            # A pinned version adopts a synthesized DiscoverResult without asking the server, so
            # fetch the real one to check what the server declares.
            caps = types.DiscoverResult.model_validate(await client.session.send_discover(MODERN)).capabilities
        assert caps.tools is not None and caps.tools.list_changed is True
        assert caps.resources is not None and caps.resources.subscribe is True
        assert caps.resources.list_changed is True
        assert caps.prompts is not None and caps.prompts.list_changed is True
        assert caps.logging is not None


async def test_auto_mode_discovers_modern_era_and_server_info() -> None:
    async with Client(_params(), read_timeout_seconds=10) as c:
        discover = c.session.discover_result
        assert discover is not None
        assert MODERN in discover.supported_versions
        assert "2025-11-25" in discover.supported_versions
        assert c.protocol_version == MODERN
        # The modern era identifies the server by the `_meta` serverInfo stamp.
        assert c.server_info is not None and c.server_info.name == "mcp-dev-router-demo"


async def test_list_tools(mode: str) -> None:
    async with _client(mode) as client:
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}
        assert set(tools) == {"echo", "add", "time", "slow_count", "random_number"}
        assert tools["echo"].input_schema["required"] == ["text"]
        assert tools["add"].input_schema["properties"]["a"]["type"] == "number"
        assert tools["random_number"].input_schema["properties"]["min"]["type"] == "integer"
        assert "required" not in tools["slow_count"].input_schema
        assert tools["slow_count"].input_schema["properties"]["count"]["default"] == 5
        for tool in tools.values():
            assert tool.input_schema["type"] == "object"


async def test_call_each_tool(mode: str) -> None:
    async with _client(mode) as client:
        echoed = await client.call_tool("echo", {"text": "héllo"})
        assert not echoed.is_error and _text(echoed) == "héllo"

        added = await client.call_tool("add", {"a": 2, "b": 3.5})
        assert _text(added) == "5.5"

        now = datetime.fromisoformat(_text(await client.call_tool("time", {})))
        assert now.tzinfo is not None and abs(datetime.now(UTC) - now) < timedelta(seconds=5)

        number = int(_text(await client.call_tool("random_number", {"min": 3, "max": 5})))
        assert 3 <= number <= 5

        counted = await client.call_tool("slow_count", {"count": 2, "delay": 0})
        assert _text(counted) == "Counted to 2."


async def test_bad_arguments_are_tool_errors(mode: str) -> None:
    bad_calls: list[tuple[str, dict[str, Any]]] = [
        ("add", {"a": 1, "b": "two"}),
        ("add", {"a": 1}),
        ("add", {"a": 1e308, "b": 1e308}),
        ("echo", {"text": "x", "extra": 1}),
        ("random_number", {"min": 5, "max": 1}),
        ("random_number", {"min": 1.5, "max": 2}),
        ("slow_count", {"count": 0}),
        ("slow_count", {"delay": True}),
    ]
    async with _client(mode) as client:
        for name, arguments in bad_calls:
            result = await client.call_tool(name, arguments)
            assert result.is_error, (name, arguments)
            assert _text(result).startswith("Error:")


async def test_unknown_tool_is_a_protocol_error(mode: str) -> None:
    async with _client(mode) as client:
        with pytest.raises(MCPError) as info:
            await client.call_tool("no_such_tool", {})
        assert info.value.code == -32602


async def test_progress_for_slow_count(mode: str) -> None:
    async with _client(mode) as client:
        seen: list[tuple[float, float | None, str | None]] = []
        all_seen = asyncio.Event()

        async def on_progress(progress: float, total: float | None, message: str | None) -> None:
            seen.append((progress, total, message))
            if len(seen) == 3:
                all_seen.set()

        result = await client.call_tool("slow_count", {"count": 3, "delay": 0.01}, progress_callback=on_progress)
        assert _text(result) == "Counted to 3."
        await _wait(all_seen)
        assert sorted((p, t) for p, t, _ in seen) == [(1, 3), (2, 3), (3, 3)]
        assert "counted 3 of 3" in {m for _, _, m in seen}


async def test_slow_call_does_not_block_others(mode: str) -> None:
    async with _client(mode) as client:
        slow = asyncio.create_task(client.call_tool("slow_count", {"count": 50, "delay": 0.05}))
        try:
            # Answered while slow_count (~2.5 s) is still running: requests are handled concurrently.
            assert _text(await client.call_tool("echo", {"text": "quick"})) == "quick"
            assert not slow.done()
        finally:
            slow.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await slow


async def test_resources(mode: str) -> None:
    async with _client(mode) as client:
        resources = (await client.list_resources()).resources
        assert [(str(r.uri), r.mime_type) for r in resources] == [("demo://readme", "text/markdown")]

        readme = (await client.read_resource("demo://readme")).contents[0]
        assert isinstance(readme, types.TextResourceContents)
        assert readme.mime_type == "text/markdown" and "mcp-dev-router" in readme.text

        templates = (await client.list_resource_templates()).resource_templates
        assert [t.uri_template for t in templates] == ["demo://echo/{text}"]
        echoed = (await client.read_resource("demo://echo/hello%20world")).contents[0]
        assert isinstance(echoed, types.TextResourceContents) and echoed.text == "hello world"

        with pytest.raises(MCPError):
            await client.read_resource("demo://missing")


async def test_prompt(mode: str) -> None:
    async with _client(mode) as client:
        prompts = (await client.list_prompts()).prompts
        assert [p.name for p in prompts] == ["explain"]
        assert prompts[0].arguments is not None and prompts[0].arguments[0].required is True

        got = await client.get_prompt("explain", {"topic": "JSON-RPC"})
        assert len(got.messages) == 1 and got.messages[0].role == "user"
        content = got.messages[0].content
        assert isinstance(content, types.TextContent) and "JSON-RPC" in content.text

        with pytest.raises(MCPError) as info:
            await client.get_prompt("explain", {})
        assert info.value.code == -32602


# ------------------------------------------------------------------------------ era-specific features


@pytest.mark.filterwarnings("ignore::mcp.MCPDeprecationWarning")
async def test_handshake_ping_subscribe_and_logging() -> None:
    logs: list[types.LoggingMessageNotificationParams] = []
    logged = asyncio.Event()

    async def on_log(params: types.LoggingMessageNotificationParams) -> None:
        logs.append(params)
        logged.set()

    async with Client(_params(), mode="legacy", logging_callback=on_log, read_timeout_seconds=10) as c:
        await c.session.send_ping()
        await c.subscribe_resource("demo://readme")
        await c.unsubscribe_resource("demo://readme")
        await c.call_tool("echo", {"text": "before setLevel"})
        await c.set_logging_level("info")
        await c.call_tool("echo", {"text": "after setLevel"})
        await _wait(logged)
        assert [(log.level, log.data) for log in logs] == [("info", "tools/call echo")]


async def test_modern_logging_is_opt_in_per_request() -> None:
    logs: list[types.LoggingMessageNotificationParams] = []
    logged = asyncio.Event()

    async def on_log(params: types.LoggingMessageNotificationParams) -> None:
        logs.append(params)
        logged.set()

    async with Client(_params(), mode=MODERN, log_level="info", logging_callback=on_log) as c:
        await c.call_tool("echo", {"text": "x"})
        await _wait(logged)
        assert [(log.level, log.data) for log in logs] == [("info", "tools/call echo")]


async def test_modern_listen_is_acknowledged() -> None:
    async with (
        Client(_params(), mode=MODERN, read_timeout_seconds=10) as c,
        c.listen(tools_list_changed=True, resource_subscriptions=["demo://readme"]) as sub,
    ):
        assert sub.honored.tools_list_changed is True
        assert sub.honored.resource_subscriptions == ["demo://readme"]
        assert _text(await c.call_tool("echo", {"text": "while listening"})) == "while listening"


# --------------------------------------------------------------------------------- raw subprocess


class RawServer:
    """The demo server as a bare subprocess, for messages an SDK client would never send."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc

    async def send_line(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line.encode() + b"\n")
        await self.proc.stdin.drain()

    async def send(self, message: dict[str, Any]) -> None:
        await self.send_line(json.dumps(message))

    async def recv(self) -> Any:
        assert self.proc.stdout is not None
        line = await asyncio.wait_for(self.proc.stdout.readline(), 5)
        assert line, "server closed stdout"
        return json.loads(line)

    async def request(self, request_id: int, method: str, params: dict[str, Any] | None = None) -> Any:
        message: dict[str, Any] = {"jsonrpc": "2.0", "id": request_id, "method": method}
        if params is not None:
            message["params"] = params
        await self.send(message)
        return await self.recv()

    async def close_stdin_and_drain(self) -> list[Any]:
        """Close stdin (EOF), collect everything still written, and return the exit code check."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.close()
        rest = await asyncio.wait_for(self.proc.stdout.read(), 5)
        assert await asyncio.wait_for(self.proc.wait(), 5) == 0
        return [json.loads(line) for line in rest.splitlines() if line.strip()]


@pytest.fixture
async def raw() -> AsyncIterator[RawServer]:
    proc = await asyncio.create_subprocess_exec(
        *SERVER_CMD,
        cwd=REPO,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        yield RawServer(proc)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_raw_malformed_json_gets_parse_error(raw: RawServer) -> None:
    await raw.send_line('{"jsonrpc": "2.0", "id": 1, "method": ')
    answer = await raw.recv()
    assert answer["id"] is None and answer["error"]["code"] == -32700
    # The server survives and keeps answering.
    assert (await raw.request(2, "ping"))["result"] == {}


async def test_raw_unknown_method_and_invalid_requests(raw: RawServer) -> None:
    answer = await raw.request(1, "no/such/method")
    assert answer["id"] == 1 and answer["error"]["code"] == -32601

    await raw.send_line('{"id": 2, "method": "ping"}')  # no "jsonrpc": "2.0"
    assert (await raw.recv())["error"]["code"] == -32600
    await raw.send_line("[1, 2]")  # a batch of non-objects
    assert [a["error"]["code"] for a in await raw.recv()] == [-32600, -32600]
    await raw.send_line('{"jsonrpc": "2.0", "id": 3, "method": "tools/list", "params": [1]}')
    assert (await raw.recv())["error"]["code"] == -32602
    assert (await raw.request(4, "ping"))["result"] == {}
    assert await raw.close_stdin_and_drain() == []


async def test_raw_initialize_version_negotiation(raw: RawServer) -> None:
    for request_id, asked, answered in [
        (1, "2024-11-05", "2024-11-05"),
        (2, "2025-03-26", "2025-03-26"),
        (3, "2025-06-18", "2025-06-18"),
        (4, "2025-11-25", "2025-11-25"),
        (5, "1999-01-01", "2025-11-25"),
        (6, MODERN, "2025-11-25"),
    ]:
        answer = await raw.request(
            request_id,
            "initialize",
            {"protocolVersion": asked, "capabilities": {}, "clientInfo": {"name": "raw", "version": "0"}},
        )
        assert answer["result"]["protocolVersion"] == answered
        assert answer["result"]["serverInfo"]["name"] == "mcp-dev-router-demo"


async def test_raw_modern_results_and_unsupported_version(raw: RawServer) -> None:
    meta = {"io.modelcontextprotocol/protocolVersion": MODERN, "io.modelcontextprotocol/clientInfo": {}}
    listed = (await raw.request(1, "tools/list", {"_meta": meta}))["result"]
    assert listed["resultType"] == "complete"
    assert listed["ttlMs"] == 0 and listed["cacheScope"] == "private"
    assert listed["_meta"]["io.modelcontextprotocol/serverInfo"]["name"] == "mcp-dev-router-demo"
    types.ListToolsResult.model_validate(listed)

    bad = {"io.modelcontextprotocol/protocolVersion": "2030-01-01"}
    error = (await raw.request(2, "tools/list", {"_meta": bad}))["error"]
    assert error["code"] == types.UNSUPPORTED_PROTOCOL_VERSION
    data = types.UnsupportedProtocolVersionErrorData.model_validate(error["data"])
    assert data.requested == "2030-01-01" and MODERN in data.supported

    # Handshake-only requests do not exist in the modern era.
    answer = await raw.request(3, "logging/setLevel", {"level": "info", "_meta": meta})
    assert answer["error"]["code"] == -32601


async def test_raw_cancelled_request_gets_no_response(raw: RawServer) -> None:
    await raw.send(
        {
            "jsonrpc": "2.0",
            "id": 7,
            "method": "tools/call",
            "params": {"name": "slow_count", "arguments": {"count": 100, "delay": 0.05}},
        }
    )
    await raw.send({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 7}})
    assert (await raw.request(8, "ping"))["id"] == 8
    # Nothing for id 7 arrives, not even after EOF (when it would otherwise be given a grace period).
    assert all(message.get("id") != 7 for message in await raw.close_stdin_and_drain())


async def test_raw_requests_in_flight_at_eof_are_answered(raw: RawServer) -> None:
    await raw.send(
        {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "tools/call",
            "params": {"name": "slow_count", "arguments": {"count": 2, "delay": 0.01}},
        }
    )
    rest = await raw.close_stdin_and_drain()
    assert [message["id"] for message in rest] == [1]
    assert rest[0]["result"]["content"][0]["text"] == "Counted to 2."
