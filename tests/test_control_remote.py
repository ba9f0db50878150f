"""`RemoteControl`: the view interface over a real headless router's management API.

Events arrive as the core's own event objects, actions are applied, errors carry the router's
message, and the feed reconnects by itself when the router restarts (and says so in the feed).
"""

from __future__ import annotations

from typing import Any

import pytest

from app.control import ControlError
from app.control_remote import RemoteControl, RemoteFeed, RouterUnreachable
from app.proxy.events import (
    BackendListEvent,
    BackendStateEvent,
    Event,
    RouterEvent,
    SessionEvent,
    TrafficEvent,
    event_from_dict,
)
from tests.support.clients import connect
from tests.support.procs import free_port, run_fixture, run_router, stdio_command, wait_for


class Collected:
    """Everything a feed delivered so far (drained as a view drains it, on a poll)."""

    def __init__(self, feed: RemoteFeed) -> None:
        self.feed = feed
        self.events: list[Event] = []

    def poll(self) -> list[Event]:
        self.events.extend(self.feed.drain())
        return self.events

    async def first(self, pred: Any, message: str, timeout: float = 15.0) -> Any:
        return await wait_for(lambda: next((e for e in self.poll() if pred(e)), None), timeout, message=message)


def test_event_from_dict_round_trips_every_kind() -> None:
    samples: list[Event] = [
        TrafficEvent(
            direction="client->backend",
            session="s",
            backend="b",
            msg_kind="request",
            method="ping",
            msg_id=1,
            message={"jsonrpc": "2.0", "id": 1, "method": "ping"},
            era="handshake",
        ),
        SessionEvent(action="opened", session="s", backend="b", transport="sse", era="handshake"),
        BackendStateEvent(backend="b", state="up", previous="starting", reason="pid 1"),
        BackendListEvent(action="changed", backend="b"),
        RouterEvent(level="warning", text="hi"),
    ]
    for ev in samples:
        assert event_from_dict(ev.to_dict()) == ev
    assert event_from_dict({"type": "hello"}) is None
    assert event_from_dict({"type": "traffic"}) is None  # fields missing
    assert event_from_dict({**samples[3].to_dict(), "new_field": 1}) == samples[3]


async def test_remote_control_reads_and_acts_on_a_headless_router() -> None:
    async with run_fixture("streamable", name="remote") as fx, run_router("-b", f"a={fx.url}") as r:
        async with RemoteControl(r.url) as control:
            assert control.url == r.url
            feed = control.subscribe()
            got = Collected(feed)
            await wait_for(feed.connected.is_set, 10, message="the event stream")
            assert feed.hello is not None and feed.hello["url"] == r.url
            await wait_for(lambda: _state(control, "a", "up"), 20, message="a up")

            st = await control.status()
            assert [b["name"] for b in st["backends"]] == ["a"]
            snap = await control.add_backend({"name": "s", "command": stdio_command()})
            assert snap["name"] == "s" and snap["kind"] == "stdio"
            await got.first(lambda e: isinstance(e, BackendListEvent) and e.backend == "s", "s added")
            await got.first(
                lambda e: isinstance(e, BackendStateEvent) and e.backend == "s" and e.state == "up", "s up", 20
            )

            async with connect(r.mcp_url("s"), "streamable-handshake") as client:
                await client.call_tool("echo", {"text": "seen remotely"})
                call = await got.first(
                    lambda e: isinstance(e, TrafficEvent) and e.method == "tools/call" and e.msg_kind == "request",
                    "the call",
                )
                assert call.message["params"]["arguments"] == {"text": "seen remotely"}
                assert call.backend == "s" and call.era == "handshake"
                sessions = await control.sessions()
                assert len(sessions) == 1
                await control.close_session(sessions[0]["id"])
                closed = await got.first(
                    lambda e: isinstance(e, SessionEvent) and e.action in ("closed", "ended"), "session closed"
                )
                assert closed.session == sessions[0]["id"]
                assert await control.sessions() == []

            assert (await control.disable("s"))["state"] == "disabled"
            with pytest.raises(ControlError) as refused:
                await control.restart("s")
            assert refused.value.status == 409 and "disabled" in refused.value.message
            assert (await control.enable("s"))["enabled"] is True
            await wait_for(lambda: _state(control, "s", "up"), 20, message="s up again")
            restarted = await control.restart("s")
            assert restarted["restarts"] == 1
            assert any("restarting" in line for line in await control.log("s"))
            assert (await control.health("a"))[-1]["ok"] is True
            assert (await control.backend("a"))["name"] == "a"
            await control.remove_backend("s")
            for action in (control.backend, control.health, control.log, control.enable, control.remove_backend):
                with pytest.raises(ControlError) as missing:
                    await action("ghost")
                assert missing.value.status == 404 and "ghost" in missing.value.message
            with pytest.raises(ControlError) as unknown_session:
                await control.close_session("nope")
            assert unknown_session.value.status == 404
            with pytest.raises(ControlError):
                control.subscribe(["no-such-type"])


async def _state(control: RemoteControl, name: str, state: str) -> bool:
    return bool((await control.backend(name))["state"] == state)


async def test_filtered_feed_and_token() -> None:
    async with run_router("--token", "tk", "-b", f"s={stdio_command()}") as r:
        async with RemoteControl(r.url, "wrong") as bad:
            with pytest.raises(ControlError) as refused:
                await bad.status()
            assert refused.value.status == 401
            feed = bad.subscribe()
            got = Collected(feed)
            await got.first(lambda e: isinstance(e, RouterEvent) and e.level == "error", "the refusal in the feed")
            assert feed.closed
        async with RemoteControl(r.url, "tk") as control:
            feed = control.subscribe(["backend_list"])
            got = Collected(feed)
            await wait_for(feed.connected.is_set, 10, message="connected")
            await control.add_backend({"name": "x", "url": "http://127.0.0.1:9/mcp"})
            await got.first(lambda e: isinstance(e, BackendListEvent), "backend_list")
            assert all(isinstance(e, BackendListEvent) for e in got.poll())


async def test_unreachable_router() -> None:
    async with RemoteControl(f"http://127.0.0.1:{free_port()}") as control:
        with pytest.raises(RouterUnreachable) as err:
            await control.status()
        assert "no router answers" in err.value.message


async def test_the_feed_reconnects_when_the_router_restarts_and_says_so() -> None:
    port = free_port()
    async with RemoteControl(f"http://127.0.0.1:{port}") as control:
        async with run_router("--port", str(port), "-b", f"s={stdio_command()}"):
            feed = control.subscribe()
            got = Collected(feed)
            await wait_for(feed.connected.is_set, 10, message="connected")
        lost = await got.first(lambda e: isinstance(e, RouterEvent) and "reconnecting" in e.text, "lost")
        assert lost.level == "warning" and str(port) in lost.text
        async with run_router("--port", str(port), "--no-persist") as second:
            back = await got.first(lambda e: isinstance(e, RouterEvent) and "reconnected" in e.text, "reconnected")
            assert back.level == "info"
            assert feed.hello is not None and feed.hello["url"] == second.url
            await control.add_backend({"name": "after", "url": "http://127.0.0.1:9/mcp"})
            await got.first(lambda e: isinstance(e, BackendListEvent) and e.backend == "after", "events flow again")
        assert sum(1 for e in got.poll() if isinstance(e, RouterEvent) and "reconnecting" in e.text) >= 1
