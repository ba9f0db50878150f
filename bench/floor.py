"""The floor: how much any Python hop costs on this machine, with no router logic at all.

    python bench/floor.py            # measures direct vs a bare passthrough, modern era, p50

The passthrough is raw asyncio (uvloop) + httptools: it parses the client's request only to find
its end, rewrites Host, writes it to one persistent upstream connection and copies the upstream
answer back byte for byte. No JSON, no sessions, no events. Whatever it costs per call is the cost
of an extra Python process in the path, and the router cannot be cheaper than that.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
from pathlib import Path

import httptools

ROOT = Path(__file__).resolve().parents[1]
HOST = "127.0.0.1"


class _Message:
    def __init__(self) -> None:
        self.done = False
        self.url = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.body: list[bytes] = []

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        self.done = True


async def _passthrough(upstream_port: int, port: int) -> None:
    host_header = f"{HOST}:{upstream_port}".encode()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(HOST, upstream_port)
        try:
            while True:
                req = _Message()
                parser = httptools.HttpRequestParser(req)
                while not req.done:
                    data = await reader.read(65536)
                    if not data:
                        return
                    parser.feed_data(data)
                head = b"".join(
                    name + b": " + (host_header if name.lower() == b"host" else value) + b"\r\n"
                    for name, value in req.headers
                )
                up_writer.write(b"POST " + req.url + b" HTTP/1.1\r\n" + head + b"\r\n" + b"".join(req.body))
                resp = _Message()
                rparser = httptools.HttpResponseParser(resp)
                chunks = []
                while not resp.done:
                    data = await up_reader.read(65536)
                    if not data:
                        return
                    chunks.append(data)
                    rparser.feed_data(data)
                writer.write(b"".join(chunks))
        finally:
            writer.close()
            up_writer.close()

    server = await asyncio.start_server(handle, HOST, port)
    async with server:
        await server.serve_forever()


async def _measure() -> None:
    sys.path.insert(0, str(ROOT))
    from tests.support.clients import connect
    from tests.support.procs import free_port, port_accepts, run_fixture, wait_for

    async def p50(url: str, n: int = 1500) -> float:
        async with connect(url, "streamable-modern") as client:
            for _ in range(100):
                await client.call_tool("echo", {"text": "x"})
            times = []
            for _ in range(n):
                t = time.perf_counter()
                await client.call_tool("echo", {"text": "x"})
                times.append(time.perf_counter() - t)
            return statistics.median(times) * 1000

    async with run_fixture("streamable") as fx:
        port = free_port()
        proc = await asyncio.create_subprocess_exec(sys.executable, __file__, "--serve", str(fx.port), str(port))
        try:
            await wait_for(lambda: port_accepts(port), 10, message="the passthrough")
            via = f"http://{HOST}:{port}/mcp"
            d1, p1, d2, p2 = await p50(fx.url), await p50(via), await p50(fx.url), await p50(via)
        finally:
            proc.terminate()
            await proc.wait()
    direct, passthrough = (d1 + d2) / 2, (p1 + p2) / 2
    print(
        f"modern-era tools/call p50: direct {direct:.3f} ms, bare Python passthrough {passthrough:.3f} ms "
        f"({(passthrough / direct - 1) * 100:+.1f}%)"
    )


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == "--serve":
        import uvloop

        uvloop.run(_passthrough(int(sys.argv[2]), int(sys.argv[3])))
    else:
        asyncio.run(_measure())


if __name__ == "__main__":
    main()
