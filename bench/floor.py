"""The floor: what ANY extra hop costs per call on this machine, next to what the router costs.

    /work/venv/bin/python bench/floor.py                # 1500 interleaved calls per variant and era
    /work/venv/bin/python bench/floor.py --calls 3000

One SDK fixture backend (tests/servers/fixture.py, streamable HTTP) serves every variant:
  direct        SDK client -> backend
  passthrough   SDK client -> bare Python hop (this file with --serve) -> backend
  nginx         SDK client -> nginx (one worker, upstream keepalive, no buffering) -> backend
  router        SDK client -> `python -m app --no-ui --quiet` -> backend

The passthrough is raw asyncio (uvloop) + httptools: it parses the client's request only to find
its end, rewrites Host, writes it to its own persistent upstream connection and copies the upstream
answer back byte for byte as it arrives. No JSON, no sessions, no events. It is the cheapest
Python process that can sit in the path, so the router cannot be cheaper than it. nginx is the
native reference: what a hop costs when the hop itself is (nearly) free, i.e. mostly the extra
loopback round trip and the kernel work. If nginx is not installed its column is skipped
(`apt-get install nginx-light`).

Per era (2026-07-28 "modern", then 2025-11-25 "handshake") one SDK client per variant is open at
once; after 100 warm-up calls each, every round calls `tools/call echo` once on each variant in a
rotating order, so every variant sees the same machine state. The result is a markdown table per
era on stdout: p50, p99, the p50 overhead against direct in % and in µs, and each hop's cost over
the passthrough twice: as the difference of the p50s, and as the median of the per-round
differences (a round's calls met the same machine, so this one moves less with the host's speed:
with 1500 calls the p50s' difference wanders by about ±50 µs between runs here). Progress goes to
stderr.

Every process runs in its own session on 127.0.0.1 and is stopped by pid (SIGTERM, then SIGKILL
after a grace period) when the run ends: normally, on an error, on Ctrl-C or on SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import httptools

if TYPE_CHECKING:
    from mcp.client import Client

    from tests.support.clients import ClientTransport

SCRIPT = Path(__file__).resolve()
ROOT = SCRIPT.parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # `python bench/floor.py` puts bench/ first, not the repo

from tests.support.forks import without_forks  # noqa: E402
from tests.support.procs import free_port, port_accepts, stop_process, wait_for  # noqa: E402

HOST = "127.0.0.1"
WARMUP = 100
PASSTHROUGH = "python passthrough"
ERAS: tuple[tuple[ClientTransport, str], ...] = (
    ("streamable-modern", "modern era (2026-07-28)"),
    ("streamable-handshake", "handshake era (2025-11-25)"),
)
NGINX_CONF = """\
daemon off;
worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    upstream up {{ server {host}:{upstream_port}; keepalive 8; }}
    server {{
        listen {host}:{port};
        location / {{
            proxy_pass http://up;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $http_host;
            proxy_buffering off;
            proxy_read_timeout 1h;
        }}
    }}
}}
"""


def log(message: str) -> None:
    print(f"floor: {message}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------------
# The bare Python passthrough (runs in its own process: `floor.py --serve UPSTREAM_PORT PORT`)


class _Request:
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


class _Response:
    def __init__(self) -> None:
        self.done = False

    def on_message_complete(self) -> None:
        self.done = True


async def _passthrough(upstream_port: int, port: int) -> None:
    """Relay each client connection over its own upstream connection, one request at a time.

    Requests are rebuilt from the parsed head (Host rewritten) and the body, which is right for the
    Content-Length bodies the SDK client sends; responses (JSON, or a long-lived SSE stream) are
    copied through unchanged as they arrive.
    """
    host_header = f"{HOST}:{upstream_port}".encode()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(HOST, upstream_port)
        except OSError:
            writer.close()
            return
        try:
            while True:
                req = _Request()
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
                method: bytes = parser.get_method()
                up_writer.write(method + b" " + req.url + b" HTTP/1.1\r\n" + head + b"\r\n" + b"".join(req.body))
                resp = _Response()
                rparser = httptools.HttpResponseParser(resp)
                while not resp.done:
                    data = await up_reader.read(65536)
                    if not data:
                        return
                    rparser.feed_data(data)
                    writer.write(data)
        except (OSError, httptools.HttpParserError):
            pass  # one side went away or spoke garbage: drop this connection pair
        finally:
            writer.close()
            up_writer.close()

    server = await asyncio.start_server(handle, HOST, port)
    async with server:
        await server.serve_forever()


# --------------------------------------------------------------------------------------------
# The hops under test, each a subprocess in its own session, stopped by pid


async def _wait_listening(proc: asyncio.subprocess.Process, port: int, what: str, timeout: float = 20.0) -> None:
    """Wait until `port` accepts; an early exit of `proc` ends the wait at once."""

    async def ready() -> bool:
        return proc.returncode is not None or await port_accepts(port)

    await wait_for(ready, timeout, message=f"{what} on port {port}")
    if proc.returncode is not None:
        raise RuntimeError(f"{what} exited with code {proc.returncode} before listening")


@contextlib.asynccontextmanager
async def _process(
    what: str, argv: Sequence[str], port: int, stdout: IO[Any] | int | None = None, stderr: IO[Any] | None = None
) -> AsyncIterator[asyncio.subprocess.Process]:
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=stdout,
        stderr=stderr,
        cwd=ROOT,
        start_new_session=True,  # a terminal ^C reaches only us; we stop it by pid
    )
    try:
        await _wait_listening(proc, port, what)
        yield proc
    finally:
        await stop_process(proc, grace=3.0)


def _tail(path: Path, lines: int = 15) -> str:
    try:
        text = path.read_text(errors="replace").strip()
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def _find_nginx() -> str | None:
    # Debian puts nginx in /usr/sbin, which a non-root PATH may lack.
    return shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/usr/local/sbin")


@dataclass
class Variant:
    name: str
    url: str
    times: list[float] = field(default_factory=list)


async def _start_hops(
    stack: contextlib.AsyncExitStack, backend_port: int, backend_url: str, tmp: Path
) -> list[Variant]:
    variants = [Variant("direct", backend_url)]

    port = free_port()
    log(f"starting the bare Python passthrough on {HOST}:{port}")
    argv = [sys.executable, str(SCRIPT), "--serve", str(backend_port), str(port)]
    await stack.enter_async_context(_process("the passthrough", argv, port))
    variants.append(Variant(PASSTHROUGH, f"http://{HOST}:{port}/mcp"))

    nginx = _find_nginx()
    if nginx is None:
        log("nginx is not installed: skipping the nginx column (`apt-get install nginx-light` gives it)")
    else:
        port = free_port()
        conf = tmp / "nginx.conf"
        conf.write_text(NGINX_CONF.format(tmp=tmp, host=HOST, upstream_port=backend_port, port=port))
        log(f"starting nginx ({nginx}) on {HOST}:{port}")
        errors = tmp / "nginx.stderr"
        try:
            with errors.open("w") as err:
                await stack.enter_async_context(
                    _process("nginx", [nginx, "-p", str(tmp), "-c", str(conf)], port, stderr=err)
                )
        except (RuntimeError, TimeoutError) as exc:
            detail = "\n".join(filter(None, (_tail(errors), _tail(tmp / "error.log"))))
            raise RuntimeError(f"{exc}\n{detail}") from None
        variants.append(Variant("nginx", f"http://{HOST}:{port}/mcp"))

    port = free_port()
    log(f"starting the router (--quiet) on {HOST}:{port}")
    argv = [sys.executable, "-m", "app", "--no-ui", "--quiet", "--host", HOST, "--port", str(port)]
    argv += ["-b", f"fx={backend_url}", "--no-persist"]  # the user's saved backends stay out of the measurement
    errors = tmp / "router.stderr"
    try:
        with errors.open("w") as err:
            await stack.enter_async_context(
                _process("the router", argv, port, stdout=asyncio.subprocess.DEVNULL, stderr=err)
            )
    except (RuntimeError, TimeoutError) as exc:
        log(f"the router did not start, skipping its column: {exc}\n{_tail(errors)}")
    else:
        variants.append(Variant("router", f"http://{HOST}:{port}/mcp/fx"))
    return variants


# --------------------------------------------------------------------------------------------
# Measuring


async def _echo(client: Client) -> None:
    result = await client.call_tool("echo", {"text": "x"})
    if result.is_error:
        raise RuntimeError(f"tools/call echo failed: {result}")


async def _measure_era(variants: list[Variant], mode: ClientTransport, calls: int) -> None:
    from tests.support.clients import connect

    for variant in variants:
        variant.times = []
    async with contextlib.AsyncExitStack() as stack:
        clients = [await stack.enter_async_context(connect(v.url, mode)) for v in variants]
        pairs = list(zip(variants, clients, strict=True))
        for i in range(WARMUP):
            for _, client in pairs[i % len(pairs) :] + pairs[: i % len(pairs)]:
                await _echo(client)
        for i in range(calls):
            for variant, client in pairs[i % len(pairs) :] + pairs[: i % len(pairs)]:
                start = time.perf_counter()
                await _echo(client)
                variant.times.append(time.perf_counter() - start)


def _paired(a: Variant, b: Variant) -> float:
    """The median over rounds of a's call minus b's: each round calls every variant once, back to
    back, so a pair met the same machine. Steadier than the difference of the two medians, which
    moves with the host's speed between the calls that make up each."""
    return statistics.median(x - y for x, y in zip(a.times, b.times, strict=True))


