"""Hot-swap: the client keeps its session while its backend dies, comes back, or is replaced.

Real backends (SDK fixture servers over Streamable HTTP, SSE and stdio) are killed by pid and
started again as a new version (v2 adds `extra_tool`); real SDK clients on every client transport
stay connected through the router the whole time.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from mcp.shared.exceptions import MCPError

from tests.hotswap_support import backend_state, collect_notifications, swappable, wait_state
from tests.support.clients import connect
from tests.support.procs import Router, initialize_request, pid_alive, run_router, wait_for
from tests.support.raw import run_raw_http

CLIENTS = ["streamable-handshake", "streamable-modern", "sse"]
BACKENDS = ["streamable", "sse", "stdio"]
COMBOS = [
    pytest.param(c, b, id=f"{c}->{b}")
    for c in CLIENTS
    for b in BACKENDS
    # HTTP+SSE has no 2026-07-28 era: a modern client falls back to the handshake (see test_matrix).
    if not (c == "streamable-modern" and b == "sse")
]


def client_url(r: Router, transport: str, name: str = "be") -> str:
    return r.mcp_url(name) if transport.startswith("streamable") else r.sse_url(name)


def text(result: Any) -> str:
    return str(result.content[0].text)


async def tool_names(client: Any) -> set[str]:
    return {t.name for t in (await client.list_tools()).tools}


async def session_disconnected(r: Router) -> bool:
    """Every handshake session of the router has noticed its backend connection is gone."""
    async with httpx.AsyncClient() as http:
        sessions = (await http.get(f"{r.url}/sessions")).json()
    return all(not s["connected"] for s in sessions)


@pytest.mark.parametrize(("client_tr", "backend_tr"), COMBOS)
async def test_backend_replaced_by_new_version(tmp_path: Path, client_tr: str, backend_tr: str) -> None:
    async with swappable(backend_tr, tmp_path) as be:
        async with run_router("-b", f"be={be.target}", "--hold", "20", "--health-interval", "2") as r:
            be.router_url = r.url
            await wait_state(r.url, "be", "up")
            seen, handler = collect_notifications()
            async with connect(client_url(r, client_tr), client_tr, message_handler=handler) as client:
                assert "extra_tool" not in await tool_names(client)
                assert "variant=v1" in text(await client.call_tool("whoami", {}))

                await be.kill()
                await wait_state(r.url, "be", "down")
                await wait_for(lambda: session_disconnected(r), 10, message="the session to notice")
                # Made while the backend is down: the router holds it for the new version.
                held = asyncio.create_task(client.call_tool("whoami", {}))
                await asyncio.sleep(0)  # let the call reach the router before the new build is up
                await be.revive("v2")
                assert "variant=v2" in text(await asyncio.wait_for(held, 20))

                assert "extra_tool" in await tool_names(client)
                assert text(await client.call_tool("extra_tool", {})) == "extra"
                if client_tr != "streamable-modern":
                    await wait_for(lambda: "notifications/tools/list_changed" in seen, 5, message="list_changed")
            info = await backend_state(r.url, "be")
            assert "extra_tool" in info["tools"]


@pytest.mark.parametrize("backend_tr", BACKENDS)
@pytest.mark.filterwarnings("ignore:ping is removed")  # the router answers the handshake-era ping itself
async def test_hold_expires_then_session_recovers(tmp_path: Path, backend_tr: str) -> None:
    async with swappable(backend_tr, tmp_path) as be:
        async with run_router("-b", f"be={be.target}", "--hold", "1") as r:
            be.router_url = r.url
            await wait_state(r.url, "be", "up")
            async with connect(r.mcp_url("be"), "streamable-handshake") as client:
                assert await client.call_tool("echo", {"text": "a"})
                await be.kill()
                await wait_state(r.url, "be", "down")
                started = time.monotonic()
                with pytest.raises(MCPError) as err:
                    await client.call_tool("echo", {"text": "b"})
                waited = time.monotonic() - started
                assert 0.9 <= waited < 5, waited
                assert "'be'" in err.value.error.message and "down" in err.value.error.message
                # The router answers ping itself while the backend is away.
                await client.send_ping()
                await be.revive("v1")
                await wait_state(r.url, "be", "up")
                assert text(await client.call_tool("echo", {"text": "c"})) == "c"


@pytest.mark.parametrize(("client_tr", "backend_tr"), COMBOS)
async def test_call_in_flight_fails_fast_when_backend_dies(tmp_path: Path, client_tr: str, backend_tr: str) -> None:
    async with swappable(backend_tr, tmp_path) as be:
        async with run_router("-b", f"be={be.target}") as r:
            be.router_url = r.url
            await wait_state(r.url, "be", "up")
            async with connect(client_url(r, client_tr), client_tr) as client:
                slow = asyncio.create_task(client.call_tool("sleep", {"seconds": 30}))

                async def in_flight() -> bool:
                    async with httpx.AsyncClient() as http:
                        sessions = (await http.get(f"{r.url}/sessions")).json()
                    return any(s["pending"] for s in sessions) or client_tr == "streamable-modern"

                await wait_for(in_flight, 5, message="the call to be in flight")
                await asyncio.sleep(0.2) if client_tr == "streamable-modern" else None
                await be.kill()
                killed = time.monotonic()
                with pytest.raises(MCPError) as err:
                    await asyncio.wait_for(slow, 5)
                assert time.monotonic() - killed < 1.0
                assert "'be'" in err.value.error.message


async def test_listen_stream_survives_swap_and_reports_new_tools(tmp_path: Path) -> None:
    async with swappable("streamable", tmp_path) as be:
        async with run_router("-b", f"be={be.target}", "--hold", "20") as r:
            be.router_url = r.url
            await wait_state(r.url, "be", "up")
            async with connect(r.mcp_url("be"), "streamable-modern") as client:
                async with client.listen(tools_list_changed=True) as sub:
                    await be.kill()
                    await wait_state(r.url, "be", "down")
                    await be.revive("v2")
                    event = await asyncio.wait_for(sub.__anext__(), 15)
                    assert type(event).__name__ == "ToolsListChanged"
                assert "extra_tool" in await tool_names(client)


async def test_health_history_records_outage_and_fast_recovery(tmp_path: Path) -> None:
    async with swappable("streamable", tmp_path) as be:
        async with run_router("-b", f"be={be.target}", "--health-interval", "5") as r:
            await wait_state(r.url, "be", "up")
            await be.kill()
            await wait_state(r.url, "be", "down")
            await be.revive("v1")  # returns once the port accepts connections
            listening = time.monotonic()
            await wait_state(r.url, "be", "up", timeout=5)
            assert time.monotonic() - listening < 1.0
            async with httpx.AsyncClient() as http:
                samples = (await http.get(f"{r.url}/backends/be/health")).json()["samples"]
            oks = [s["ok"] for s in samples]
            first_fail = oks.index(False)
            assert True in oks[:first_fail] and True in oks[first_fail:], oks
            assert all(s["latency_ms"] is not None for s in samples if s["ok"])


@pytest.mark.parametrize("backend_tr", ["streamable", "stdio"])
async def test_disabled_backend_holds_requests_until_enabled(tmp_path: Path, backend_tr: str) -> None:
    async with swappable(backend_tr, tmp_path) as be:
        async with run_router("-b", f"be={be.target}", "--hold", "20") as r:
            await wait_state(r.url, "be", "up")
            async with connect(r.mcp_url("be"), "streamable-handshake") as client, httpx.AsyncClient() as http:
                assert text(await client.call_tool("echo", {"text": "before"})) == "before"
                pids_before = (await http.get(f"{r.url}/backends/be")).json()["pids"]
                assert len(pids_before) == (
                    2 if backend_tr == "stdio" else 0
                )  # stdio: the main process and the session's
                assert (await http.post(f"{r.url}/backends/be/disable")).json()["state"] == "disabled"
                held = asyncio.create_task(client.call_tool("echo", {"text": "held"}))

                async def holding() -> bool:
                    sessions = (await http.get(f"{r.url}/sessions")).json()
                    return any(s["pending"] for s in sessions)

                await wait_for(holding, 5, message="the call to be held")
                assert not held.done()
                if backend_tr == "stdio":
                    # Disabled means not running: its processes are gone, and it will not restart.
                    await wait_for(
                        lambda: not any(pid_alive(pid) for pid in pids_before), 10, message="the processes to end"
                    )
                    assert (await http.get(f"{r.url}/backends/be")).json()["pids"] == []
                    assert not held.done()
                    refused = await http.post(f"{r.url}/backends/be/restart")
                    assert refused.status_code == 409
                    assert "disabled" in refused.json()["error"]
                await http.post(f"{r.url}/backends/be/enable")
                assert text(await asyncio.wait_for(held, 10)) == "held"
                assert text(await client.call_tool("echo", {"text": "after"})) == "after"
                if backend_tr == "stdio":
                    pids_after = (await http.get(f"{r.url}/backends/be")).json()["pids"]
                    assert pids_after and not set(pids_after) & set(pids_before)


@pytest.mark.parametrize("backend_tr", ["streamable", "stdio"])
async def test_modern_client_closing_its_stream_cancels_the_backend_call(tmp_path: Path, backend_tr: str) -> None:
    async with swappable(backend_tr, tmp_path) as be:
        async with run_router("-b", f"be={be.target}") as r:
            await wait_state(r.url, "be", "up")
            body = {
                "jsonrpc": "2.0",
                "id": 7,
                "method": "tools/call",
                "params": {
                    "name": "sleep",
                    "arguments": {"seconds": 30},
                    "_meta": {
                        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
                        "io.modelcontextprotocol/clientInfo": {"name": "t", "version": "1"},
                        "io.modelcontextprotocol/clientCapabilities": {},
                    },
                },
            }
            headers = {
                "Accept": "application/json, text/event-stream",
                "MCP-Protocol-Version": "2026-07-28",
                "Mcp-Method": "tools/call",
                "Mcp-Name": "sleep",
            }
            async with httpx.AsyncClient(timeout=httpx.Timeout(5.0, read=0.5)) as http:
                with pytest.raises(httpx.ReadTimeout):
                    await http.post(r.mcp_url("be"), json=body, headers=headers)  # the client gives up: closes

            def cancelled() -> bool:
                return any("→ be" in line and "notifications/cancelled" in line for line in r.lines)

            await wait_for(cancelled, 5, message="the router to cancel the call upstream")
            # The session and backend carry on serving.
            async with connect(r.mcp_url("be"), "streamable-modern") as client:
                assert text(await client.call_tool("echo", {"text": "free"})) == "free"


async def test_a_request_being_sent_when_its_backend_restarts_reaches_it_once(tmp_path: Path) -> None:
    """A restart moves the session to a new backend session and retires the old one once nothing
    is left on it. A request whose send had not returned yet (over HTTP: until its answer's head)
    was not counted: the old session was ended under it, and its answer never came (the Inspector's
    load run saw one call time out), or, with this backend, it was sent a second time."""
    record = tmp_path / "raw.jsonl"
    with run_raw_http(record) as url:
        async with run_router("-b", f"raw={url}") as r, httpx.AsyncClient(timeout=30) as http:
            await wait_state(r.url, "raw", "up")
            headers = {"accept": "application/json, text/event-stream", "content-type": "application/json"}
            init = await http.post(r.mcp_url("raw"), json=initialize_request("slow"), headers=headers)
            headers |= {"mcp-session-id": init.headers["mcp-session-id"], "mcp-protocol-version": "2025-11-25"}
            await http.post(
                r.mcp_url("raw"), json={"jsonrpc": "2.0", "method": "notifications/initialized"}, headers=headers
            )
            answer = '{"jsonrpc":"2.0","id":$ID,"result":{"answered":true}}'
            call = {
                "jsonrpc": "2.0",
                "id": "slow-1",
                "method": "raw/answer",
                "params": {"answer": answer, "delay": 1.5},
            }
            pending = asyncio.ensure_future(http.post(r.mcp_url("raw"), json=call, headers=headers))

            def received() -> int:
                lines = record.read_text(encoding="utf-8").splitlines() if record.exists() else []
                return sum('"slow-1"' in json.loads(line)["body"] for line in lines)

            await wait_for(lambda: received() == 1, 10, message="the slow request at the backend")
            restarted = await http.post(f"{r.url}/backends/raw/restart")
            assert restarted.status_code == 200, restarted.text
            resp = await pending
            assert resp.status_code == 200 and resp.json() == {
                "jsonrpc": "2.0",
                "id": "slow-1",
                "result": {"answered": True},
            }
            assert received() == 1  # sent once: not again after its session was ended under it
