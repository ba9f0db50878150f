"""The hot path (issue 13): a plain modern-era call to a backend that is up, served with no task.

The router's uvicorn protocol reads such a POST itself and forwards it from its callback; the
answer is written from the backend connection's. These tests drive it the way clients do (and
the ways they rarely do): the raw backend (`tests/servers/raw.py`) records the exact bytes it
receives, raw sockets send what no SDK sends (pipelined requests, a request in pieces, broken
heads), and every answer is checked byte for byte. What the hot path does not take must behave
exactly as before: uvicorn answers a malformed head, the full path serves everything else.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httptools
import httpx
import pytest

from app.proxy.app import RouterApp
from app.proxy.endpoint_streamable import _forwarded
from app.proxy.http_client import _HEADER_BLOCKS, HTTPClient, _header_block
from app.proxy.router import Router
from app.server_protocol import _HEADER_LINES, _HEADS, _parse_head
from tests.support.procs import HOST, SyncRouter, run_router_sync, stdio_command, wait_for
from tests.support.raw import MODERN, run_raw_http

pytestmark = pytest.mark.timeout(60)

META = {
    "io.modelcontextprotocol/protocolVersion": MODERN,
    "io.modelcontextprotocol/clientInfo": {"name": "raw", "version": "1"},
    "io.modelcontextprotocol/clientCapabilities": {},
}


class Setup:
    def __init__(self, router: SyncRouter, record: Path) -> None:
        self.router = router
        self.record = record
        self.port = int(router.url.rsplit(":", 1)[1])

    def received(self, marker: bytes) -> list[bytes]:
        """Every body the backend received that contains `marker`."""
        lines = self.record.read_text(encoding="utf-8").splitlines()
        bodies = [json.loads(line)["body"].encode("latin-1") for line in lines]
        return [b for b in bodies if marker in b]


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    record = tmp_path_factory.mktemp("hot") / "raw.jsonl"
    record.touch()
    with run_raw_http(record) as url, run_router_sync("-b", f"raw={url}") as router:
        yield Setup(router, record)


def call(rid: bytes, marker: str, delay: float = 0.0) -> tuple[bytes, bytes]:
    """A modern-era `raw/answer` request written as a client might (odd spacing kept), and its answer."""
    answer = '{"jsonrpc":"2.0", "id":$ID ,"result":{"content":[],"marker":"' + marker + '"}}'
    params = {"marker": marker, "answer": answer, "delay": delay, "_meta": META}
    body = (
        b'{"jsonrpc": "2.0",  "id":' + rid + b', "method":"raw/answer","params":' + json.dumps(params).encode() + b"}"
    )
    return body, answer.replace("$ID", rid.decode()).encode()


def post(body: bytes, port: int, extra: bytes = b"") -> bytes:
    return (
        b"POST /mcp/raw HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nContent-Type: application/json\r\n"
        b"Accept: application/json, text/event-stream\r\nMCP-Protocol-Version: %s\r\n%sContent-Length: %d\r\n\r\n"
        % (port, MODERN.encode(), extra, len(body))
    ) + body


@contextlib.asynccontextmanager
async def connection(port: int) -> AsyncIterator[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    reader, writer = await asyncio.open_connection(HOST, port)
    try:
        yield reader, writer
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


async def read_response(reader: asyncio.StreamReader) -> tuple[int, dict[bytes, bytes], bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head[:-4].split(b"\r\n")
    status = int(lines[0].split(b" ")[1])
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(b":") for line in lines[1:])}
    body = await reader.readexactly(int(headers.get(b"content-length", b"0")))
    return status, headers, body


async def warm(setup: Setup) -> None:
    """One call through the full path: it opens the modern-era channel and a kept-alive connection."""
    body, expected = call(b"0", "warm-up")
    async with httpx.AsyncClient() as http:
        resp = await http.post(setup.router.mcp_url("raw"), content=body, headers=_headers())
    assert resp.content == expected


def _headers() -> dict[str, str]:
    return {"content-type": "application/json", "accept": "application/json", "mcp-protocol-version": MODERN}


async def test_the_backend_gets_the_clients_bytes_and_the_client_the_backends(setup: Setup) -> None:
    await warm(setup)
    async with httpx.AsyncClient() as http:
        for n in range(5):  # the first may still go the full way; the rest are the hot path's
            body, expected = call(b"17", f"exact-{n}")
            resp = await http.post(setup.router.mcp_url("raw"), content=body, headers=_headers())
            assert resp.status_code == 200
            assert resp.content == expected
    # No id was renamed on the way: the backend saw exactly what the client wrote.
    assert setup.received(b"exact-4") == [call(b"17", "exact-4")[0]]


async def test_two_clients_with_the_same_id_at_once(setup: Setup) -> None:
    await warm(setup)
    slow, slow_answer = call(b'"same"', "same-slow", delay=0.5)
    quick, quick_answer = call(b'"same"', "same-quick")
    async with httpx.AsyncClient() as a, httpx.AsyncClient() as b:
        first = asyncio.ensure_future(a.post(setup.router.mcp_url("raw"), content=slow, headers=_headers()))
        # The backend records a request as it arrives (a file another process writes): polled.
        await wait_for(lambda: setup.received(b"same-slow"), message="the backend to hold the first call")
        second = await b.post(setup.router.mcp_url("raw"), content=quick, headers=_headers())
        assert second.content == quick_answer
        assert (await first).content == slow_answer
    # The first went under the client's own id; the second under the router's while that was taken.
    [got_slow], [got_quick] = setup.received(b"same-slow"), setup.received(b"same-quick")
    assert got_slow == slow
    renamed = re.match(rb'\{"jsonrpc": "2.0",  "id":("modern:raw-[0-9]+"),', got_quick)
    assert renamed is not None, got_quick[:80]
    assert got_quick == quick.replace(b'"id":"same"', b'"id":' + renamed.group(1), 1)


async def test_two_clients_with_the_same_id_at_once_on_a_stdio_backend() -> None:
    """A process's one pipe carries every client's requests: the hot path sends each under the
    session's own id and gives each client its own back, whatever ids the clients chose."""

    def look(text: str) -> bytes:
        params = {"name": "look", "arguments": {"text": text, "delay": 0.3}, "_meta": META}
        return json.dumps({"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": params}).encode()

    with run_router_sync("-b", f"io={stdio_command()}") as router:
        url = router.mcp_url("io")
        async with httpx.AsyncClient(timeout=30) as a, httpx.AsyncClient(timeout=30) as b:
            await a.post(url, content=look("warm-up"), headers=_headers())  # starts the process
            answers = await asyncio.gather(
                a.post(url, content=look("from a"), headers=_headers()),
                b.post(url, content=look("from b"), headers=_headers()),
            )
    for resp, text in zip(answers, ("from a", "from b"), strict=True):
        assert resp.status_code == 200
        answer = resp.json()
        assert answer["id"] == 7 and answer["result"]["content"] == [{"type": "text", "text": text}]