def _table(title: str, variants: list[Variant], calls: int) -> str:
    direct = statistics.median(variants[0].times)
    floor = next((v for v in variants if v.name == PASSTHROUGH), None)
    rows = [
        f"### {title}: tools/call echo, {calls} interleaved calls per variant",
        "",
        "| variant | p50 ms | p99 ms | overhead vs direct (p50) | added µs vs direct (p50) | added µs vs the passthrough (p50 / paired) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for v in variants:
        p50 = statistics.median(v.times)
        p99 = statistics.quantiles(v.times, n=100)[98]
        if v is variants[0]:
            overhead, added = "-", "-"
        else:
            overhead, added = f"{(p50 / direct - 1) * 100:+.1f}%", f"{(p50 - direct) * 1e6:+.0f}"
        over_floor = "-"
        if floor is not None and v is not floor and v is not variants[0]:
            over_floor = f"{(p50 - statistics.median(floor.times)) * 1e6:+.0f} / {_paired(v, floor) * 1e6:+.0f}"
        rows.append(f"| {v.name} | {p50 * 1000:.3f} | {p99 * 1000:.3f} | {overhead} | {added} | {over_floor} |")
    return "\n".join(rows)


def _loadavg() -> str:
    return " / ".join(f"{x:.2f}" for x in os.getloadavg())


async def _measure(calls: int) -> None:
    from tests.support.procs import run_fixture

    print(f"## floor.py: {os.cpu_count()} cores, load average at start {_loadavg()}\n", flush=True)
    with tempfile.TemporaryDirectory(prefix="floor-") as tmpdir:
        async with run_fixture("streamable") as fx, contextlib.AsyncExitStack() as hops:
            variants = await _start_hops(hops, fx.port, fx.url, Path(tmpdir))
            for mode, title in ERAS:
                log(
                    f"{title}: {WARMUP} warm-up + {calls} timed calls per variant ({', '.join(v.name for v in variants)})"
                )
                await _measure_era(variants, mode, calls)
                print(_table(title, variants, calls) + "\n", flush=True)
    # The calls are sequential, so this run alone keeps about one core busy.
    print(f"load average at end {_loadavg()} (this run alone: about 1)", flush=True)


def main(argv: list[str] | None = None) -> int:
    without_forks()
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--calls", type=int, default=1500, help="timed calls per variant and era (default 1500)")
    p.add_argument("--serve", nargs=2, type=int, metavar=("UPSTREAM_PORT", "PORT"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.serve:
        import uvloop

        uvloop.run(_passthrough(*args.serve))
        return 0
    if args.calls < 2:
        p.error("--calls must be >= 2")

    async def guarded() -> None:
        task = asyncio.current_task()
        assert task is not None
        # SIGTERM behaves like ^C: the task is cancelled and every `finally` stops its process by pid.
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
        await _measure(args.calls)

    try:
        asyncio.run(guarded())
    except (KeyboardInterrupt, asyncio.CancelledError):
        log("interrupted: all started processes were stopped")
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
