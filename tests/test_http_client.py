"""The router's own HTTP/1.1 client for backends, against real loopback servers that misbehave on purpose.

The transport matrix already runs every SDK backend through this client; here are the cases an SDK
server does not produce on demand: a server that closes kept-alive connections, bodies that end at
EOF, a stream far larger than the read buffer, garbage instead of HTTP, a server that dies mid-answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from app.proxy import http_client
from app.proxy.http_client import ConnectFailed, ConnectionBroke, HTTPClient
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
