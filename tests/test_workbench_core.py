"""The workbench's core, without Textual: structural JSON diff, secrets masking, schema drift across a
rebuild, and the router's own calls and replays, against a real in-process router with real SDK
backends (tests/servers/workbench.py over stdio, the fixture over Streamable HTTP) and SDK clients.
"""

from __future__ import annotations

import contextlib
import io
import json
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import mcp_types as types
import pytest

from app.control import ControlError, LocalControl
from app.headless import HeadlessPrinter
from app.jsondiff import diff, format_path, line_marks, pretty_lines, summary
from app.proxy.config import BackendConfig
from app.proxy.events import CatalogChangeEvent, EventBus, TrafficEvent
from app.proxy.replay import replay_refusal
from app.proxy.router import Router
from app.proxy.secrets import MASK, mask_args, mask_backend, mask_json, mask_url, secret_key
from tests.support.clients import connect
from tests.support.inprocess import served_router
from tests.support.procs import REPO_ROOT, run_fixture, wait_for

WORKBENCH = REPO_ROOT / "tests" / "servers" / "workbench.py"
API_KEY = "sk-live-4f9a8b7c6d5e"


def workbench_backend(build_file: Path, name: str = "wb", env: dict[str, str] | None = None) -> BackendConfig:
    return BackendConfig(
        name=name,
        command=sys.executable,
        args=[str(WORKBENCH), "--build-file", str(build_file)],
        env=env if env is not None else {"WORKBENCH_API_KEY": API_KEY},
        cwd=str(REPO_ROOT),
    )


@dataclass
class Served:
    """A router in this loop and its LocalControl, with the URLs a client is given."""

    router: Router
    control: LocalControl

    @property
    def url(self) -> str:
        assert self.control.url is not None
        return self.control.url

    def mcp_url(self, name: str) -> str:
        return f"{self.url}/mcp/{name}"


@contextlib.asynccontextmanager
async def local_router(*backends: BackendConfig) -> AsyncIterator[Served]:
    """A router in this loop with these backends, each enabled one up (probes rare: quiet traces)."""
    async with served_router(*backends, hold=10.0, health_interval=30.0) as (router, control):
        for cfg in backends:
            if cfg.enabled:
                b = router.backends[cfg.name]
                await wait_for(lambda b=b: b.state == "up", 20, message=f"backend {cfg.name} up")
        yield Served(router, control)


@contextlib.asynccontextmanager
async def workbench_router(tmp_path: Path) -> AsyncIterator[tuple[Served, Path]]:
    """A router with the workbench backend (build v1, the env secret) up; and its build file."""
    build = tmp_path / "build"
    build.write_text("v1")
    async with local_router(workbench_backend(build)) as lr:
        yield lr, build


@pytest.fixture
async def wb(tmp_path: Path) -> AsyncIterator[tuple[Served, Path]]:
    async with workbench_router(tmp_path) as pair:
        yield pair


# ---------------------------------------------------------------------- structural diff


def test_diff_names_paths_of_added_removed_and_changed_values() -> None:
    old = {"result": {"content": [{"type": "text", "text": "v1"}], "meta": {"a": 1, "gone": True}}, "id": 1}
    new = {"result": {"content": [{"type": "text", "text": "v2"}, {"type": "text", "text": "more"}], "meta": {"a": 1}}}
    changes = diff(old, new)
    assert [(c.op, c.where) for c in changes] == [
        ("changed", "result.content[0].text"),
        ("added", "result.content[1]"),
        ("removed", "result.meta.gone"),
        ("removed", "id"),
    ]
    assert changes[0].describe() == 'result.content[0].text: "v1" → "v2"'
    assert summary(changes, limit=1) == "4 differences: result.content[0].text and 3 more"


def test_diff_treats_json_numbers_as_numbers_and_types_as_types() -> None:
    assert diff({"n": 1}, {"n": 1.0}) == []  # one JSON number
    assert [c.op for c in diff({"b": True}, {"b": 1})] == ["changed"]  # true is not 1
    assert [(c.where, c.old, c.new) for c in diff({"x": [1]}, {"x": {"0": 1}})] == [("x", [1], {"0": 1})]
    assert diff([1, 2, 3], [1, 2]) and diff([1, 2, 3], [1, 2])[0].where == "[2]"
    assert format_path(("env", "MY KEY", 0)) == 'env["MY KEY"][0]'
    assert summary([]) == "no differences"


