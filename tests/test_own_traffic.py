"""Every request answered on its own, and one client's traffic never another's (issue 9).

Legacy HTTP+SSE: each POST to `/messages/` is accepted at once and answered on the stream when
ready, so a ping, a quick call, a cancellation or a reply to the backend's own request never waits
behind a long call. The 2026-07-28 era: all clients of a backend share one backend session, and
fresh SDK clients all use the same request ids and progress tokens; each must get exactly its own
progress, log messages and input rounds, with 2 and with 8 clients at once, and never the progress
a backend still sends for a call another client gave up.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import mcp_types as types
import pytest
from mcp.client import ClientRequestContext

from tests.support.clients import connect
from tests.support.procs import SyncRouter, run_fixture_sync, run_router_sync, stdio_command, wait_for
from tests.support.raw import RawClient

pytestmark = pytest.mark.timeout(90)


@pytest.fixture(scope="module")
def router() -> Iterator[SyncRouter]:
    with (
        run_fixture_sync("streamable", name="http") as fx,
        run_router_sync("-b", f"http={fx.url}", "-b", f"stdio={stdio_command(name='stdio')}") as r,
    ):
        yield r


def call(rid: int, name: str, arguments: dict[str, Any]) -> bytes:
    body = {"jsonrpc": "2.0", "id": rid, "method": "tools/call", "params": {"name": name, "arguments": arguments}}
    return json.dumps(body).encode()


@contextlib.asynccontextmanager
async def legacy_client(router: SyncRouter, backend: str) -> AsyncIterator[RawClient]:
    caps: dict[str, object] = {"elicitation": {}}
    async with (
        httpx.AsyncClient(timeout=httpx.Timeout(10.0, read=60.0)) as http,
        RawClient(http, router, "sse", backend, caps) as client,
    ):
        yield client


async def messages_until(client: RawClient, want: set[Any], deadline: float) -> dict[Any, dict[str, Any]]:
    """Messages from the stream by id until every id in `want` arrived (requests from the backend too)."""
    seen: dict[Any, dict[str, Any]] = {}
    async with asyncio.timeout(deadline):
        while not want <= set(seen):
            msg = json.loads(await client.next_message())
            seen[msg.get("id")] = msg
    return seen


@pytest.mark.parametrize("backend", ["http", "stdio"])
async def test_legacy_posts_are_answered_independently(router: SyncRouter, backend: str) -> None:
    async with legacy_client(router, backend) as client:
        started = time.monotonic()
        await client.post(call(1, "sleep", {"seconds": 20}))
        await client.post(json.dumps({"jsonrpc": "2.0", "id": 2, "method": "ping"}).encode())
        await client.post(call(3, "echo", {"text": "quick"}))
        seen = await messages_until(client, {2, 3}, 10)
        # Both answered while the long call still runs, not after it (generous: the machine is shared).
        assert time.monotonic() - started < 5.0
        assert 1 not in seen
        assert seen[2]["result"] == {}
        assert seen[3]["result"]["content"][0]["text"] == "quick"

        # A server-to-client request and its reply get through while the call runs.
        await client.post(call(4, "elicit", {"question": "now?"}))
        asked = await client.next_message()
        request = json.loads(asked)
        assert request["method"] == "elicitation/create", request
        reply = {"jsonrpc": "2.0", "id": request["id"], "result": {"action": "accept", "content": {"answer": "yes"}}}
        await client.post(json.dumps(reply).encode())
        seen = await messages_until(client, {4}, 10)
        assert seen[4]["result"]["content"][0]["text"] == "accept:yes"
        assert 1 not in seen

        # So does a cancellation: the backend's tool sees it, long before the call would end.
        cancel = {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 1}}
        await client.post(json.dumps(cancel).encode())
        for attempt in range(100):
            await client.post(call(100 + attempt, "sleeps", {}))
            seen = await messages_until(client, {100 + attempt}, 10)
            _started, cancelled_n = seen[100 + attempt]["result"]["content"][0]["text"].split()
            if int(cancelled_n) >= 1:
                break
            await asyncio.sleep(0.05)  # poll interval while the backend handles the cancellation
        else:
            pytest.fail("the backend never saw the cancellation")
        assert time.monotonic() - started < 15.0  # long before the call would have ended


@dataclass
class Seen:
    progress: list[tuple[float, float | None, str | None]] = field(default_factory=list)
    logs: list[Any] = field(default_factory=list)
    elicited: list[str] = field(default_factory=list)


async def modern_client(router: SyncRouter, backend: str, k: int, seen: Seen, with_logs: bool) -> list[str]:
    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.progress.append((progress, total, message))

    async def on_log(params: types.LoggingMessageNotificationParams) -> None:
        seen.logs.append(params.data)

    async def on_elicit(context: ClientRequestContext, params: types.ElicitRequestParams) -> types.ElicitResult:
        seen.elicited.append(params.message)
        return types.ElicitResult(action="accept", content={"answer": f"re:{params.message}"})

    texts: list[str] = []
    async with connect(
        router.mcp_url(backend),
        "streamable-modern",
        logging_callback=on_log,
        elicitation_callback=on_elicit,
        log_level="info",
        read_timeout_seconds=30.0,
    ) as c:
        # Every client makes the same calls in the same order: the same ids and progress tokens.
        steps = 2 + k
        result = await c.call_tool("slow", {"steps": steps, "delay": 0.02}, progress_callback=on_progress)
        texts.append(result.content[0].text)  # type: ignore[union-attr]
        if with_logs:
            result = await c.call_tool("log", {"message": f"note-{k}"})
            texts.append(result.content[0].text)  # type: ignore[union-attr]
        result = await c.call_tool("elicit", {"question": f"q{k}"})
        texts.append(result.content[0].text)  # type: ignore[union-attr]
    return texts


@pytest.mark.parametrize("clients", [2, 8])
@pytest.mark.parametrize("backend", ["http", "stdio"])
async def test_concurrent_modern_clients_get_only_their_own(router: SyncRouter, backend: str, clients: int) -> None:
    seen = [Seen() for _ in range(clients)]
    # A stdio backend's log lines name no request: with several in flight the router cannot tell
    # whose they are, so it delivers them to nobody rather than to the wrong client.
    with_logs = backend == "http"
    results = await asyncio.gather(*(modern_client(router, backend, k, seen[k], with_logs) for k in range(clients)))
    for k, (texts, mine) in enumerate(zip(results, seen, strict=True)):
        steps = 2 + k
        assert texts == ["done", *(["logged"] if with_logs else []), f"accept:re:q{k}"]
        assert mine.progress == [(i, steps, f"step {i}/{steps}") for i in range(1, steps + 1)], (k, mine.progress)
        assert mine.elicited == [f"q{k}"]
        if with_logs:
            # The SDK runs log callbacks in their own tasks.
            await wait_for(lambda mine=mine: mine.logs, 3, message=f"client {k}'s log message")
            assert mine.logs == [f"note-{k}"], (k, mine.logs)


async def test_stdio_log_goes_to_the_one_request_that_asked(router: SyncRouter) -> None:
    """A stdio backend's log line names no request; with several in flight, it belongs to the one that asked for logs."""
    logs_a: list[Any] = []
    logs_b: list[Any] = []

    async def on_log_a(params: types.LoggingMessageNotificationParams) -> None:
        logs_a.append(params.data)

    async def on_log_b(params: types.LoggingMessageNotificationParams) -> None:
        logs_b.append(params.data)

    url = router.mcp_url("stdio")
    async with (
        connect(url, "streamable-modern", logging_callback=on_log_a, log_level="info") as a,
        connect(url, "streamable-modern", logging_callback=on_log_b) as b,
    ):

        async def sleeps() -> int:
            result = await b.call_tool("sleeps", {})
            return int(result.content[0].text.split()[0])  # type: ignore[union-attr]

        before = await sleeps()
        slow = asyncio.create_task(b.call_tool("sleep", {"seconds": 3}))

        async def b_running() -> bool:
            return await sleeps() > before

        await wait_for(b_running, 10, message="b's call to run on the backend")
        assert not slow.done()
        assert (await a.call_tool("log", {"message": "for a"})).content[0].text == "logged"  # type: ignore[union-attr]
        await wait_for(lambda: logs_a, 5, message="a's log message")
        await slow
    assert logs_a == ["for a"]
    assert logs_b == []


