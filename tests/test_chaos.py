"""Chaos: clients keep calling while the backend is killed and restarted at random moments."""

from __future__ import annotations

import asyncio
import os
import random
from pathlib import Path
from typing import Any

import httpx
from mcp.shared.exceptions import MCPError

from tests.hotswap_support import swappable, wait_state
from tests.support.clients import connect
from tests.support.procs import run_router, wait_for

CLIENTS = ["streamable-handshake", "streamable-modern", "sse", "streamable-handshake"]
TOTAL_CALLS = 500
CALL_DEADLINE = 15.0  # hold (5 s) + generous slack: a call past this is a hang


async def status(url: str) -> dict[str, Any]:
    async with httpx.AsyncClient() as http:
        data: dict[str, Any] = (await http.get(f"{url}/status")).json()
        return data


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


async def test_chaos_every_call_answered_once_and_nothing_leaks(tmp_path: Path) -> None:
    rng = random.Random(20261125)
    async with swappable("streamable", tmp_path) as be:
        async with run_router("-b", f"be={be.target}", "--hold", "5", "--quiet") as r:
            be.router_url = r.url
            await wait_state(r.url, "be", "up")
            baseline_tasks = (await status(r.url))["tasks"]
            baseline_fds = open_fds(r.pid)
            outcomes: dict[str, str] = {}
            running = True

            progress = asyncio.Condition()
            # Kill points: random moments measured in completed calls, so that every kill lands
            # while the clients are busy however fast the machine is.
            kill_points = sorted(rng.sample(range(40, TOTAL_CALLS - 60), 4))

            async def chaos() -> int:
                kills = 0
                for point in kill_points:
                    async with progress:
                        await progress.wait_for(lambda p=point: len(outcomes) >= p or not running)
                    if not running:
                        break
                    await be.kill()
                    kills += 1
                    await asyncio.sleep(rng.uniform(0.05, 0.5))  # a random outage length, by design
                    await be.revive("v1")
                return kills

            async def worker(index: int, transport: str) -> None:
                url = r.mcp_url("be") if transport.startswith("streamable") else r.sse_url("be")
                async with connect(url, transport) as client:
                    for n in range(TOTAL_CALLS // len(CLIENTS)):
                        token = f"c{index}-{n}"
                        assert token not in outcomes
                        try:
                            result = await asyncio.wait_for(client.call_tool("echo", {"text": token}), CALL_DEADLINE)
                        except MCPError as exc:
                            assert "'be'" in exc.error.message, exc.error.message
                            outcomes[token] = "error"
                        else:
                            # Never someone else's answer, never an answer twice.
                            assert result.content[0].text == token
                            outcomes[token] = "ok"
                        async with progress:
                            progress.notify_all()

            chaos_task = asyncio.create_task(chaos())
            try:
                await asyncio.gather(*(worker(i, t) for i, t in enumerate(CLIENTS)))
            finally:
                running = False
                async with progress:
                    progress.notify_all()
                kills = await chaos_task
            assert len(outcomes) == TOTAL_CALLS
            print("chaos:", kills, "kills", sum(v == "error" for v in outcomes.values()), "errors")
            assert kills == len(kill_points)
            oks = sum(1 for v in outcomes.values() if v == "ok")
            assert oks > TOTAL_CALLS // 2, outcomes

            # Clients closed: no session, no pending request, no leftover task or socket.
            await wait_state(r.url, "be", "up")
            await wait_for(lambda: _quiet(r.url, baseline_tasks), 10, message="router tasks to settle")
            await wait_for(lambda: open_fds(r.pid) <= baseline_fds + 2, 10, message="router sockets to close")
            children = [p for p in os.listdir("/proc") if p.isdigit() and _parent(int(p)) == r.pid]
            assert children == []


async def _quiet(url: str, baseline: int) -> bool:
    s = await status(url)
    return bool(s["sessions"] == 0 and s["tasks"] <= baseline + 1)


def _parent(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[1])
    except (FileNotFoundError, ProcessLookupError, ValueError, IndexError):
        return None
