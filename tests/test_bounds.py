"""Bounded resources (issue 8): client sessions per backend, memory under slow readers and chatty
servers, and a backend that does not answer.

Real processes throughout: the router as a subprocess, its stdio backends counted as its child
processes in /proc, its memory read from /proc/PID/status.
"""

from __future__ import annotations

import asyncio
import contextlib
import shlex
import sys
from collections.abc import AsyncIterator
from typing import Any

import httpx

from tests.support.procs import REPO_ROOT, Router, child_pids, initialize_request, run_router, wait_for

TINY = shlex.join([sys.executable, "-S", str(REPO_ROOT / "tests" / "servers" / "tiny_stdio.py")])
ACCEPT = {"accept": "application/json, text/event-stream", "content-type": "application/json"}


async def initialize(http: httpx.AsyncClient, path: str, name: str = "bounds-test") -> httpx.Response:
    return await http.post(path, json=initialize_request(name), headers=ACCEPT)


def session_headers(sid: str) -> dict[str, str]:
    return {**ACCEPT, "mcp-session-id": sid, "mcp-protocol-version": "2025-11-25"}


async def sessions(http: httpx.AsyncClient) -> dict[str, dict[str, Any]]:
    return {s["id"]: s for s in (await http.get("/sessions")).json()}


@contextlib.asynccontextmanager
async def router_and_http(*args: str) -> AsyncIterator[tuple[Router, httpx.AsyncClient]]:
    async with run_router(*args) as r, httpx.AsyncClient(base_url=r.url, timeout=30.0) as http:
        yield r, http


# ------------------------------------------------------------------------------ --max-sessions


async def test_200_initializes_leave_at_most_max_sessions_processes() -> None:
    cap = 4
    async with router_and_http("-b", f"tiny={TINY}", "--max-sessions", str(cap)) as (r, http):
        await wait_for(lambda: child_pids(r.pid), message="the backend's own process")
        ids: list[str] = []
        most = 0
        for i in range(200):
            resp = await initialize(http, "/mcp/tiny", f"looping-client-{i}")
            assert resp.status_code == 200, resp.text
            ids.append(resp.headers["mcp-session-id"])
            most = max(most, len(child_pids(r.pid)))
        # The router's own probe process, plus one per session kept.
        assert most <= cap + 1, f"{most} backend processes at once with --max-sessions {cap}"
        assert len(await sessions(http)) == cap
        assert set(await sessions(http)) == set(ids[-cap:])  # the newest stayed
        # An evicted client gets 404, which tells it to initialize again.
        resp = await http.post(
            "/mcp/tiny",
            json={"jsonrpc": "2.0", "id": 2, "method": "tools/list"},
            headers=session_headers(ids[0]),
        )
        assert resp.status_code == 404, resp.text
        assert any("closed to make room" in line and "--max-sessions 4" in line for line in r.lines), r.lines[-5:]


async def test_an_active_session_is_never_the_one_closed() -> None:
    cap = 3
    async with router_and_http("-b", f"tiny={TINY}", "--max-sessions", str(cap)) as (_router, http):
        # A: an open stream (the session's GET stream), idle the longest.
        a = (await initialize(http, "/mcp/tiny", "streaming")).headers["mcp-session-id"]
        stream_headers = {"accept": "text/event-stream", "mcp-session-id": a, "mcp-protocol-version": "2025-11-25"}
        async with http.stream("GET", "/mcp/tiny", headers=stream_headers) as stream:
            assert stream.status_code == 200
            await wait_for(lambda: _field(http, a, "open_streams"), message="A's stream to be open")
            # B: a request in flight.
            b = (await initialize(http, "/mcp/tiny", "busy")).headers["mcp-session-id"]
            hang = {"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {"name": "hang", "arguments": {}}}
            in_flight = asyncio.ensure_future(http.post("/mcp/tiny", json=hang, headers=session_headers(b)))
            await wait_for(lambda: _field(http, b, "pending"), message="B's request in flight")
            # C: idle, the most recently active of the three.
            c = (await initialize(http, "/mcp/tiny", "idle")).headers["mcp-session-id"]

            d_resp = await initialize(http, "/mcp/tiny", "newcomer")
            assert d_resp.status_code == 200, d_resp.text
            d = d_resp.headers["mcp-session-id"]
            now = await sessions(http)
            assert set(now) == {a, b, d}, "the idle session C should have made room, not A or B"
            gone = await http.post(
                "/mcp/tiny", json={"jsonrpc": "2.0", "id": 3, "method": "ping"}, headers=session_headers(c)
            )
            assert gone.status_code == 404

            # D is idle now too; make it busy as well: then no session can be closed.
            in_flight_d = asyncio.ensure_future(http.post("/mcp/tiny", json=hang, headers=session_headers(d)))
            await wait_for(lambda: _field(http, d, "pending"), message="D's request in flight")
            refused = await initialize(http, "/mcp/tiny", "one-too-many")
            assert refused.status_code == 503, refused.text
            error = refused.json()["error"]
            assert "--max-sessions 3" in error["message"] and "all active" in error["message"], error
            assert set(await sessions(http)) == {a, b, d}
            for task in (in_flight, in_flight_d):
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task


async def _field(http: httpx.AsyncClient, sid: str, name: str) -> Any:
    return (await sessions(http))[sid][name]
