"""Sessions nobody uses are not moved at a restart: their backend side waits for their client.

A health check (`claude mcp list`) or a bridge's probe initializes a session and goes without
DELETE. On a stdio backend each session is a process of the user's server, and every restart
(each save under --watch) started one again for each of them. A handshake-era session with nothing
in flight and no stream open, idle for --park-after, is now parked instead: its process ends, and
its next request or stream rebuilds it, told what the restart changed. A client with its stream
open is moved at once, as before.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.hotswap_support import backend_state, stdio_backend_command, wait_state, write_stdio_server
from tests.support.clients import connect
from tests.support.procs import Router, initialize_request, kill_pid, pid_alive, run_router, wait_for

ACCEPT = {"accept": "application/json, text/event-stream", "content-type": "application/json"}
WHOAMI = {"jsonrpc": "2.0", "method": "tools/call", "params": {"name": "whoami", "arguments": {}}}


async def sessions(r: Router) -> dict[str, dict[str, Any]]:
    async with httpx.AsyncClient() as http:
        return {s["id"]: s for s in (await http.get(f"{r.url}/sessions")).json()}


async def restart(r: Router) -> None:
    async with httpx.AsyncClient(timeout=60) as http:
        resp = await http.post(f"{r.url}/backends/be/restart")
    assert resp.status_code == 200 and resp.json()["restarted"] is True, resp.text


def messages(resp: httpx.Response) -> list[dict[str, Any]]:
    """The JSON-RPC messages of an answer, JSON or SSE (without a 2025-11-25 stream's empty first event)."""
    if resp.headers["content-type"].startswith("application/json"):
        return [resp.json()]
    data = [line[len("data: ") :] for line in resp.text.splitlines() if line.startswith("data: ")]
    return [json.loads(d) for d in data if d]


def pid_in(answer: dict[str, Any]) -> int:
    match = re.search(r"pid=(\d+)", answer["result"]["content"][0]["text"])
    assert match, answer
    return int(match.group(1))


class ProbeLikeClient:
    """A client that initializes and then keeps no stream open (as a health check leaves it)."""

    def __init__(self, http: httpx.AsyncClient, url: str) -> None:
        self.http, self.url = http, url
        self.headers: dict[str, str] = {}
        self.ids = iter(range(2, 1000))

    async def start(self) -> str:
        init = await self.http.post(self.url, json=initialize_request("probe-like"), headers=ACCEPT)
        assert init.status_code == 200, init.text
        sid = init.headers["mcp-session-id"]
        self.headers = {**ACCEPT, "mcp-session-id": sid, "mcp-protocol-version": "2025-11-25"}
        done = await self.http.post(
            self.url, json={"jsonrpc": "2.0", "method": "notifications/initialized"}, headers=self.headers
        )
        assert done.status_code == 202, done.text
        return sid

    async def whoami(self) -> list[dict[str, Any]]:
        resp = await self.http.post(self.url, json={**WHOAMI, "id": next(self.ids)}, headers=self.headers)
        assert resp.status_code == 200, resp.text
        return messages(resp)


async def test_an_unused_session_is_parked_at_a_restart_and_rebuilt_when_its_client_is_back(tmp_path: Path) -> None:
    script = write_stdio_server(tmp_path, "v1")
    async with run_router("-b", f"be={stdio_backend_command(script)}", "--park-after", "0") as r:
        await wait_state(r.url, "be", "up")
        async with connect(r.mcp_url("be"), "streamable-handshake") as listening, httpx.AsyncClient(timeout=60) as http:
            await listening.call_tool("whoami", {})
            probe = ProbeLikeClient(http, r.mcp_url("be"))
            sid = await probe.start()
            first = await probe.whoami()
            old_pid = pid_in(first[-1])
            # The SDK client opens its GET stream after the handshake: wait for it, so that only
            # the probe-like session is unused when the backend restarts.
            listener = next(s for s in (await sessions(r)) if s != sid)

            async def stream_open() -> bool:
                return bool((await sessions(r))[listener]["open_streams"])

            await wait_for(stream_open, 10, message="the SDK client's GET stream")
            assert len((await backend_state(r.url, "be"))["pids"]) == 3  # the router's own, one per session

            (tmp_path / "variant.txt").write_text("v2")  # the developer's change: adds extra_tool
            await restart(r)

            now = await sessions(r)
            assert now[listener]["state"] == "connected"  # moved at once: its client listens
            assert now[sid]["state"] == "idle" and now[sid]["rebuilds"] == 0  # as the TUI shows it
            await wait_for(lambda: not pid_alive(old_pid), 10, message="the parked session's process to end")
            # No process was started for the parked session: the router's own and the listener's.
            assert len((await backend_state(r.url, "be"))["pids"]) == 2
            assert any(f"session {sid[:8]} parked" in line for line in r.lines), r.lines[-20:]
            whoami = await listening.call_tool("whoami", {})
            assert "variant=v2" in str(getattr(whoami.content[0], "text", ""))

            # Its client is back: the call is answered by a new process of the new code, and told
            # that the tools changed, on the same answer stream.
            back = await probe.whoami()
            assert "variant=v2" in back[-1]["result"]["content"][0]["text"], back
            assert pid_in(back[-1]) != old_pid
            assert [m["method"] for m in back[:-1]] == ["notifications/tools/list_changed"], back
            again = (await sessions(r))[sid]
            assert again["state"] == "connected" and again["rebuilds"] == 1
            assert len((await backend_state(r.url, "be"))["pids"]) == 3

            # Parked again at the next restart; a stream opened is enough to bring it back.
            await restart(r)
            assert (await sessions(r))[sid]["connected"] is False
            async with http.stream("GET", r.mcp_url("be"), headers=probe.headers) as stream:
                assert stream.status_code == 200

                async def rebuilt() -> bool:
                    return bool((await sessions(r))[sid]["connected"])

                await wait_for(rebuilt, 20, message="the parked session to be rebuilt for its stream")
            assert (await sessions(r))[sid]["rebuilds"] == 2


@pytest.mark.parametrize("park_after", [None, "-1"])
async def test_a_session_used_lately_or_with_parking_off_is_moved_at_once(
    tmp_path: Path, park_after: str | None
) -> None:
    script = write_stdio_server(tmp_path, "v1")
    extra = ["--park-after", park_after] if park_after is not None else []
    async with (
        run_router("-b", f"be={stdio_backend_command(script)}", *extra) as r,
        httpx.AsyncClient(timeout=60) as http,
    ):
        await wait_state(r.url, "be", "up")
        probe = ProbeLikeClient(http, r.mcp_url("be"))
        sid = await probe.start()
        old_pid = pid_in((await probe.whoami())[-1])
        await restart(r)
        now = (await sessions(r))[sid]
        # Default: idle for less than 30 s, so moved; -1: never parked.
        assert now["connected"] is True and now["rebuilds"] == 1, now
        assert pid_in((await probe.whoami())[-1]) != old_pid
        assert not any("parked" in line for line in r.lines), r.lines[-20:]


async def test_an_unused_session_whose_process_dies_is_rebuilt_only_when_its_client_is_back(tmp_path: Path) -> None:
    script = write_stdio_server(tmp_path, "v1")
    async with (
        run_router("-b", f"be={stdio_backend_command(script)}", "--park-after", "0") as r,
        httpx.AsyncClient(timeout=60) as http,
    ):
        await wait_state(r.url, "be", "up")
        probe = ProbeLikeClient(http, r.mcp_url("be"))
        sid = await probe.start()
        old_pid = pid_in((await probe.whoami())[-1])
        kill_pid(old_pid, 9)  # the user's server crashed in this session's process

        async def parked() -> bool:
            return any(f"session {sid[:8]} parked" in line for line in r.lines)

        await wait_for(parked, 10, message="the session to be parked after its process died")
        assert (await sessions(r))[sid]["state"] == "idle"
        assert len((await backend_state(r.url, "be"))["pids"]) == 1  # the router's own: none started for it
        back = await probe.whoami()
        assert pid_in(back[-1]) != old_pid, back
        assert (await sessions(r))[sid]["state"] == "connected"