def test_pretty_lines_mark_exactly_the_changed_lines() -> None:
    old = {"a": 1, "b": {"c": [1, 2]}, "d": "x"}
    new = {"a": 1, "b": {"c": [1, 3]}, "e": "y"}
    changes = diff(old, new)
    left, right = pretty_lines(old), pretty_lines(new)
    assert "\n".join(line.text for line in left) == json.dumps(old, indent=2)
    marked_left = [line.text.strip() for line, m in zip(left, line_marks(left, changes, "old"), strict=True) if m]
    marked_right = [line.text.strip() for line, m in zip(right, line_marks(right, changes, "new"), strict=True) if m]
    assert marked_left == ["2", '"d": "x"']
    assert marked_right == ["3", '"e": "y"']


# ---------------------------------------------------------------------- secrets


@pytest.mark.parametrize(
    "key",
    ["password", "api_key", "apiKey", "X-API-Key", "Authorization", "access_token", "refreshToken", "client_secret",
     "private_key", "Cookie", "token", "GITHUB_TOKEN", "db_password", "credentials"],
)  # fmt: skip
def test_secret_looking_keys(key: str) -> None:
    assert secret_key(key)


@pytest.mark.parametrize("key", ["progressToken", "maxTokens", "name", "author", "keyword", "nextCursor", "monkey"])
def test_keys_that_only_resemble_secrets_stay_visible(key: str) -> None:
    assert not secret_key(key)


def test_masking_a_message_keeps_its_shape_and_the_real_values_elsewhere() -> None:
    msg = {
        "method": "tools/call",
        "params": {
            "name": "login",
            "arguments": {"user": "alice", "password": "hunter2", "opts": {"api_key": "k", "n": 3}, "token": ""},
            "_meta": {"progressToken": 7},
        },
    }
    masked = mask_json(msg)
    assert masked["params"]["arguments"] == {
        "user": "alice",
        "password": MASK,
        "opts": {"api_key": MASK, "n": 3},
        "token": "",
    }
    assert masked["params"]["_meta"] == {"progressToken": 7}
    assert msg["params"]["arguments"]["password"] == "hunter2"  # a copy: the router keeps the real value
    assert (
        mask_url("https://bob:pw@example.com/mcp?api_key=abc&x=1")
        == f"https://bob:{MASK}@example.com/mcp?api_key={MASK}&x=1"
    )
    assert mask_args(["--token", "abc", "--api-key=def", "--port", "1"]) == [
        "--token",
        MASK,
        f"--api-key={MASK}",
        "--port",
        "1",
    ]
    snap = mask_backend({"env": {"A": "1"}, "headers": {"Authorization": "Bearer x", "Accept": "*/*"}})
    assert snap == {"env": {"A": MASK}, "headers": {"Authorization": MASK, "Accept": "*/*"}}


async def test_env_secrets_are_masked_in_status_and_backends_unless_revealed(
    wb: tuple[Served, Path],
) -> None:
    lr, _ = wb
    async with httpx.AsyncClient(base_url=lr.url, timeout=10) as http:
        # The backend got the real value: it answers with it (under a key that is itself masked).
        out = await lr.control.call("wb", "tools/call", {"name": "env_key", "arguments": {}})
        assert out["response"]["result"]["structuredContent"] == {"api_key": API_KEY}
        for path in ("/status", "/backends", "/backends/wb"):
            body = (await http.get(path)).text
            assert API_KEY not in body, path
            assert MASK in body, path
            assert API_KEY in (await http.get(path, params={"reveal": "1"})).text, path
    assert API_KEY not in json.dumps(await lr.control.status())
    assert (await lr.control.backend("wb", reveal=True))["env"] == {"WORKBENCH_API_KEY": API_KEY}


async def test_a_password_in_a_real_tool_call_is_forwarded_and_masked_when_shown(
    wb: tuple[Served, Path],
) -> None:
    lr, _ = wb
    feed = lr.control.subscribe(["traffic"])
    async with connect(lr.mcp_url("wb"), "streamable-handshake") as client:
        result = await client.call_tool("login", {"user": "alice", "password": "correct horse"})
    assert result.structured_content == {"user": "alice", "token": "tok-alice-13"}  # the real password arrived
    events = [e for e in feed.drain() if isinstance(e, TrafficEvent) and e.method == "tools/call"]
    request = next(e for e in events if e.direction == "client->backend")
    answer = next(e for e in events if e.direction == "backend->client")
    assert request.message is not None and answer.message is not None
    assert request.message["params"]["arguments"]["password"] == "correct horse"  # the trace keeps it (for replay)
    shown = json.dumps([mask_json(request.message), mask_json(answer.message)], ensure_ascii=False)
    assert "correct horse" not in shown and "tok-alice-13" not in shown
    # The password, the token in structuredContent, and the token in the text that repeats it as JSON.
    assert shown.count(MASK) == 3


# ---------------------------------------------------------------------- schema drift


