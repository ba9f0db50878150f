"""The management API (GET /status, /backends, /sessions, /events, POST/DELETE /backends, control
routes) against a real router process, with real SDK fixture backends and SDK clients.

Raw management requests go through httpx; MCP traffic goes through the SDK client, the way a user's
client would reach the router.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shlex
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import mcp_types as types
import pytest
from mcp.client import Client
from mcp.shared.exceptions import MCPError

from tests.support.clients import ClientTransport, connect
from tests.support.procs import (
    FixtureProcess,
    Router,
    initialize_request,
    run_fixture,
    run_fixture_sync,
    run_router,
    stdio_command,
    wait_for,
)

HANDSHAKE: ClientTransport = "streamable-handshake"


@pytest.fixture(scope="module")
def backend_a() -> Any:
    # One HTTP fixture for the whole module: it outlives each test's router, which is what a
    # developer's long-running server does too.
    with run_fixture_sync("streamable", name="alpha") as fx:
        yield fx


def text_of(result: types.CallToolResult) -> str:
    assert not result.is_error, result
    block = result.content[0]
    assert isinstance(block, types.TextContent)
    return block.text


async def echo(client: Client, text: str) -> None:
    assert text_of(await client.call_tool("echo", {"text": text})) == text


def whoami_pid(result: types.CallToolResult) -> int:
    """The pid from the fixture's whoami answer ("pid=N variant=vX name=...")."""
    return int(text_of(result).split()[0].removeprefix("pid="))


def backend_of(status: list[dict[str, Any]], name: str) -> dict[str, Any] | None:
    return next((b for b in status if b["name"] == name), None)


async def wait_state(http: httpx.AsyncClient, name: str, state: str, timeout: float = 15.0) -> dict[str, Any]:
    """Poll GET /backends/{name} until the backend reaches `state`; return its snapshot."""

    async def reached() -> dict[str, Any] | None:
        snap: dict[str, Any] = (await http.get(f"/backends/{name}")).json()
        return snap if snap.get("state") == state else None

    result: dict[str, Any] = await wait_for(reached, timeout, message=f"backend {name!r} to be {state!r}")
    return result


@contextlib.asynccontextmanager
async def admin(router: Router) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=router.url, timeout=10.0) as http:
        yield http


@dataclass
class EventReader:
    """Reads GET /events (SSE) in a background task and keeps every parsed event."""

    events: list[dict[str, Any]] = field(default_factory=list)

    def find(self, **match: Any) -> dict[str, Any] | None:
        for ev in self.events:
            if all(ev.get(k) == v for k, v in match.items()):
                return ev
        return None


@contextlib.asynccontextmanager
async def read_events(router: Router, query: str = "") -> AsyncIterator[EventReader]:
    reader = EventReader()
    opened = asyncio.Event()

    async def pump() -> None:
        # A read timeout well beyond the router's 15 s keepalive: the stream itself never idles out.
        timeout = httpx.Timeout(10.0, read=30.0)
        async with (
            httpx.AsyncClient(base_url=router.url, timeout=timeout) as http,
            http.stream("GET", f"/events{query}") as resp,
        ):
            assert resp.status_code == 200
            assert resp.headers["content-type"].startswith("text/event-stream")
            opened.set()
            event_name: str | None = None
            data: list[str] = []
            async for line in resp.aiter_lines():
                if line.startswith("event:"):
                    event_name = line[6:].strip()
                elif line.startswith("data:"):
                    data.append(line[5:].lstrip())
                elif line == "" and data:
                    parsed = json.loads("\n".join(data))
                    parsed.setdefault("_event", event_name)
                    reader.events.append(parsed)
                    event_name, data = None, []

    task = asyncio.create_task(pump())
    try:
        # The first frame is the "hello" snapshot: once it is here, later events are not missed.
        await wait_for(lambda: task.done() or reader.find(type="hello"), 10, message="the /events hello frame")
        if task.done():
            task.result()  # surface the stream's failure
        yield reader
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, httpx.HTTPError):
            await task


# ------------------------------------------------------------------------------ status and listing