async def test_pipelined_requests_are_answered_in_order(setup: Setup) -> None:
    await warm(setup)
    first, first_answer = call(b"1", "pipe-1", delay=0.2)
    second, second_answer = call(b"2", "pipe-2")
    async with connection(setup.port) as (reader, writer):
        writer.write(post(first, setup.port) + post(second, setup.port))
        await writer.drain()
        status, _, body = await read_response(reader)
        assert (status, body) == (200, first_answer)
        status, _, body = await read_response(reader)
        assert (status, body) == (200, second_answer)


async def test_a_request_in_pieces(setup: Setup) -> None:
    await warm(setup)
    body, expected = call(b"3", "pieces")
    data = post(body, setup.port)
    async with connection(setup.port) as (reader, writer):
        for cut in (data[:10], data[10:60], data[60 : len(data) - len(body) + 7], data[len(data) - len(body) + 7 :]):
            writer.write(cut)
            await writer.drain()
            await asyncio.sleep(0.01)  # shapes the input into separate segments; nothing waits on it
        status, headers, answer = await read_response(reader)
    assert (status, answer) == (200, expected)
    assert headers[b"content-type"] == b"application/json"


async def test_one_connection_serves_many_calls(setup: Setup) -> None:
    await warm(setup)
    async with connection(setup.port) as (reader, writer):
        for n in range(20):
            body, expected = call(str(100 + n).encode(), f"keep-{n}")
            writer.write(post(body, setup.port, extra=b"Connection: keep-alive\r\n"))
            await writer.drain()
            status, _, answer = await read_response(reader)
            assert (status, answer) == (200, expected)


@pytest.mark.parametrize("name", [b"mcp-session-id", b"Mcp-Session-Id", b"MCP-SESSION-ID"])
async def test_a_request_naming_a_session_is_the_full_paths_however_the_name_is_written(
    setup: Setup, name: bytes
) -> None:
    """The full path answers it (here: no such session), never the hot path."""
    await warm(setup)
    body, _ = call(b"6", "with-session")
    async with connection(setup.port) as (reader, writer):
        writer.write(post(body, setup.port, extra=name + b": no-such-session\r\n"))
        await writer.drain()
        status, _, answer = await read_response(reader)
    assert status == 404
    assert b"Session not found" in answer
    assert setup.received(b"with-session") == []


