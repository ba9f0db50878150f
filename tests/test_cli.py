"""The command line: `python -m app --no-ui` (the same as `mcp-router-tui --no-ui`) as a real process.

First run with nothing configured, `--demo`, argument errors, `--log-format json`, signals, a busy
port, `--config` with an mcpServers file, and the TUI entry point's current answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import socket
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import mcp_types as types
import pytest

from tests.support.clients import connect
from tests.support.procs import (
    HOST,
    REPO_ROOT,
    kill_pid,
    pid_alive,
    run_fixture,
    run_router,
    stop_process,
    wait_for,
)

ACCEPT = {"accept": "application/json, text/event-stream"}
DEMO_TOOLS = {"echo", "add", "time", "slow_count", "random_number"}


@dataclass
class Finished:
    code: int
    stdout: str
    stderr: str


async def run_cli(*argv: str, timeout: float = 15.0, program: list[str] | None = None) -> Finished:
    """Run the CLI to completion (it is expected to exit by itself); stop it by pid if it does not."""
    cmd = program or [sys.executable, "-m", "app"]
    proc = await asyncio.create_subprocess_exec(
        *cmd,
        *argv,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=REPO_ROOT,
        start_new_session=True,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        await stop_process(proc, grace=1.0)
        raise
    assert proc.returncode is not None
    return Finished(proc.returncode, out.decode(errors="replace"), err.decode(errors="replace"))


def text_of(result: types.CallToolResult) -> str:
    assert not result.is_error, result
    block = result.content[0]
    assert isinstance(block, types.TextContent)
    return block.text


async def wait_up(http: httpx.AsyncClient, *names: str, timeout: float = 15.0) -> list[dict[str, Any]]:
    async def all_up() -> list[dict[str, Any]] | None:
        backends: list[dict[str, Any]] = (await http.get("/backends")).json()
        states = {b["name"]: b["state"] for b in backends}
        return backends if all(states.get(n) == "up" for n in names) else None

    result: list[dict[str, Any]] = await wait_for(all_up, timeout, message=f"backends {names} to be up")
    return result


# ------------------------------------------------------------------------------ first run


async def test_no_backends_starts_and_says_how_to_add_one() -> None:
    async with run_router() as r, httpx.AsyncClient(base_url=r.url) as http:
        assert r.lines[0] == f"mcp-dev-router listening on {r.url}"
        await wait_for(lambda: len(r.lines) >= 2, 5, message="the hint line")
        hint = r.lines[1]
        assert "-b" in hint and "--demo" in hint and "/backends" in hint, hint
        resp = await http.get("/status")
        assert resp.status_code == 200
        status = resp.json()
        assert status["backends"] == [] and status["default"] is None
        # /mcp with nothing configured says what to do, instead of failing obscurely.
        init = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {}}
        resp = await http.post("/mcp", json=init, headers={"accept": "application/json, text/event-stream"})
        assert resp.status_code == 404
        assert "--demo" in resp.json()["error"]["message"]


async def test_demo_backend_works_with_an_sdk_client() -> None:
    async with run_router("--demo") as r, httpx.AsyncClient(base_url=r.url) as http:
        # The startup lines list each backend with its URL on the router.
        await wait_for(lambda: any(r.mcp_url("demo") in line for line in r.lines), 5, message="the demo line")
        backends = await wait_up(http, "demo")
        assert backends[0]["kind"] == "stdio" and backends[0]["default"] is True
        for url in (r.mcp_url(), r.mcp_url("demo")):
            async with connect(url, "streamable-handshake") as client:
                tools = {t.name for t in (await client.list_tools()).tools}
                assert tools >= DEMO_TOOLS, tools
                assert text_of(await client.call_tool("echo", {"text": "hello demo"})) == "hello demo"


async def test_help_and_version() -> None:
    helped = await run_cli("--help")
    assert helped.code == 0
    assert "--no-ui" in helped.stdout and "--demo" in helped.stdout
    version = await run_cli("--version")
    assert version.code == 0
    assert "mcp-dev-router" in version.stdout


# ------------------------------------------------------------------------------ argument errors


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["-b", "nonsense"], "nonsense"),
        (["-b", "x="], "NAME="),
        (["-b", "=python server.py"], "name"),
        (["-b", "bad name=http://127.0.0.1:1/mcp"], "bad name"),
        (["-b", "x=http://"], "http://"),
        (["-b", "x=python 'unterminated"], "x="),
        (["-b", "a=http://127.0.0.1:1/mcp", "-b", "a=http://127.0.0.1:2/mcp"], "unique"),
        (["--default", "ghost"], "ghost"),
        (["--watch", "ghost=./src"], "ghost"),
        (["--hold", "-1"], "--hold"),
        (["--log-format", "xml"], "xml"),
        (["--port", "eighty"], "eighty"),
        # Binding beyond loopback needs a token (the error comes before anything is bound).
        (["--host", "0.0.0.0"], "--token"),
    ],
)
async def test_argument_errors_exit_2_with_a_message(argv: list[str], expected: str) -> None:
    done = await run_cli("--no-ui", "--port", "0", *argv)
    assert done.code == 2, done
    assert expected in done.stderr, done.stderr
    assert "usage:" in done.stderr
    assert "Traceback" not in done.stderr
    assert "listening" not in done.stdout


async def test_config_file_errors_exit_2(tmp_path: Path) -> None:
    missing = await run_cli("--no-ui", "--port", "0", "--config", str(tmp_path / "nope.json"))
    assert missing.code == 2 and "nope.json" in missing.stderr, missing
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    done = await run_cli("--no-ui", "--port", "0", "--config", str(broken))
    assert done.code == 2 and "broken.json" in done.stderr, done
    empty = tmp_path / "empty.json"
    empty.write_text("{}")
    done = await run_cli("--no-ui", "--port", "0", "--config", str(empty))
    assert done.code == 2 and "mcpServers" in done.stderr, done
    for d in (missing, done):
        assert "Traceback" not in d.stderr


# ------------------------------------------------------------------------------ output


async def test_log_format_json_prints_traffic_events() -> None:
    async with (
        run_fixture("streamable", name="alpha") as fx,
        run_router("--log-format", "json", "-b", f"alpha={fx.url}") as r,
        httpx.AsyncClient(base_url=r.url) as http,
    ):
        await wait_up(http, "alpha")
        async with connect(r.mcp_url(), "streamable-handshake") as client:
            await client.call_tool("echo", {"text": "json please"})

        def events() -> list[dict[str, Any]]:
            # The first line is the readiness contract ("mcp-dev-router listening on URL"), plain text.
            return [json.loads(line) for line in r.lines if line.startswith("{")]

        def call_lines() -> list[dict[str, Any]] | None:
            found = [e for e in events() if e.get("type") == "traffic" and e.get("method") == "tools/call"]
            has_reply = any(
                e.get("type") == "traffic"
                and e.get("msg_kind") == "response"
                and e.get("direction") == "backend->client"
                for e in events()
            )
            return found if found and has_reply else None

        calls = await wait_for(call_lines, 10, message="a JSON traffic line for tools/call")
        call = calls[0]
        assert call["direction"] == "client->backend"
        assert call["backend"] == "alpha"
        assert call["msg_kind"] == "request"
        assert isinstance(call["ts"], float)
        kinds = {e["type"] for e in events()}
        assert {"traffic", "session", "backend_state"} <= kinds, kinds
        # Every line that is not the startup banner is a JSON object.
        banner = [line for line in r.lines if not line.startswith("{")]
        assert banner[0].startswith("mcp-dev-router listening on")


async def test_text_log_shows_traffic() -> None:
    async with run_router("--demo") as r, httpx.AsyncClient(base_url=r.url) as http:
        await wait_up(http, "demo")
        async with connect(r.mcp_url(), "streamable-handshake") as client:
            await client.call_tool("echo", {"text": "text please"})
        await wait_for(lambda: any("tools/call" in line for line in r.lines), 10, message="a text line for tools/call")
        assert any("backend demo" in line and "up" in line for line in r.lines), r.lines


# ------------------------------------------------------------------------------ signals


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
async def test_signal_exits_0_and_stops_stdio_backends(sig: signal.Signals) -> None:
    # The demo backend is a stdio server that starts quickly (no SDK import).
    async with run_router("-b", f"st={sys.executable} -m app.demo_server") as r:
        timeout = httpx.Timeout(5.0, read=30.0)
        async with httpx.AsyncClient(base_url=r.url, timeout=timeout) as http:
            await wait_up(http, "st")
            # A client session (a stdio process of its own) with its GET stream open, an /events
            # stream and a legacy SSE stream: none of them may hold the exit up. Raw HTTP here,
            # because an SDK client would (rightly) fail when its server goes away mid-session.
            sid = await raw_handshake(http, "/mcp/st")
            session_headers = {**ACCEPT, "mcp-session-id": sid, "mcp-protocol-version": "2025-11-25"}
            call = {
                "jsonrpc": "2.0",
                "id": 2,
                "method": "tools/call",
                "params": {"name": "echo", "arguments": {"text": "before the signal"}},
            }
            resp = await http.post("/mcp/st", json=call, headers=session_headers)
            assert resp.status_code == 200 and "before the signal" in resp.text, resp.text
            pids = (await http.get("/backends/st")).json()["pids"]
            assert len(pids) == 2, pids  # the router's own process and the client session's
            async with (
                http.stream("GET", "/mcp/st", headers={**session_headers, "accept": "text/event-stream"}) as get,
                http.stream("GET", "/events") as events,
                http.stream("GET", "/sse", headers={"accept": "text/event-stream"}) as sse,
            ):
                assert (get.status_code, events.status_code, sse.status_code) == (200, 200, 200)
                assert kill_pid(r.pid, sig)
                await asyncio.wait_for(r.proc.wait(), 5.0)
                # The open streams end instead of hanging.
                for stream in (get, events, sse):
                    with contextlib.suppress(httpx.HTTPError):
                        await asyncio.wait_for(stream.aread(), 5.0)
        assert r.proc.returncode == 0, r.stderr_lines[-20:]
        for pid in pids:
            await wait_for(lambda pid=pid: not pid_alive(pid), 5, message=f"stdio backend pid {pid} to be gone")

        # The console says why the sessions ended: what was queued at shutdown is printed, not lost.
        def closed_line() -> str | None:
            return next((line for line in r.lines if f"session {sid[:8]} closed" in line), None)

        line = await wait_for(closed_line, 5, message="the session's closing line")
        assert line.endswith("router stopped"), r.lines[-10:]


async def raw_handshake(http: httpx.AsyncClient, path: str) -> str:
    """initialize + notifications/initialized over raw HTTP; returns the router's Mcp-Session-Id."""
    init = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "raw", "version": "1"}},
    }
    resp = await http.post(path, json=init, headers=ACCEPT)
    assert resp.status_code == 200, resp.text
    sid = resp.headers["mcp-session-id"]
    note = {"jsonrpc": "2.0", "method": "notifications/initialized"}
    headers = {**ACCEPT, "mcp-session-id": sid, "mcp-protocol-version": "2025-11-25"}
    assert (await http.post(path, json=note, headers=headers)).status_code == 202
    return sid


