"""Bounded resources (issue 8): client sessions per backend, memory under slow readers and chatty
servers, and a backend that does not answer.

Real processes throughout: the router as a subprocess, its stdio backends counted as its child
processes in /proc, its memory read from /proc/PID/status.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shlex
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import mcp_types as types
import orjson
import pytest

from tests.support.clients import connect
from tests.support.procs import (
    HOST,
    REPO_ROOT,
    Router,
    child_pids,
    initialize_request,
    memory_mb,
    run_fixture,
    run_router,
    stdio_command,
    wait_for,
)

TINY = shlex.join([sys.executable, "-S", str(REPO_ROOT / "tests" / "servers" / "tiny_stdio.py")])
ACCEPT = {"accept": "application/json, text/event-stream", "content-type": "application/json"}


async def initialize(http: httpx.AsyncClient, path: str, name: str = "bounds-test") -> httpx.Response:
    return await http.post(path, json=initialize_request(name), headers=ACCEPT)


def session_headers(sid: str) -> dict[str, str]:
    return {**ACCEPT, "mcp-session-id": sid, "mcp-protocol-version": "2025-11-25"}


async def sessions(http: httpx.AsyncClient) -> dict[str, dict[str, Any]]:
    return {s["id"]: s for s in (await http.get("/sessions")).json()}


@contextlib.asynccontextmanager
async def router_and_http(*args: str, module: str = "app") -> AsyncIterator[tuple[Router, httpx.AsyncClient]]:
    async with (
        run_router("--no-persist", *args, module=module) as r,
        httpx.AsyncClient(base_url=r.url, timeout=30.0) as http,
    ):
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


# ------------------------------------------------------------------------------ memory
CEILING_MB = 200  # the router's documented memory ceiling under a slow reader or a chatty server


class RssWatch:
    """The router's peak RSS, sampled while a scenario runs (VmHWM would include its start-up)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak = 0.0

    def sample(self) -> float:
        now = memory_mb(self.pid)
        self.peak = max(self.peak, now)
        return now


async def stalled_connection(port: int, request: bytes) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A raw HTTP client that sends `request` and then reads nothing, with a tiny receive buffer
    so that the router meets the stall after kilobytes, not megabytes of kernel buffering."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, (HOST, port))
    reader, writer = await asyncio.open_connection(sock=sock, limit=1 << 20)
    writer.write(request)
    await writer.drain()
    return reader, writer


def http_request(method: str, path: str, headers: dict[str, str], body: bytes = b"") -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: {HOST}", f"Content-Length: {len(body)}"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


@pytest.mark.parametrize("server", ["router's protocol", "plain uvicorn"])
async def test_a_client_that_stops_reading_its_answer_stream_is_cut_off_within_the_ceiling(server: str) -> None:
    # Under plain uvicorn (no abort hook: the router cannot drop the connection, and the write the
    # stream is stuck in never returns) the stream cannot be ended, but nothing more is queued for
    # it, its requests are cancelled upstream and the memory stays bounded all the same.
    module = "app" if server == "router's protocol" else "tests.servers.plain_uvicorn_router"
    async with (
        run_fixture("streamable", name="chatty") as fx,
        router_and_http("-b", f"fx={fx.url}", module=module) as (r, http),
    ):
        watch = RssWatch(r.pid)
        sid = (await initialize(http, "/mcp/fx")).headers["mcp-session-id"]
        note = {"jsonrpc": "2.0", "method": "notifications/initialized"}
        assert (await http.post("/mcp/fx", json=note, headers=session_headers(sid))).status_code == 202
        # Progress as fast as the backend can send it (10 KB each), on an answer stream nobody reads.
        call = {
            "jsonrpc": "2.0",
            "id": 5,
            "method": "tools/call",
            "params": {"name": "flood", "arguments": {"count": 1_000_000}, "_meta": {"progressToken": 1}},
        }
        headers = {**session_headers(sid), "accept": "text/event-stream", "content-type": "application/json"}
        _reader, writer = await stalled_connection(r.port, http_request("POST", "/mcp/fx", headers, orjson.dumps(call)))
        try:

            def cut_off() -> bool:
                watch.sample()
                return any("stopped reading its answer stream" in line for line in r.lines)

            await wait_for(cut_off, timeout=60, interval=0.05, message="the stalled stream to be closed")
            print(f"router RSS peak {watch.peak:.0f} MB")
            assert watch.peak < CEILING_MB, f"router RSS peaked at {watch.peak:.0f} MB"

            # Its request was cancelled upstream: nothing in flight, and the backend was told.
            async def settled() -> bool:
                return await _field(http, sid, "pending") == 0

            await wait_for(settled, message="the call to be cancelled")
            assert any("notifications/cancelled" in line for line in r.lines), r.lines[-10:]
            # The session itself is fine.
            ping = {"jsonrpc": "2.0", "id": 6, "method": "ping"}
            assert (await http.post("/mcp/fx", json=ping, headers=session_headers(sid))).status_code == 200
            assert watch.sample() < CEILING_MB
            # The stream has ended: the connection was dropped (the router's protocol), or (plain
            # uvicorn) the client that reads again gets what was written and the chunked end.
            tail = b""
            async with asyncio.timeout(30):
                while chunk := await _reader.read(1 << 20):
                    tail = (tail + chunk)[-16:]
                    if server == "plain uvicorn" and tail.endswith(b"\r\n0\r\n\r\n"):
                        break
            print(f"{server}: the stream ended with {tail!r}")
        finally:
            writer.close()


