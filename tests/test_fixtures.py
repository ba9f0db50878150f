"""Self-tests of the SDK-based fixtures and helpers, with no router in between.

They validate tests/servers/fixture.py and tests/support/, and double as a reference for the exact
SDK 2.3.0 client calls: `connect(...)` yields an `mcp.Client`; sampling/elicitation answers come
from callbacks (handshake era: server-to-client requests; 2026-07-28: `InputRequiredResult`
rounds that `Client.call_tool` drives transparently).
"""

from __future__ import annotations

import asyncio
import json
import shlex
import signal
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import mcp_types as types
import pytest
from mcp.client import ClientRequestContext
from mcp.shared.exceptions import MCPDeprecationWarning, MCPError

from tests.support.clients import ClientTransport, connect
from tests.support.forks import fork_server, forking_enabled
from tests.support.procs import (
    FIXTURE_V1_TOOLS,
    REPO_ROOT,
    FixtureProcess,
    child_pids,
    free_port,
    initialize_request,
    kill_pid,
    pid_alive,
    port_accepts,
    run_fixture,
    run_fixture_sync,
    run_router,
    stdio_command,
    stop_process,
    wait_for,
)


async def sampling_callback(
    context: ClientRequestContext, params: types.CreateMessageRequestParams
) -> types.CreateMessageResult:
    content = params.messages[0].content
    text = content.text if isinstance(content, types.TextContent) else "?"
    return types.CreateMessageResult(
        role="assistant", content=types.TextContent(type="text", text=f"sampled:{text}"), model="test-model"
    )


async def elicitation_callback(context: ClientRequestContext, params: types.ElicitRequestParams) -> types.ElicitResult:
    return types.ElicitResult(action="accept", content={"answer": f"re:{params.message}"})


def text_of(result: types.CallToolResult) -> str:
    assert not result.is_error, result
    block = result.content[0]
    assert isinstance(block, types.TextContent)
    return block.text


# Shared v1 servers for the whole module: starting one costs ~0.5 s, and they are stateless enough.
@pytest.fixture(scope="module")
def streamable_v1() -> Iterator[FixtureProcess]:
    with run_fixture_sync("streamable") as fixture:
        yield fixture


@pytest.fixture(scope="module")
def sse_v1() -> Iterator[FixtureProcess]:
    with run_fixture_sync("sse") as fixture:
        yield fixture


# (fixture transport, client transport, client protocol_version)
COMBOS: list[tuple[str, ClientTransport, str | None]] = [
    ("streamable", "streamable-handshake", None),
    ("streamable", "streamable-modern", None),
    ("streamable", "streamable-auto", None),
    ("sse", "sse", None),
    ("stdio", "stdio", None),
    ("stdio", "stdio", "2026-07-28"),
]


@pytest.fixture
def target(request: pytest.FixtureRequest) -> str:
    kind = request.param
    if kind == "stdio":
        return stdio_command()
    fixture: FixtureProcess = request.getfixturevalue(f"{kind}_v1")
    return fixture.url


@pytest.mark.parametrize(
    ("target", "transport", "version"),
    COMBOS,
    indirect=["target"],
    ids=[f"{c[0]}-{c[1]}-{c[2] or 'default'}" for c in COMBOS],
)
async def test_tour(target: str, transport: ClientTransport, version: str | None) -> None:
    logs: list[types.LoggingMessageNotificationParams] = []

    async def logging_callback(params: types.LoggingMessageNotificationParams) -> None:
        logs.append(params)

    async with connect(
        target,
        transport,
        protocol_version=version,
        sampling_callback=sampling_callback,
        elicitation_callback=elicitation_callback,
        logging_callback=logging_callback,
        log_level="info",  # the 2026-07-28 per-request logging opt-in; ignored in the handshake era
    ) as client:
        expected_era = "2026-07-28" if transport in ("streamable-modern", "streamable-auto") or version else None
        if expected_era:
            assert client.protocol_version == expected_era
        else:
            assert client.protocol_version == "2025-11-25"

        tools = {tool.name for tool in (await client.list_tools()).tools}
        assert tools == FIXTURE_V1_TOOLS

        assert text_of(await client.call_tool("echo", {"text": "hello"})) == "hello"
        added = await client.call_tool("add", {"a": 2, "b": 40})
        assert text_of(added) == "42"
        assert added.structured_content == {"result": 42}

        seen: list[tuple[float, float | None, str | None]] = []

        # Parameter names matter: the SDK's ProgressFnT protocol is (progress, total, message).
        async def on_progress(progress: float, total: float | None, message: str | None) -> None:
            seen.append((progress, total, message))

        slow = await client.call_tool("slow", {"steps": 3, "delay": 0.01}, progress_callback=on_progress)
        assert text_of(slow) == "done"
        assert [p[0] for p in seen] == [1, 2, 3]

        assert text_of(await client.call_tool("sample", {"prompt": "hi"})) == "sampled:hi"
        assert text_of(await client.call_tool("elicit", {"question": "ok?"})) == "accept:re:ok?"

        assert text_of(await client.call_tool("log", {"message": "note"})) == "logged"
        # Delivery order: the notification precedes the result on the same stream, but the SDK
        # runs callbacks in their own tasks, so poll rather than assert immediately.
        await wait_for(lambda: any(entry.data == "note" for entry in logs), 5, message="log notification")

        assert text_of(await client.call_tool("whoami", {})).startswith("pid=")

        read = await client.read_resource("test://static")
        first = read.contents[0]
        assert isinstance(first, types.TextResourceContents) and first.text == "static resource"

        prompt = await client.get_prompt("greet", {"name": "Ada"})
        content = prompt.messages[0].content
        assert isinstance(content, types.TextContent) and content.text == "Hello, Ada!"