# ------------------------------------------------------------------------------ a busy port


async def test_port_in_use_exits_nonzero_with_a_clear_message() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        sock.listen()
        port = sock.getsockname()[1]
        done = await run_cli("--no-ui", "--host", HOST, "--port", str(port))
    assert done.code != 0
    assert str(port) in done.stderr, done.stderr
    assert "in use" in done.stderr.lower(), done.stderr
    assert "Traceback" not in done.stderr
    assert "listening on" not in done.stdout


# ------------------------------------------------------------------------------ --config


async def test_config_file_with_mcp_servers(tmp_path: Path) -> None:
    async with run_fixture("streamable", name="web-one") as fx:
        config = {
            "mcpServers": {
                # Claude Desktop / Cursor shape: command + args (+ env). The demo server starts quickly.
                "local": {
                    "command": sys.executable,
                    "args": ["-m", "app.demo_server"],
                    "env": {"DEMO_CONFIG_TEST": "1"},
                },
                # A URL entry, with the "type" key VS Code writes.
                "web": {"type": "http", "url": fx.url},
                "off": {"command": sys.executable, "args": ["-c", "pass"], "disabled": True},
            }
        }
        path = tmp_path / "claude_desktop_config.json"
        path.write_text(json.dumps(config))
        # -b flags combine with --config: flags first, then the file's entries.
        async with (
            run_router("-b", f"flag={fx.url}", "--config", str(path)) as r,
            httpx.AsyncClient(base_url=r.url) as http,
        ):
            backends = await wait_up(http, "flag", "local", "web")
            by_name = {b["name"]: b for b in backends}
            assert list(by_name) == ["flag", "local", "web", "off"]
            assert (await http.get("/status")).json()["default"] == "flag"
            assert by_name["local"]["kind"] == "stdio"
            assert by_name["local"]["env"] == {"DEMO_CONFIG_TEST": "•••"}  # env values are masked when shown
            revealed = (await http.get("/backends/local", params={"reveal": "1"})).json()
            assert revealed["env"] == {"DEMO_CONFIG_TEST": "1"}
            assert set(by_name["local"]["tools"]) >= DEMO_TOOLS
            assert by_name["web"]["kind"] == "http" and by_name["web"]["url"] == fx.url
            assert by_name["off"]["state"] == "disabled" and by_name["off"]["enabled"] is False
            async with connect(r.mcp_url("local"), "streamable-handshake") as client:
                assert text_of(await client.call_tool("echo", {"text": "from config"})) == "from config"
            async with connect(r.mcp_url("web"), "streamable-handshake") as client:
                assert "name=web-one" in text_of(await client.call_tool("whoami", {}))
