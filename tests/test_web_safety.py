"""Nothing on a web page can start a process: the requests a browser sends, against a real router.

A page on another origin (another localhost port included) sends `Origin`; a "simple" cross-origin
POST (text/plain, no preflight) is what an attacker's page can send without asking. The routes
that change state refuse both; scripts without an Origin work as before. MCP routes answer CORS
only for `--allow-origin`.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.support.procs import initialize_request, run_fixture, run_router, stdio_command, wait_for

ACCEPT = {"accept": "application/json, text/event-stream"}
EVIL = "http://localhost:9999"
STDIO_SPEC = {"name": "pwned", "command": "sh", "args": ["-c", "touch /tmp/should-never-exist"]}


def text_plain(spec: dict[str, Any]) -> bytes:
    import json

    return json.dumps(spec).encode()


@pytest.mark.parametrize("origin", [EVIL, "http://127.0.0.1:1", "null", "https://evil.example"])
async def test_a_page_on_another_origin_cannot_add_a_backend(origin: str) -> None:
    async with run_router() as r, httpx.AsyncClient(base_url=r.url) as http:
        # The simple request a page can send with fetch(…, {mode: "no-cors"}): no preflight.
        simple = await http.post(
            "/backends", content=text_plain(STDIO_SPEC), headers={"origin": origin, "content-type": "text/plain"}
        )
        assert simple.status_code == 403, simple.text
        as_json = await http.post("/backends", json=STDIO_SPEC, headers={"origin": origin})
        assert as_json.status_code == 403
        assert (await http.get("/backends")).json() == []


async def test_state_changing_routes_refuse_a_foreign_origin_and_name_the_reason() -> None:
    async with run_fixture("streamable", name="safe") as fx, run_router("-b", f"a={fx.url}") as r:
        async with httpx.AsyncClient(base_url=r.url) as http:
            await wait_for(lambda: _state(http, "a", "up"), 20, message="a up")
            init = await http.post("/mcp/a", json=initialize_request("page"), headers=ACCEPT)
            sid = init.headers["mcp-session-id"]
            foreign = {"origin": EVIL}
            for method, path in [
                ("POST", "/backends/a/restart"),
                ("POST", "/backends/a/disable"),
                ("POST", "/backends/a/enable"),
                ("DELETE", "/backends/a"),
                ("DELETE", "/backends?name=a"),
                ("DELETE", f"/sessions/{sid}"),
            ]:
                resp = await http.request(method, path, headers=foreign)
                assert resp.status_code == 403, (method, path, resp.text)
                assert "not this router's own" in resp.json()["error"]["message"]
            assert (await http.get("/backends/a")).json()["state"] == "up"
            assert sid in {s["id"] for s in (await http.get("/sessions")).json()}
            # Reading stays open to local pages (a browser does not let them read the answer without CORS).
            assert (await http.get("/status", headers=foreign)).status_code == 200
            # The router's own page (same Host) and scripts without Origin may act.
            own = {"origin": r.url}
            assert (await http.post("/backends/a/disable", headers=own)).status_code == 200
            assert (await http.post("/backends/a/enable")).status_code == 200
            closed = await http.delete(f"/sessions/{sid}")
            assert closed.status_code == 200 and closed.json() == {"closed": sid}
            assert sid not in {s["id"] for s in (await http.get("/sessions")).json()}
            assert (await http.delete(f"/sessions/{sid}")).status_code == 404


async def _state(http: httpx.AsyncClient, name: str, state: str) -> bool:
    return bool((await http.get(f"/backends/{name}")).json()["state"] == state)


async def test_adding_needs_a_json_body_but_no_origin() -> None:
    async with run_router() as r, httpx.AsyncClient(base_url=r.url) as http:
        spec = {"name": "tool", "command": "sh", "args": ["-c", "exit 0"], "enabled": False}
        plain = await http.post("/backends", content=text_plain(spec), headers={"content-type": "text/plain"})
        assert plain.status_code == 415 and "application/json" in plain.json()["error"]
        form = await http.post("/backends", data={"name": "tool"})
        assert form.status_code == 415
        assert (await http.post("/backends", json=spec)).status_code == 201
        assert (
            await http.post("/backends", json={**spec, "name": "own"}, headers={"origin": r.url})
        ).status_code == 201


async def test_the_token_guards_state_changes_on_loopback_too() -> None:
    async with run_fixture("streamable", name="tok") as fx, run_router("--token", "t0k", "-b", f"a={fx.url}") as r:
        async with httpx.AsyncClient(base_url=r.url) as http:
            spec = {"name": "b", "url": fx.url}
            assert (await http.post("/backends", json=spec)).status_code == 401
            assert (await http.post("/backends/a/restart")).status_code == 401
            ok = await http.post("/backends", json=spec, headers={"authorization": "Bearer t0k"})
            assert ok.status_code == 201
            # MCP routes on loopback need no token.
            init = await http.post("/mcp/a", json=initialize_request("script"), headers=ACCEPT)
            assert init.status_code == 200


async def test_cors_only_for_the_origins_named() -> None:
    app_origin = "http://localhost:6274"
    async with (
        run_fixture("streamable", name="cors") as fx,
        run_router("-b", f"a={fx.url}", "--allow-origin", app_origin) as r,
        httpx.AsyncClient(base_url=r.url) as http,
    ):
        await wait_for(lambda: _state(http, "a", "up"), 20, message="a up")
        preflight = await http.options(
            "/mcp/a",
            headers={
                "origin": app_origin,
                "access-control-request-method": "POST",
                "access-control-request-headers": "content-type, mcp-protocol-version, mcp-session-id",
            },
        )
        assert preflight.status_code == 204
        assert preflight.headers["access-control-allow-origin"] == app_origin
        assert "POST" in preflight.headers["access-control-allow-methods"]
        assert "mcp-session-id" in preflight.headers["access-control-allow-headers"].lower()
        init = await http.post("/mcp/a", json=initialize_request("browser"), headers={**ACCEPT, "origin": app_origin})
        assert init.status_code == 200
        assert init.headers["access-control-allow-origin"] == app_origin
        exposed = init.headers["access-control-expose-headers"].lower()
        assert "mcp-session-id" in exposed and "mcp-protocol-version" in exposed
        # Another local origin still reaches MCP (as before) but gets no CORS headers.
        other = await http.post("/mcp/a", json=initialize_request("other"), headers={**ACCEPT, "origin": EVIL})
        assert other.status_code == 200 and "access-control-allow-origin" not in other.headers
        no_cors = await http.options("/mcp/a", headers={"origin": EVIL, "access-control-request-method": "POST"})
        assert "access-control-allow-origin" not in no_cors.headers
        # The allowed origin is for MCP only: the management API stays the router's own.
        add = await http.post("/backends", json={"name": "x", "command": "true"}, headers={"origin": app_origin})
        assert add.status_code == 403
        pre_admin = await http.options(
            "/backends", headers={"origin": app_origin, "access-control-request-method": "POST"}
        )
        assert "access-control-allow-origin" not in pre_admin.headers


async def test_without_allow_origin_no_cors_headers() -> None:
    async with run_router("-b", f"s={stdio_command()}") as r, httpx.AsyncClient(base_url=r.url) as http:
        await wait_for(lambda: _state(http, "s", "up"), 20, message="s up")
        resp = await http.post(
            "/mcp", json=initialize_request("c"), headers={**ACCEPT, "origin": "http://localhost:3000"}
        )
        assert resp.status_code == 200
        assert not any(k.startswith("access-control-") for k in resp.headers)
