"""Swaps that lose even less: a request safe to send twice survives its backend dying mid-flight.

The fixture's `hang_reads` makes its process stop answering the read methods and the annotated
tools (`look` read-only, `put` idempotent), so every such request is in flight when the process
is killed; the new process answers them. Anything else still fails at once, and `--no-resend`
restores failing fast for all.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from pathlib import Path
from typing import Any

import httpx
import mcp.client.session
import pytest
from mcp.shared.exceptions import MCPError
from mcp_types import PromptReference

from app.headless import format_text
from app.proxy.events import TrafficEvent
from tests.hotswap_support import swappable, wait_state
from tests.support.clients import connect
from tests.support.procs import Router, run_router, wait_for

BACKENDS = ["streamable", "stdio"]
HOLD = 20  # the router's --hold here: how long a re-sent request may wait for the new backend


async def pending(r: Router) -> int:
    async with httpx.AsyncClient() as http:
        sessions = (await http.get(f"{r.url}/sessions")).json()
    return sum(int(s["pending"]) for s in sessions)


def resent_methods(r: Router) -> list[str]:
    out = []
    for line in r.lines:
        if line.startswith("{") and '"resent"' in line:
            ev = json.loads(line)
            if ev.get("resent") is True and ev["direction"] == "router->backend":
                out.append(ev["method"])
    return out


@pytest.mark.parametrize("backend_tr", BACKENDS)
@pytest.mark.filterwarnings("ignore:ping is removed")
async def test_reads_in_flight_are_resent_to_the_new_backend(
    tmp_path: Path, backend_tr: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The router promises an answer within the hold; the SDK gives `server/discover` only 10 s.
    # A stdio backend may come back only after two process starts (the router's own process,
    # then the session's), which a loaded machine stretches past 10 s: the client waits the hold.
    monkeypatch.setattr(mcp.client.session, "DISCOVER_TIMEOUT_SECONDS", HOLD + 5)
    async with swappable(backend_tr, tmp_path) as be:
        async with run_router("-b", f"be={be.target}", "--hold", str(HOLD), "--log-format", "json") as r:
            be.router_url = r.url
            await wait_state(r.url, "be", "up")
            async with (
                connect(r.mcp_url("be"), "streamable-handshake") as old,
                connect(r.mcp_url("be"), "streamable-modern") as new,
            ):
                # The SDK checks a tool's answer against the tool list: have it listed before the hang.
                await old.list_tools()
                await new.list_tools()
                await old.call_tool("hang_reads", {})
                await new.call_tool("hang_reads", {})
                calls: dict[str, Any] = {
                    "tools/list": old.list_tools(),
                    "resources/list": old.list_resources(),
                    "resources/templates/list": old.list_resource_templates(),
                    "resources/read": old.read_resource("test://static"),
                    "prompts/list": old.list_prompts(),
                    "prompts/get": old.get_prompt("greet", {"name": "Ada"}),
                    "completion/complete": old.complete(PromptReference(name="greet"), {"name": "name", "value": "A"}),
                    "ping": old.send_ping(),
                    "tools/call look": old.call_tool("look", {"text": "seen"}),
                    "tools/call put": old.call_tool("put", {"key": "k"}),
                    "server/discover": new.session.send_discover("2026-07-28"),
                    "modern tools/call look": new.call_tool("look", {"text": "modern"}),
                }
                tasks = {k: asyncio.create_task(c) for k, c in calls.items()}
                # Every one of them has reached a backend process, which holds it.
                await wait_for(lambda: _hung(old, 10, new, 2), 10, message="every request in flight")
                await be.kill()
                await be.revive("v1")
                # Errors kept, not raised: raised in here, the clients' exit would bury them under
                # its own ClosedResourceErrors, and a failure would not say which request failed how.
                answers = await asyncio.wait_for(asyncio.gather(*tasks.values(), return_exceptions=True), HOLD + 10)
                results = dict(zip(tasks, answers, strict=True))
            assert {k: repr(v) for k, v in results.items() if isinstance(v, BaseException)} == {}
            assert {t.name for t in results["tools/list"].tools} >= {"echo", "look", "put"}
            assert any(str(x.uri) == "test://static" for x in results["resources/list"].resources)
            assert any(
                t.uri_template == "test://item/{name}" for t in results["resources/templates/list"].resource_templates
            )
            assert results["resources/read"].contents[0].text == "static resource"
            assert [p.name for p in results["prompts/list"].prompts] == ["greet"]
            assert "Hello, Ada!" in results["prompts/get"].messages[0].content.text
            assert results["completion/complete"].completion.values == ["A-done"]
            assert results["tools/call look"].content[0].text == "seen"
            assert results["tools/call put"].content[0].text == "stored k"
            assert results["modern tools/call look"].content[0].text == "modern"
            assert "2026-07-28" in results["server/discover"]["supportedVersions"]
            # The trace shows each as re-sent (one event per request, the method named).
            await wait_for(lambda: len(resent_methods(r)) >= len(tasks), 5, message="the re-send events")
            assert sorted(set(resent_methods(r))) == sorted(
                {"tools/list", "resources/list", "resources/templates/list", "resources/read", "prompts/list"}
                | {"prompts/get", "completion/complete", "ping", "tools/call", "server/discover"}
            )


async def _hung(old: Any, n_old: int, new: Any, n_new: int) -> bool:
    """Each client's backend process holds at least so many requests (one process over HTTP)."""
    counts = [int((await c.call_tool("hung", {})).structured_content["result"]) for c in (old, new)]
    return counts[0] >= n_old and counts[1] >= n_new