async def test_events_subscribers_that_do_not_read_lose_their_oldest_events_and_are_told() -> None:
    async with (
        run_fixture("streamable", name="big") as fx,
        router_and_http("--quiet", "-b", f"fx={fx.url}") as (r, _http),
        connect(r.mcp_url("fx"), "streamable-modern") as client,
    ):
        watch = RssWatch(r.pid)
        readers = [
            await stalled_connection(r.port, http_request("GET", "/events", {"accept": "text/event-stream"}))
            for _ in range(3)
        ]
        try:
            size = 512 * 1024
            for _ in range(400):  # 200 MB of answers: twelve times what a subscriber may hold
                result = await client.call_tool("blob", {"size": size})
                assert not result.is_error
                watch.sample()
            print(f"router RSS peak {watch.peak:.0f} MB")
            assert watch.peak < CEILING_MB, f"router RSS peaked at {watch.peak:.0f} MB"
            # A reader that comes back is told how many events it lost.
            reader = readers[0][0]
            seen = b""
            async with asyncio.timeout(30):
                while b"event: dropped" not in seen:
                    chunk = await reader.read(1 << 20)
                    assert chunk, "the /events stream ended"
                    seen = seen[-100:] + chunk
            line = seen[seen.index(b"event: dropped") :].split(b"\n")[1]
            assert orjson.loads(line.removeprefix(b"data: "))["count"] > 0
        finally:
            for _r, w in readers:
                w.close()


async def test_a_backend_writing_huge_stderr_lines_keeps_its_log_bounded() -> None:
    line_size = 30_000_000
    chatty = f"{TINY} --stderr-lines 10 --stderr-size {line_size}"
    async with router_and_http("--quiet", "-b", f"loud={chatty}") as (r, http):
        watch = RssWatch(r.pid)

        async def logged() -> bool:
            watch.sample()
            lines = (await http.get("/backends/loud/log")).json()["lines"]
            return sum("cut:" in line for line in lines) >= 10

        await wait_for(logged, timeout=60, interval=0.1, message="the ten stderr lines")
        resp = await http.get("/backends/loud/log")
        assert len(resp.content) < 1_000_000, f"/backends/loud/log is {len(resp.content)} bytes"
        cut = [line for line in resp.json()["lines"] if "cut:" in line]
        assert all("[cut: 28.6 MiB in all]" in line for line in cut), cut[0][-60:]
        print(f"router RSS peak {watch.peak:.0f} MB")
        assert watch.peak < CEILING_MB, f"router RSS peaked at {watch.peak:.0f} MB"


