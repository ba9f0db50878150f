"""bench/rawserver.py, the paced benchmark's light backend, and the paced load that alternates
between routers: against a real router, with the SDK's client and bench/rawclient.py."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from collections.abc import AsyncIterator
from typing import Any

import httpx

from bench import rawclient
from bench.run import _worker_paced
from tests.support.clients import connect
from tests.support.procs import HOST, REPO_ROOT, free_port, pid_alive, port_accepts, run_router, stop_process, wait_for


@contextlib.asynccontextmanager
async def rawserver() -> AsyncIterator[str]:
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(REPO_ROOT / "bench" / "rawserver.py"), "--host", HOST, "--port", str(port)
    )
    try:
        await wait_for(lambda: port_accepts(port), 15, message="rawserver listening")
        yield f"http://{HOST}:{port}/mcp"
    finally:
        await stop_process(proc)
    assert not pid_alive(proc.pid)


async def test_an_sdk_client_calls_the_raw_server_through_the_router() -> None:
    async with rawserver() as light, run_router("-b", f"light={light}") as r:
        async with connect(r.mcp_url("light"), "streamable-handshake") as client:
            assert [t.name for t in (await client.list_tools()).tools] == ["echo"]
            result = await client.call_tool("echo", {"text": "héllo ✓"})
            assert result.content[0].text == "héllo ✓"  # type: ignore[union-attr]
            assert not result.is_error


async def test_the_raw_server_answers_what_it_does_not_know_with_errors_not_silence() -> None:
    async with rawserver() as light, httpx.AsyncClient(timeout=10.0) as http:
        unknown = await http.post(light, json={"jsonrpc": "2.0", "id": 7, "method": "resources/list"})
        assert unknown.json() == {
            "jsonrpc": "2.0",
            "id": 7,
            "error": {"code": -32601, "message": "Method not found: resources/list"},
        }
        assert (await http.post(light, content=b"{not json")).status_code == 400
        note = await http.post(light, json={"jsonrpc": "2.0", "method": "notifications/initialized"})
        assert note.status_code == 202
        assert (await http.get(light)).status_code == 405
        first = await http.post(light, json={"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {}})
        second = await http.post(light, json={"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {}})
        assert first.headers["mcp-session-id"] != second.headers["mcp-session-id"]


async def test_the_paced_load_gives_each_url_the_whole_rate_at_once() -> None:
    """`_worker_paced` with two URLs: each gets the rate asked for, in the same window."""
    rate, seconds = 40.0, 1.5
    replies: list[dict[str, Any]] = []
    commands = [{"op": "go", "seconds": seconds}]

    async def read_cmd() -> dict[str, Any]:
        return commands.pop(0)

    async with rawserver() as light, run_router("-b", f"light={light}") as r:
        cmd = {"urls": [r.mcp_url("light"), light], "rate": rate, "sessions": 2}
        result = await _worker_paced(rawclient.connect, cmd, read_cmd, replies.append)
    assert replies == [{"ok": True, "connected": 4}]  # two sessions to each URL
    assert result["ok"]
    via_router, direct = result["by_url"]
    for got in (via_router, direct):
        assert got["errors"] == 0
        assert got["calls"] == int(rate * seconds) == len(got["lat_ms"])
    # The window is the rate's, not one URL after the other.
    assert result["elapsed"] < seconds + 1.0
    json.dumps(result)  # what the worker writes to the orchestrator