async def test_status_and_backends_describe_each_backend(backend_a: FixtureProcess) -> None:
    stdio = stdio_command(name="stdio-one")
    async with run_router("-b", f"alpha={backend_a.url}", "-b", f"st={stdio}") as r, admin(r) as http:
        await wait_state(http, "alpha", "up")
        await wait_state(http, "st", "up")

        resp = await http.get("/status")
        assert resp.status_code == 200
        assert resp.headers["content-type"].startswith("application/json")
        status = resp.json()
        assert status["router"] == "mcp-dev-router"
        assert status["url"] == r.url
        assert status["default"] == "alpha"
        assert status["sessions"] == 0
        alpha = backend_of(status["backends"], "alpha")
        st = backend_of(status["backends"], "st")
        assert alpha is not None and st is not None
        assert alpha["state"] == "up"
        assert alpha["transport"] == "streamable-http"
        assert alpha["target"] == backend_a.url
        assert alpha["kind"] == "http"
        assert alpha["default"] is True
        assert st["state"] == "up"
        assert st["transport"] == "stdio"
        assert st["kind"] == "stdio"
        assert st["target"] == stdio
        assert len(st["pids"]) == 1
        # The backend's catalog is known from the router's own probe.
        assert {"echo", "whoami"} <= set(alpha["tools"])
        assert {"echo", "whoami"} <= set(st["tools"])

        listed = (await http.get("/backends")).json()
        assert [b["name"] for b in listed] == ["alpha", "st"]
        listed_st = backend_of(listed, "st")
        assert listed_st is not None
        volatile = {"since", "last_probe", "latency_ms"}  # probes may have run between the two requests
        assert {k: v for k, v in listed_st.items() if k not in volatile} == {
            k: v for k, v in st.items() if k not in volatile
        }

        one = await http.get("/backends/st")
        assert one.status_code == 200 and one.json()["name"] == "st"
        missing = await http.get("/backends/ghost")
        assert missing.status_code == 404
        assert "ghost" in missing.json()["error"]


# ------------------------------------------------------------------------------ add and remove


async def test_add_http_and_stdio_backends_at_runtime_while_a_client_keeps_working(
    backend_a: FixtureProcess,
) -> None:
    async with (
        run_fixture("streamable", name="beta") as beta,
        run_router("-b", f"alpha={backend_a.url}") as r,
        admin(r) as http,
        connect(r.mcp_url("alpha"), HANDSHAKE) as client,
    ):
        await echo(client, "before")

        resp = await http.post("/backends", json={"name": "web", "url": beta.url})
        assert resp.status_code == 201, resp.text
        assert resp.json()["name"] == "web" and resp.json()["url"] == beta.url
        await echo(client, "after adding web")

        argv = shlex.split(stdio_command(name="gamma"))
        resp = await http.post("/backends", json={"name": "st", "command": argv[0], "args": argv[1:]})
        assert resp.status_code == 201, resp.text
        assert resp.json()["kind"] == "stdio"
        # A call while the new stdio backend is still starting must not be disturbed by it.
        await echo(client, "while st starts")

        web = await wait_state(http, "web", "up")
        st = await wait_state(http, "st", "up")
        assert web["transport"] == "streamable-http"
        assert st["transport"] == "stdio" and st["pids"]
        names = [b["name"] for b in (await http.get("/backends")).json()]
        assert names == ["alpha", "web", "st"]

        async with connect(r.mcp_url("web"), HANDSHAKE) as web_client:
            assert "name=beta" in text_of(await web_client.call_tool("whoami", {}))
        async with connect(r.mcp_url("st"), HANDSHAKE) as st_client:
            assert "name=gamma" in text_of(await st_client.call_tool("whoami", {}))
        await echo(client, "after using the new backends")
        assert "name=alpha" in text_of(await client.call_tool("whoami", {}))