@pytest.mark.parametrize(
    "bad",
    [b"X-Bad: a\x01b\r\n", b"No colon here\r\n", b"Bad Name: x\r\n", b"X-Bare: a\nb\r\n"],
    ids=["control-char", "no-colon", "space-in-name", "bare-lf"],
)
async def test_a_malformed_head_is_refused_as_before(setup: Setup, bad: bytes) -> None:
    body, _ = call(b"4", "malformed")
    async with connection(setup.port) as (reader, writer):
        writer.write(post(body, setup.port, extra=bad))
        await writer.drain()
        status, _, _ = await read_response(reader)
    assert status == 400
    assert setup.received(b"malformed") == []


async def test_what_the_hot_path_does_not_take_still_works(setup: Setup) -> None:
    """A chunked body, an Expect, a client asking only for a stream: all served the full way."""
    await warm(setup)
    body, expected = call(b"5", "full-way")
    async with httpx.AsyncClient() as http:

        async def pieces() -> AsyncIterator[bytes]:
            yield body[:20]
            yield body[20:]

        resp = await http.post(setup.router.mcp_url("raw"), content=pieces(), headers=_headers())
        assert (resp.status_code, resp.content) == (200, expected)  # chunked: no Content-Length
        resp = await http.post(
            setup.router.mcp_url("raw"), content=body, headers={**_headers(), "expect": "100-continue"}
        )
        assert (resp.status_code, resp.content) == (200, expected)
        sse = {**_headers(), "accept": "text/event-stream"}
        resp = await http.post(setup.router.mcp_url("raw"), content=body, headers=sse)
        assert resp.status_code == 200
        assert resp.headers["content-type"].startswith("text/event-stream")
        assert expected in resp.content


# A head the hot path reads must read as uvicorn's parser (httptools) reads it; anything else is
# left to that parser. Checked against httptools itself on heads of every kind.
HEADS = [
    b"POST /mcp HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\n",
    b"POST /mcp/a?x=1 HTTP/1.1\r\nhost:h\r\ncontent-length:   2\r\nX-Tab:\tv\t\r\n\r\n",
    b"POST /mcp HTTP/1.1\r\nHost: h\r\nContent-Length: 2  \r\n\r\n",
    b"POST /mcp HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\n",
    b"POST /mcp HTTP/1.1\r\nHost: h\r\nContent-Length: -2\r\n\r\n",
    b"POST /mcp HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n",
    b"POST /mcp HTTP/1.0\r\nHost: h\r\nContent-Length: 2\r\n\r\n",
    b"POST /m%63p HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\n",
    b"POST /mcp HTTP/1.1\r\nHost: h\r\n folded\r\nContent-Length: 2\r\n\r\n",
    b"POST /mcp HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\nConnection: close\r\n\r\n",
    b"POST /mcp HTTP/1.1\r\nHost: h\xc3\xa9\r\nContent-Length: 2\r\n\r\n",
    b"POST  /mcp HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\n",
    b"POST /mcp HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\nX-Empty:\r\n\r\n",
    b"POST /mcp HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n: no name\r\n\r\n",
    b"POST /mcp HTTP/1.1\r\nHost: h\r\nno colon\r\nContent-Length: 2\r\n\r\n",
    b"POST /mcp HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\nhost: h\r\n\r\n",
    b"POST /mcp HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\nX-Colons: a:b: c\r\nX-Del: \x7f\r\n\r\n",
    b"POST /mcp HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\nX-Colons: a:b: c\r\n\r\n",
]


class _Collect:
    def __init__(self) -> None:
        self.headers: list[tuple[bytes, bytes]] = []
        self.url = b""

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name.lower(), value))


@pytest.mark.parametrize("head", HEADS)
def test_a_head_the_hot_path_reads_is_read_as_httptools_reads_it(head: bytes) -> None:
    parsed = _parse_head(head)
    # Read again, the head is known (looked up, not read anew): the same answer. So it is when
    # only its lines are known (a head that differs from one seen before by its Content-Length).
    assert _parse_head(head) == parsed
    _HEADS.clear()
    assert _parse_head(head) == parsed
    if parsed is None:
        return  # left to uvicorn's parser, which answers it as before
    collect = _Collect()
    parser = httptools.HttpRequestParser(collect)
    parser.feed_data(head + b"xx")
    target, headers, length = parsed
    assert target == collect.url
    assert list(headers.items()) == collect.headers
    assert length == 2
    assert parser.get_method() == b"POST"


