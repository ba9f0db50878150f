"""Supervised stdio backends: watched sources, blue/green restarts, crash loops, no orphans."""

from __future__ import annotations

import asyncio
import contextlib
import shlex
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from mcp.shared.exceptions import MCPError

from tests.hotswap_support import backend_state, collect_notifications, wait_state, write_stdio_server
from tests.support.clients import connect
from tests.support.procs import FIXTURE_PATH, initialize_request, kill_pid, pid_alive, run_router, wait_for


def text(result: Any) -> str:
    return str(result.content[0].text)


async def pids_of(url: str, name: str) -> list[int]:
    return list((await backend_state(url, name))["pids"])


async def test_source_change_restarts_blue_green_and_broken_build_keeps_old(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    script = write_stdio_server(src, "v1")
    cmd = shlex.join([sys.executable, str(script)])
    async with run_router("-b", f"be={cmd}", "--watch", f"be={src}") as r:
        await wait_state(r.url, "be", "up")
        seen, handler = collect_notifications()
        async with connect(r.mcp_url("be"), "streamable-handshake", message_handler=handler) as client:
            first = text(await client.call_tool("whoami", {}))
            assert "variant=v1" in first

            (src / "variant.txt").write_text("v2")  # the developer saves a change

            async def new_version() -> bool:
                return "variant=v2" in text(await client.call_tool("whoami", {}))

            await wait_for(new_version, 20, interval=0.1, message="the session to move to the new build")
            assert "extra_tool" in {t.name for t in (await client.list_tools()).tools}
            await wait_for(lambda: "notifications/tools/list_changed" in seen, 5, message="list_changed")
            serving = text(await client.call_tool("whoami", {}))
            restarts = (await backend_state(r.url, "be"))["restarts"]

            script.write_text("this is not python (\n")  # a broken edit

            async def restart_failed() -> bool:
                async with httpx.AsyncClient() as http:
                    lines = (await http.get(f"{r.url}/backends/be/log")).json()["lines"]
                return any("restart failed" in line for line in lines)

            await wait_for(restart_failed, 20, interval=0.1, message="the failed restart to be reported")
            info = await backend_state(r.url, "be")
            assert info["state"] == "up" and info["restarts"] == restarts
            # The old process still serves the same session.
            again = text(await client.call_tool("whoami", {}))
            assert again.split(" call=")[0] == serving.split(" call=")[0]


async def test_api_restart_keeps_session_on_a_new_process(tmp_path: Path) -> None:
    script = write_stdio_server(tmp_path, "v1")
    cmd = shlex.join([sys.executable, str(script)])
    async with run_router("-b", f"be={cmd}") as r:
        await wait_state(r.url, "be", "up")
        seen, handler = collect_notifications()
        async with connect(r.sse_url("be"), "sse", message_handler=handler) as client:
            before = text(await client.call_tool("whoami", {})).split(" call=")[0]
            old_pids = await pids_of(r.url, "be")
            async with httpx.AsyncClient(timeout=30) as http:
                resp = await http.post(f"{r.url}/backends/be/restart")
            assert resp.status_code == 200 and resp.json()["restarted"] is True
            after = text(await client.call_tool("whoami", {})).split(" call=")[0]
            assert after != before
            # Same code, same lists: nothing to list again. (A list_changed for the move would
            # have come before this answer, on the same SSE stream.)
            assert not [m for m in seen if m.endswith("/list_changed")], seen
            await wait_for(lambda: not any(pid_alive(p) for p in old_pids), 10, message="old processes to end")


async def test_crash_loop_stops_retrying_until_fixed(tmp_path: Path) -> None:
    script = tmp_path / "server.py"
    script.write_text("import sys\nprint('boom: cannot start', file=sys.stderr)\nsys.exit(3)\n")
    cmd = shlex.join([sys.executable, str(script)])
    async with run_router("-b", f"be={cmd}") as r:
        info = await wait_state(r.url, "be", "failed", timeout=30)
        assert "crash loop" in info["reason"] and "boom" in info["reason"]
        write_stdio_server(tmp_path, "v1")  # the developer fixes it
        async with httpx.AsyncClient(timeout=30) as http:
            resp = await http.post(f"{r.url}/backends/be/restart")
        assert resp.status_code == 200
        await wait_state(r.url, "be", "up")
        async with connect(r.mcp_url("be"), "streamable-handshake") as client:
            assert text(await client.call_tool("echo", {"text": "fixed"})) == "fixed"


@pytest.mark.parametrize("how", ["SIGTERM", "SIGKILL"])
async def test_no_backend_process_outlives_the_router(tmp_path: Path, how: str) -> None:
    script = write_stdio_server(tmp_path, "v1")
    cmd = shlex.join([sys.executable, str(script)])
    async with run_router("-b", f"be={cmd}", check_exit_code=how == "SIGTERM") as r:
        await wait_state(r.url, "be", "up")
        pids: list[int] = []
        exit_code: int | None = None
        # Once the router is gone, the clients' own reader tasks may report the dead connection as
        # they are torn down; that is expected here, and what the test checks comes after.
        with contextlib.suppress(Exception):
            async with connect(r.mcp_url("be"), "streamable-handshake") as a, connect(r.sse_url("be"), "sse") as b:
                await a.call_tool("echo", {"text": "x"})
                await b.call_tool("echo", {"text": "y"})
                pids = await pids_of(r.url, "be")
                kill_pid(r.pid, 9 if how == "SIGKILL" else 15)
                exit_code = await asyncio.wait_for(r.proc.wait(), 10)
        assert len(pids) == 3  # the router's own, and one per client session
        if how == "SIGTERM":
            assert exit_code == 0
        await wait_for(lambda: not any(pid_alive(p) for p in pids), 10, message="backend processes to end")


VERSIONED_SERVER = """\
import json, os, sys
here = os.path.dirname(os.path.abspath(__file__))
version = open(os.path.join(here, "version.txt")).read().strip()
for line in sys.stdin:
    msg = json.loads(line)
    if "id" not in msg:
        continue
    if msg["method"] == "initialize":
        result = {"protocolVersion": version, "capabilities": {"tools": {}},
                  "serverInfo": {"name": "versioned", "version": version}}
    elif msg["method"] == "tools/list":
        result = {"tools": [{"name": "v", "inputSchema": {"type": "object"}}]}
    elif msg["method"] == "tools/call":
        result = {"content": [{"type": "text", "text": version}]}
    else:
        result = {}
    print(json.dumps({"jsonrpc": "2.0", "id": msg["id"], "result": result}), flush=True)
"""


async def test_rebuilt_backend_with_another_protocol_version_ends_the_session(tmp_path: Path) -> None:
    (tmp_path / "server.py").write_text(VERSIONED_SERVER)
    (tmp_path / "version.txt").write_text("2025-11-25")
    cmd = shlex.join([sys.executable, str(tmp_path / "server.py")])
    async with run_router("-b", f"be={cmd}", "--log-format", "json") as r:
        await wait_state(r.url, "be", "up")
        async with connect(r.mcp_url("be"), "streamable-handshake") as client:
            assert text(await client.call_tool("v", {})) == "2025-11-25"
            (tmp_path / "version.txt").write_text("2025-06-18")
            async with httpx.AsyncClient(timeout=30) as http:
                assert (await http.post(f"{r.url}/backends/be/restart")).status_code == 200
            with pytest.raises(MCPError):
                await client.call_tool("v", {})
        ended = [line for line in r.lines if '"ended"' in line]
        assert ended and "2025-06-18" in ended[0]


async def test_idle_session_is_closed_and_its_process_ended(tmp_path: Path) -> None:
    script = write_stdio_server(tmp_path, "v1")
    cmd = shlex.join([sys.executable, str(script)])
    async with run_router("-b", f"be={cmd}", "--session-idle-timeout", "1") as r:
        await wait_state(r.url, "be", "up")
        # A client that goes away without DELETE: initialize by hand, then vanish.
        async with httpx.AsyncClient() as http:
            init = initialize_request("t")
            headers = {"Accept": "application/json, text/event-stream"}
            resp = await http.post(r.mcp_url("be"), json=init, headers=headers)
            assert resp.status_code == 200
            sid = resp.headers["mcp-session-id"]
            main_pid, session_pid = await pids_of(r.url, "be")

            async def closed() -> bool:
                return (await http.get(f"{r.url}/sessions")).json() == []

            await wait_for(closed, 10, message="the idle session to be closed")
            await wait_for(lambda: not pid_alive(session_pid), 10, message="its process to end")
            assert pid_alive(main_pid)
            gone = await http.post(
                r.mcp_url("be"),
                json={"jsonrpc": "2.0", "id": 2, "method": "ping"},
                headers={**headers, "Mcp-Session-Id": sid},
            )
            assert gone.status_code == 404


async def test_restart_tells_a_session_what_its_own_process_changed(tmp_path: Path) -> None:
    """Each stdio session runs a process of its own, which may run other code than the backend's
    catalog was taken from (the source changed on disk without a restart): after a restart the
    session is told what changed in what ITS process serves."""
    script = write_stdio_server(tmp_path, "v2")
    cmd = shlex.join([sys.executable, str(script)])
    async with run_router("-b", f"vv={cmd}") as r:
        info = await wait_state(r.url, "vv", "up")
        assert "extra_tool" in info["tools"]  # the backend's catalog: v2
        (tmp_path / "variant.txt").write_text("v1")  # changed on disk, not restarted
        seen, handler = collect_notifications()
        async with (
            connect(r.sse_url("vv"), "sse", message_handler=handler) as client,
            httpx.AsyncClient(timeout=30) as http,
        ):
            assert "extra_tool" not in {t.name for t in (await client.list_tools()).tools}  # its process: v1
            (tmp_path / "variant.txt").write_text("v2")
            assert (await http.post(f"{r.url}/backends/vv/restart")).status_code == 200
            await wait_for(lambda: "notifications/tools/list_changed" in seen, 5, message="tools/list_changed")
            assert "extra_tool" in {t.name for t in (await client.list_tools()).tools}


COUNTED_SERVER = """\
# Counts its starts (0, 1, 2, ...); the start named in a file "hold-N" waits for a file "go" first:
# a new process a test keeps from answering its initialize for as long as it likes.
import os, runpy, sys, time
here = os.path.dirname(os.path.abspath(__file__))
starts = os.path.join(here, "starts")
os.makedirs(starts, exist_ok=True)
n = len(os.listdir(starts))
open(os.path.join(starts, str(n)), "w").close()
if os.path.exists(os.path.join(here, f"hold-{{n}}")):
    while not os.path.exists(os.path.join(here, "go")):
        time.sleep(0.02)
sys.argv = [{fixture!r}, "--transport", "stdio", "--variant", "v1", "--name", "stdio"]
runpy.run_path({fixture!r}, run_name="__main__")
"""


async def test_the_old_process_ending_during_a_move_does_not_fail_the_new_ones_handshake(tmp_path: Path) -> None:
    # Starts: 0 the backend's own process, 1 the session's; the restart starts 2 (the backend's)
    # and 3 (the session's new one), held before it answers its initialize.
    script = tmp_path / "server.py"
    script.write_text(COUNTED_SERVER.format(fixture=str(FIXTURE_PATH)))
    (tmp_path / "hold-3").touch()
    async with run_router("-b", f"be={shlex.join([sys.executable, str(script)])}") as r:
        await wait_state(r.url, "be", "up")
        async with connect(r.mcp_url("be"), "streamable-handshake") as client, httpx.AsyncClient(timeout=60) as http:
            old_pid = int(text(await client.call_tool("whoami", {})).split()[0].removeprefix("pid="))
            restart = asyncio.ensure_future(http.post(f"{r.url}/backends/be/restart"))
            await wait_for(lambda: (tmp_path / "starts" / "3").exists(), 30, message="the session's new process")
            # The old process ends while the new one's handshake is being replayed.
            kill_pid(old_pid, 9)

            async def old_one_lost() -> bool:
                sessions = (await http.get(f"{r.url}/sessions")).json()
                return not any(s["connected"] for s in sessions)

            await wait_for(old_one_lost, 10, message="the router to see the old process gone")
            (tmp_path / "go").touch()
            assert (await restart).status_code == 200
            after = text(await client.call_tool("whoami", {}))
            log = (await http.get(f"{r.url}/backends/be/log")).json()["lines"]
        assert not [line for line in log if "could not move" in line], log
        # Served by the process the move started, not by one started again after a failed move.
        assert sorted(p.name for p in (tmp_path / "starts").iterdir()) == ["0", "1", "2", "3"]
        assert not after.startswith(f"pid={old_pid} ")