async def test_delete_backend_ends_its_sessions_and_spares_the_others(backend_a: FixtureProcess) -> None:
    async with (
        run_fixture("streamable", name="beta") as beta,
        run_router("-b", f"alpha={backend_a.url}", "-b", f"web={beta.url}") as r,
        admin(r) as http,
        connect(r.mcp_url("alpha"), HANDSHAKE) as client,
    ):
        await wait_state(http, "web", "up")
        # A raw handshake session on the backend that is about to go, to see the exact HTTP answer.
        init = initialize_request("raw-admin-test")
        accept = {"accept": "application/json, text/event-stream"}
        resp = await http.post("/mcp/web", json=init, headers=accept)
        assert resp.status_code == 200, resp.text
        sid = resp.headers["mcp-session-id"]
        session_headers = {**accept, "mcp-session-id": sid, "mcp-protocol-version": "2025-11-25"}
        note = {"jsonrpc": "2.0", "method": "notifications/initialized"}
        assert (await http.post("/mcp/web", json=note, headers=session_headers)).status_code == 202

        async with connect(r.mcp_url("web"), HANDSHAKE, terminate_on_close=False) as doomed:
            await echo(doomed, "web works")
            await echo(client, "alpha works")

            resp = await http.delete("/backends", params={"name": "web"})
            assert resp.status_code == 200, resp.text
            assert resp.json()["removed"] == "web" and isinstance(resp.json()["seq"], int)
            await echo(client, "alpha still works after the removal")

            # The removed backend's clients are told their session is gone: 404 on the next request.
            ping = {"jsonrpc": "2.0", "id": 2, "method": "ping"}
            resp = await http.post("/mcp/web", json=ping, headers=session_headers)
            assert resp.status_code == 404, resp.text
            assert resp.json()["error"]["code"] == -32600
            # The SDK client maps that 404 to "Session terminated".
            with pytest.raises(MCPError):
                await doomed.call_tool("echo", {"text": "gone"})

        names = [b["name"] for b in (await http.get("/backends")).json()]
        assert names == ["alpha"]
        sessions = (await http.get("/sessions")).json()
        assert {s["backend"] for s in sessions} == {"alpha"}
        # A new client for the removed name is refused with a 404 that names it.
        resp = await http.post("/mcp/web", json=init, headers=accept)
        assert resp.status_code == 404
        assert "web" in resp.json()["error"]["message"]

        # The name is free again: re-adding it gives a working backend.
        resp = await http.post("/backends", json={"name": "web", "url": beta.url})
        assert resp.status_code == 201, resp.text
        await wait_state(http, "web", "up")
        async with connect(r.mcp_url("web"), HANDSHAKE) as again:
            assert "name=beta" in text_of(await again.call_tool("whoami", {}))
        await echo(client, "alpha at the end")


async def test_post_and_delete_errors(backend_a: FixtureProcess) -> None:
    async with run_router("-b", f"alpha={backend_a.url}") as r, admin(r) as http:
        bad_json = await http.post("/backends", content=b"{not json", headers={"content-type": "application/json"})
        assert bad_json.status_code == 400
        assert "JSON" in bad_json.json()["error"]

        not_object = await http.post("/backends", json=["alpha"])
        assert not_object.status_code == 400
        assert bad_json.json()["error"]

        no_target = await http.post("/backends", json={"name": "x"})
        assert no_target.status_code == 400
        message = no_target.json()["error"]
        assert "url" in message and "command" in message

        no_name = await http.post("/backends", json={"url": backend_a.url})
        assert no_name.status_code == 400
        assert "name" in no_name.json()["error"]

        both = await http.post("/backends", json={"name": "x", "url": backend_a.url, "command": "python"})
        assert both.status_code == 400

        bad_url = await http.post("/backends", json={"name": "x", "url": "ftp://example"})
        assert bad_url.status_code == 400
        assert "ftp://example" in bad_url.json()["error"]

        bad_name = await http.post("/backends", json={"name": "has space", "url": backend_a.url})
        assert bad_name.status_code == 400

        duplicate = await http.post("/backends", json={"name": "alpha", "url": backend_a.url})
        assert duplicate.status_code == 409
        assert "alpha" in duplicate.json()["error"]

        unknown = await http.delete("/backends", params={"name": "nosuch"})
        assert unknown.status_code == 404
        assert "nosuch" in unknown.json()["error"]

        unnamed = await http.delete("/backends")
        assert unnamed.status_code == 400

        for action in ("restart", "enable", "disable"):
            resp = await http.post(f"/backends/nosuch/{action}")
            assert resp.status_code == 404, action
            assert "nosuch" in resp.json()["error"]
        assert (await http.get("/backends/nosuch/health")).status_code == 404

        # None of the rejected requests changed anything.
        listed = (await http.get("/backends")).json()
        assert [b["name"] for b in listed] == ["alpha"]
        assert listed[0]["url"] == backend_a.url


