"""Commands on one backend that race: add, remove, enable, disable and restart, from the
management API as a script (or a TUI user with fast fingers) would send them.

The processes are real and counted from /proc: the router's children, whatever the router says.
"""

from __future__ import annotations

import asyncio
import os
import random
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.control import ControlError, LocalControl
from app.proxy.router import Router
from tests.support.procs import initialize_request, run_router, wait_for

# A stdio MCP server that takes `delay` seconds to start (a build, an import), which is when the
# races happen: a command arriving while the first process or a restart's new one is starting.
SLOW_SERVER = """\
import json, sys, time
time.sleep(float(sys.argv[1]))
for line in sys.stdin:
    msg = json.loads(line)
    if "id" not in msg:
        continue
    if msg["method"] == "initialize":
        result = {"protocolVersion": msg["params"]["protocolVersion"], "capabilities": {"tools": {}},
                  "serverInfo": {"name": "slow", "version": "1"}}
    elif msg["method"] == "tools/list":
        result = {"tools": [{"name": "echo", "inputSchema": {"type": "object"}}]}
    elif msg["method"] == "tools/call":
        result = {"content": [{"type": "text", "text": msg["params"]["arguments"].get("text", "")}]}
    else:
        result = {}
    print(json.dumps({"jsonrpc": "2.0", "id": msg["id"], "result": result}), flush=True)
"""

NAME = "be"
ACCEPT = {"accept": "application/json, text/event-stream"}


def children(pid: int) -> set[int]:
    """Live (not zombie) child processes of `pid`, from /proc: what really runs, not what is reported."""
    out: set[int] = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # ended while we looked
        if fields[0] != "Z" and int(fields[1]) == pid:
            out.add(int(stat.parent.name))
    return out


def backend_spec(script: Path, delay: float, enabled: bool = True) -> dict[str, Any]:
    return {"name": NAME, "command": sys.executable, "args": [str(script), str(delay)], "enabled": enabled}


@asynccontextmanager
async def router_with_slow_server(
    tmp_path: Path, delay: float, *extra: str
) -> AsyncIterator[tuple[Any, httpx.AsyncClient, Path]]:
    script = tmp_path / "slow_server.py"
    script.write_text(SLOW_SERVER)
    async with run_router(*extra) as r, httpx.AsyncClient(base_url=r.url, timeout=60.0) as http:
        yield r, http, script


async def snapshot(http: httpx.AsyncClient) -> dict[str, Any] | None:
    resp = await http.get(f"/backends/{NAME}")
    if resp.status_code == 404:
        return None
    assert resp.status_code == 200, resp.text
    body: dict[str, Any] = resp.json()
    return body


# ------------------------------------------------------------------------------ the three races


@pytest.mark.parametrize("delay", [1.0])
async def test_remove_while_the_first_process_starts_leaves_no_process(tmp_path: Path, delay: float) -> None:
    async with router_with_slow_server(tmp_path, delay) as (r, http, script):
        assert (await http.post("/backends", json=backend_spec(script, delay))).status_code == 201
        await wait_for(lambda: children(r.pid), 10, message="the first process to be started")
        assert (await snapshot(http) or {})["state"] == "starting"

        resp = await http.delete("/backends", params={"name": NAME})
        assert resp.status_code == 200, resp.text
        # The answer comes once the process is gone, not some time later.
        assert children(r.pid) == set()
        assert await snapshot(http) is None


async def _restart_in_flight(r: Any, http: httpx.AsyncClient) -> tuple[asyncio.Task[httpx.Response], int]:
    """Start a restart of the (up) backend; return it once its new process is starting."""
    up = await wait_for(lambda: _state_is(http, "up"), 20, message="the backend to be up")
    (old_pid,) = up["pids"]
    restart = asyncio.create_task(http.post(f"/backends/{NAME}/restart"))
    await wait_for(lambda: len(children(r.pid)) == 2, 10, message="the restart's new process to be started")
    assert not restart.done()
    return restart, old_pid


async def _state_is(http: httpx.AsyncClient, state: str) -> dict[str, Any] | None:
    snap = await snapshot(http)
    return snap if snap is not None and snap["state"] == state else None


