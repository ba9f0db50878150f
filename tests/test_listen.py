"""A 2026-07-28 client's `subscriptions/listen` stream through the router: one stream per listen,
forgotten the moment the client closes it.

Each test runs its own router, so the listen is the first request of the router's shared modern
session for that backend: the case where the channel is opened for the listen itself (the listen
was once sent twice then, and closing it cancelled only one of the two backend streams).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import shlex
import sys
from collections.abc import AsyncIterator
from typing import Any

import httpx
import mcp_types as types
import pytest
from mcp.client import subscriptions

from tests.support.clients import connect
from tests.support.procs import REPO_ROOT, Router, run_fixture, run_router, stdio_command, wait_for

pytestmark = pytest.mark.timeout(60)
COUNTER_URI = "test://counter"  # the fixture's resource that its `bump` tool changes
UPDATED = "notifications/resources/updated"


@contextlib.asynccontextmanager
async def router_for(backend: str) -> AsyncIterator[Router]:
    if backend == "http":
        async with run_fixture("streamable", name="http") as fixture, run_router("-b", f"http={fixture.url}") as r:
            yield r
    else:
        async with run_router("-b", f"stdio={stdio_command('v1', name='stdio')}") as r:
            yield r


def trace(r: Router, backend: str, what: str) -> list[str]:
    """The router's trace lines for the backend's shared modern session that mention `what`."""
    return [line for line in r.lines if f" {backend}  modern:" in line and what in line]


def suspicious(r: Router) -> list[str]:
    return [line for line in r.lines + r.stderr_lines if "Traceback" in line or "dropped" in line or "Error" in line]


def updates(seen: list[Any]) -> list[Any]:
    return [m for m in seen if isinstance(m, types.ResourceUpdatedNotification)]


class Seen(list[Any]):
    """A client's message handler that keeps every message it is given."""

    async def __call__(self, message: Any) -> None:
        self.append(message)


async def modern_pending(r: Router) -> int:
    async with httpx.AsyncClient() as http:
        sessions = (await http.get(f"{r.url}/sessions")).json()
    return sum(s["pending"] for s in sessions if s["era"] == "modern")


@pytest.mark.parametrize("backend", ["http", "stdio"])
async def test_closed_listen_stream_is_forgotten(backend: str) -> None:
    watcher_seen, other_seen = Seen(), Seen()

    async with (
        router_for(backend) as r,
        connect(r.mcp_url(backend), "streamable-modern", message_handler=watcher_seen) as watcher,
        connect(r.mcp_url(backend), "streamable-modern", message_handler=other_seen) as other,
    ):
        async with watcher.listen(resource_subscriptions=[COUNTER_URI]) as subscription:
            assert subscription.honored.resource_subscriptions == [COUNTER_URI]
            await watcher.call_tool("bump", {})
            async with asyncio.timeout(5):
                event = await anext(aiter(subscription))
            assert getattr(event, "uri", None) == COUNTER_URI
            # One listen, one backend stream: the backend told it once. On stdio the update comes
            # before the call's answer on the one pipe, so a second one would be shown by now; over
            # HTTP it comes on the listen's own connection, and a second one nearly always would.
            await wait_for(
                lambda: trace(r, backend, "tools/call #1  ok") and trace(r, backend, UPDATED),
                5,
                message="the bump's answer and update in the trace",
            )
            assert len(trace(r, backend, UPDATED)) == 1, "\n".join(r.lines)
            # The open listen is the watcher's request in flight, counted under its client.
            assert await modern_pending(r) == 1
        received = len(updates(watcher_seen))

        # Closing the stream is the cancellation (HTTP): the router forgets the listen at once and
        # ends it upstream, and says so in its trace.
        await wait_for(lambda: trace(r, backend, "notifications/cancelled"), 5, message="the listen's cancellation")
        assert await modern_pending(r) == 0

        # Another client changes the resource: nothing reaches the closed listen, and the router
        # reports nothing lost (the client asked to stop).
        await other.call_tool("bump", {})
        await wait_for(lambda: len(trace(r, backend, "tools/call #1  ok")) == 2, 5, message="the second bump's answer")
        assert await modern_pending(r) == 0
        assert len(updates(watcher_seen)) == received
        assert updates(other_seen) == []
        assert not suspicious(r), "\n".join(r.lines + r.stderr_lines)