async def test_strict_validation_of_types_and_names(backend_a: FixtureProcess) -> None:
    async with run_router("-b", f"alpha={backend_a.url}") as r, admin(r) as http:
        # A string is not a flag: "false" would read as true.
        for enabled in ("false", 0, None, [False]):
            resp = await http.post("/backends", json={"name": "x", "url": backend_a.url, "enabled": enabled})
            assert resp.status_code == 400, (enabled, resp.text)
            assert '"enabled" must be true or false' in resp.json()["error"]
        for name in (".", "..", ".hidden", "-x", "a/b", "a b", "é", "a" * 65, 7, ["x"]):
            resp = await http.post("/backends", json={"name": name, "url": backend_a.url})
            assert resp.status_code == 400, (name, resp.text)
            assert "name" in resp.json()["error"]
        for spec in (
            {"name": "x", "url": 8080},
            {"name": "x", "command": "python", "args": "-m server"},
            {"name": "x", "command": "python", "env": {"A": 1}},
            {"name": "x", "command": "python 'unbalanced"},
        ):
            resp = await http.post("/backends", json=spec)
            assert resp.status_code == 400, (spec, resp.text)

        # Bad input is quoted by a short prefix, never echoed whole.
        huge = "n" * 10_000
        refused = [
            await http.post("/backends", json={"name": huge, "url": backend_a.url}),
            await http.post("/backends", json={"name": "x", "url": "ftp://" + huge}),
            await http.delete("/backends", params={"name": huge}),
            await http.post(f"/backends/{huge}/restart"),
            await http.get(f"/backends/{huge}"),
            await http.get("/events", params={"types": huge}),
        ]
        for resp in refused:
            assert resp.status_code in (400, 404), resp.text[:200]
            error = resp.json()["error"]
            assert "nnnnnnnnnn" in error and len(error) < 400, error[:500]
        accept = {"accept": "application/json, text/event-stream"}
        resp = await http.post(f"/mcp/{huge}", json=initialize_request("long-name"), headers=accept)
        assert resp.status_code == 404 and len(resp.text) < 500, resp.text[:200]

        # What is valid still is: a dotted name, and a real flag.
        resp = await http.post("/backends", json={"name": "v1.2_x-y", "url": backend_a.url, "enabled": False})
        assert resp.status_code == 201, resp.text
        assert resp.json()["enabled"] is False and resp.json()["state"] == "disabled"
        assert [b["name"] for b in (await http.get("/backends")).json()] == ["alpha", "v1.2_x-y"]


# ------------------------------------------------------------------------------ control


@pytest.mark.parametrize("name", ["alpha", "st"])
async def test_disable_then_enable(backend_a: FixtureProcess, name: str) -> None:
    async with (
        run_router("-b", f"alpha={backend_a.url}", "-b", f"st={stdio_command(name='stdio-ctl')}") as r,
        admin(r) as http,
    ):
        await wait_state(http, name, "up")
        resp = await http.post(f"/backends/{name}/disable")
        assert resp.status_code == 200, resp.text
        assert resp.json()["state"] == "disabled"
        assert resp.json()["enabled"] is False
        assert (await http.get(f"/backends/{name}")).json()["state"] == "disabled"

        resp = await http.post(f"/backends/{name}/enable")
        assert resp.status_code == 200, resp.text
        assert resp.json()["enabled"] is True
        await wait_state(http, name, "up")  # a stdio process starts again: as long as at startup
        async with connect(r.mcp_url(name), HANDSHAKE) as client:
            await echo(client, "enabled again")