def test_a_clients_credentials_are_not_kept_past_its_request() -> None:
    """Header lines are remembered to be read faster next time; Authorization and Cookie are not."""
    head = b"POST /mcp HTTP/1.1\r\nHost: h\r\nAuthorization: Bearer s3cret\r\nCookie: c=s3cret\r\nContent-Length: 2\r\n\r\n"
    for _ in range(2):
        parsed = _parse_head(head)
        assert parsed is not None
        assert parsed[1][b"authorization"] == b"Bearer s3cret"
    assert not [line for line in _HEADER_LINES if b"s3cret" in line]
    assert not [h for h in _HEADS if b"s3cret" in h]


def test_credentials_are_not_kept_in_the_tables_of_the_request_to_the_backend() -> None:
    """The headers sent on are remembered too (their lines, what a request forwards); credentials are not."""
    block = _header_block({"Accept": "application/json", "authorization": "Bearer s3cret"})
    assert block == b"Accept: application/json\r\nauthorization: Bearer s3cret\r\n"
    assert not [pairs for pairs in _HEADER_BLOCKS if "s3cret" in repr(pairs)]
    headers = {b"authorization": b"Bearer s3cret", b"mcp-method": b"tools/call"}
    for _ in range(2):
        assert _forwarded(headers) == {"authorization": "Bearer s3cret", "mcp-method": "tools/call"}
    assert _forwarded({b"mcp-method": b"tools/call"}) == {"mcp-method": "tools/call"}
    # The head of the request to the backend, kept per channel only when it carries no credentials.
    http = HTTPClient()
    head, keep = http.request_head("POST", "http://127.0.0.1:9/mcp", {"Authorization": "Bearer s3cret"})
    assert head.startswith(b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:9\r\nAuthorization: Bearer s3cret\r\n")
    assert head.endswith(b"\r\nContent-Length: ") and not keep
    head, keep = http.request_head("POST", "http://127.0.0.1:9/mcp", {"Mcp-Method": "tools/call"})
    assert head == b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:9\r\nMcp-Method: tools/call\r\nContent-Length: " and keep


async def test_the_apps_verdicts_on_heads_hold_no_credentials_and_are_the_heads_own() -> None:
    """The app remembers what it read of a head (route, version, forwarded headers) by the head's
    headers dict; a head with credentials is read anew each time and never kept."""
    app = RouterApp(Router())
    scope = {"type": "http", "method": "POST", "path": "/mcp/none"}
    plain = {
        b"host": b"127.0.0.1",
        b"content-type": b"application/json",
        b"accept": b"application/json, text/event-stream",
        b"mcp-protocol-version": MODERN.encode(),
        b"mcp-method": b"tools/call",
    }
    body = b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo"}}'
    for headers in (plain, {**plain, b"authorization": b"Bearer s3cret"}, {**plain, b"cookie": b"c=s3cret"}):
        for _ in range(2):
            # No such backend: the full path answers (an error the client sees), nothing is sent.
            assert not app.post_now(dict(scope), headers, body, reply=None)  # type: ignore[arg-type]
    assert [entry[2] for entry in app._heads_now.values()] == [
        ("none", MODERN, {"mcp-protocol-version": MODERN, "mcp-method": "tools/call"})
    ]
    assert "s3cret" not in repr(app._heads_now)
    # Another path with the same headers: its own verdict (a route of the management API: none).
    assert not app.post_now({**scope, "path": "/api/status"}, plain, body, reply=None)  # type: ignore[arg-type]
    assert [entry[2] for entry in app._heads_now.values()] == [None]


def test_a_request_forwards_its_mcp_param_headers_and_only_its_own() -> None:
    """What a request forwards is remembered by its header names and values: never another's."""
    plain = {b"host": b"h", b"mcp-method": b"tools/call", b"mcp-name": b"echo"}
    assert _forwarded(plain) == {"mcp-method": "tools/call", "mcp-name": "echo"}
    with_param = {**plain, b"mcp-param-region": b"eu"}
    assert _forwarded(with_param) == {"mcp-method": "tools/call", "mcp-name": "echo", "mcp-param-region": "eu"}
    assert _forwarded({**plain, b"mcp-param-region": b"us"})["mcp-param-region"] == "us"
    assert _forwarded(plain) == {"mcp-method": "tools/call", "mcp-name": "echo"}


def test_the_hot_path_reads_the_heads_clients_send() -> None:
    """Not a parser that refuses everything: the plain heads of SDK and browser clients are its own."""
    assert _parse_head(HEADS[0]) is not None
    assert _parse_head(HEADS[1]) is not None
    assert _parse_head(HEADS[-1]) is not None