# ------------------------------------------------------------------------------ a backend that does not answer


async def backend_status(http: httpx.AsyncClient, name: str) -> dict[str, Any]:
    status: dict[str, Any] = (await http.get(f"/backends/{name}")).json()
    return status


async def test_a_listening_but_silent_backend_is_down_with_the_reason_within_the_probe_timeout() -> None:
    async def never_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            while await reader.read(65536):
                pass  # takes every request, answers none
        writer.close()

    server = await asyncio.start_server(never_answer, HOST, 0)
    port = server.sockets[0].getsockname()[1]
    try:
        async with router_and_http("-b", f"silent=http://{HOST}:{port}/mcp", "--probe-timeout", "2") as (_r, http):
            started = time.monotonic()

            async def down() -> dict[str, Any] | None:
                b = await backend_status(http, "silent")
                return b if b["state"] == "down" else None

            b = await wait_for(down, timeout=10, message="the silent backend to be down")
            assert b["reason"] == "no answer to initialize within 2 s", b
            assert time.monotonic() - started < 2 + 3, "down only well after the probe timeout"
    finally:
        server.close()


@pytest.mark.parametrize("kind", ["http", "stdio"])
async def test_a_paused_backend_is_shown_not_answering_and_its_call_is_answered_after_it_resumes(kind: str) -> None:
    async with contextlib.AsyncExitStack() as stack:
        if kind == "http":
            fx = await stack.enter_async_context(run_fixture("streamable", name="paused"))
            target = fx.url
        else:
            target = stdio_command(name="paused", forked=False)  # SIGSTOP must reach the server itself
        r, http = await stack.enter_async_context(
            router_and_http("-b", f"be={target}", "--probe-timeout", "1", "--health-interval", "0.5")
        )
        client = await stack.enter_async_context(connect(r.mcp_url("be"), "streamable-handshake"))
        assert not (await client.call_tool("echo", {"text": "warm"})).is_error
        status = await backend_status(http, "be")
        assert status["state"] == "up" and status["not_answering_s"] is None, status
        pids = [fx.pid] if kind == "http" else status["pids"]
        for pid in pids:
            os.kill(pid, signal.SIGSTOP)
        try:
            call = asyncio.ensure_future(client.call_tool("echo", {"text": "through the pause"}))

            async def silent() -> dict[str, Any] | None:
                b = await backend_status(http, "be")
                return b if b["not_answering_s"] is not None else None

            b = await wait_for(silent, timeout=10, message="the paused backend to be shown not answering")
            assert b["state"] == "up", b  # paused, not gone: its call is kept
            assert b["detail"].startswith("not answering for "), b
            # The headless output (and the TUI, through the same event) says so too.
            await wait_for(lambda: any("not answering for" in line for line in r.lines), message="the note")
            assert not call.done()
        finally:
            for pid in pids:
                os.kill(pid, signal.SIGCONT)
        result = await asyncio.wait_for(call, 20)
        assert not result.is_error
        block = result.content[0]
        assert isinstance(block, types.TextContent) and block.text == "through the pause"

        async def answering() -> bool:
            return (await backend_status(http, "be"))["not_answering_s"] is None

        await wait_for(answering, timeout=10, message="the figure to clear")
        await wait_for(lambda: any("answering again" in line for line in r.lines), message="the all-clear note")