async def test_restart(backend_a: FixtureProcess) -> None:
    async with (
        run_router("-b", f"alpha={backend_a.url}", "-b", f"st={stdio_command(name='stdio-ctl')}") as r,
        admin(r) as http,
    ):
        await wait_state(http, "alpha", "up")
        await wait_state(http, "st", "up")
        async with connect(r.mcp_url("st"), HANDSHAKE) as client:
            # Each client session of a stdio backend has a process of its own, listed in "pids".
            old_pid = whoami_pid(await client.call_tool("whoami", {}))
            before = (await http.get("/backends/st")).json()
            assert old_pid in before["pids"]

            resp = await http.post("/backends/st/restart")
            assert resp.status_code == 200, resp.text
            body = resp.json()
            assert body["restarted"] is True
            assert body["backend"]["restarts"] == before["restarts"] + 1
            await wait_state(http, "st", "up")
            # The connected client keeps its session and lands on a new process.
            new_pid = whoami_pid(await client.call_tool("whoami", {}))
            assert new_pid != old_pid
            after = (await http.get("/backends/st")).json()
            assert new_pid in after["pids"] and old_pid not in after["pids"]

        resp = await http.post("/backends/alpha/restart")
        assert resp.status_code == 200, resp.text
        assert resp.json()["restarted"] is True
        assert resp.json()["backend"]["restarts"] == 1
        await wait_state(http, "alpha", "up")


# ------------------------------------------------------------------------------ sessions, health


async def test_sessions_list_connected_clients(backend_a: FixtureProcess) -> None:
    async with run_router("-b", f"alpha={backend_a.url}") as r, admin(r) as http:
        assert (await http.get("/sessions")).json() == []
        async with connect(r.mcp_url("alpha"), HANDSHAKE, protocol_version="2025-06-18") as client:
            await echo(client, "hello")
            sessions = (await http.get("/sessions")).json()
            assert len(sessions) == 1
            s = sessions[0]
            assert s["backend"] == "alpha"
            assert s["era"] == "handshake"
            assert s["protocol_version"] == "2025-06-18"
            assert s["client"]["name"] == "mcp"  # the SDK client's clientInfo.name
            assert s["client"]["version"]
            assert (await http.get("/status")).json()["sessions"] == 1
            assert (await http.get("/backends/alpha")).json()["sessions"] == 1
        # The client's DELETE on close ends the session.
        await wait_for(lambda: _no_sessions(http), 5, message="the session to disappear from GET /sessions after close")


async def _no_sessions(http: httpx.AsyncClient) -> bool:
    sessions: list[Any] = (await http.get("/sessions")).json()
    return sessions == []


async def test_health_has_samples(backend_a: FixtureProcess) -> None:
    async with (
        run_router("-b", f"alpha={backend_a.url}", "-b", f"st={stdio_command()}", "--health-interval", "0.2") as r,
        admin(r) as http,
    ):
        for name in ("alpha", "st"):
            await wait_state(http, name, "up")

            async def two_samples(name: str = name) -> dict[str, Any] | None:
                h: dict[str, Any] = (await http.get(f"/backends/{name}/health")).json()
                return h if len(h["samples"]) >= 2 else None

            health = await wait_for(two_samples, 10, message=f"two health samples for {name}")
            assert health["backend"] == name
            assert health["state"] == "up"
            for sample in health["samples"]:
                assert set(sample) >= {"ts", "ok", "latency_ms"}
            assert health["samples"][-1]["ok"] is True
            assert health["samples"][-1]["latency_ms"] is not None
            ts = [s["ts"] for s in health["samples"]]
            assert ts == sorted(ts)


# ------------------------------------------------------------------------------ live events