async def test_remove_wins_over_a_restart_in_flight(tmp_path: Path) -> None:
    async with router_with_slow_server(tmp_path, 1.0) as (r, http, script):
        assert (await http.post("/backends", json=backend_spec(script, 1.0))).status_code == 201
        restart, _ = await _restart_in_flight(r, http)

        resp = await http.delete("/backends", params={"name": NAME})
        assert resp.status_code == 200, resp.text
        assert children(r.pid) == set()  # the old process and the restart's new one

        answer = await restart
        assert answer.status_code == 404, answer.text
        body = answer.json()
        assert body["restarted"] is False and body["outcome"] == "removed"
        assert "removed" in body["error"]
        assert children(r.pid) == set()
        assert await snapshot(http) is None


async def test_disable_wins_over_a_restart_in_flight(tmp_path: Path) -> None:
    async with router_with_slow_server(tmp_path, 1.0, "--hold", "0.5") as (r, http, script):
        assert (await http.post("/backends", json=backend_spec(script, 1.0))).status_code == 201
        restart, _ = await _restart_in_flight(r, http)

        resp = await http.post(f"/backends/{NAME}/disable")
        assert resp.status_code == 200, resp.text
        assert resp.json()["state"] == "disabled" and resp.json()["enabled"] is False
        assert resp.json()["pids"] == [] and children(r.pid) == set()

        answer = await restart
        assert answer.status_code == 409, answer.text
        assert answer.json()["restarted"] is False and answer.json()["outcome"] == "disabled"
        snap = await snapshot(http)
        assert snap is not None and snap["state"] == "disabled" and snap["enabled"] is False

        # A new client does not bring a disabled backend back to life: it is held, then refused.
        resp = await http.post(f"/mcp/{NAME}", json=initialize_request("while-disabled"), headers=ACCEPT)
        assert "disabled" in resp.text, resp.text
        assert children(r.pid) == set()

        assert (await http.post(f"/backends/{NAME}/enable")).status_code == 200
        up = await wait_for(lambda: _state_is(http, "up"), 20, message="the backend to be up again")
        assert children(r.pid) == set(up["pids"]) and len(up["pids"]) == 1


@asynccontextmanager
async def local_router_with_slow_server(tmp_path: Path) -> AsyncIterator[tuple[Router, LocalControl, set[int]]]:
    """An in-process router acted on through LocalControl (as the TUI acts), its slow backend up;
    and the child processes this test process had before it. The router is stopped after."""
    script = tmp_path / "slow_server.py"
    script.write_text(SLOW_SERVER)
    router = Router(hold=0.5)
    await router.start()
    control = LocalControl(router)
    before = children(os.getpid())
    try:
        await control.add_backend(backend_spec(script, 1.0))
        await wait_for(lambda: router.backends[NAME].state == "up", 20, message="the backend to be up")
        yield router, control, before
    finally:
        await router.stop()


async def _local_restart_in_flight(control: LocalControl, before: set[int]) -> asyncio.Task[Any]:
    """Start a restart through LocalControl; return it once its new process is starting."""
    restart = asyncio.create_task(control.restart(NAME))
    await wait_for(lambda: len(children(os.getpid()) - before) == 2, 10, message="the restart's new process")
    return restart


async def test_local_control_has_the_same_semantics(tmp_path: Path) -> None:
    """The TUI acts through LocalControl: a restart that loses to a disable or a removal says so
    there too (ControlError with the API's status), and no process outlives its backend."""
    me = os.getpid()
    async with local_router_with_slow_server(tmp_path) as (router, control, before):
        restart = await _local_restart_in_flight(control, before)
        snap = await control.disable(NAME)
        assert snap["state"] == "disabled" and snap["pids"] == [] and children(me) == before
        with pytest.raises(ControlError) as lost:
            await restart
        assert lost.value.status == 409 and "disabled" in lost.value.message
        with pytest.raises(ControlError) as refused:
            await control.restart(NAME)  # a disabled backend is not restarted
        assert refused.value.status == 409

        await control.enable(NAME)
        await wait_for(lambda: router.backends[NAME].state == "up", 20, message="the backend to be up again")
        restart = await _local_restart_in_flight(control, before)
        await control.remove_backend(NAME)
        assert children(me) == before
        with pytest.raises(ControlError) as lost:
            await restart
        assert lost.value.status == 404 and "removed" in lost.value.message
    assert children(me) == before