async def _all_pending(r: Router, n: int) -> bool:
    return await pending(r) >= n


@pytest.mark.parametrize("backend_tr", BACKENDS)
@pytest.mark.parametrize("resend", [True, False], ids=["resend", "no-resend"])
async def test_unsafe_call_or_no_resend_fails_fast(tmp_path: Path, backend_tr: str, resend: bool) -> None:
    """`sleep` declares no hints: it may have done its work, so it fails at once; with
    `--no-resend` so does the read-only `look`."""
    extra = () if resend else ("--no-resend",)
    async with swappable(backend_tr, tmp_path) as be:
        async with run_router("-b", f"be={be.target}", "--hold", str(HOLD), *extra) as r:
            be.router_url = r.url
            await wait_state(r.url, "be", "up")
            async with connect(r.mcp_url("be"), "streamable-handshake") as client:
                await client.list_tools()
                await client.call_tool("hang_reads", {})
                call = ("sleep", {"seconds": 30}) if resend else ("look", {"text": "x"})
                task = asyncio.create_task(client.call_tool(*call))
                await wait_for(lambda: _all_pending(r, 1), 10, message="the call in flight")
                if not resend:
                    await wait_for(lambda: _hung(client, 1, client, 1), 10, message="the call at the backend")
                await be.kill()
                killed = time.monotonic()
                with pytest.raises(MCPError) as err:
                    await asyncio.wait_for(task, 5)
                assert time.monotonic() - killed < 1.5
                assert err.value.error.code == -32051
                assert "'be'" in err.value.error.message


CONCURRENCY = 32
KILLS = 4


async def test_chaos_read_only_tool_at_concurrency_32_loses_nothing(tmp_path: Path) -> None:
    """32 calls of a read-only tool always in flight while the backend process is killed four
    times: every call answered, with its own answer, none an error."""
    async with swappable("streamable", tmp_path) as be:
        async with run_router("-b", f"be={be.target}", "--hold", "10", "--quiet") as r:
            be.router_url = r.url
            await wait_state(r.url, "be", "up")
            done = 0
            errors: list[str] = []
            stop = asyncio.Event()
            counter = itertools.count()

            async def worker(client: Any) -> None:
                nonlocal done
                while not stop.is_set():
                    token = f"t{next(counter)}"
                    try:
                        result = await asyncio.wait_for(client.call_tool("look", {"text": token}), 15)
                    except (MCPError, TimeoutError) as exc:
                        errors.append(repr(exc))
                        continue
                    assert result.content[0].text == token
                    done += 1

            async def chaos() -> None:
                for k in range(KILLS):
                    target = done + 150
                    await wait_for(lambda t=target: done >= t, 20, message=f"calls before kill {k + 1}")  # type: ignore[misc]
                    await be.kill()
                    await be.revive("v1")
                await wait_for(lambda: done >= target + 150, 20, message="calls after the last kill")
                stop.set()

            transports = ["streamable-handshake", "streamable-modern"] * 2
            async with (
                connect(r.mcp_url("be"), transports[0]) as c0,
                connect(r.mcp_url("be"), transports[1]) as c1,
                connect(r.mcp_url("be"), transports[2]) as c2,
                connect(r.mcp_url("be"), transports[3]) as c3,
            ):
                clients = [c0, c1, c2, c3]
                workers = [asyncio.create_task(worker(clients[i % 4])) for i in range(CONCURRENCY)]
                try:
                    await asyncio.wait_for(chaos(), 40)
                finally:
                    stop.set()
                    await asyncio.gather(*workers)
            print("chaos (read-only):", done, "calls,", KILLS, "kills,", len(errors), "errors")
            assert errors == []
            assert done >= KILLS * 150


def test_headless_output_names_a_resent_request() -> None:
    ev = TrafficEvent(
        direction="router->backend",
        session="0123456789",
        backend="be",
        msg_kind="request",
        method="tools/list",
        msg_id=4,
        resent=True,
    )
    assert "⇢ be  01234567  tools/list #4  re-sent" in (format_text(ev) or "")
    assert ev.to_dict()["resent"] is True
    ev.resent = False
    assert "resent" not in ev.to_dict() and "re-sent" not in (format_text(ev) or "")