async def test_events_carry_a_preview_of_a_large_message_not_the_message() -> None:
    # A view keeps events (the TUI thousands of rows, each /events subscriber up to its bound):
    # an event that kept a large answer would keep its bytes and its parsed text alive with it.
    size = 16 * 1024 * 1024
    async with (
        run_fixture("streamable", name="big") as fx,
        router_and_http("--quiet", "-b", f"fx={fx.url}") as (r, http),
        connect(r.mcp_url("fx"), "streamable-modern") as client,
        http.stream("GET", "/events", params={"types": "traffic"}) as events,
    ):
        watch = RssWatch(r.pid)
        stalled = [
            await stalled_connection(r.port, http_request("GET", "/events", {"accept": "text/event-stream"}))
            for _ in range(3)
        ]
        try:
            for _ in range(4):
                result = await client.call_tool("blob", {"size": size})
                assert not result.is_error
                watch.sample()
            print(f"router RSS peak {watch.peak:.0f} MB")
            answer: dict[str, Any] | None = None
            frame_size = 0
            async with asyncio.timeout(30):
                lines = events.aiter_lines()
                while answer is None:
                    line = await anext(lines)
                    if line.startswith("data:"):
                        ev = orjson.loads(line[5:])
                        if ev.get("method") == "tools/call" and ev.get("msg_kind") == "response":
                            answer, frame_size = ev, len(line)
            assert answer["cut"] > size, answer.get("cut")
            text = answer["message"]["result"]["content"][0]["text"]
            assert text.endswith(f"… [cut: {size:,} characters in all]"), text[-80:]
            assert frame_size < 300_000, f"the answer's event is {frame_size} bytes"
            assert watch.peak < CEILING_MB, f"router RSS peaked at {watch.peak:.0f} MB"
        finally:
            for _r, w in stalled:
                w.close()


async def test_a_legacy_client_posting_more_than_its_backend_takes_is_refused_at_the_inbox_bound() -> None:
    # Legacy `/messages/` posts are accepted at once and wait in the router for their backend (here
    # down: held up to --hold). Past 8 MiB waiting, a post's requests are answered on the stream
    # with an error naming the bound, and the backend's log says so.
    size = 3 * 1024 * 1024
    async with (
        run_fixture("streamable", name="inbox") as fx,
        router_and_http("--quiet", "-b", f"fx={fx.url}") as (r, http),
        http.stream("GET", "/sse/fx", headers={"accept": "text/event-stream"}) as stream,
    ):
        watch = RssWatch(r.pid)
        lines = stream.aiter_lines()

        async def next_event() -> tuple[str, str]:
            name, data = "message", []
            while (line := await anext(lines)) or not data:
                if line.startswith("event:"):
                    name = line[6:].strip()
                elif line.startswith("data:"):
                    data.append(line[5:].strip())
            return name, "\n".join(data)

        async with asyncio.timeout(30):
            name, endpoint = await next_event()
            assert name == "endpoint"
            assert (await http.post(endpoint, json=initialize_request("inbox-test"))).status_code == 202
            assert orjson.loads((await next_event())[1])["id"] == 1
            initialized = {"jsonrpc": "2.0", "method": "notifications/initialized"}
            assert (await http.post(endpoint, json=initialized)).status_code == 202
            await fx.stop()
            text = "x" * size
            for i in range(2, 42):  # 120 MB of calls for a backend that is not there
                params = {"name": "echo", "arguments": {"text": text}}
                call = {"jsonrpc": "2.0", "id": i, "method": "tools/call", "params": params}
                assert (await http.post(endpoint, json=call)).status_code == 202
                watch.sample()
            refused: dict[int, dict[str, Any]] = {}
            while 41 not in refused:
                answer = orjson.loads((await next_event())[1])
                refused[answer["id"]] = answer["error"]
        assert len(refused) >= 37 and set(refused) <= set(range(4, 42)), sorted(refused)  # two or three fit
        error = refused[41]
        assert error["code"] == -32054 and "inbox for this session is full" in error["message"], error
        assert "8 MiB" in error["message"] and error["data"]["limit"] == 8 * 1024 * 1024, error
        log = (await http.get("/backends/fx/log")).json()["lines"]
        assert any("refused tools/call" in line for line in log), log[-5:]
        # A post with no request in it has no stream answer to carry the refusal: it gets 429.
        progress = {"progressToken": 1, "progress": 1, "message": text}
        note = {"jsonrpc": "2.0", "method": "notifications/progress", "params": progress}
        resp = await http.post(endpoint, json=note)
        assert resp.status_code == 429 and resp.json()["error"]["code"] == -32054, resp.text
        print(f"router RSS peak {watch.peak:.0f} MB")
        assert watch.peak < CEILING_MB, f"router RSS peaked at {watch.peak:.0f} MB"