async def test_progress_after_a_cancellation_reaches_no_other_client(router: SyncRouter) -> None:
    """A server may go on reporting progress for a call whose client gave it up. On a stdio backend
    the progress names its call only by its token: it reaches that call's client or nobody, never
    the one other call in flight on the process (another client's). (Over HTTP each call has its
    own stream, and the cancelled call's is closed: the backend has nowhere to send it.)"""
    key = f"progress-{time.monotonic_ns()}"  # the module's backend serves other tests too
    start = len(router.lines)
    mine: list[str | None] = []
    others: list[str | None] = []
    handed: list[str | None] = []  # every progress notification b's session was given
    a_started, b_waiting, b_wound_down = asyncio.Event(), asyncio.Event(), asyncio.Event()

    async def on_a(progress: float, total: float | None, message: str | None) -> None:
        others.append(message)
        a_started.set()

    async def on_b(progress: float, total: float | None, message: str | None) -> None:
        mine.append(message)
        b_waiting.set()

    async def b_notified(message: Any) -> None:
        if isinstance(message, types.ProgressNotification):
            handed.append(message.params.message)
            if message.params.message == "wound down":
                b_wound_down.set()

    url = router.mcp_url("stdio")
    async with (
        connect(url, "streamable-modern") as a,
        connect(url, "streamable-modern", message_handler=b_notified) as b,
    ):
        waiting = asyncio.create_task(b.call_tool("await_linger", {"key": key}, progress_callback=on_b))
        async with asyncio.timeout(10):
            await b_waiting.wait()
        lingering = asyncio.create_task(a.call_tool("linger", {"key": key}, progress_callback=on_a))
        async with asyncio.timeout(10):
            await a_started.wait()
        lingering.cancel()  # closes a's stream: the router cancels the call upstream
        with contextlib.suppress(asyncio.CancelledError):
            await lingering
        # b's call ends only once a's has wound down (on stdio its answer comes after a's late
        # progress on the one pipe): by then whatever the router did with that progress is done.
        result = await asyncio.wait_for(waiting, 10)
        assert result.content[0].text == "lingered"  # type: ignore[union-attr]
        async with asyncio.timeout(5):
            await b_wound_down.wait()  # the SDK hands notifications on in tasks of their own
    assert mine == ["waiting", "wound down"]
    assert handed == ["waiting", "wound down"], "another client's progress reached b"
    assert others == ["started"]

    # The router says once that it ignored the late progress (three of them), and loses nothing.
    def said() -> list[str]:
        return router.lines[start:]

    await wait_for(lambda: any("← stdio" in line and "tools/call" in line for line in said()), 5, message="b's answer")
    ignored = [line for line in said() if "ignored progress" in line and "cancelled request" in line]
    assert len(ignored) == 1, "\n".join(said())
    assert not [line for line in said() if "dropped" in line], "\n".join(said())