# The modern era's call takes the hot path (no task, the answer written from the backend
# connection's callback): its events must be the same as the full path's.
@pytest.mark.parametrize("era", [HANDSHAKE, "streamable-modern"])
async def test_events_stream_traffic_and_backend_state(backend_a: FixtureProcess, era: ClientTransport) -> None:
    async with (
        run_router("-b", f"alpha={backend_a.url}") as r,
        admin(r) as http,
        read_events(r) as events,
    ):
        hello = events.find(type="hello")
        assert hello is not None and hello["router"] == "mcp-dev-router"
        await wait_state(http, "alpha", "up")
        async with connect(r.mcp_url("alpha"), era) as client:
            await client.call_tool("echo", {"text": "traced"})

            def call_traffic() -> tuple[dict[str, Any], dict[str, Any]] | None:
                request = next(
                    (
                        e
                        for e in events.events
                        if e["type"] == "traffic"
                        and e["method"] == "tools/call"
                        and e["direction"] == "client->backend"
                    ),
                    None,
                )
                if request is None:
                    return None
                response = next(
                    (
                        e
                        for e in events.events
                        if e["type"] == "traffic"
                        and e["direction"] == "backend->client"
                        and e["msg_kind"] == "response"
                        and e["msg_id"] == request["msg_id"]
                        and e["session"] == request["session"]
                    ),
                    None,
                )
                return (request, response) if response is not None else None

            request, response = await wait_for(call_traffic, 10, message="traffic events for tools/call")
            assert request["backend"] == "alpha" and request["msg_kind"] == "request"
            assert request["_event"] == "traffic"
            assert response["latency_ms"] is not None and response["latency_ms"] > 0
            assert response["method"] == "tools/call" and not response.get("resent")

        assert (await http.post("/backends/alpha/disable")).status_code == 200
        state = await wait_for(
            lambda: events.find(type="backend_state", backend="alpha", state="disabled"),
            10,
            message="a backend_state event for the disable",
        )
        assert state["_event"] == "backend_state"
        assert (await http.post("/backends/alpha/enable")).status_code == 200
        await wait_for(
            lambda: events.find(type="backend_state", backend="alpha", state="up", previous="starting"),
            10,
            message="a backend_state event for the enable",
        )


async def test_events_type_filter(backend_a: FixtureProcess) -> None:
    async with run_router("-b", f"alpha={backend_a.url}") as r, admin(r) as http:
        bad = await http.get("/events", params={"types": "traffic,bogus"})
        assert bad.status_code == 400
        assert "bogus" in bad.json()["error"]
        await wait_state(http, "alpha", "up")
        async with read_events(r, "?types=backend_state") as events:
            async with connect(r.mcp_url("alpha"), HANDSHAKE) as client:
                await echo(client, "filtered out")
            assert (await http.post("/backends/alpha/disable")).status_code == 200
            await wait_for(lambda: events.find(type="backend_state"), 10, message="a backend_state event")
            assert {e["type"] for e in events.events} == {"hello", "backend_state"}


async def test_token_guards_the_management_api_only(backend_a: FixtureProcess) -> None:
    async with run_router("-b", f"alpha={backend_a.url}", "--token", "s3cret") as r, admin(r) as http:
        for method, path in (("GET", "/status"), ("GET", "/backends"), ("GET", "/sessions"), ("POST", "/backends")):
            resp = await http.request(method, path, json={"name": "x", "url": backend_a.url})
            assert resp.status_code == 401, (method, path)
        wrong = await http.get("/status", headers={"authorization": "Bearer nope"})
        assert wrong.status_code == 401
        auth = {"authorization": "Bearer s3cret"}
        assert (await http.get("/status", headers=auth)).status_code == 200
        async with httpx.AsyncClient(base_url=r.url, headers=auth) as authed:
            await wait_state(authed, "alpha", "up")
        # The MCP routes are for clients, which know nothing of the router's token.
        async with connect(r.mcp_url("alpha"), HANDSHAKE) as client:
            await echo(client, "no token needed")
        assert [b["name"] for b in (await http.get("/backends", headers=auth)).json()] == ["alpha"]


def _own_lan_address() -> str | None:
    """This machine's address on its default route, if it has one (a UDP connect sends nothing)."""
    with contextlib.suppress(OSError), socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.connect(("192.0.2.1", 9))  # TEST-NET-1: only selects a route, no packet leaves
        address: str = sock.getsockname()[0]
        return None if address.startswith("127.") or address == "0.0.0.0" else address
    return None