@pytest.mark.parametrize("kind", ["streamable", "sse", "stdio"])
async def test_v2_has_extra_tool(kind: str) -> None:
    if kind == "stdio":
        async with connect(stdio_command("v2"), "stdio") as client:
            tools = {tool.name for tool in (await client.list_tools()).tools}
            assert text_of(await client.call_tool("extra_tool", {})) == "extra"
    else:
        async with run_fixture(kind, "v2") as fixture:  # type: ignore[arg-type]
            transport: ClientTransport = "streamable-handshake" if kind == "streamable" else "sse"
            async with connect(fixture.url, transport) as client:
                tools = {tool.name for tool in (await client.list_tools()).tools}
                assert text_of(await client.call_tool("extra_tool", {})) == "extra"
                assert f"pid={fixture.pid} variant=v2" in text_of(await client.call_tool("whoami", {}))
    assert tools == FIXTURE_V1_TOOLS | {"extra_tool"}


@pytest.mark.parametrize("version", ["2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25"])
async def test_handshake_versions(streamable_v1: FixtureProcess, version: str) -> None:
    async with connect(
        streamable_v1.url,
        "streamable-handshake",
        protocol_version=version,
        sampling_callback=sampling_callback,
        elicitation_callback=elicitation_callback,
    ) as client:
        assert client.protocol_version == version
        assert text_of(await client.call_tool("sample", {"prompt": "x"})) == "sampled:x"
        if version in ("2024-11-05", "2025-03-26"):
            # elicitation/create does not exist before 2025-06-18: the SDK client answers the
            # server's request with METHOD_NOT_FOUND, which fails the tool call.
            with pytest.raises(MCPError):
                await client.call_tool("elicit", {"question": "q"})
        else:
            assert text_of(await client.call_tool("elicit", {"question": "q"})) == "accept:re:q"


async def test_two_clients_at_once(streamable_v1: FixtureProcess) -> None:
    async with (
        connect(streamable_v1.url, "streamable-handshake", elicitation_callback=elicitation_callback) as a,
        connect(streamable_v1.url, "streamable-modern", elicitation_callback=elicitation_callback) as b,
    ):
        results = await asyncio.gather(
            a.call_tool("echo", {"text": "a"}),
            b.call_tool("echo", {"text": "b"}),
            a.call_tool("elicit", {"question": "qa"}),
            b.call_tool("elicit", {"question": "qb"}),
            a.call_tool("whoami", {}),
            b.call_tool("whoami", {}),
        )
        texts = [text_of(r) for r in results]
        assert texts[:4] == ["a", "b", "accept:re:qa", "accept:re:qb"]
        pid = f"pid={streamable_v1.pid} "
        assert texts[4].startswith(pid) and texts[5].startswith(pid)


async def test_resource_updates_both_eras(streamable_v1: FixtureProcess) -> None:
    notifications: list[Any] = []

    async def message_handler(message: Any) -> None:
        notifications.append(message)

    # Handshake era: resources/subscribe, then notifications/resources/updated on the GET stream,
    # delivered to message_handler as a typed ServerNotification.
    async with (
        connect(streamable_v1.url, "streamable-handshake", message_handler=message_handler) as watcher,
        connect(streamable_v1.url, "streamable-handshake") as actor,
    ):
        assert watcher.server_capabilities.resources is not None
        assert watcher.server_capabilities.resources.subscribe
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", MCPDeprecationWarning)
            await watcher.subscribe_resource("test://counter")
        await actor.call_tool("bump", {})
        await wait_for(
            lambda: any(isinstance(n, types.ResourceUpdatedNotification) for n in notifications),
            5,
            message="resources/updated",
        )

    # 2026-07-28: subscriptions/listen is one long POST whose SSE stream carries the events.
    async with (
        connect(streamable_v1.url, "streamable-modern") as watcher,
        connect(streamable_v1.url, "streamable-modern") as actor,
    ):
        async with watcher.listen(resource_subscriptions=["test://counter"]) as subscription:
            assert subscription.honored.resource_subscriptions == ["test://counter"]
            await actor.call_tool("bump", {})
            async with asyncio.timeout(5):
                event = await anext(aiter(subscription))
            assert getattr(event, "uri", None) == "test://counter"


