"""Bad input gets a clear error and loses nothing (DESIGN.md, "State and security").

Every test runs a real router with an SDK client already connected (Streamable HTTP and legacy
SSE), throws raw bad requests at the router with httpx, and then checks that the connected clients
still work: rejecting one request must never disturb another client's session.
"""

from __future__ import annotations

import contextlib
import shlex
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import mcp_types as types
import pytest
from mcp.client import Client

from tests.support.clients import connect
from tests.support.procs import FixtureProcess, Router, initialize_request, run_fixture_sync, run_router, wait_for

MAX_BODY = 1000
ACCEPT = {"accept": "application/json, text/event-stream", "content-type": "application/json"}
INIT = initialize_request("bad-input-test")


@pytest.fixture(scope="module")
def backend() -> Any:
    with run_fixture_sync("streamable", name="alpha") as fx:
        yield fx


@dataclass
class Setup:
    router: Router
    http: httpx.AsyncClient
    client: Client
    sse_client: Client

    async def sessions(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = (await self.http.get("/sessions")).json()
        return result

    async def check_clients(self, label: str) -> None:
        """Both connected clients still get answers, on the same router sessions as before."""
        for c in (self.client, self.sse_client):
            result = await c.call_tool("echo", {"text": label})
            assert not result.is_error
            block = result.content[0]
            assert isinstance(block, types.TextContent) and block.text == label


@contextlib.asynccontextmanager
async def router_with_clients(backend: FixtureProcess, *extra: str) -> AsyncIterator[Setup]:
    async with (
        run_router("-b", f"alpha={backend.url}", "--max-body", str(MAX_BODY), *extra) as r,
        httpx.AsyncClient(base_url=r.url, timeout=10.0) as http,
        connect(r.mcp_url(), "streamable-handshake") as client,
        connect(r.sse_url(), "sse") as sse_client,
    ):
        setup = Setup(r, http, client, sse_client)
        await setup.check_clients("warm-up")
        before = await setup.sessions()
        assert len(before) == 2
        yield setup
        await setup.check_clients("still fine")
        # No session was lost or added by the bad requests.
        assert {s["id"] for s in await setup.sessions()} == {s["id"] for s in before}
        assert (await http.get("/status")).status_code == 200


def assert_jsonrpc_error(resp: httpx.Response, status: int, code: int, case: object = "") -> dict[str, Any]:
    assert resp.status_code == status, (case, resp.status_code, resp.text)
    assert resp.headers["content-type"].startswith("application/json"), case
    body: dict[str, Any] = resp.json()
    assert body["jsonrpc"] == "2.0", case
    assert body["id"] is None, (case, body)
    assert body["error"]["code"] == code, (case, body)
    assert isinstance(body["error"]["message"], str) and body["error"]["message"], case
    return body


async def session_ids(setup: Setup) -> tuple[str, str]:
    """The router's ids of the streamable session (Mcp-Session-Id) and the SSE one (?session_id=)."""
    by_transport = {s["transport"]: s["id"] for s in await setup.sessions()}
    return by_transport["streamable-http"], by_transport["sse"]


# ------------------------------------------------------------------------------ malformed bodies


async def test_malformed_json_is_a_parse_error(backend: FixtureProcess) -> None:
    async with router_with_clients(backend) as setup:
        sid, sse_sid = await session_ids(setup)
        http = setup.http
        bodies = [b'{"jsonrpc": "2.0", "id": 1, "method": "ping"', b"not json at all", b"\xff\xfe", b""]
        for body in bodies:
            resp = await http.post("/mcp", content=body, headers=ACCEPT)
            assert_jsonrpc_error(resp, 400, -32700, body)
            # The same garbage on a live session must not end (or confuse) that session.
            session_headers = {**ACCEPT, "mcp-session-id": sid, "mcp-protocol-version": "2025-11-25"}
            resp = await http.post("/mcp", content=body, headers=session_headers)
            assert_jsonrpc_error(resp, 400, -32700, body)
            resp = await http.post("/messages/", params={"session_id": sse_sid}, content=body, headers=ACCEPT)
            assert_jsonrpc_error(resp, 400, -32700, body)
        await setup.check_clients("after parse errors")


NOT_JSONRPC = [
    b"[]",
    b'{"foo": 1}',
    b'{"jsonrpc": "1.0", "id": 1, "method": "ping"}',
    b'{"id": 1, "method": "ping"}',
    b'{"jsonrpc": "2.0", "id": 1}',
    b'{"jsonrpc": "2.0", "id": 1, "method": 42}',
    b'{"jsonrpc": "2.0", "id": {"x": 1}, "method": "ping"}',
    b'{"jsonrpc": "2.0", "id": 1, "method": "ping", "params": "nope"}',
    b"42",
    b'"a string"',
    b"null",
    b"[1, 2]",
]


async def test_valid_json_that_is_not_jsonrpc_is_an_invalid_request(backend: FixtureProcess) -> None:
    async with router_with_clients(backend) as setup:
        sid, sse_sid = await session_ids(setup)
        http = setup.http
        session_headers = {**ACCEPT, "mcp-session-id": sid, "mcp-protocol-version": "2025-11-25"}
        for body in NOT_JSONRPC:
            assert_jsonrpc_error(await http.post("/mcp", content=body, headers=ACCEPT), 400, -32600, body)
            assert_jsonrpc_error(await http.post("/mcp", content=body, headers=session_headers), 400, -32600, body)
            resp = await http.post("/messages/", params={"session_id": sse_sid}, content=body, headers=ACCEPT)
            assert_jsonrpc_error(resp, 400, -32600, body)


async def test_request_without_session_or_envelope_is_rejected(backend: FixtureProcess) -> None:
    async with router_with_clients(backend) as setup:
        # A valid handshake-era request, but no Mcp-Session-Id: the client must initialize first.
        resp = await setup.http.post("/mcp", json={"jsonrpc": "2.0", "id": 7, "method": "tools/list"}, headers=ACCEPT)
        assert resp.status_code == 400, resp.text
        assert resp.json()["error"]["code"] == -32600
        assert resp.json()["id"] == 7


# ------------------------------------------------------------------------------ unknown targets


async def test_unknown_backend_is_404_naming_it(backend: FixtureProcess) -> None:
    async with router_with_clients(backend) as setup:
        http = setup.http
        resp = await http.post("/mcp/nope", json=INIT, headers=ACCEPT)
        assert resp.status_code == 404, resp.text
        assert "nope" in resp.json()["error"]["message"]
        assert resp.json()["id"] == 1

        # The modern era (no session, _meta envelope) reports it the same way.
        modern = {
            "jsonrpc": "2.0",
            "id": 2,
            "method": "tools/list",
            "params": {
                "_meta": {
                    "io.modelcontextprotocol/protocolVersion": "2026-07-28",
                    "io.modelcontextprotocol/clientInfo": {"name": "t", "version": "1"},
                    "io.modelcontextprotocol/clientCapabilities": {},
                }
            },
        }
        headers = {**ACCEPT, "mcp-protocol-version": "2026-07-28", "mcp-method": "tools/list"}
        resp = await http.post("/mcp/nope", json=modern, headers=headers)
        assert resp.status_code == 404, resp.text
        assert "nope" in resp.json()["error"]["message"]

        resp = await http.get("/sse/nope", headers={"accept": "text/event-stream"})
        assert resp.status_code == 404, resp.text
        assert "nope" in resp.text

        # No session was created for the unknown backend.
        assert {s["backend"] for s in await setup.sessions()} == {"alpha"}


async def test_unknown_session_id_is_404(backend: FixtureProcess) -> None:
    async with router_with_clients(backend) as setup:
        http = setup.http
        headers = {**ACCEPT, "mcp-session-id": "0" * 32, "mcp-protocol-version": "2025-11-25"}
        ping = {"jsonrpc": "2.0", "id": 3, "method": "ping"}
        resp = await http.post("/mcp", json=ping, headers=headers)
        assert resp.status_code == 404, resp.text
        assert resp.json()["error"]["code"] == -32600
        assert (await http.post("/mcp/alpha", json=ping, headers=headers)).status_code == 404
        get_headers = {"accept": "text/event-stream", "mcp-session-id": "0" * 32}
        assert (await http.get("/mcp", headers=get_headers)).status_code == 404
        assert (await http.delete("/mcp", headers=headers)).status_code == 404
        resp = await http.post("/messages/", params={"session_id": "f" * 32}, json=ping, headers=ACCEPT)
        assert resp.status_code == 404, resp.text
        resp = await http.post("/messages/", json=ping, headers=ACCEPT)
        assert resp.status_code == 400, resp.text


# ------------------------------------------------------------------------------ size limit


async def test_oversized_body_is_413(backend: FixtureProcess) -> None:
    async with router_with_clients(backend) as setup:
        sid, sse_sid = await session_ids(setup)
        http = setup.http
        big = {
            "jsonrpc": "2.0",
            "id": 9,
            "method": "tools/call",
            "params": {"name": "echo", "arguments": {"text": "x" * (MAX_BODY + 10)}},
        }
        session_headers = {**ACCEPT, "mcp-session-id": sid, "mcp-protocol-version": "2025-11-25"}

        resp = await http.post("/mcp", json=big, headers=session_headers)
        assert resp.status_code == 413, resp.text
        assert str(MAX_BODY) in resp.json()["error"]["message"]
        assert (await http.post("/mcp", json=big, headers=ACCEPT)).status_code == 413
        resp = await http.post("/messages/", params={"session_id": sse_sid}, json=big, headers=ACCEPT)
        assert resp.status_code == 413, resp.text

        # Without a Content-Length (chunked upload) the limit holds as well.
        async def chunks() -> AsyncIterator[bytes]:
            for _ in range(MAX_BODY // 100 + 5):
                yield b" " * 100

        resp = await http.post("/mcp", content=chunks(), headers=session_headers)
        assert resp.status_code == 413, resp.text

        # The same call with a small argument goes through on that session.
        result = await setup.client.call_tool("echo", {"text": "x" * 100})
        assert not result.is_error


# ------------------------------------------------------------------------------ DNS rebinding


async def test_foreign_host_or_origin_is_403(backend: FixtureProcess) -> None:
    async with router_with_clients(backend) as setup:
        http = setup.http
        port = setup.router.port
        sid, _ = await session_ids(setup)
        session_headers = {**ACCEPT, "mcp-session-id": sid, "mcp-protocol-version": "2025-11-25"}
        ping = {"jsonrpc": "2.0", "id": 4, "method": "ping"}
        for bad in ({"host": "evil.example"}, {"host": f"evil.example:{port}"}, {"origin": "http://evil.example"}):
            case = str(bad)
            assert (await http.post("/mcp", json=INIT, headers={**ACCEPT, **bad})).status_code == 403, case
            resp = await http.post("/mcp", json=ping, headers={**session_headers, **bad})
            assert resp.status_code == 403, case
            resp = await http.get("/sse", headers={"accept": "text/event-stream", **bad})
            assert resp.status_code == 403, case
            assert (await http.get("/status", headers=bad)).status_code == 403, case
            assert (await http.get("/events", headers=bad)).status_code == 403, case
            # A page on a foreign site must not be able to add (or remove) a backend either.
            resp = await http.post("/backends", json={"name": "evil", "url": "http://127.0.0.1:1/mcp"}, headers=bad)
            assert resp.status_code == 403, case
            resp = await http.delete("/backends", params={"name": "alpha"}, headers=bad)
            assert resp.status_code == 403, case
        # The 403 names the reason.
        resp = await http.get("/status", headers={"origin": "http://evil.example"})
        assert "Origin" in resp.text
        resp = await http.get("/status", headers={"host": "evil.example"})
        assert "Host" in resp.text

        # Local names are fine.
        for ok in (
            {"host": f"localhost:{port}"},
            {"host": f"127.0.0.1:{port}"},
            {"origin": f"http://localhost:{port}"},
            {"origin": f"http://127.0.0.1:{port}"},
        ):
            assert (await http.get("/status", headers=ok)).status_code == 200, ok
        assert [b["name"] for b in (await http.get("/backends")).json()] == ["alpha"]


# ------------------------------------------------------------------------------ a garbage backend

GARBAGE_SERVER = """\
import sys
print("hello, I am not JSON-RPC", flush=True)
print("{broken json", flush=True)
print('{"jsonrpc": "1.0", "id": 1}', flush=True)
print("garbage server started", file=sys.stderr, flush=True)
if "--exit" in sys.argv:
    sys.exit(3)
for _ in sys.stdin:  # read every request and never answer
    pass
"""


async def test_backend_writing_garbage_to_stdout(backend: FixtureProcess, tmp_path: Path) -> None:
    script = tmp_path / "garbage_server.py"
    script.write_text(GARBAGE_SERVER)
    silent = shlex.join([sys.executable, str(script)])
    crashing = shlex.join([sys.executable, str(script), "--exit"])
    async with router_with_clients(backend, "-b", f"junk={silent}", "-b", f"crashy={crashing}", "--hold", "1") as setup:
        http = setup.http

        async def log_mentions_garbage(name: str) -> list[str] | None:
            lines: list[str] = (await http.get(f"/backends/{name}/log")).json()["lines"]
            return lines if any("non-JSON" in line for line in lines) else None

        lines = await wait_for(lambda: log_mentions_garbage("junk"), 10, message="junk's log to show the garbage")
        assert any("hello, I am not JSON-RPC" in line for line in lines), lines
        assert any("garbage server started" in line for line in lines), lines
        await wait_for(lambda: log_mentions_garbage("crashy"), 10, message="crashy's log to show the garbage")

        # Neither is ever "up"; the one that exits is reported down (or failed) with a reason.
        junk = (await http.get("/backends/junk")).json()
        assert junk["state"] != "up"

        async def crashy_down() -> dict[str, Any] | None:
            # Its garbage marks it down first; its exit, a moment later, must be what the reason says.
            snap: dict[str, Any] = (await http.get("/backends/crashy")).json()
            exited = "exited with code 3" in (snap["reason"] or "")
            return snap if snap["state"] in ("down", "failed") and exited else None

        await wait_for(crashy_down, 10, message="crashy to be reported down with its exit code")

        await setup.check_clients("alpha unaffected by the garbage backends")

        # A client of the garbage backend gets a JSON-RPC error naming it after the hold (1 s),
        # rather than a hang or garbage.
        resp = await http.post("/mcp/junk", json=INIT, headers=ACCEPT, timeout=15.0)
        text = resp.text
        assert "junk" in text, text
        assert '"error"' in text, text

        assert (await http.get("/status")).status_code == 200
        await setup.check_clients("alpha after the garbage backend's client")