@pytest.mark.parametrize("backend", ["http", "stdio"])
async def test_closing_a_listen_leaves_another_clients_listen_with_the_same_id(
    backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two SDK processes both call their first listen 'listen-1' (one test process stands in for
    them: the SDK's process-wide counter is started again for each). On the router's shared
    session the two are told apart by their streams: closing the second ends that one only."""
    async with (
        router_for(backend) as r,
        connect(r.mcp_url(backend), "streamable-modern") as first,
        connect(r.mcp_url(backend), "streamable-modern") as second,
    ):
        monkeypatch.setattr(subscriptions, "_listen_ids", itertools.count(1))
        async with first.listen(resource_subscriptions=[COUNTER_URI]) as kept:
            monkeypatch.setattr(subscriptions, "_listen_ids", itertools.count(1))
            async with second.listen(resource_subscriptions=[COUNTER_URI]) as closed:
                assert kept.subscription_id == closed.subscription_id == "listen-1"
            await wait_for(lambda: trace(r, backend, "notifications/cancelled"), 5, message="the cancellation")
            await second.call_tool("bump", {})
            async with asyncio.timeout(5):
                event = await anext(aiter(kept))
            assert getattr(event, "uri", None) == COUNTER_URI
        assert not suspicious(r), "\n".join(r.lines + r.stderr_lines)


async def test_late_updates_for_a_closed_listen_are_not_reported_lost() -> None:
    """A backend may ignore the cancellation (tiny_stdio does): what it still sends the closed
    listen is dropped quietly, since the client asked to stop. An update for a subscription
    nobody opened is a message lost: reported, and never handed to a call that is in flight."""
    watcher_seen, other_seen = Seen(), Seen()

    tiny = shlex.join([sys.executable, "-S", str(REPO_ROOT / "tests" / "servers" / "tiny_stdio.py")])
    async with (
        run_router("-b", f"tiny={tiny}") as r,
        connect(r.mcp_url("tiny"), "streamable-modern", message_handler=watcher_seen) as watcher,
        connect(r.mcp_url("tiny"), "streamable-modern", message_handler=other_seen) as other,
    ):
        async with watcher.listen(resource_subscriptions=[COUNTER_URI]) as subscription:
            await watcher.call_tool("bump", {})
            async with asyncio.timeout(5):
                event = await anext(aiter(subscription))
            assert getattr(event, "uri", None) == COUNTER_URI
        received = len(updates(watcher_seen))
        await wait_for(lambda: trace(r, "tiny", "notifications/cancelled"), 5, message="the listen's cancellation")

        # The backend still notifies the closed listen, before the call's answer on the one pipe.
        await other.call_tool("bump", {})
        await wait_for(lambda: len(trace(r, "tiny", "tools/call #1  ok")) == 2, 5, message="the second bump's answer")
        assert not suspicious(r), "\n".join(r.lines + r.stderr_lines)
        assert len(updates(watcher_seen)) == received

        await other.call_tool("bump", {"also": "nobody"})
        await wait_for(lambda: trace(r, "tiny", "tools/call #3  ok"), 5, message="the third bump's answer")
        dropped = [line for line in r.lines if "dropped" in line]
        assert len(dropped) == 1 and UPDATED in dropped[0], "\n".join(r.lines)
        assert updates(other_seen) == []


async def test_a_listen_its_stdio_backend_ends_ends_for_the_client() -> None:
    """On stdio a server ends a listen with a `notifications/cancelled` naming it (the one use the
    spec allows a server). The client's listen stream ends with it (the SDK says the subscription
    is lost: re-listen and refetch)."""
    tiny = shlex.join([sys.executable, "-S", str(REPO_ROOT / "tests" / "servers" / "tiny_stdio.py")])
    async with (
        run_router("-b", f"tiny={tiny}") as r,
        connect(r.mcp_url("tiny"), "streamable-modern") as watcher,
        connect(r.mcp_url("tiny"), "streamable-modern") as other,
    ):
        async with watcher.listen(resource_subscriptions=[COUNTER_URI]) as subscription:
            ended = await other.call_tool("unlisten", {})
            assert ended.content[0].text == "1"  # type: ignore[union-attr]
            with pytest.raises(subscriptions.SubscriptionLost):
                async with asyncio.timeout(5):
                    await anext(aiter(subscription))
        await other.call_tool("bump", {})  # nobody listens any more: nothing to deliver, nothing lost
        await wait_for(lambda: trace(r, "tiny", "tools/call #3  ok"), 5, message="the bump's answer")
        assert not suspicious(r), "\n".join(r.lines + r.stderr_lines)
