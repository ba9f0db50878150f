"""The transport matrix: every client transport against every backend transport, through the router.

One router serves three backends for the whole module: `http` (a Streamable HTTP fixture), `sse`
(a legacy HTTP+SSE fixture) and `stdio` (a fixture command the router spawns). Each test opens
its own SDK client (`mcp.Client`) inside the test body - the SDK client cannot live in an
async-generator fixture - and checks what a user of that combination would check: tools, a
resource, a prompt, progress, sampling, elicitation, logging, and isolation between two clients.

Client transports: "streamable-handshake" (initialize), "streamable-modern" (2026-07-28, pinned,
no probe) and "sse" (legacy HTTP+SSE, handshake only). A legacy SSE backend has no 2026-07-28
era, so the modern cell of the `sse` row is exercised as a user meets it: the SDK default
`mode="auto"` falls back to the handshake and works; a pinned modern client gets an error that
names the backend (`test_modern_client_against_sse_backend_*`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import warnings
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import mcp_types as types
import pytest
from mcp.client import Client, ClientRequestContext
from mcp.shared.exceptions import MCPDeprecationWarning, MCPError

from tests.support.clients import ClientTransport, connect
from tests.support.procs import (
    FIXTURE_V1_TOOLS,
    FixtureProcess,
    SyncRouter,
    initialize_request,
    run_fixture_sync,
    run_router_sync,
    stdio_command,
    wait_for,
)
from tests.support.raw import sse_events

pytestmark = pytest.mark.timeout(60)
RAW_HEADERS = {"accept": "application/json, text/event-stream", "content-type": "application/json"}

HANDSHAKE_VERSION = "2025-11-25"
ROOTS = ("file:///work/project-a", "file:///work/project-b")
COUNTER_URI = "test://counter"  # the fixture's resource that `bump` changes
MODERN_VERSION = "2026-07-28"
# The fixture resolves elicitation/sampling with `Resolve(_ask_user)` / `Resolve(_ask_llm)`; in the
# 2026-07-28 era the InputRequiredResult keys are the resolver's `module:qualname`, and the SDK
# client hands that key to the callback as its request id (handshake era: a JSON-RPC id).
ELICIT_KEY = "__main__:_ask_user"
SAMPLE_KEY = "__main__:_ask_llm"

BACKENDS = ("http", "sse", "stdio")
# The router's name for each backend: "sse" is a route word (/sse), so the SSE fixture is "legacy".
ROUTER_NAME = {"http": "http", "sse": "legacy", "stdio": "stdio"}
CLIENTS: tuple[ClientTransport, ...] = ("streamable-handshake", "streamable-modern", "sse")

# (client transport, backend name). The modern client cannot reach a legacy SSE backend in its
# own era; the cell is covered with the SDK default ("auto", which falls back to the handshake).
COMBOS: list[tuple[ClientTransport, str]] = [
    ("streamable-auto" if (client == "streamable-modern" and backend == "sse") else client, backend)
    for client in CLIENTS
    for backend in BACKENDS
]
COMBO_IDS = [f"{client}-to-{backend}" for client, backend in COMBOS]
HANDSHAKE_COMBOS = [(c, b) for c, b in COMBOS if c in ("streamable-handshake", "sse")]
HANDSHAKE_IDS = [f"{client}-to-{backend}" for client, backend in HANDSHAKE_COMBOS]


# --- module-scoped processes -------------------------------------------------------------------


@pytest.fixture(scope="module")
def http_fixture() -> Iterator[FixtureProcess]:
    with run_fixture_sync("streamable", name="http") as fixture:
        yield fixture


@pytest.fixture(scope="module")
def sse_fixture() -> Iterator[FixtureProcess]:
    with run_fixture_sync("sse", name="sse") as fixture:
        yield fixture


@pytest.fixture(scope="module")
def router(http_fixture: FixtureProcess, sse_fixture: FixtureProcess) -> Iterator[SyncRouter]:
    with run_router_sync(
        "-b",
        f"http={http_fixture.url}",
        "-b",
        f"legacy={sse_fixture.url}",
        "-b",
        f"stdio={stdio_command('v1', name='stdio')}",
    ) as r:
        yield r


@pytest.fixture(scope="module")
def fixture_pids(http_fixture: FixtureProcess, sse_fixture: FixtureProcess) -> dict[str, int]:
    return {"http": http_fixture.pid, "sse": sse_fixture.pid}


# --- helpers -----------------------------------------------------------------------------------


def url_for(router: SyncRouter, client: ClientTransport, backend: str) -> str:
    name = ROUTER_NAME[backend]
    return router.sse_url(name) if client == "sse" else router.mcp_url(name)


def expected_version(client: ClientTransport) -> str:
    return MODERN_VERSION if client == "streamable-modern" else HANDSHAKE_VERSION


def text_of(result: types.CallToolResult) -> str:
    assert not result.is_error, result
    block = result.content[0]
    assert isinstance(block, types.TextContent)
    return block.text


def pid_of(whoami: str) -> int:
    match = re.search(r"pid=(\d+)", whoami)
    assert match is not None, whoami
    return int(match.group(1))


@dataclass
class Recorder:
    """Client callbacks that remember what they were asked (request ids included)."""

    sampled: list[tuple[Any, str]] = field(default_factory=list)
    elicited: list[tuple[Any, str]] = field(default_factory=list)
    logs: list[types.LoggingMessageNotificationParams] = field(default_factory=list)
    roots_asked: list[Any] = field(default_factory=list)
    notifications: list[Any] = field(default_factory=list)

    async def sampling(
        self, context: ClientRequestContext, params: types.CreateMessageRequestParams
    ) -> types.CreateMessageResult:
        content = params.messages[0].content
        text = content.text if isinstance(content, types.TextContent) else "?"
        self.sampled.append((context.request_id, text))
        return types.CreateMessageResult(
            role="assistant", content=types.TextContent(type="text", text=f"sampled:{text}"), model="m"
        )

    async def elicitation(self, context: ClientRequestContext, params: types.ElicitRequestParams) -> types.ElicitResult:
        self.elicited.append((context.request_id, params.message))
        return types.ElicitResult(action="accept", content={"answer": f"re:{params.message}"})

    async def logging(self, params: types.LoggingMessageNotificationParams) -> None:
        self.logs.append(params)

    async def list_roots(self, context: ClientRequestContext) -> types.ListRootsResult:
        self.roots_asked.append(context.request_id)
        return types.ListRootsResult(roots=[types.Root(uri=uri, name=uri[-1]) for uri in ROOTS])

    async def message(self, message: Any) -> None:
        self.notifications.append(message)


@contextlib.asynccontextmanager
async def open_client(
    router: SyncRouter,
    client: ClientTransport,
    backend: str,
    recorder: Recorder | None = None,
    protocol_version: str | None = None,
) -> AsyncIterator[Client]:
    rec = recorder or Recorder()
    async with connect(
        url_for(router, client, backend),
        client,
        sampling_callback=rec.sampling,
        elicitation_callback=rec.elicitation,
        logging_callback=rec.logging,
        list_roots_callback=rec.list_roots,
        message_handler=rec.message,
        log_level="info",  # the 2026-07-28 per-request logging opt-in; ignored in the handshake era
        read_timeout_seconds=15.0,
        protocol_version=protocol_version,
    ) as c:
        assert c.protocol_version == (protocol_version or expected_version(client)), router.tail()
        yield c


def matrix(xfail: dict[str, str] | None = None) -> pytest.MarkDecorator:
    """Parametrize over COMBOS, one test id per cell; `xfail` maps a cell id to a router-bug reason."""
    params = [
        pytest.param(
            client,
            backend,
            id=cell,
            marks=[pytest.mark.xfail(reason=f"router bug: {xfail[cell]}", strict=True)]
            if xfail and cell in xfail
            else [],
        )
        for (client, backend), cell in zip(COMBOS, COMBO_IDS, strict=True)
    ]
    return pytest.mark.parametrize(("client", "backend"), params)


# --- the matrix --------------------------------------------------------------------------------


@matrix()
async def test_tools_resources_prompts(router: SyncRouter, client: ClientTransport, backend: str) -> None:
    async with open_client(router, client, backend) as c:
        tools = {tool.name for tool in (await c.list_tools()).tools}
        assert tools == FIXTURE_V1_TOOLS
        assert text_of(await c.call_tool("echo", {"text": f"hi {backend}"})) == f"hi {backend}"
        added = await c.call_tool("add", {"a": 2, "b": 40})
        assert text_of(added) == "42"
        assert added.structured_content == {"result": 42}
        # The router reached the backend we named, not the default one.
        assert f"name={backend}" in text_of(await c.call_tool("whoami", {}))

        read = await c.read_resource("test://static")
        first = read.contents[0]
        assert isinstance(first, types.TextResourceContents)
        assert first.text == "static resource"
        prompt = await c.get_prompt("greet", {"name": "Ada"})
        content = prompt.messages[0].content
        assert isinstance(content, types.TextContent)
        assert content.text == "Hello, Ada!"


@matrix()
async def test_progress(router: SyncRouter, client: ClientTransport, backend: str) -> None:
    seen: list[tuple[float, float | None, str | None]] = []

    # Parameter names matter: the SDK's ProgressFnT protocol is (progress, total, message).
    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append((progress, total, message))

    async with open_client(router, client, backend) as c:
        result = await c.call_tool("slow", {"steps": 4, "delay": 0.01}, progress_callback=on_progress)
        assert text_of(result) == "done"
        # Progress precedes the result on the call's stream, and the SDK awaits the progress
        # callback in order before the result is delivered.
        assert seen == [(i, 4, f"step {i}/4") for i in (1, 2, 3, 4)]


@matrix()
async def test_sampling_and_elicitation(router: SyncRouter, client: ClientTransport, backend: str) -> None:
    rec = Recorder()
    async with open_client(router, client, backend, rec) as c:
        assert text_of(await c.call_tool("sample", {"prompt": "hello"})) == "sampled:hello"
        assert text_of(await c.call_tool("elicit", {"question": "ok?"})) == "accept:re:ok?"
        assert text_of(await c.call_tool("sample", {"prompt": "again"})) == "sampled:again"
        assert text_of(await c.call_tool("elicit", {"question": "sure?"})) == "accept:re:sure?"
    assert [text for _, text in rec.sampled] == ["hello", "again"]
    assert [message for _, message in rec.elicited] == ["ok?", "sure?"]
    sample_ids = [request_id for request_id, _ in rec.sampled]
    elicit_ids = [request_id for request_id, _ in rec.elicited]
    if client == "streamable-modern":
        # InputRequiredResult passed through untouched: the SDK drove each round itself and
        # hands the callback the backend's input key as the request id.
        assert sample_ids == [SAMPLE_KEY, SAMPLE_KEY]
        assert elicit_ids == [ELICIT_KEY, ELICIT_KEY]
    else:
        # Real server-to-client requests, with ids the router keeps unique on the client session.
        ids = sample_ids + elicit_ids
        assert all(isinstance(i, int | str) and i not in (SAMPLE_KEY, ELICIT_KEY) for i in ids), ids
        assert len(set(ids)) == 4, ids


@matrix()
async def test_roots(router: SyncRouter, client: ClientTransport, backend: str) -> None:
    rec = Recorder()
    async with open_client(router, client, backend, rec) as c:
        assert text_of(await c.call_tool("roots", {})) == ",".join(ROOTS)
        assert text_of(await c.call_tool("roots", {})) == ",".join(ROOTS)
    assert len(rec.roots_asked) == 2


@matrix()
async def test_resource_updates(router: SyncRouter, client: ClientTransport, backend: str) -> None:
    def updated(rec: Recorder) -> list[str]:
        return [str(n.params.uri) for n in rec.notifications if isinstance(n, types.ResourceUpdatedNotification)]

    watcher_rec, other_rec = Recorder(), Recorder()
    async with (
        open_client(router, client, backend, watcher_rec) as watcher,
        open_client(router, client, backend, other_rec) as other,
    ):
        if client == "streamable-modern":
            # 2026-07-28: a subscriptions/listen stream carries the update.
            async with watcher.listen(resource_subscriptions=[COUNTER_URI]) as subscription:
                assert subscription.honored.resource_subscriptions == [COUNTER_URI]
                await watcher.call_tool("bump", {})
                async with asyncio.timeout(5):
                    event = await anext(aiter(subscription))
                assert getattr(event, "uri", None) == COUNTER_URI
            return
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", MCPDeprecationWarning)
            await watcher.subscribe_resource(COUNTER_URI)
        await watcher.call_tool("bump", {})
        await wait_for(lambda: updated(watcher_rec), 5, message="notifications/resources/updated")
        assert updated(watcher_rec) == [COUNTER_URI]
        if backend != "stdio":
            # One backend process serves both sessions: a change made by the other client reaches
            # the subscriber, and only the subscriber.
            await other.call_tool("bump", {})
            await wait_for(lambda: len(updated(watcher_rec)) == 2, 5, message="the second update")
        assert updated(other_rec) == []


@matrix()
async def test_backend_list_changed_reaches_the_client(
    router: SyncRouter, client: ClientTransport, backend: str
) -> None:
    rec = Recorder()
    async with open_client(router, client, backend, rec) as c:
        if client == "streamable-modern":
            async with c.listen(tools_list_changed=True, prompts_list_changed=True, resources_list_changed=True) as sub:
                assert text_of(await c.call_tool("announce", {})) == "announced"
                kinds: set[str] = set()
                async with asyncio.timeout(5):
                    async for event in sub:
                        kinds.add(type(event).__name__)
                        if len(kinds) == 3:
                            break
            assert kinds == {"ToolsListChanged", "PromptsListChanged", "ResourcesListChanged"}
            return
        assert text_of(await c.call_tool("announce", {})) == "announced"
        wanted = {
            types.ToolListChangedNotification,
            types.PromptListChangedNotification,
            types.ResourceListChangedNotification,
        }

        def seen() -> set[type]:
            return {type(n) for n in rec.notifications} & wanted

        await wait_for(lambda: seen() == wanted, 5, message="the backend's three list_changed notifications")


@matrix()
async def test_cancellation_reaches_the_backend(router: SyncRouter, client: ClientTransport, backend: str) -> None:
    async def sleeps(c: Client) -> tuple[int, int]:
        started, cancelled = text_of(await c.call_tool("sleeps", {})).split()
        return int(started), int(cancelled)

    async with open_client(router, client, backend) as c:
        started, cancelled = await sleeps(c)
        call = asyncio.create_task(c.call_tool("sleep", {"seconds": 30}))

        async def running() -> bool:
            return (await sleeps(c))[0] > started

        await wait_for(running, 5, message="the backend to start the call")
        call.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await call

        # The client's cancellation (notifications/cancelled in the handshake era, the closed
        # stream in the modern era) reached the backend, whose tool saw it; the session goes on.
        async def seen() -> bool:
            return (await sleeps(c))[1] > cancelled

        await wait_for(seen, 5, message="the backend to see the cancellation")
        assert await sleeps(c) == (started + 1, cancelled + 1)
        assert text_of(await c.call_tool("echo", {"text": "after"})) == "after"


@matrix()
async def test_logging(router: SyncRouter, client: ClientTransport, backend: str) -> None:
    rec = Recorder()
    async with open_client(router, client, backend, rec) as c:
        assert text_of(await c.call_tool("log", {"message": f"note-{backend}"})) == "logged"
        # The SDK runs notification callbacks in their own tasks: poll instead of asserting at once.
        await wait_for(lambda: rec.logs, 3, message="notifications/message")
    assert [(entry.level, entry.logger, entry.data) for entry in rec.logs] == [("info", "fixture", f"note-{backend}")]


@matrix()
async def test_two_clients_isolated(
    router: SyncRouter, fixture_pids: dict[str, int], client: ClientTransport, backend: str
) -> None:
    rec_a, rec_b = Recorder(), Recorder()
    async with (
        open_client(router, client, backend, rec_a) as a,
        open_client(router, client, backend, rec_b) as b,
    ):
        rounds = 8
        calls = []
        for i in range(rounds):
            calls.append(a.call_tool("echo", {"text": f"a-{i}"}))
            calls.append(b.call_tool("echo", {"text": f"b-{i}"}))
        # Server-to-client requests (or input rounds) in flight on both sessions at once.
        calls += [a.call_tool("elicit", {"question": "qa"}), b.call_tool("elicit", {"question": "qb"})]
        calls += [a.call_tool("whoami", {}), b.call_tool("whoami", {})]
        results = [text_of(r) for r in await asyncio.gather(*calls)]
        expected = [f"{who}-{i}" for i in range(rounds) for who in ("a", "b")]
        assert results[:-4] == expected
        assert results[-4:-2] == ["accept:re:qa", "accept:re:qb"]
        assert [q for _, q in rec_a.elicited] == ["qa"]
        assert [q for _, q in rec_b.elicited] == ["qb"]
        pid_a, pid_b = (pid_of(text) for text in results[-2:])
    if backend == "stdio":
        # Each handshake session gets its own stdio process (one process serves one session).
        # Modern requests are self-contained, so whether they share a process is not asserted.
        if client != "streamable-modern":
            assert pid_a != pid_b
    else:
        assert pid_a == pid_b == fixture_pids[backend]


# --- handshake-era capabilities ----------------------------------------------------------------


@pytest.mark.parametrize(("client", "backend"), HANDSHAKE_COMBOS, ids=HANDSHAKE_IDS)
async def test_initialize_declares_list_changed(router: SyncRouter, client: ClientTransport, backend: str) -> None:
    async with open_client(router, client, backend) as c:
        caps = c.server_capabilities
        assert c.session.initialize_result is not None
        # The SDK backend itself says listChanged: false in this era; the router promises the
        # notifications it sends after a hot-swap, so it must say true for what the backend has.
        assert caps.tools is not None and caps.tools.list_changed is True
        assert caps.resources is not None and caps.resources.list_changed is True
        assert caps.prompts is not None and caps.prompts.list_changed is True
        # What the backend declares besides is kept.
        assert caps.resources.subscribe is True
        assert caps.logging is not None


# --- every released handshake revision ---------------------------------------------------------

HANDSHAKE_REVISIONS = ("2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25")


@pytest.mark.parametrize("version", HANDSHAKE_REVISIONS)
@pytest.mark.parametrize(("client", "backend"), HANDSHAKE_COMBOS, ids=HANDSHAKE_IDS)
async def test_every_handshake_revision(
    router: SyncRouter, client: ClientTransport, backend: str, version: str
) -> None:
    rec = Recorder()
    async with open_client(router, client, backend, rec, protocol_version=version) as c:
        # The backend negotiates what the client offers; the router must neither upgrade nor drop it.
        assert c.protocol_version == version
        assert text_of(await c.call_tool("echo", {"text": version})) == version
        assert text_of(await c.call_tool("sample", {"prompt": version})) == f"sampled:{version}"
    assert [text for _, text in rec.sampled] == [version]


def _raw_initialize(version: str) -> dict[str, Any]:
    body = initialize_request("batch-test")
    body["params"]["protocolVersion"] = version
    return body


def _echo(i: int) -> dict[str, Any]:
    return {
        "jsonrpc": "2.0",
        "id": i,
        "method": "tools/call",
        "params": {"name": "echo", "arguments": {"text": f"b{i}"}},
    }


async def _raw_session(http: httpx.AsyncClient, url: str, version: str) -> dict[str, str]:
    resp = await http.post(url, json=_raw_initialize(version), headers=RAW_HEADERS)
    assert resp.status_code == 200, resp.text
    headers = {**RAW_HEADERS, "mcp-session-id": resp.headers["mcp-session-id"], "mcp-protocol-version": version}
    sent = await http.post(url, json={"jsonrpc": "2.0", "method": "notifications/initialized"}, headers=headers)
    assert sent.status_code == 202
    return headers


@pytest.mark.parametrize("backend", ["http", "stdio"])
async def test_batches_at_2025_03_26(router: SyncRouter, backend: str) -> None:
    url = router.mcp_url(ROUTER_NAME[backend])
    async with httpx.AsyncClient(timeout=10) as http:
        headers = await _raw_session(http, url, "2025-03-26")
        batch = [_echo(1), {"jsonrpc": "2.0", "method": "notifications/progress_ignored"}, _echo(2), _echo(3)]
        resp = await http.post(url, json=batch, headers={**headers, "accept": "application/json"})
        assert resp.status_code == 200, resp.text
        answers = resp.json()
        assert isinstance(answers, list)
        # One answer per request (none for the notification), each to its own id.
        texts = {a["id"]: a["result"]["content"][0]["text"] for a in answers}
        assert texts == {1: "b1", 2: "b2", 3: "b3"}


async def test_no_batches_after_2025_03_26(router: SyncRouter) -> None:
    url = router.mcp_url("http")
    async with httpx.AsyncClient(timeout=10) as http:
        headers = await _raw_session(http, url, "2025-06-18")
        resp = await http.post(url, json=[_echo(1), _echo(2)], headers=headers)
        assert resp.status_code == 400
        assert "no batches" in resp.json()["error"]["message"]
        # The session is unharmed.
        single = await http.post(url, json=_echo(9), headers={**headers, "accept": "application/json"})
        assert single.json()["result"]["content"][0]["text"] == "b9"


@pytest.mark.parametrize("version", HANDSHAKE_REVISIONS)
async def test_only_2025_11_25_streams_open_with_the_empty_priming_event(router: SyncRouter, version: str) -> None:
    """The priming event (an id, empty `data`) came with 2025-11-25. Clients of older revisions
    parse each event as JSON (SDK 1.8 logs "Error parsing SSE message" and hands its session an
    exception per stream), so they get none: every event they see is a message, as from the SDK's
    own server."""
    url = router.mcp_url("http")
    async with httpx.AsyncClient(timeout=10) as http:
        headers = await _raw_session(http, url, version)
        async with http.stream("GET", url, headers={**headers, "accept": "text/event-stream"}) as own:
            own_events = sse_events(own)
            slow = {
                "jsonrpc": "2.0",
                "id": 1,
                "method": "tools/call",
                "params": {"name": "slow", "arguments": {"steps": 2, "delay": 0}, "_meta": {"progressToken": "p"}},
            }
            async with http.stream("POST", url, json=slow, headers=headers) as answer:
                assert answer.headers["content-type"].startswith("text/event-stream")
                events = [data async for _, data in sse_events(answer)]
            announce = {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "announce"}}
            assert (await http.post(url, json=announce, headers=headers)).status_code == 200
            # The session's own stream: the backend's list_changed notifications come on it.
            async with asyncio.timeout(10):
                events_own = [(await anext(own_events))[1], (await anext(own_events))[1]]
    if version >= "2025-11-25":
        assert events[0] == b"" and events_own[0] == b"", (events, events_own)
        events, events_own = events[1:], events_own[1:]
    methods = [json.loads(data).get("method") for data in events]
    assert methods == ["notifications/progress", "notifications/progress", None], events
    assert json.loads(events_own[0])["method"].endswith("/list_changed"), events_own


# --- the modern client and a legacy SSE backend ------------------------------------------------


async def test_modern_client_against_sse_backend_auto_falls_back(router: SyncRouter) -> None:
    async with connect(router.mcp_url("legacy"), "streamable-auto") as c:
        assert c.protocol_version == HANDSHAKE_VERSION
        assert c.session.initialize_result is not None
        assert text_of(await c.call_tool("echo", {"text": "fell back"})) == "fell back"


async def test_modern_client_against_sse_backend_pinned_fails_clearly(router: SyncRouter) -> None:
    # A pinned client adopts 2026-07-28 without a probe, so the refusal comes on its first call.
    async with connect(router.mcp_url("legacy"), "streamable-modern") as c:
        with pytest.raises(MCPError) as excinfo:
            await c.call_tool("echo", {"text": "never"})
    message = str(excinfo.value)
    assert "backend 'legacy'" in message, message
    assert "legacy HTTP+SSE" in message, message
    assert excinfo.value.error.code == types.INVALID_REQUEST


async def test_auto_client_picks_modern_when_backend_has_it(router: SyncRouter) -> None:
    for backend in ("http", "stdio"):
        async with connect(router.mcp_url(backend), "streamable-auto") as c:
            assert c.protocol_version == MODERN_VERSION, backend
            assert text_of(await c.call_tool("echo", {"text": backend})) == backend


def test_router_output_is_clean(router: SyncRouter) -> None:
    """Last in the module: after the whole matrix, the router logged no traceback and dropped nothing."""
    suspicious = [
        line
        for line in router.lines + router.stderr_lines
        if "Traceback" in line or "dropped" in line or "Error" in line
    ]
    assert not suspicious, router.tail(60)