async def test_a_disable_that_a_removal_overtakes_says_removed(tmp_path: Path) -> None:
    """A disable waiting behind a restart, with a removal queued behind it: when its turn comes the
    backend is removed and its process not yet stopped. It must say "removed", not "disabled" with
    a process still running (seen in the storm below, about one run in ten)."""
    async with local_router_with_slow_server(tmp_path) as (_, control, before):
        restart = await _local_restart_in_flight(control, before)
        disable = asyncio.create_task(control.disable(NAME))
        remove = asyncio.create_task(control.remove_backend(NAME))
        with pytest.raises(ControlError) as overtaken:
            await disable
        assert overtaken.value.status == 404 and "removed" in overtaken.value.message
        await remove
        assert children(os.getpid()) == before
        with pytest.raises(ControlError):
            await restart


# ------------------------------------------------------------------------------ the storm

STORM_SECONDS = 8.0
STORM_TASKS = 4
SEED = 11
ACTIONS = ("add", "remove", "enable", "disable", "restart")
WEIGHTS = (3, 2, 3, 2, 4)
# What each action may answer; anything else (a 500, a hang) fails the test.
ALLOWED = {
    "add": {201, 409},
    "remove": {200, 404},
    "enable": {200, 404},
    "disable": {200, 404},
    "restart": {200, 404, 409},
}


async def test_random_commands_from_several_tasks_end_consistent(tmp_path: Path) -> None:
    """add, remove, enable, disable and restart at random on one name from several tasks; then the
    state is the one the last applied command implies, and so is the set of running processes."""
    delay = 0.1
    applied: list[tuple[int, str, dict[str, Any]]] = []  # (seq, action, answer) of applied commands
    counts: dict[tuple[str, int], int] = {}

    async with router_with_slow_server(tmp_path, delay, "--health-interval", "0.5") as (r, http, script):

        async def check(action: str, resp: httpx.Response) -> None:
            assert resp.status_code in ALLOWED[action], (action, resp.status_code, resp.text)
            counts[(action, resp.status_code)] = counts.get((action, resp.status_code), 0) + 1
            body = resp.json()
            if action == "restart":
                if body.get("restarted"):
                    # It says it restarted: then it is up, enabled, on exactly one process.
                    snap = body["backend"]
                    assert snap["state"] == "up" and snap["enabled"] is True and len(snap["pids"]) == 1, body
                else:
                    assert body.get("outcome") in ("removed", "disabled") or "unknown backend" in body["error"], body
                return
            if resp.status_code in (200, 201):
                applied.append((body["seq"], action, body))
            if action == "disable" and resp.status_code == 200 and body["enabled"] is False:
                assert body["state"] == "disabled" and body["pids"] == [], body

        async def storm(task: int) -> None:
            rng = random.Random(SEED * 100 + task)
            deadline = time.monotonic() + STORM_SECONDS
            while time.monotonic() < deadline:
                action = rng.choices(ACTIONS, WEIGHTS)[0]
                if action == "add":
                    resp = await http.post("/backends", json=backend_spec(script, delay, rng.random() < 0.8))
                elif action == "remove":
                    resp = await http.delete("/backends", params={"name": NAME})
                else:
                    resp = await http.post(f"/backends/{NAME}/{action}")
                await check(action, resp)

        await asyncio.gather(*(storm(t) for t in range(STORM_TASKS)))
        assert applied, counts
        restarted = counts.get(("restart", 200), 0)
        print(f"\nstorm: {len(applied)} applied commands; answers {sorted(counts.items())}")

        seq, last, body = max(applied, key=lambda a: a[0])
        if last == "remove":
            expected: str | None = None
        elif last == "add":
            expected = "up" if body["enabled"] else "disabled"
        else:
            expected = "up" if last == "enable" else "disabled"

        async def settled() -> bool:
            snap = await snapshot(http)
            running = children(r.pid)
            if expected is None:
                return snap is None and running == set()
            if snap is None or snap["state"] != expected:
                return False
            return running == set(snap["pids"]) and len(running) == (1 if expected == "up" else 0)

        await wait_for(settled, 30, message=f"the state implied by the last command (#{seq} {last}): {expected}")
        # And it stays so: nothing left in flight changes it behind the last command's back.
        await asyncio.sleep(1.0)  # a quiet period to observe, not a synchronisation
        assert await settled(), (await snapshot(http), children(r.pid))
        assert restarted > 0 and counts.get(("restart", 404), 0) + counts.get(("restart", 409), 0) > 0, counts
