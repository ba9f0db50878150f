"""Targets and routes as people type them, against a real router with real SDK backends and clients.

A URL with no path is probed (as given, /mcp, /sse); `host:port` is a URL; the router's bare address
serves MCP; `/{name}/mcp` and `/{name}/sse`; route words are not names; a config file with bad
entries starts the good ones; backends that need a header; the trace file.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import httpx
import mcp_types as types
import pytest

from app.proxy.events import TrafficEvent
from app.proxy.tracefile import TraceFileWriter, read_trace, record
from tests.support.clients import connect
from tests.support.procs import Router, initialize_request, run_fixture, run_router, wait_for

JSON_ONLY = {"accept": "application/json"}


def text_of(result: types.CallToolResult) -> str:
    assert not result.is_error, result
    block = result.content[0]
    assert isinstance(block, types.TextContent)
    return block.text


async def wait_up(router: Router, *names: str, timeout: float = 20.0) -> dict[str, dict[str, Any]]:
    async with httpx.AsyncClient(base_url=router.url, timeout=10) as http:

        async def all_up() -> dict[str, dict[str, Any]] | None:
            backends = {b["name"]: b for b in (await http.get("/backends")).json()}
            return backends if all(backends.get(n, {}).get("state") == "up" for n in names) else None

        result: dict[str, dict[str, Any]] = await wait_for(all_up, timeout, message=f"{names} up")
        return result


async def test_a_url_without_a_path_finds_mcp_and_sse() -> None:
    async with (
        run_fixture("streamable", name="on-mcp") as streamable,
        run_fixture("sse", name="on-sse") as sse,
        run_router("-b", f"x=http://127.0.0.1:{streamable.port}", "-b", f"y=http://127.0.0.1:{sse.port}/") as r,
    ):
        backends = await wait_up(r, "x", "y")
        assert backends["x"]["endpoint"] == f"http://127.0.0.1:{streamable.port}/mcp"
        assert backends["x"]["transport"] == "streamable-http"
        assert backends["y"]["endpoint"] == f"http://127.0.0.1:{sse.port}/sse"
        assert backends["y"]["transport"] == "sse"
        async with httpx.AsyncClient(base_url=r.url) as http:
            log = (await http.get("/backends/x/log")).json()["lines"]
            assert f"speaks streamable-http at http://127.0.0.1:{streamable.port}/mcp" in log
            status = (await http.get("/status")).json()
            assert {b["name"]: b["endpoint"] for b in status["backends"]}["y"].endswith("/sse")
        async with connect(r.mcp_url("x"), "streamable-handshake") as client:
            assert "name=on-mcp" in text_of(await client.call_tool("whoami", {}))
        async with connect(r.mcp_url("y"), "streamable-handshake") as client:
            assert "name=on-sse" in text_of(await client.call_tool("whoami", {}))


async def test_host_port_is_a_url() -> None:
    async with run_fixture("streamable", name="typed") as fx, run_router("-b", f"x=localhost:{fx.port}") as r:
        backends = await wait_up(r, "x")
        assert backends["x"]["url"] == f"http://localhost:{fx.port}"
        assert backends["x"]["endpoint"] == f"http://localhost:{fx.port}/mcp"
        async with httpx.AsyncClient(base_url=r.url) as http:
            added = await http.post("/backends", json={"name": "y", "url": f"127.0.0.1:{fx.port}/mcp"})
            assert added.status_code == 201, added.text
            assert added.json()["url"] == f"http://127.0.0.1:{fx.port}/mcp"
        await wait_up(r, "y")


@pytest.mark.parametrize("transport", ["streamable-handshake", "streamable-modern", "sse"])
async def test_an_sdk_client_on_the_routers_bare_address(transport: Any) -> None:
    async with run_fixture("streamable", name="bare") as fx, run_router("-b", f"x={fx.url}") as r:
        await wait_up(r, "x")
        async with connect(r.url, transport) as client:
            assert text_of(await client.call_tool("echo", {"text": "at the root"})) == "at the root"
        async with connect(r.url + "/", transport) as client:
            assert "name=bare" in text_of(await client.call_tool("whoami", {}))


async def test_get_root_names_the_router_its_backends_and_their_urls() -> None:
    async with run_fixture("streamable", name="idx") as fx, run_router("-b", f"alpha={fx.url}") as r:
        await wait_up(r, "alpha")
        async with httpx.AsyncClient(base_url=r.url) as http:
            info = (await http.get("/", headers=JSON_ONLY)).json()
            assert info["router"] == "mcp-dev-router"
            assert info["mcp"] == f"{r.url}/mcp" and info["sse"] == f"{r.url}/sse"
            assert info["default"] == "alpha"
            assert info["backends"] == [
                {"name": "alpha", "state": "up", "mcp": f"{r.url}/mcp/alpha", "sse": f"{r.url}/sse/alpha"}
            ]
            page = await http.get("/", headers={"accept": "text/html,application/xhtml+xml,*/*;q=0.8"})
            assert page.headers["content-type"].startswith("text/plain")
            assert f"{r.url}/mcp" in page.text and "alpha" in page.text


async def test_name_slash_mcp_and_name_slash_sse() -> None:
    async with (
        run_fixture("streamable", name="one") as one,
        run_fixture("sse", name="two") as two,
        run_router("-b", f"one={one.url}", "-b", f"two={two.url}") as r,
    ):
        await wait_up(r, "one", "two")
        async with connect(f"{r.url}/two/mcp", "streamable-handshake") as client:
            assert "name=two" in text_of(await client.call_tool("whoami", {}))
        async with connect(f"{r.url}/two/sse", "sse") as client:
            assert "name=two" in text_of(await client.call_tool("whoami", {}))
        async with connect(f"{r.url}/one/sse", "sse") as client:
            assert "name=one" in text_of(await client.call_tool("whoami", {}))
        async with httpx.AsyncClient(base_url=r.url) as http:
            missing = await http.post(
                "/nope/mcp",
                json=initialize_request("lost"),
                headers={"accept": "application/json, text/event-stream"},
            )
            assert missing.status_code == 404 and "nope" in missing.text


@pytest.mark.parametrize("word", ["mcp", "sse", "messages", "status", "backends", "sessions", "events"])
async def test_route_words_are_not_backend_names(word: str) -> None:
    async with run_router() as r, httpx.AsyncClient(base_url=r.url) as http:
        resp = await http.post("/backends", json={"name": word, "url": "http://127.0.0.1:9/mcp"})
        assert resp.status_code == 400
        assert "route word" in resp.json()["error"] and word in resp.json()["error"]


async def test_a_route_word_on_the_command_line_is_a_usage_error() -> None:
    from tests.test_cli import run_cli

    done = await run_cli("--no-ui", "--port", "0", "-b", "status=http://127.0.0.1:9/mcp")
    assert done.code == 2
    assert "route word" in done.stderr


async def test_a_config_file_with_bad_entries_starts_the_others(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ROUTER_TEST_NAME", "from-env")
    monkeypatch.delenv("ROUTER_TEST_UNSET", raising=False)
    async with run_fixture("streamable", name="cfg") as fx:
        config = {
            "mcpServers": {
                "good": {"command": sys.executable, "args": ["-m", "app.demo_server"]},
                # Windsurf's key for a URL
                "windsurf": {"serverUrl": fx.url},
                "expanded": {"url": "http://127.0.0.1:${env:FIXTURE_PORT}/mcp"},
                "envvar": {
                    "command": sys.executable,
                    "args": ["-m", "app.demo_server"],
                    "env": {"X": "${ROUTER_TEST_NAME}"},
                },
                "unset": {"url": "http://${ROUTER_TEST_UNSET}/mcp"},
                "nothing": {"args": ["x"]},
                "sse": {"url": fx.url},
                "weird": "not an object",
            }
        }
        path = tmp_path / "mcp.json"
        path.write_text(json.dumps(config))
        async with run_router("--config", str(path), env={"FIXTURE_PORT": str(fx.port)}) as r:
            backends = await wait_up(r, "good", "windsurf", "expanded", "envvar")
            assert set(backends) == {"good", "windsurf", "expanded", "envvar"}
            assert backends["envvar"]["env"] == {"X": "•••"}  # env values are shown masked
            async with httpx.AsyncClient(base_url=r.url) as http:
                revealed = (await http.get("/backends/envvar", params={"reveal": "1"})).json()
            assert revealed["env"] == {"X": "from-env"}
            assert backends["expanded"]["url"] == f"http://127.0.0.1:{fx.port}/mcp"

            def said() -> str:
                return "\n".join(r.lines)

            out = await wait_for(lambda: "nothing" in said() and said(), message="the skipped entries reported")
            assert "skipped mcpServers entry unset: environment variable ROUTER_TEST_UNSET not set" in out
            assert "skipped mcpServers entry nothing: backend 'nothing' needs either a url or a command" in out
            assert "skipped mcpServers entry sse: invalid backend name 'sse'" in out
            assert "skipped mcpServers entry weird: the entry must be an object" in out
            async with connect(r.mcp_url("windsurf"), "streamable-handshake") as client:
                assert "name=cfg" in text_of(await client.call_tool("whoami", {}))


async def test_a_backend_that_needs_a_bearer_token_is_reached_with_its_header() -> None:
    secret = "s3cret-token-value"
    async with run_fixture("streamable", name="locked", extra=("--require-bearer", secret)) as fx:
        async with run_router(
            "-b", f"api={fx.url}", "-H", f"api=Authorization: Bearer {secret}", "-b", f"nokey={fx.url}"
        ) as r:
            await wait_up(r, "api")
            async with connect(r.mcp_url("api"), "streamable-handshake") as client:
                assert "name=locked" in text_of(await client.call_tool("whoami", {}))
            async with connect(r.mcp_url("api"), "streamable-modern") as client:
                assert text_of(await client.call_tool("echo", {"text": "modern"})) == "modern"
            async with httpx.AsyncClient(base_url=r.url) as http:

                async def refused() -> dict[str, Any] | None:
                    b: dict[str, Any] = (await http.get("/backends/nokey")).json()
                    return b if b["state"] == "down" and "401" in (b["reason"] or "") else None

                await wait_for(refused, 15, message="the backend without the header down with the 401")
                added = await http.post(
                    "/backends",
                    json={"name": "viaapi", "url": fx.url, "headers": {"Authorization": f"Bearer {secret}"}},
                )
                assert added.status_code == 201, added.text
                assert added.json()["headers"] == {"Authorization": "•••"}
                await wait_up(r, "viaapi")
                for path in ("/status", "/backends", "/backends/api", "/"):
                    body = (await http.get(path, headers=JSON_ONLY)).text
                    assert secret not in body, path
                assert (await http.get("/backends/api")).json()["headers"] == {"Authorization": "•••"}


async def test_the_trace_file_holds_every_message_of_the_calls(tmp_path: Path) -> None:
    trace = tmp_path / "trace.jsonl"
    async with (
        run_fixture("streamable", name="traced") as fx,
        run_router("-b", f"t={fx.url}", "--trace-file", str(trace)) as r,
    ):
        await wait_up(r, "t")
        async with connect(r.mcp_url("t"), "streamable-handshake") as client:
            for word in ("one", "two", "three"):
                assert text_of(await client.call_tool("echo", {"text": word})) == word

        def calls() -> list[dict[str, Any]]:
            recs = list(read_trace(trace))
            return [x for x in recs if x["method"] == "tools/call"] if trace.exists() else []

        await wait_for(lambda: len(calls()) >= 6, message="three calls and their answers in the trace file")
    records = list(read_trace(trace))
    requests = [x for x in records if x["method"] == "tools/call" and x["kind"] == "request"]
    by_dir = [x for x in requests if x["direction"] == "client->backend"]
    assert [x["message"]["params"]["arguments"]["text"] for x in by_dir] == ["one", "two", "three"]
    for req in by_dir:
        answers = [
            x
            for x in records
            if x["kind"] == "response"
            and x["direction"] == "backend->client"
            and x["id"] == req["id"]
            and x["session"] == req["session"]
        ]
        assert len(answers) == 1, req
        answer = answers[0]
        assert answer["status"] == "ok" and answer["latency_ms"] is not None and answer["latency_ms"] >= 0
        assert answer["message"]["result"]["content"][0]["text"] == req["message"]["params"]["arguments"]["text"]
        assert answer["backend"] == "t" and answer["era"] == "handshake"
        assert answer["time"].endswith("Z")
    assert any(x["method"] == "initialize" for x in records)


def test_trace_file_rotation_keeps_three_files(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    writer = TraceFileWriter(path, max_bytes=2000, keep=3)
    events = [
        TrafficEvent(
            direction="client->backend",
            session="s1",
            backend="b",
            msg_kind="request",
            method="tools/call",
            msg_id=i,
            message={"jsonrpc": "2.0", "id": i, "method": "tools/call", "params": {"n": i, "big": 2**70}},
            era="modern",
        )
        for i in range(200)
    ]
    writer.write(record(ev) for ev in events)
    writer.close()
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["t.jsonl", "t.jsonl.1", "t.jsonl.2"]
    assert all(p.stat().st_size <= 2000 for p in tmp_path.iterdir())
    ids = [x["id"] for x in read_trace(path)]
    assert ids == list(range(ids[0], 200)) and ids[0] > 0  # the newest kept, in order, the oldest rotated out
    assert next(read_trace(path))["message"]["params"]["big"] == 2**70
