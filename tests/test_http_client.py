"""The router's own HTTP/1.1 client for backends, against real loopback servers that misbehave on purpose.

The transport matrix already runs every SDK backend through this client; here are the cases an SDK
server does not produce on demand: a server that closes kept-alive connections, bodies that end at
EOF, a stream far larger than the read buffer, garbage instead of HTTP, a server that dies mid-answer,
and for the hot path (`send_now`) answers cut into pieces or followed by more bytes than they say.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from app.proxy import http_client
from app.proxy.http_client import ConnectFailed, ConnectionBroke, HTTPClient, Response, _Connection
from tests.support.procs import HOST, free_port, wait_for

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@dataclass
class Server:
    url: str
    connections: int = 0
    requests: list[bytes] = field(default_factory=list)


async def read_request(reader: asyncio.StreamReader) -> bytes | None:
    """One request (head and Content-Length body), or None at EOF."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError:
        return None
    length = 0
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    body = await reader.readexactly(length) if length else b""
    return head + body


def ok(body: bytes, extra: bytes = b"") -> bytes:
    return b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n%s\r\n%s" % (
        len(body),
        extra,
        body,
    )


@contextlib.asynccontextmanager
async def serve(
    per_connection: Callable[[Server, asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]],
) -> AsyncIterator[Server]:
    port = free_port()
    server = Server(f"http://{HOST}:{port}/mcp")

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        server.connections += 1
        try:
            await per_connection(server, reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    srv = await asyncio.start_server(handle, HOST, port)
    try:
        yield server
    finally:
        srv.close()
        await srv.wait_closed()


async def echo_forever(server: Server, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """A well-behaved keep-alive server: answers every request with its body."""
    while (req := await read_request(reader)) is not None:
        server.requests.append(req)
        writer.write(ok(req.split(b"\r\n\r\n", 1)[1]))
        await writer.drain()


@pytest.fixture
async def client() -> AsyncIterator[HTTPClient]:
    c = HTTPClient()
    yield c
    await c.close()


async def test_sequential_requests_share_one_kept_alive_connection(client: HTTPClient) -> None:
    async with serve(echo_forever) as server:
        for i in range(20):
            resp = await client.request("POST", server.url, b'{"n":%d}' % i, {"Content-Type": "application/json"})
            assert resp.status == 200
            assert resp.headers["content-type"] == "application/json"
            assert await resp.read() == b'{"n":%d}' % i
        assert server.connections == 1
        first = server.requests[0]
        assert first.startswith(b"POST /mcp HTTP/1.1\r\nHost: " + server.url.split("/")[2].encode() + b"\r\n")
        assert b"Content-Length: 7\r\n" in first


async def test_a_server_that_closes_after_each_answer_costs_no_request(client: HTTPClient) -> None:
    async def one_and_close(server: Server, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        req = await read_request(reader)
        assert req is not None
        server.requests.append(req)
        writer.write(ok(b"{}"))  # says nothing of closing, then closes: like an idle timeout right after
        await writer.drain()

    async with serve(one_and_close) as server:
        for _ in range(5):
            resp = await client.request("POST", server.url, b"{}")
            assert await resp.read() == b"{}"
            # The close reaches the pool before the next request is made; it must not be used.
            await wait_for(lambda: not any(client._idle.values()), 5, message="the close to reach the pool")
        assert server.connections == 5


async def test_a_connection_idle_past_the_ttl_is_not_reused(
    client: HTTPClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(http_client, "IDLE_TTL", 0.05)
    async with serve(echo_forever) as server:
        await (await client.request("POST", server.url, b"1")).read()
        await (await client.request("POST", server.url, b"2")).read()
        assert server.connections == 1
        await asyncio.sleep(0.1)  # the idle time itself is what is tested
        await (await client.request("POST", server.url, b"3")).read()
        assert server.connections == 2


async def answers_once_then_drops(server: Server, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Answers a connection's first request; closes without a word on its second, as a server timing out does."""
    req = await read_request(reader)
    assert req is not None
    writer.write(ok(b"first"))
    await writer.drain()
    if await read_request(reader) is not None:
        server.requests.append(b"dropped")


async def test_a_get_on_a_connection_the_server_dropped_is_sent_again(client: HTTPClient) -> None:
    async with serve(answers_once_then_drops) as server:
        assert await (await client.request("GET", server.url)).read() == b"first"
        resp = await client.request("GET", server.url)
        assert await resp.read() == b"first"
        assert server.connections == 2
        assert server.requests == [b"dropped"]


async def test_a_post_on_a_dropped_connection_is_not_sent_twice(client: HTTPClient) -> None:
    async with serve(answers_once_then_drops) as server:
        await (await client.request("POST", server.url, b"{}")).read()
        with pytest.raises(ConnectionBroke):
            await client.request("POST", server.url, b"{}")
        assert server.connections == 1  # the server may have acted on it: never sent again


async def test_a_body_without_length_ends_at_eof(client: HTTPClient) -> None:
    async def until_close(server: Server, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n")
        writer.write(b'{"whole":')
        await writer.drain()
        writer.write(b'"body"}')

    async with serve(until_close) as server:
        resp = await client.request("POST", server.url, b"{}")
        assert await resp.read() == b'{"whole":"body"}'


async def test_a_large_chunked_stream_arrives_whole_to_a_slow_reader(client: HTTPClient) -> None:
    chunk = bytes(range(256)) * 256  # 64 KiB
    count = 64  # 4 MiB in all, four times the read high-water mark

    async def chunked(server: Server, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n")
        for _ in range(count):
            writer.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            await writer.drain()
        writer.write(b"0\r\n\r\n")
        await writer.drain()

    async with serve(chunked) as server:
        resp = await client.request("GET", server.url)
        got = bytearray()
        async for data in resp.iter_chunks():
            got += data
            if len(got) < 2 * http_client.READ_HIGH_WATER:
                await asyncio.sleep(0.001)  # a reader slower than the socket: the buffer must stay bounded
            assert resp.buffered <= http_client.READ_HIGH_WATER + 512 * 1024  # plus at most one socket read
        assert bytes(got) == chunk * count
        resp.release()


async def test_connection_refused_is_connect_failed(client: HTTPClient) -> None:
    with pytest.raises(ConnectFailed) as info:
        await client.request("POST", f"http://{HOST}:{free_port()}/mcp", b"{}")
    assert str(info.value) == "Connection refused"


async def test_garbage_instead_of_http_is_a_clear_broken_connection(client: HTTPClient) -> None:
    async def garbage(server: Server, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"SSH-2.0-OpenSSH_9.2\r\n\r\n")
        await writer.drain()
        await reader.read()

    async with serve(garbage) as server:
        with pytest.raises(ConnectionBroke) as info:
            await client.request("POST", server.url, b"{}")
        assert "invalid HTTP" in str(info.value)


async def test_a_server_dying_mid_body_breaks_the_read(client: HTTPClient) -> None:
    async def half(server: Server, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b'HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{"partial":')
        await writer.drain()

    async with serve(half) as server:
        resp = await client.request("POST", server.url, b"{}")
        with pytest.raises(ConnectionBroke):
            await resp.read()


async def test_a_timeout_leaves_no_connection_behind(client: HTTPClient) -> None:
    async def silent(server: Server, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        await reader.read()  # never answers

    async with serve(silent) as server:
        with pytest.raises(TimeoutError):
            await client.request("DELETE", server.url, timeout=0.1)
        assert not client._all or all(c.closed for c in client._all)


async def test_https_backends_are_verified_and_spoken_to(client: HTTPClient, tmp_path: Path) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    made = await asyncio.create_subprocess_exec(
        "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
        "-addext", "subjectAltName=DNS:localhost", "-keyout", str(key), "-out", str(cert),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    assert await made.wait() == 0
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(cert, key)
    port = free_port()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await echo_forever(Server(""), reader, writer)
        writer.close()

    srv = await asyncio.start_server(handle, HOST, port, ssl=server_ctx)
    try:
        url = f"https://localhost:{port}/mcp"
        # Not trusted by the system: refused, with nothing sent.
        with pytest.raises(ConnectFailed) as info:
            await client.request("POST", url, b"{}")
        assert "CERTIFICATE_VERIFY_FAILED" in str(info.value)
        trusting = HTTPClient()
        trusting._ssl = ssl.create_default_context(cafile=cert)
        try:
            resp = await trusting.request("POST", url, b'{"over":"tls"}')
            assert await resp.read() == b'{"over":"tls"}'
        finally:
            await trusting.close()
    finally:
        srv.close()


async def test_a_backends_session_ids_and_cookies_are_read_anew_for_each_answer(client: HTTPClient) -> None:
    """Answers' headers are remembered to be read faster next time; session ids and cookies are not."""
    answers = iter([b"s3cret-1", b"s3cret-2"])

    async def per_connection(server: Server, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while await read_request(reader) is not None:
            sid = next(answers)
            writer.write(ok(b"{}", b"Mcp-Session-Id: " + sid + b"\r\nSet-Cookie: c=" + sid + b"\r\n"))
            await writer.drain()

    async with serve(per_connection) as server:
        for n in (1, 2):
            resp = await client.request("POST", server.url, b"{}")
            assert resp.headers["mcp-session-id"] == f"s3cret-{n}"
            assert resp.headers["set-cookie"] == f"c=s3cret-{n}"
            assert resp.headers["content-type"] == "application/json"
            assert await resp.read() == b"{}"
    assert not [key for key in http_client._HEADER_SETS if b"s3cret" in key]
    assert not [pair for pair in http_client._HEADERS if b"s3cret" in pair[1]]


# -- send_now: an answer taken without a task, read whole from the connection's first read when it can be

HANG_UP = b""  # in a script: the server closes the connection here


class Reads:
    """Counts the bytes a connection reads, so a server can write its next piece only once the last is in.

    Each piece is then a read of its own, which is what decides whether an answer is read whole or by
    the parser.
    """

    def __init__(self) -> None:
        self.count = 0
        self._grew = asyncio.Event()

    def watch(self, conn: _Connection) -> None:
        received = conn.data_received

        def data_received(data: bytes) -> None:
            self.count += len(data)
            self._grew.set()
            received(data)

        conn.data_received = data_received  # type: ignore[method-assign]

    async def reach(self, count: int) -> None:
        while self.count < count:
            self._grew.clear()
            await self._grew.wait()


@dataclass
class Script:
    """A backend for `send_now`: each connection's first request (the one that makes it) is answered `ok(b"{}")`,
    the requests after it take `answers` in turn, each written piece by piece."""

    answers: list[list[bytes]]
    reads: Reads = field(default_factory=Reads)
    hung_up: asyncio.Event = field(default_factory=asyncio.Event)  # the client closed a connection

    async def __call__(self, server: Server, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if await read_request(reader) is None:
            return
        writer.write(ok(b"{}"))
        await writer.drain()
        while await read_request(reader) is not None:
            pieces = self.answers.pop(0)
            start, written = self.reads.count, 0  # the client has read all before: it asked again
            for n, piece in enumerate(pieces):
                if piece == HANG_UP:
                    return
                writer.write(piece)
                await writer.drain()
                written += len(piece)
                if n < len(pieces) - 1:
                    await self.reads.reach(start + written)
        self.hung_up.set()


class Progress:
    """An `on_progress` as the router's: notes each call and takes the body the moment the answer is complete."""

    def __init__(self, take: bool = True) -> None:
        self.take = take
        self.seen: list[bool] = []  # `complete`, at each call
        self.body: bytes | None = None
        self.ended = asyncio.get_running_loop().create_future()

    def __call__(self, resp: Response) -> None:
        self.seen.append(resp.complete)
        if resp.complete and self.take and self.body is None:
            self.body = resp.take_body()
        if (resp.complete or resp.failure is not None) and not self.ended.done():
            self.ended.set_result(None)


async def hot_connection(client: HTTPClient, server: Server, script: Script) -> _Connection:
    """A kept-alive connection as the hot path takes one: made by a request, then idle in the pool."""
    assert await (await client.request("POST", server.url, b"{}")).read() == b"{}"
    conn = client.take_idle(server.url)
    assert conn is not None
    script.reads.watch(conn)
    return conn


async def send_now(
    client: HTTPClient, conn: _Connection, server: Server, take: bool = True
) -> tuple[Response, Progress]:
    progress = Progress(take)
    head, _ = client.request_head("POST", server.url, {"Content-Type": "application/json"})
    resp = client.send_now(conn, head, b"{}", progress)
    async with asyncio.timeout(5):
        await progress.ended
    return resp, progress


def json_headers(body: bytes, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The headers `ok(body, ...)` reads as: lower-case names."""
    return {"content-type": "application/json", "content-length": str(len(body)), **(extra or {})}


def split(data: bytes, *at: int) -> list[bytes]:
    cuts = [0, *at, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(cuts)]


async def test_a_whole_answer_is_read_at_once_and_its_connection_kept_for_the_next(client: HTTPClient) -> None:
    first, second, third = b'{"n":1}', b'{"n":"two"}', b'{"n":[3]}'
    answer2 = ok(second, b"X-Answer: 2\r\n")
    script = Script(
        [
            [ok(first, b"X-Answer: 1\r\n")],
            split(answer2, answer2.index(b"Content-Length") + 4),  # the head cut mid-line: the parser reads it
            [ok(third, b"X-Answer: 3\r\n")],
        ]
    )
    async with serve(script) as server:
        conn = await hot_connection(client, server, script)
        resp, progress = await send_now(client, conn, server)
        assert progress.seen == [True]  # one call, the answer complete: read whole
        assert resp.status == 200
        assert resp.keep_alive
        assert resp.headers == json_headers(first, {"x-answer": "1"})
        assert progress.body == first
        # The parser saw nothing of it: it is at a message's start for the next answer, here in pieces.
        assert client.take_idle(server.url) is conn
        resp, progress = await send_now(client, conn, server)
        assert progress.seen == [False, True]  # the head, then the end
        assert (resp.status, resp.headers, progress.body) == (200, json_headers(second, {"x-answer": "2"}), second)
        assert client.take_idle(server.url) is conn
        resp, progress = await send_now(client, conn, server)
        assert progress.seen == [True]
        assert (resp.status, resp.headers, progress.body) == (200, json_headers(third, {"x-answer": "3"}), third)
        assert client.take_idle(server.url) is conn
        assert server.connections == 1


async def test_an_empty_whole_answer_keeps_its_connection(client: HTTPClient) -> None:
    """A notification's 202, Content-Length: 0: the most frequent whole answer without a body."""
    accepted = b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n"
    script = Script([[accepted], [accepted]])
    async with serve(script) as server:
        conn = await hot_connection(client, server, script)
        for _ in range(2):
            resp, progress = await send_now(client, conn, server)
            assert progress.seen == [True]
            assert (resp.status, resp.headers, progress.body) == (202, {"content-length": "0"}, b"")
            assert resp.keep_alive
            assert client.take_idle(server.url) is conn
        assert server.connections == 1


PIECES = {
    "head, then body": lambda answer: split(answer, answer.index(b"\r\n\r\n") + 4),
    "head cut mid-line": lambda answer: split(answer, answer.index(b"Content-Type") + 6),
    "head cut in its blank line": lambda answer: split(answer, answer.index(b"\r\n\r\n") + 2),
    "body cut": lambda answer: split(answer, len(answer) - 3),
    "byte by byte": lambda answer: split(answer, *range(1, len(answer))),
}


@pytest.mark.parametrize("cut", PIECES)
async def test_an_answer_in_pieces_is_read_right_by_the_parser(client: HTTPClient, cut: str) -> None:
    body = b'{"jsonrpc":"2.0","id":1,"result":{}}'
    answer = ok(body, b"X-Answer: pieces\r\n")
    script = Script([PIECES[cut](answer), [ok(b"[]")]])
    async with serve(script) as server:
        conn = await hot_connection(client, server, script)
        resp, progress = await send_now(client, conn, server)
        assert progress.seen[-1] and progress.seen.count(True) == 1
        assert (resp.status, resp.headers, progress.body) == (200, json_headers(body, {"x-answer": "pieces"}), body)
        assert client.take_idle(server.url) is conn
        resp, progress = await send_now(client, conn, server)
        assert (resp.status, resp.headers, progress.body) == (200, json_headers(b"[]"), b"[]")


EXTRA = {
    "a second answer": ok(b'{"phantom":2}', b"X-Answer: phantom\r\n"),
    "a second answer's first bytes": b"HTTP/1.1 200 OK\r\nX-Answer: phan",
    "bytes that are not HTTP": b"phantom",
}


@pytest.mark.parametrize("extra", EXTRA)
@pytest.mark.parametrize("together", [True, False], ids=["in the same read", "in a later read"])
@pytest.mark.parametrize("take", [True, False], ids=["taken at once", "taken later"])
async def test_bytes_past_the_answer_are_never_read_as_it_and_close_the_connection(
    client: HTTPClient, extra: str, together: bool, take: bool
) -> None:
    """Two answers to one request, or more bytes than its Content-Length: the server is broken.

    The answer is what its head and length say; whatever follows is not read into it, and the
    connection is closed (as an idle connection that speaks is), so nothing of it reaches the next answer.
    """
    body = b'{"first":1}'
    whole = ok(body, b"X-Answer: 1\r\n")
    script = Script([[whole + EXTRA[extra]] if together else [whole, EXTRA[extra]], [ok(b'{"next":2}')]])
    async with serve(script) as server:
        conn = await hot_connection(client, server, script)
        start = script.reads.count
        resp, progress = await send_now(client, conn, server, take)
        await script.reads.reach(start + len(whole) + len(EXTRA[extra]))
        got = progress.body if take else resp.take_body()
        assert progress.seen == ([False, True] if together else [True])  # read by the parser, or whole
        assert (resp.status, resp.headers, got) == (200, json_headers(body, {"x-answer": "1"}), body)
        assert client.take_idle(server.url) is None
        async with asyncio.timeout(5):
            await script.hung_up.wait()
        conn = await hot_connection(client, server, script)
        resp, progress = await send_now(client, conn, server)
        assert (resp.status, resp.headers, progress.body) == (200, json_headers(b'{"next":2}'), b'{"next":2}')
        assert server.connections == 2


CHUNKED = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"7\r\nevent: \r\n12\r\nmessage\ndata: {}\n\n\r\n0\r\n\r\n"
)
TO_EOF = b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n{"to":"eof"}'
DUPLICATED = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nX-Dup: a\r\nContent-Length: 2\r\nX-Dup: b\r\n\r\n{}"
NOT_PLAIN = {
    "chunked": (
        [CHUNKED],
        {"content-type": "text/event-stream", "transfer-encoding": "chunked"},
        b"event: message\ndata: {}\n\n",
        True,
    ),
    "to the end": ([TO_EOF, HANG_UP], {"content-type": "application/json"}, b'{"to":"eof"}', False),
    "a name given twice": (
        [DUPLICATED],
        {"content-type": "application/json", "x-dup": "b", "content-length": "2"},  # the last, as ever
        b"{}",
        True,
    ),
}


@pytest.mark.parametrize("kind", NOT_PLAIN)
async def test_answers_not_plainly_sized_are_read_by_the_parser(client: HTTPClient, kind: str) -> None:
    pieces, headers, body, kept = NOT_PLAIN[kind]
    script = Script([pieces, [ok(b"[]")]])
    async with serve(script) as server:
        conn = await hot_connection(client, server, script)
        resp, progress = await send_now(client, conn, server)
        assert progress.seen == [False, True]  # the head, then the end: the parser's
        assert (resp.status, resp.headers, progress.body) == (200, headers, body)
        assert resp.keep_alive is kept
        if kept:
            assert client.take_idle(server.url) is conn
            resp, progress = await send_now(client, conn, server)
            assert (resp.status, resp.headers, progress.body) == (200, json_headers(b"[]"), b"[]")
        else:
            assert client.take_idle(server.url) is None


async def test_a_whole_answer_that_says_close_closes_its_connection(client: HTTPClient) -> None:
    script = Script([[ok(b'{"bye":1}', b"Connection: close\r\n")], [ok(b"[]")]])
    async with serve(script) as server:
        conn = await hot_connection(client, server, script)
        resp, progress = await send_now(client, conn, server)
        assert progress.seen == [True]
        assert (resp.status, progress.body) == (200, b'{"bye":1}')
        assert resp.headers["connection"] == "close"
        assert not resp.keep_alive
        assert client.take_idle(server.url) is None
        async with asyncio.timeout(5):
            await script.hung_up.wait()  # the server kept it open: the client closed it
        conn = await hot_connection(client, server, script)
        resp, progress = await send_now(client, conn, server)
        assert progress.body == b"[]"
        assert server.connections == 2


async def test_a_backends_session_ids_and_cookies_are_never_kept_in_the_whole_heads(
    client: HTTPClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Heads read whole are remembered by their bytes; none that carries a session id or a cookie, whole or not."""
    monkeypatch.setattr(http_client, "_WHOLE_HEADS", {})
    plain = ok(b"{}", b"X-Plain: yes\r\n")
    secret = [
        ok(b"{}", b"Mcp-Session-Id: s3cret-1\r\n"),
        ok(b"{}", b"Mcp-Session-Id: s3cret-2\r\n"),
        ok(b"{}", b"Set-Cookie: c=s3cret-3\r\n"),
        ok(b"{}", b"Set-Cookie: a=s3cret-4\r\nSet-Cookie: b=s3cret-5\r\n"),
        CHUNKED.replace(b"\r\n\r\n", b"\r\nMcp-Session-Id: s3cret-6\r\n\r\n", 1),
    ]
    broken = b"HTTP/1.1 200 OK\r\nSet-Cookie: c=s3cret-7\r\nContent-Length: two\r\n\r\n{}"
    script = Script([[answer] for answer in [plain, *secret, broken]])
    async with serve(script) as server:
        conn = await hot_connection(client, server, script)
        resp, progress = await send_now(client, conn, server)
        assert (progress.body, resp.headers["x-plain"]) == (b"{}", "yes")
        assert plain[: plain.index(b"\r\n\r\n") + 4] in http_client._WHOLE_HEADS  # a plain head is kept
        seen = []
        for _ in secret:
            assert client.take_idle(server.url) is conn
            resp, progress = await send_now(client, conn, server)
            seen.append(resp.headers.get("mcp-session-id") or resp.headers["set-cookie"])
        assert seen == ["s3cret-1", "s3cret-2", "c=s3cret-3", "b=s3cret-5", "s3cret-6"]
        assert client.take_idle(server.url) is conn
        resp, progress = await send_now(client, conn, server)  # a head httptools cannot read: failed, not kept
        assert isinstance(resp.failure, ConnectionBroke)
    assert not [head for head in http_client._WHOLE_HEADS if b"s3cret" in head]


@pytest.mark.parametrize(
    "garbage",
    [
        b"SSH-2.0-OpenSSH_9.2\r\n\r\n",  # a head's end, but no HTTP
        b"HTTP/1.1 200 OK\r\nContent-Length: two\r\n\r\n{}",  # whole-looking, with a length that is not one
        b"<html>not even a line's end",
    ],
)
async def test_invalid_http_in_the_first_read_fails_the_answer(client: HTTPClient, garbage: bytes) -> None:
    script = Script([[garbage]])
    async with serve(script) as server:
        conn = await hot_connection(client, server, script)
        resp, progress = await send_now(client, conn, server)
        assert progress.seen == [False]
        assert isinstance(resp.failure, ConnectionBroke)
        assert str(resp.failure).startswith("backend sent invalid HTTP")
        assert (resp.status, resp.complete) == (0, False)
        resp.release()
        assert client.take_idle(server.url) is None
        async with asyncio.timeout(5):
            await script.hung_up.wait()