async def test_token_guards_every_route_beyond_loopback(backend_a: FixtureProcess) -> None:
    """Bound to 0.0.0.0 with a token, reached as a LAN client would (its Host is the machine's name):
    the token opens every route, its absence closes every one with a 401."""
    st = stdio_command(name="lan-stdio")
    args = ("-b", f"alpha={backend_a.url}", "-b", f"st={st}", "--host", "0.0.0.0", "--token", "T0k")
    async with run_router(*args, "--allowed-host", "devbox.lan", "--allowed-host", "other.lan") as r:
        base = f"http://127.0.0.1:{r.port}"  # loopback only: the test sends nothing off the machine
        lan = {"host": f"devbox.lan:{r.port}"}
        auth = {**lan, "authorization": "Bearer T0k"}
        accept = {"accept": "application/json, text/event-stream"}
        init = initialize_request("lan-client")
        routes: list[tuple[str, str, Any]] = [
            ("POST", "/mcp", init),
            ("POST", "/mcp/alpha", init),
            ("POST", "/mcp/st", init),
            ("GET", "/sse", None),
            ("GET", "/sse/alpha", None),
            ("POST", "/messages/?session_id=abc", {"jsonrpc": "2.0", "id": 1, "method": "ping"}),
            ("GET", "/", None),
            ("GET", "/status", None),
            ("GET", "/backends", None),
            ("POST", "/backends", {"name": "intruder", "command": "touch", "args": ["/tmp/pwned"]}),
            ("DELETE", "/backends?name=alpha", None),
            ("GET", "/backends/alpha", None),
            ("GET", "/backends/alpha/health", None),
            ("GET", "/backends/st/log", None),
            ("POST", "/backends/st/restart", None),
            ("POST", "/backends/st/disable", None),
            ("POST", "/backends/st/enable", None),
            ("GET", "/sessions", None),
            ("GET", "/events", None),
        ]
        async with httpx.AsyncClient(base_url=base, timeout=10.0) as http:
            for headers in (lan, {**lan, "authorization": "Bearer wrong"}, {**lan, "authorization": "T0k"}):
                for method, path, body in routes:
                    resp = await http.request(method, path, json=body, headers={**headers, **accept})
                    assert resp.status_code == 401, (method, path, headers, resp.text)
                    assert resp.headers["www-authenticate"].startswith("Bearer")
                    error = resp.json()["error"]
                    assert error["code"] == -32600 and "token" in error["message"], error
            # Nothing above reached the router's state.
            backends = (await http.get("/backends", headers=auth)).json()
            assert [b["name"] for b in backends] == ["alpha", "st"]
            async with httpx.AsyncClient(base_url=base, headers=auth) as authed:
                await wait_state(authed, "st", "up")

            # A Host that is neither this machine's address nor an --allowed-host name: rebinding.
            foreign = await http.get("/status", headers={**auth, "host": f"evil.example:{r.port}"})
            assert foreign.status_code == 403
            for host in (f"other.lan:{r.port}", f"127.0.0.1:{r.port}", _own_lan_address()):
                if host is not None:
                    resp = await http.get("/status", headers={**auth, "host": host})
                    assert resp.status_code == 200, (host, resp.text)

        # The SDK client, as a LAN client: Host devbox.lan, with the token.
        for transport in ("streamable-handshake", "streamable-modern", "sse"):
            url = f"{base}/sse/st" if transport == "sse" else f"{base}/mcp/st"
            async with connect(url, transport, headers=auth) as client:
                assert "name=lan-stdio" in text_of(await client.call_tool("whoami", {}))
                await echo(client, f"over {transport} with the token")
        async with connect(f"{base}/mcp/alpha", HANDSHAKE, headers=auth) as client:
            await echo(client, "alpha too")
        # Without it the SDK client gets no session at all.
        with pytest.raises(Exception) as refused:
            async with connect(f"{base}/mcp/st", HANDSHAKE, headers=lan) as client:
                await client.call_tool("echo", {"text": "no token"})
        # (The SDK wraps the router's 401 in task-group exceptions; its message is the router's own.)
        assert "Unauthorized: this router is reachable beyond loopback" in repr(refused.value), refused.value