async def test_a_rebuild_shows_its_schema_drift_in_the_api_until_acknowledged(wb: tuple[Served, Path]) -> None:
    lr, build = wb
    feed = lr.control.subscribe(["catalog_change"])
    assert (await lr.control.backend("wb"))["last_change"] is None  # nothing to compare the first catalog with
    build.write_text("v2")
    await lr.control.restart("wb")
    async with httpx.AsyncClient(base_url=lr.url, timeout=10) as http:
        change = (await http.get("/backends/wb")).json()["last_change"]
        assert change["count"] == 3 and change["seen"] is False
        assert change["added"] == {"tools": ["extra"]}
        assert change["removed"] == {"tools": ["legacy"]}
        [search] = change["changed"]
        assert (search["name"], search["fields"]) == ("search", ["description", "inputSchema"])
        assert {"op": "added", "path": "inputSchema.properties.exact", "new": {"default": False, "title": "Exact", "type": "boolean"}} in search["diff"]  # fmt: skip
        [ev] = feed.drain()
        assert isinstance(ev, CatalogChangeEvent) and (ev.count, ev.seen) == (3, False)
        assert "search (description, inputSchema)" in ev.summary
        assert (await http.post("/backends/wb/ack")).json()["last_change"]["seen"] is True
    [ev] = feed.drain()
    assert isinstance(ev, CatalogChangeEvent) and ev.seen
    # A restart that changes nothing says so: the last change is "none", not the one before.
    await lr.control.restart("wb")
    assert (await lr.control.backend("wb"))["last_change"]["count"] == 0


# ---------------------------------------------------------------------- calls and replays


async def version_call_then_rebuild(lr: Served, build: Path) -> tuple[TrafficEvent, TrafficEvent]:
    """An SDK client calls `version` through the router (v1); then the backend is rebuilt as v2.
    Returns the traced request and its answer."""
    feed = lr.control.subscribe(["traffic"])
    async with connect(lr.mcp_url("wb"), "streamable-handshake") as client:
        await client.call_tool("version", {})
    events = [e for e in feed.drain() if isinstance(e, TrafficEvent) and e.method == "tools/call"]
    feed.close()
    request = next(e for e in events if e.direction == "client->backend")
    answer = next(e for e in events if e.direction == "backend->client")
    assert request.message is not None and answer.message is not None
    build.write_text("v2")  # noqa: ASYNC240 - a few bytes, in a test
    await lr.control.restart("wb")
    return request, answer


async def test_replay_after_a_rebuild_diffs_the_changed_field(wb: tuple[Served, Path]) -> None:
    lr, build = wb
    request, original = await version_call_then_rebuild(lr, build)
    assert request.message is not None and original.message is not None
    feed = lr.control.subscribe(["traffic"])
    outcome = await lr.control.replay("wb", request.message, request.direction)
    assert outcome["error"] is None and outcome["needs_client"] is None
    changes = diff(original.message, outcome["response"])
    where = {c.where for c in changes}
    assert "result.structuredContent.build" in where and "result.structuredContent.major" in where
    assert "id" in where  # the router's own request id
    # Both halves are in the trace, marked as the router's.
    mine = [e for e in feed.drain() if isinstance(e, TrafficEvent) and e.session == "router"]
    assert [(e.direction, e.msg_kind) for e in mine] == [
        ("router->backend", "request"),
        ("backend->router", "response"),
    ]
    assert mine[1].latency_ms is not None and mine[1].message == outcome["response"]


async def test_replay_over_streamable_http_reaches_a_fresh_backend_session() -> None:
    async with run_fixture("streamable") as fx, local_router(BackendConfig(name="fx", url=fx.url)) as lr:
        first = await lr.control.call("fx", "tools/call", {"name": "whoami", "arguments": {}})
        again = await lr.control.replay(
            "fx", {"jsonrpc": "2.0", "id": 9, "method": "tools/call", "params": {"name": "whoami", "arguments": {}}}
        )
        assert first["response"]["result"]["content"][0]["text"].endswith("call=1")
        changes = {c.where: c.new for c in diff(first["response"], again["response"]) if c.where != "id"}
        assert set(changes) == {"result.content[0].text", "result.structuredContent.result"}
        assert changes["result.content[0].text"].endswith("call=2")
        listed = await lr.control.call("fx", "resources/read", {"uri": "test://static"})
        assert listed["response"]["result"]["contents"][0]["text"] == "static resource"


@pytest.mark.parametrize(
    ("message", "direction", "reason"),
    [
        ({"jsonrpc": "2.0", "id": 1, "result": {}}, "backend->client", "only a request"),
        ({"jsonrpc": "2.0", "method": "notifications/initialized"}, "client->backend", "notification"),
        ({"jsonrpc": "2.0", "id": 3, "method": "sampling/createMessage", "params": {}}, "backend->client", "only the client"),
        ({"jsonrpc": "2.0", "id": 4, "method": "elicitation/create", "params": {}}, None, "only the client"),
        ({"jsonrpc": "2.0", "id": 5, "method": "subscriptions/listen", "params": {}}, "client->backend", "long-lived stream"),
        ({"jsonrpc": "2.0", "id": 6, "method": "tools/call", "params": {"name": "x", "requestState": "s"}}, None, "requestState"),
    ],
)  # fmt: skip
def test_requests_that_need_the_clients_session_are_refused_with_a_reason(
    message: dict[str, Any], direction: str | None, reason: str
) -> None:
    refusal = replay_refusal(message, direction)
    assert refusal is not None and reason in refusal


