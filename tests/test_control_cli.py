"""`mcp-router`, the control CLI, as a real process against a real router (found from its runtime
file, as a user's shell finds it): every command in human and `--json` output, the three exit codes,
`tail` while an SDK client calls a tool, and each `client-config` parsed as its client parses it.
"""

from __future__ import annotations

import asyncio
import json
import shlex
import sys
from typing import Any

import pytest

from app.client_config import CLIENTS, snippets
from app.control_cli import split_add
from tests.support.clients import connect
from tests.support.procs import (
    REPO_ROOT,
    free_port,
    run_fixture,
    run_router,
    stdio_command,
    stop_process,
    wait_for,
)
from tests.test_cli import Finished, run_cli

CLI = [sys.executable, "-m", "app.control_cli"]


async def mcp_router(*argv: str, timeout: float = 30.0) -> Finished:
    return await run_cli(*argv, program=CLI, timeout=timeout)


async def ok_json(*argv: str) -> Any:
    done = await mcp_router(*argv, "--json")
    assert done.code == 0, done
    return json.loads(done.stdout)


async def wait_state(name: str, state: str, timeout: float = 20.0) -> dict[str, Any]:
    async def reached() -> dict[str, Any] | None:
        done = await mcp_router("list", "--json")
        found = {b["name"]: b for b in json.loads(done.stdout)} if done.code == 0 else {}
        return found[name] if found.get(name, {}).get("state") == state else None

    result: dict[str, Any] = await wait_for(reached, timeout, interval=0.2, message=f"{name} {state}")
    return result


def test_add_reads_its_own_options_anywhere_before_the_double_dash() -> None:
    assert split_add(["add", "files", "python", "server.py", "--root", "."]) == [
        "add",
        "--",
        "files",
        "python",
        "server.py",
        "--root",
        ".",
    ]
    assert split_add(["add", "w", "localhost:8080", "--json", "-H", "X-Key: 1"]) == [
        "add",
        "--json",
        "-H",
        "X-Key: 1",
        "--",
        "w",
        "localhost:8080",
    ]
    assert split_add(["logs", "add", "-f"]) == ["logs", "add", "-f"]  # a backend named "add"
    assert split_add(["--url", "u", "add", "t", "--", "node", "t.js", "--json"]) == [
        "--url",
        "u",
        "add",
        "--",
        "t",
        "node",
        "t.js",
        "--json",
    ]


async def test_no_router_reachable_is_exit_2_and_says_where_it_looked() -> None:
    done = await mcp_router("status")
    assert done.code == 2
    assert "no running router" in done.stderr and "mcp-dev-router" in done.stderr
    port = free_port()
    done = await mcp_router("list", "--url", f"http://127.0.0.1:{port}")
    assert done.code == 2 and f"127.0.0.1:{port}" in done.stderr and "--url" in done.stderr
    as_json = await mcp_router("status", "--json", "--url", f"127.0.0.1:{port}")
    assert as_json.code == 2 and "no router answers" in json.loads(as_json.stdout)["error"]
    for cmd in ("status", "add", "tail", "client-config", "logs"):
        helped = await mcp_router(cmd, "--help")
        assert helped.code == 0 and "Example" in helped.stdout, cmd


