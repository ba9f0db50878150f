"""The 1:1 proxy, literally (issue 9): the bytes one side sends are the bytes the other side gets.

A raw backend (`tests/servers/raw.py`, Streamable HTTP with JSON answers, and stdio) records the
exact bytes it receives and answers with exact bytes the test chooses. Raw HTTP clients speak each
client transport: Streamable HTTP with a handshake, Streamable HTTP in the 2026-07-28 era, legacy
HTTP+SSE. Between them are values that a re-encoding would change or a strict parser refuse:
integers past 64 bits, `-0`, `1E2`, lone surrogate escapes, `1e400`, duplicate keys, nesting
deeper than 1024. Where the router must change a token (a remapped id in the modern era when the
client's own is in use on the shared backend session, the `listChanged` it declares), only that
token differs. Besides: replies that do not answer their
request fail it at once, SSE framing of CR/LF/CRLF, `Last-Event-ID` garbage.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.support.procs import SyncRouter, run_router_sync
from tests.support.raw import HANDSHAKE, RAW_SERVER, RawClient, run_raw_http, sse_events

pytestmark = pytest.mark.timeout(60)


DEEP = b"[" * 1500 + b"]" * 1500
ODD = (
    b"[123456789012345678901234567890, 18446744073709551616,-0,1E2 ,-1.5e-7,"
    b'"\\ud83d","\\udc00 tail",1e400,' + DEEP + b',{"a":1,"a":2},"caf\xc3\xa9 \xf0\x9f\x98\x80","\\u0000\\/"]'
)
ANSWER = (
    '{"jsonrpc":"2.0",  "id":$ID,"result":{"content":[],"structuredContent":{"odd":' + ODD.decode() + "}}}"
).encode()
CLIENTS = ("streamable-handshake", "streamable-modern", "sse")
BACKENDS = ("raw", "rawio")


# ------------------------------------------------------------------------------ processes


@dataclass
class Setup:
    router: SyncRouter
    records: dict[str, Path]

    def received(self, backend: str, marker: bytes) -> list[bytes]:
        """Every body the backend received that contains `marker`."""
        lines = self.records[backend].read_text(encoding="utf-8").splitlines()
        bodies = [json.loads(line)["body"].encode("latin-1") for line in lines]
        return [b for b in bodies if marker in b]


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    tmp = tmp_path_factory.mktemp("raw")
    records = {"raw": tmp / "http.jsonl", "rawio": tmp / "stdio.jsonl"}
    for path in records.values():
        path.touch()
    stdio = f"{sys.executable} {RAW_SERVER} --transport stdio --record {records['rawio']}"
    with run_raw_http(records["raw"]) as url, run_router_sync("-b", f"raw={url}", "-b", f"rawio={stdio}") as router:
        yield Setup(router, records)


# ------------------------------------------------------------------------------ raw clients


def request(rid: bytes, answer: bytes | list[bytes], marker: str, modern: bool, odd: bytes = ODD) -> bytes:
    answer_json = json.dumps([a.decode() for a in answer] if isinstance(answer, list) else answer.decode())
    meta = b""
    if modern:
        meta = (
            b', "_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28",'
            b'"io.modelcontextprotocol/clientInfo":{"name":"raw","version":"1"},'
            b'"io.modelcontextprotocol/clientCapabilities":{}}'
        )
    params = b'{ "marker" : "' + marker.encode() + b'",\t"odd":' + odd + b',"answer":' + answer_json.encode() + meta
    return b'{"jsonrpc":"2.0", "id":' + rid + b',"method":"raw/answer","params":' + params + b"}}"


@contextlib.asynccontextmanager
async def raw_client(setup: Setup, transport: str, backend: str) -> AsyncIterator[RawClient]:
    async with (
        httpx.AsyncClient(timeout=httpx.Timeout(10.0, read=60.0)) as http,
        RawClient(http, setup.router, transport, backend) as client,
    ):
        yield client


# ------------------------------------------------------------------------------ the tests


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("transport", CLIENTS)
async def test_bytes_arrive_as_sent_both_ways(setup: Setup, transport: str, backend: str) -> None:
    marker = f"exact-{transport}-{backend}"
    modern = transport == "streamable-modern"
    body = request(b"11", ANSWER, marker, modern)
    async with raw_client(setup, transport, backend) as client:
        answer = await client.exchange(body)
    # Backend to client: the backend's bytes, with the client's own id where the backend wrote its id.
    assert answer == ANSWER.replace(b"$ID", b"11")
    # Client to backend: the client's bytes. In the modern era the id may be the router's own (a
    # backend connection shared by clients): then only the id differs.
    [received] = setup.received(backend, marker.encode())
    if modern and received != body:
        m = re.match(rb'\{"jsonrpc":"2.0", "id":("[^"]+"),', received)
        assert m is not None, received[:80]
        assert received == body.replace(b'"id":11,', b'"id":' + m.group(1) + b",", 1)
    else:
        assert received == body


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("transport", CLIENTS)
async def test_line_breaks_between_tokens(setup: Setup, transport: str, backend: str) -> None:
    """A body written over several lines reaches a stdio backend on one line, every value intact."""
    marker = f"lines-{transport}-{backend}"
    modern = transport == "streamable-modern"
    body = (
        request(b"12", ANSWER, marker, modern).replace(b', "id"', b',\r\n "id"').replace(b',"answer"', b',\n"answer"')
    )
    async with raw_client(setup, transport, backend) as client:
        answer = await client.exchange(body)
    assert answer == ANSWER.replace(b"$ID", b"12")
    [received] = setup.received(backend, marker.encode())
    expected = body if backend == "raw" else body.replace(b"\r", b" ").replace(b"\n", b" ")
    if modern:
        received = re.sub(rb'"id":"[^"]+"', b'"id":12', received, count=1)
    assert received == expected


@pytest.mark.parametrize("backend", BACKENDS)
async def test_modern_era_gives_back_the_clients_exact_id(setup: Setup, backend: str) -> None:
    big = b"123456789012345678901234567890"
    async with raw_client(setup, "streamable-modern", backend) as client:
        answer = await client.exchange(request(big, ANSWER, f"bigid-{backend}", True))
        assert answer == ANSWER.replace(b"$ID", big)
        answer = await client.exchange(request(b'"\\ud83d-id"', ANSWER, f"surrogate-id-{backend}", True))
        assert answer == ANSWER.replace(b"$ID", b'"\\ud83d-id"')


@pytest.mark.parametrize("transport", ["streamable-handshake", "sse"])
async def test_initialize_answer_changes_only_list_changed(setup: Setup, transport: str) -> None:
    async with raw_client(setup, transport, "raw") as client:
        assert client.init_answer is not None
        sent = json.dumps(
            {
                "jsonrpc": "2.0",
                "id": 0,
                "result": {
                    "protocolVersion": HANDSHAKE,
                    "capabilities": {"tools": {}},
                    "serverInfo": {"name": "raw", "version": "1"},
                },
            }
        ).encode()
        assert client.init_answer == sent.replace(b'"tools": {}', b'"tools": {"listChanged":true}')


NOT_ANSWERS = {
    "wrong-id": (b'{"jsonrpc":"2.0","id":987654,"result":{}}', "a response with id 987654"),
    "null-id-result": (b'{"jsonrpc":"2.0","id":null,"result":{}}', "a response with id None"),
    "notification-only": (
        b'{"jsonrpc":"2.0","method":"notifications/message","params":{"level":"info","data":"x"}}',
        "a notification (notifications/message)",
    ),
}


@pytest.mark.parametrize("case", list(NOT_ANSWERS))
@pytest.mark.parametrize("transport", ["streamable-handshake", "streamable-modern"])
async def test_a_reply_that_does_not_answer_fails_the_request_at_once(setup: Setup, transport: str, case: str) -> None:
    reply, described = NOT_ANSWERS[case]
    async with raw_client(setup, transport, "raw") as client:
        started = time.monotonic()
        resp = await client.post(request(b"21", reply, f"noanswer-{case}-{transport}", transport != "sse"))
        assert time.monotonic() - started < 1.0
    body = resp.json()
    assert body["id"] == 21, body
    error = body["error"]
    assert "backend 'raw'" in error["message"] and "did not answer" in error["message"], error
    assert described in error["message"], error
    assert error["data"]["fault"] == "backend"

    def shown() -> bool:
        return any("backend fault:" in line and "did not answer" in line for line in setup.router.lines)

    deadline = time.monotonic() + 5
    while not shown():
        assert time.monotonic() < deadline, setup.router.tail()
        await asyncio.sleep(0.02)


@pytest.mark.parametrize("transport", ["streamable-handshake", "streamable-modern", "sse"])
async def test_sse_framing_of_cr_lf_and_crlf(setup: Setup, transport: str) -> None:
    """Backend JSON with CR, LF and CRLF between tokens reaches an SSE client whole."""
    answer = b'{"jsonrpc":"2.0",\r"id":$ID,\n"result":{"content":[],\r\n"structuredContent":{"odd":' + ODD + b"}}}"
    async with raw_client(setup, transport, "raw") as client:
        body = request(b"31", answer, f"framing-{transport}", transport == "streamable-modern")
        if transport == "sse":
            data = await client.exchange(body)
        else:
            resp = await client.post(body, accept="text/event-stream")
            assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/event-stream")
            events = [d async for _e, d in _parse(resp.content) if d]
            data = events[-1]
    expected = answer.replace(b"$ID", b"31")
    assert data == expected.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    assert json.loads(data.replace(DEEP, b"0")) == json.loads(expected.replace(DEEP, b"0"))


async def _parse(content: bytes) -> AsyncIterator[tuple[str, bytes]]:
    class _Resp:
        async def aiter_raw(self) -> AsyncIterator[bytes]:
            yield content

    async for item in sse_events(_Resp()):
        yield item


@pytest.mark.parametrize(
    "value", ["²", "²-1", "1-²", pytest.param("9" * 5000, id="5000-digits"), "abc", "1-", "-1", "1--2"]
)
async def test_last_event_id_garbage_is_a_clear_400(setup: Setup, value: str) -> None:
    async with raw_client(setup, "streamable-handshake", "raw") as client:
        headers = {
            b"accept": b"text/event-stream",
            b"mcp-session-id": client.headers["mcp-session-id"].encode(),
            b"last-event-id": value.encode(),  # as a client would send it: UTF-8 bytes
        }
        resp = await client.http.get(client.url, headers=headers)
        assert resp.status_code == 400, resp.text
        assert "Last-Event-ID" in resp.json()["error"]["message"]
    assert not [line for line in setup.router.stderr_lines if "Traceback" in line], setup.router.tail()


async def test_legacy_messages_do_not_wait_behind_a_slow_json_answer(setup: Setup) -> None:
    """A backend answering in JSON holds its POST for the whole call: other messages must not queue behind it."""
    slow = request(b"41", ANSWER, "slow-call", False).replace(b'"answer":', b'"delay":3,"answer":')
    async with raw_client(setup, "sse", "raw") as client:
        started = time.monotonic()
        await client.post(slow)
        await client.post(b'{"jsonrpc":"2.0","id":42,"method":"ping"}')
        await client.post(request(b"43", ANSWER, "quick-call", False))
        first = [await client.next_message(), await client.next_message()]
        quick = time.monotonic() - started
        last = await client.next_message()
    assert quick < 1.5, quick
    assert sorted(json.loads(m.replace(DEEP, b"0"))["id"] for m in first) == [42, 43]
    assert last == ANSWER.replace(b"$ID", b"41")


def test_router_logged_no_traceback(setup: Setup) -> None:
    """Last: after every case, the router is up and wrote no traceback."""
    assert setup.router.popen.poll() is None
    assert not [line for line in setup.router.lines + setup.router.stderr_lines if "Traceback" in line], (
        setup.router.tail(60)
    )