async def test_restart_on_same_port_swaps_backend() -> None:
    port = free_port()
    async with run_fixture("streamable", "v1", port=port) as old:
        async with connect(old.url, "streamable-handshake") as client:
            assert "variant=v1" in text_of(await client.call_tool("whoami", {}))
        old_pid = old.pid
    assert not await port_accepts(port)
    async with run_fixture("streamable", "v2", port=port) as new:
        assert new.url == old.url and new.pid != old_pid
        async with connect(new.url, "streamable-modern") as client:
            tools = {tool.name for tool in (await client.list_tools()).tools}
            assert "extra_tool" in tools
            assert f"pid={new.pid} variant=v2" in text_of(await client.call_tool("whoami", {}))


async def test_process_helpers() -> None:
    assert not await port_accepts(free_port())
    with pytest.raises(TimeoutError, match="never"):
        await wait_for(lambda: False, 0.1, message="never")
    assert await wait_for(lambda: 7, 1) == 7
    fixture_proc = await asyncio.create_subprocess_exec("sleep", "30", start_new_session=True)
    assert kill_pid(fixture_proc.pid)
    assert await fixture_proc.wait() != 0
    assert not kill_pid(fixture_proc.pid)  # already reaped


@pytest.mark.skipif(not forking_enabled(), reason="MCP_TEST_FORK=0: every fixture is a new interpreter")
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
async def test_a_forked_stdio_fixture_serves_its_pipes_and_ends_with_its_stand_in(sig: int) -> None:
    # A router starts `python fixture.py --transport stdio` and ends or kills that process: the
    # fork that serves in its place must answer on its pipes and must not outlive it.
    server = fork_server().popen.pid
    before = set(child_pids(server))
    stand_in = await asyncio.create_subprocess_exec(
        *shlex.split(stdio_command()),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        cwd=REPO_ROOT,
        start_new_session=True,
    )
    assert stand_in.stdin is not None and stand_in.stdout is not None
    try:
        fork = (await wait_for(lambda: set(child_pids(server)) - before, 10, message="the fork")).pop()
        stand_in.stdin.write(json.dumps(initialize_request("forks")).encode() + b"\n")
        answer = json.loads(await asyncio.wait_for(stand_in.stdout.readline(), 10))
        assert answer["id"] == 1 and answer["result"]["serverInfo"]["name"] == "fixture", answer
        kill_pid(stand_in.pid, sig)
        assert await asyncio.wait_for(stand_in.wait(), 10) == -sig  # ended as the server would be
        await wait_for(lambda: not pid_alive(fork), 10, message="the fork to end with its stand-in")
    finally:
        await stop_process(stand_in)


# A stand-in for `python -m app`: prints the contract's first line, floods stdout (a pipe that is
# not drained would block it), answers any HTTP request 200 and exits 0 on SIGTERM.
FAKE_ROUTER = r"""
import asyncio, signal, sys

async def main():
    port = int(sys.argv[sys.argv.index("--port") + 1])

    async def handle(reader, writer):
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", port)
    print(f"mcp-dev-router listening on http://127.0.0.1:{server.sockets[0].getsockname()[1]}", flush=True)
    for i in range(2000):
        print(f"log line {i} " + "x" * 80)
    sys.stdout.flush()
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()

asyncio.run(main())
"""


async def test_run_router_with_stand_in(tmp_path: Path) -> None:
    # Validates run_router itself (listening line, draining, SIGTERM -> exit 0) before app exists.
    package = tmp_path / "fake_router"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "__main__.py").write_text(FAKE_ROUTER)
    async with run_router(env={"PYTHONPATH": str(tmp_path)}, module="fake_router") as router:
        assert router.url == f"http://127.0.0.1:{router.port}" and router.port > 0
        async with httpx.AsyncClient() as http:
            assert (await http.get(f"{router.url}/status")).status_code == 200
        await wait_for(lambda: len(router.lines) >= 2001, 5, message="stdout drained")
    assert router.returncode == 0


@pytest.mark.skipif(not (REPO_ROOT / "app" / "__main__.py").exists(), reason="router entry point not written yet")
async def test_run_router_smoke(streamable_v1: FixtureProcess) -> None:
    async with run_router("-b", f"fx={streamable_v1.url}") as router:
        assert router.lines[0].startswith("mcp-dev-router listening on http://127.0.0.1:")
        async with httpx.AsyncClient() as http:
            status = await http.get(f"{router.url}/status")
            assert status.status_code == 200
        async with connect(router.mcp_url(), "streamable-handshake") as client:
            assert text_of(await client.call_tool("echo", {"text": "via router"})) == "via router"