async def test_every_command_against_a_running_router(tmp_path: Any) -> None:
    async with run_fixture("streamable", name="alpha") as fx, run_router("-b", f"alpha={fx.url}") as r:
        await wait_state("alpha", "up")
        # status / list, human and JSON
        human = await mcp_router("status")
        assert human.code == 0, human
        assert r.url in human.stdout and "alpha *" in human.stdout and " up " in human.stdout
        st = await ok_json("status")
        assert st["url"] == r.url and [b["name"] for b in st["backends"]] == ["alpha"]
        listed = await mcp_router("list")
        assert "alpha" in listed.stdout and fx.url in listed.stdout
        assert [b["name"] for b in await ok_json("list")] == ["alpha"]

        # add: a command with its own options, host:port, a URL with a header
        argv = stdio_command().split()
        added = await mcp_router("add", "files", *argv, "--name", "files-fixture")
        assert added.code == 0, added
        assert "added files" in added.stdout and f"{r.url}/mcp/files" in added.stdout
        web = await ok_json("add", "web", f"localhost:{fx.port}")
        assert web["url"] == f"http://localhost:{fx.port}"
        keyed = await ok_json("add", "keyed", fx.url, "-H", "X-Api-Key: hidden-value")
        assert keyed["headers"] == {"X-Api-Key": "•••"}
        files = await wait_state("files", "up")
        assert files["args"][-2:] == ["--name", "files-fixture"] and files["cwd"] == str(REPO_ROOT)
        web_up = await wait_state("web", "up")
        assert web_up["endpoint"] == f"http://localhost:{fx.port}/mcp"
        refused = await mcp_router("add", "files", "http://127.0.0.1:9/mcp")
        assert refused.code == 1 and "already exists" in refused.stderr

        # disable / enable / restart, human and JSON
        off = await mcp_router("disable", "files")
        assert off.code == 0 and "disabled files: disabled" in off.stdout
        not_now = await mcp_router("restart", "files", "--json")
        assert not_now.code == 1 and "disabled" in json.loads(not_now.stdout)["error"]
        assert (await ok_json("enable", "files"))["enabled"] is True
        await wait_state("files", "up")
        restarted = await ok_json("restart", "files")
        assert restarted["restarts"] == 1 and restarted["state"] == "up"
        again = await mcp_router("restart", "files")
        assert again.code == 0 and "restarted files: up" in again.stdout

        # sessions, with an SDK client connected
        async with connect(r.mcp_url("files"), "streamable-handshake") as client:
            await client.call_tool("echo", {"text": "hi"})
            sessions = await ok_json("sessions")
            assert [(s["backend"], s["state"]) for s in sessions] == [("files", "connected")]
            table = await mcp_router("sessions")
            row = next(line for line in table.stdout.splitlines() if sessions[0]["id"][:12] in line)
            assert "files" in row and " connected " in row, table.stdout

        # health, logs
        health = await ok_json("health", "alpha", "--limit", "3")
        assert 1 <= len(health["samples"]) <= 3 and health["samples"][-1]["ok"] is True
        shown = await mcp_router("health", "alpha")
        assert shown.code == 0 and "ok" in shown.stdout
        logs = await ok_json("logs", "files")
        assert any("restarting" in line for line in logs["lines"])
        assert "restarting" in (await mcp_router("logs", "files")).stdout

        # remove, and the router's refusals (exit 1, its message)
        assert (await mcp_router("remove", "web")).stdout.strip() == "removed web"
        assert (await ok_json("remove", "keyed")) == {"removed": "keyed"}
        for argv2 in (["remove", "ghost"], ["health", "ghost"], ["logs", "ghost"], ["enable", "ghost"]):
            gone = await mcp_router(*argv2)
            assert gone.code == 1 and "unknown backend 'ghost'" in gone.stderr, argv2
        bad = await mcp_router("add", "mcp", "http://127.0.0.1:9/mcp")
        assert bad.code == 1 and "route word" in bad.stderr


async def test_logs_follow_prints_new_lines() -> None:
    # The demo server writes to stderr as it starts: a backlog to print first.
    async with run_router("-b", f"files={sys.executable} -m app.demo_server") as r:
        await wait_state("files", "up")
        proc = await asyncio.create_subprocess_exec(
            *CLI,
            "logs",
            "files",
            "-f",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            cwd=REPO_ROOT,
            start_new_session=True,
        )
        lines: list[str] = []
        reader = asyncio.create_task(_read_lines(proc, lines))
        try:
            await wait_for(lambda: len(lines) > 0, 15, message="the backlog")
            assert (await mcp_router("restart", "files")).code == 0
            await wait_for(lambda: any("restarting: restart requested" in x for x in lines), 15, message="live lines")
        finally:
            await stop_process(proc)
            reader.cancel()
        assert r.url


async def _read_lines(proc: asyncio.subprocess.Process, sink: list[str]) -> None:
    assert proc.stdout is not None
    while line := await proc.stdout.readline():
        sink.append(line.decode().rstrip("\n"))


@pytest.mark.parametrize("as_json", [False, True])
async def test_tail_shows_live_events_while_a_client_calls_a_tool(as_json: bool) -> None:
    async with (
        run_fixture("streamable", name="tailed") as fx,
        run_router("-b", f"a={fx.url}", "-b", f"b={fx.url}") as r,
    ):
        await wait_state("a", "up")
        await wait_state("b", "up")
        extra = ["--json"] if as_json else []
        proc = await asyncio.create_subprocess_exec(
            *CLI,
            "tail",
            "--types",
            "traffic,session",
            "--backend",
            "a",
            *extra,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            cwd=REPO_ROOT,
            start_new_session=True,
        )
        lines: list[str] = []
        reader = asyncio.create_task(_read_lines(proc, lines))
        try:
            assert proc.stderr is not None
            banner = await asyncio.wait_for(proc.stderr.readline(), 15)
            assert b"following traffic, session" in banner
            async with connect(r.mcp_url("b"), "streamable-handshake") as other:
                await other.call_tool("echo", {"text": "not shown"})
            async with connect(r.mcp_url("a"), "streamable-handshake") as client:
                await client.call_tool("echo", {"text": "tailed call"})
            await wait_for(lambda: sum("tools/call" in x for x in lines) >= 2, 15, message="the call in tail")
        finally:
            await stop_process(proc)
            reader.cancel()
        if as_json:
            events = [json.loads(x) for x in lines]
            assert {e["type"] for e in events} <= {"traffic", "session"}
            assert {e["backend"] for e in events} == {"a"}
            calls = [e for e in events if e.get("method") == "tools/call" and e["msg_kind"] == "request"]
            assert calls[0]["message"]["params"]["arguments"] == {"text": "tailed call"}
        else:
            assert any("session" in x and "opened" in x for x in lines)
            assert any("→ a" in x and "tools/call" in x for x in lines)
            assert not any(" b " in x for x in lines)