async def test_a_call_that_needs_the_client_says_so(wb: tuple[Served, Path]) -> None:
    lr, _ = wb
    outcome = await lr.control.call("wb", "tools/call", {"name": "ask", "arguments": {}})
    assert "elicitation" in outcome["needs_client"]
    with pytest.raises(ControlError) as refused:
        await lr.control.replay("wb", {"jsonrpc": "2.0", "id": 1, "method": "elicitation/create"}, "backend->client")
    assert refused.value.status == 409 and "only the client can answer it" in refused.value.message


async def test_call_route_for_scripts(wb: tuple[Served, Path]) -> None:
    lr, _ = wb
    async with httpx.AsyncClient(base_url=lr.url, timeout=30) as http:
        r = await http.post(
            "/backends/wb/call",
            json={"method": "prompts/get", "params": {"name": "review", "arguments": {"code": "x=1"}}},
        )
        assert r.status_code == 200
        [message] = r.json()["response"]["result"]["messages"]
        assert message["content"]["text"] == "Review this (short): x=1"
        r = await http.post("/backends/wb/call", json={"message": {"jsonrpc": "2.0", "id": 1, "result": {}}})
        assert r.status_code == 409 and "only a request" in r.json()["error"]
        assert (await http.post("/backends/nope/call", json={"method": "ping"})).status_code == 404
        assert (await http.post("/backends/wb/call", json={"params": {}})).status_code == 400
        plain = await http.post(
            "/backends/wb/call", content=b'{"method": "ping"}', headers={"content-type": "text/plain"}
        )
        assert plain.status_code == 415
        catalog = (await http.get("/backends/wb/catalog")).json()["catalog"]
        assert "form" in {t["name"] for t in catalog["tools"]}


async def test_a_call_to_a_down_backend_says_why(tmp_path: Path) -> None:
    cfg = BackendConfig(name="off", command=sys.executable, args=[str(WORKBENCH)], enabled=False)
    async with local_router(cfg) as lr:
        outcome = await lr.control.call("off", "tools/list")
        assert outcome["response"] is None and "disabled" in outcome["error"]
        with pytest.raises(ControlError):
            await lr.control.call("missing", "tools/list")


async def test_an_sdk_client_is_unaffected_by_the_routers_own_calls(wb: tuple[Served, Path]) -> None:
    lr, _ = wb
    async with connect(lr.mcp_url("wb"), "streamable-handshake") as client:
        await lr.control.call("wb", "tools/call", {"name": "version", "arguments": {}})
        result = await client.call_tool("search", {"query": "q", "limit": 2})
        assert isinstance(result.content[0], types.TextContent)
        assert result.structured_content == {"result": ["q-0", "q-1"]}
    await wait_for(lambda: not lr.router.sessions, message="the client's session to close")


def test_the_headless_json_console_masks_secrets_in_messages() -> None:
    bus = EventBus()
    out = io.StringIO()
    printer = HeadlessPrinter(bus.subscribe(), "json", out)
    message = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "tools/call",
        "params": {"name": "login", "arguments": {"password": "pw-1"}},
    }
    event = TrafficEvent(direction="client->backend", session="s", backend="b", msg_kind="request", method="tools/call", msg_id=1, message=message)  # fmt: skip
    line = json.loads(printer.render([event]))
    assert line["message"]["params"]["arguments"] == {"password": MASK}
    assert message["params"]["arguments"]["password"] == "pw-1"


async def test_a_modern_era_request_is_replayed_as_it_was_sent(wb: tuple[Served, Path]) -> None:
    lr, _ = wb
    feed = lr.control.subscribe(["traffic"])
    async with connect(lr.mcp_url("wb"), "streamable-modern") as client:
        await client.call_tool("search", {"query": "m", "limit": 1})
    events = [e for e in feed.drain() if isinstance(e, TrafficEvent) and e.method == "tools/call"]
    request = next(e for e in events if e.direction == "client->backend")
    answer = next(e for e in events if e.direction == "backend->client")
    assert request.message is not None and answer.message is not None
    outcome = await lr.control.replay("wb", request.message, request.direction)
    assert outcome["era"] == "modern" and outcome["error"] is None
    assert [c.where for c in diff(answer.message, outcome["response"]) if c.where != "id"] == []