def parse_claude_code(command: str) -> dict[str, Any]:
    """`claude mcp add --transport http NAME URL [--header H]` as the claude CLI reads it."""
    argv = shlex.split(command)
    assert argv[:3] == ["claude", "mcp", "add"]
    rest = argv[3:]
    opts: dict[str, list[str]] = {}
    positional: list[str] = []
    i = 0
    while i < len(rest):
        if rest[i].startswith("--"):
            opts.setdefault(rest[i], []).append(rest[i + 1])
            i += 2
        else:
            positional.append(rest[i])
            i += 1
    return {
        "transport": opts["--transport"][0],
        "name": positional[0],
        "url": positional[1],
        "headers": opts.get("--header", []),
    }


async def test_client_config_for_each_client_parses_as_that_client_reads_it() -> None:
    async with run_router("-b", f"files={stdio_command()}") as r:
        await wait_state("files", "up")
        url = f"{r.url}/mcp/files"
        desktop = await mcp_router("client-config", "claude-desktop", "files")
        assert desktop.code == 0, desktop
        entry = json.loads(desktop.stdout)["mcpServers"]["files"]
        assert entry == {"command": "npx", "args": ["-y", "mcp-remote", url]}
        code = parse_claude_code((await mcp_router("client-config", "claude-code", "files")).stdout)
        assert code == {"transport": "http", "name": "files", "url": url, "headers": []}
        cursor = json.loads((await mcp_router("client-config", "cursor", "files")).stdout)
        assert cursor == {"mcpServers": {"files": {"url": url}}}
        inspector = shlex.split((await mcp_router("client-config", "inspector", "files")).stdout)
        # The route whose ending tells the Inspector the transport (it cannot read /mcp/files).
        assert inspector == [
            "npx",
            "@modelcontextprotocol/inspector",
            "--cli",
            f"{r.url}/files/mcp",
            "--method",
            "tools/list",
        ]
        vscode = json.loads((await mcp_router("client-config", "vscode")).stdout)
        assert vscode == {"servers": {"mcp-dev-router": {"type": "http", "url": f"{r.url}/mcp"}}}
        every = await mcp_router("client-config")
        assert all(f"# {c}:" in every.stdout for c in CLIENTS)
        as_json = await ok_json("client-config", "files")
        assert set(as_json) == set(CLIENTS)
        assert json.loads(as_json["cursor"]["text"]) == cursor
        unknown = await mcp_router("client-config", "cursor", "ghost")
        assert unknown.code == 1 and "ghost" in unknown.stderr
        # What the URL in the snippet points at really serves MCP.
        async with connect(url, "streamable-handshake") as client:
            assert (await client.call_tool("echo", {"text": "pasted"})).content


def test_snippets_with_a_token_carry_the_header() -> None:
    s = snippets("http://10.0.0.5:8090", "api", "tok")
    desktop = json.loads(s["claude-desktop"])["mcpServers"]["api"]
    assert desktop["args"][-2:] == ["--header", "Authorization:${MCP_ROUTER_AUTH}"]
    assert desktop["env"] == {"MCP_ROUTER_AUTH": "Bearer tok"}
    assert parse_claude_code(s["claude-code"])["headers"] == ["Authorization: Bearer tok"]
    assert json.loads(s["cursor"])["mcpServers"]["api"]["headers"] == {"Authorization": "Bearer tok"}
    assert json.loads(s["vscode"])["servers"]["api"]["headers"] == {"Authorization": "Bearer tok"}


async def test_the_token_comes_from_the_runtime_file() -> None:
    async with run_router("--token", "from-file") as r:
        added = await mcp_router("add", "t", "http://127.0.0.1:9/mcp", "--json")
        assert added.code == 0, added
        wrong = await mcp_router("remove", "t", "--url", r.url, "--token", "nope")
        assert wrong.code == 1 and "token" in wrong.stderr
        assert (await mcp_router("remove", "t", "--url", r.url, "--token", "from-file")).code == 0
