"""A stdio backend served over HTTP: what the router adds per call over a direct stdio client.

    .venv/bin/python bench/stdio.py                  # 1500 interleaved calls per variant and era
    .venv/bin/python bench/stdio.py --calls 3000
    .venv/bin/python bench/stdio.py --mcp-proxy /tmp/mcp-proxy/bin/mcp-proxy
    .venv/bin/python bench/stdio.py --baseline /tmp/main     # + the router from another tree, interleaved

Every variant runs the same stdio server, tests/servers/fixture.py --transport stdio:
  direct stdio   SDK stdio client -> a fixture process it spawns itself
  python bridge  SDK client over Streamable HTTP -> a bare Python HTTP-to-stdio hop (this file with
                 --serve) -> the fixture process it spawns. asyncio (uvloop) + httptools: a POST's
                 body goes to the process's stdin as one line, and for a request the next answer
                 line from its stdout goes back as the JSON response; no sessions, ids, events or
                 checks. No Python process can serve a stdio server over HTTP for less: this is
                 the floor for the router.
  router         SDK client over Streamable HTTP -> `python -m app --no-ui --quiet -b fx=COMMAND`
                 -> the fixture process the router spawns (handshake era: one per session;
                 modern era: the backend's shared one)
  mcp-proxy      SDK client over Streamable HTTP -> `mcp-proxy COMMAND` (sparfenyuk's, PyPI) ->
                 the fixture process it spawns. Optional: the column is skipped with a note when
                 no mcp-proxy is found (--mcp-proxy PATH, else `mcp-proxy` on PATH), or when it
                 cannot serve an era. Install it into a throwaway venv, never into the project's:
                 python3 -m venv /tmp/mcp-proxy && /tmp/mcp-proxy/bin/pip install 'mcp-proxy==0.13.*'

Per era (2026-07-28 "modern", then 2025-11-25 "handshake"; the direct client speaks the same era
over stdio) one SDK client per variant is open at once; after 100 warm-up calls each, every round
calls `tools/call echo` once on each variant in a rotating order, so every variant sees the same
machine state. The result is a markdown table per era on stdout, as bench/floor.py prints it: p50,
p99, and the p50 overhead against direct stdio in % and in µs; and the hop's own CPU time per call
(user + system of its process over the timed calls, /proc/PID/stat; the stdio server it runs is
not counted), which load from other programs moves far less than latency. Progress goes to
stderr, with the router's pid (for `py-spy record --pid`).

Every process runs in its own session on 127.0.0.1 and is stopped by pid (SIGTERM, then SIGKILL
after a grace period) when the run ends: normally, on an error, on Ctrl-C or on SIGTERM. A stdio
client stops the fixture process it spawned when it closes.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import httptools
import orjson

SCRIPT = Path(__file__).resolve()
ROOT = SCRIPT.parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # `python bench/stdio.py` puts bench/ first, not the repo

from bench.floor import HOST, WARMUP, _echo, _loadavg, _process, _Request, _tail  # noqa: E402
from tests.support.forks import without_forks  # noqa: E402
from tests.support.procs import free_port, stdio_command, stop_process  # noqa: E402

if TYPE_CHECKING:
    from mcp.client import Client

ERAS: tuple[tuple[str, str], ...] = (
    ("modern", "modern era (2026-07-28)"),
    ("handshake", "handshake era (2025-11-25)"),
)


def log(message: str) -> None:
    print(f"stdio: {message}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------------
# The bare Python bridge (runs in its own process: `stdio.py --serve PORT COMMAND`)

_ACCEPTED = b"HTTP/1.1 202 Accepted\r\ncontent-length: 0\r\n\r\n"
_NOT_ALLOWED = b"HTTP/1.1 405 Method Not Allowed\r\nallow: POST\r\ncontent-length: 0\r\n\r\n"


async def _bridge(port: int, command: str) -> None:
    """Serve a stdio process over HTTP, one exchange at a time (the benchmark's client is sequential).

    A POST body is written to the process as one line. A request waits for the next line that is
    an answer (no "method": server notifications and requests are dropped) and gets it back as
    `application/json`; anything else gets 202. An `initialize` starts a fresh process first, as
    the router gives each handshake-era session its own. GET and DELETE get 405, which the SDK
    client takes as "no stream" and "no session to end".
    """
    argv = shlex.split(command)
    procs: list[asyncio.subprocess.Process] = []
    lock = asyncio.Lock()

    async def fresh() -> asyncio.subprocess.Process:
        for old in procs:
            await stop_process(old)
        procs[:] = [
            await asyncio.create_subprocess_exec(
                *argv, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, limit=1 << 24, cwd=ROOT
            )
        ]
        return procs[0]

    async def exchange(body: bytes) -> bytes:
        async with lock:
            msg = orjson.loads(body)
            is_request = isinstance(msg, dict) and "id" in msg and "method" in msg
            proc = await fresh() if not procs or (is_request and msg["method"] == "initialize") else procs[0]
            assert proc.stdin is not None and proc.stdout is not None
            proc.stdin.write(body + b"\n")
            if not is_request:
                return _ACCEPTED
            while True:
                line = await proc.stdout.readuntil(b"\n")
                if b'"method"' not in line:
                    break
            head = f"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {len(line) - 1}\r\n\r\n"
            return head.encode() + line[:-1]

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                req = _Request()
                parser = httptools.HttpRequestParser(req)
                while not req.done:
                    data = await reader.read(65536)
                    if not data:
                        return
                    parser.feed_data(data)
                if parser.get_method() != b"POST":
                    writer.write(_NOT_ALLOWED)
                    continue
                writer.write(await exchange(b"".join(req.body)))
        except (OSError, httptools.HttpParserError, asyncio.IncompleteReadError):
            pass  # the client went away, spoke garbage, or the process ended: drop the connection
        finally:
            writer.close()

    server = await asyncio.start_server(handle, HOST, port)
    try:
        async with server:
            await server.serve_forever()
    finally:
        for proc in procs:
            await stop_process(proc)


@dataclass
class Variant:
    name: str
    # era -> an open SDK client for it
    connect: Callable[[str], contextlib.AbstractAsyncContextManager[Client]]
    pid: int | None = None  # the hop's process, whose CPU time is counted (None: no hop)
    times: list[float] = field(default_factory=list)
    cpu: float | None = None  # the hop's CPU seconds over the timed calls


def _direct(command: str) -> Callable[[str], contextlib.AbstractAsyncContextManager[Client]]:
    def connect(era: str) -> contextlib.AbstractAsyncContextManager[Client]:
        from tests.support.clients import MODERN_VERSION, connect

        return connect(command, "stdio", protocol_version=MODERN_VERSION if era == "modern" else None)

    return connect


def _http(url: str) -> Callable[[str], contextlib.AbstractAsyncContextManager[Client]]:
    def connect(era: str) -> contextlib.AbstractAsyncContextManager[Client]:
        from tests.support.clients import connect

        return connect(url, "streamable-modern" if era == "modern" else "streamable-handshake")

    return connect


def _find_mcp_proxy(given: str | None) -> str | None:
    if given:
        return given if os.access(given, os.X_OK) else None
    return shutil.which("mcp-proxy")


def _version(executable: str) -> str:
    try:
        out = subprocess.run([executable, "--version"], capture_output=True, text=True, timeout=20, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    return (out.stdout or out.stderr).strip().splitlines()[-1] if (out.stdout or out.stderr).strip() else "?"


@contextlib.asynccontextmanager
async def _process_group(what: str, argv: list[str], port: int, stderr_path: Path) -> AsyncIterator[int]:
    """A hop in its own session; on the way out its whole group goes (its stdio children with it)."""
    pgid: int | None = None
    try:
        with stderr_path.open("w") as err:
            async with _process(what, argv, port, stdout=asyncio.subprocess.DEVNULL, stderr=err) as proc:
                pgid = proc.pid  # start_new_session: the group is the one this pid leads
                yield proc.pid
    finally:
        if pgid is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pgid, signal.SIGKILL)  # a child left behind by a hop that did not stop it


async def _start_variants(
    stack: contextlib.AsyncExitStack, tmp: Path, mcp_proxy: str | None, baseline: Path | None
) -> list[Variant]:
    command = stdio_command(name="stdio-bench")
    variants = [Variant("direct stdio", _direct(command))]

    port = free_port()
    log(f"starting the bare Python bridge on {HOST}:{port}")
    argv = [sys.executable, str(SCRIPT), "--serve", str(port), command]
    pid = await stack.enter_async_context(_process_group("the bridge", argv, port, tmp / "bridge.stderr"))
    log(f"the bridge is pid {pid}")
    variants.append(Variant("python bridge", _http(f"http://{HOST}:{port}/mcp"), pid))

    routers: list[tuple[str, Path | None]] = [("router", None)]
    if baseline is not None:
        routers.insert(0, (f"router @{baseline.name}", baseline))
    for name, tree in routers:
        port = free_port()
        log(f"starting {name} (--quiet) on {HOST}:{port}")
        if tree is None:
            argv = [sys.executable, "-m", "app"]
        else:  # the same interpreter and dependencies, the router's code from the other tree
            boot = f"import runpy, sys; sys.path.insert(0, {str(tree)!r}); runpy.run_module('app', run_name='__main__')"
            argv = [sys.executable, "-c", boot]
        argv += ["--no-ui", "--quiet", "--host", HOST, "--port", str(port)]
        argv += ["-b", f"fx={command}", "--no-persist"]  # the user's saved backends stay out of the measurement
        errors = tmp / f"router-{len(variants)}.stderr"
        try:
            pid = await stack.enter_async_context(_process_group(name, argv, port, errors))
        except (RuntimeError, TimeoutError) as exc:
            log(f"{name} did not start, skipping its column: {exc}\n{_tail(errors)}")
        else:
            log(f"{name} is pid {pid}")
            variants.append(Variant(name, _http(f"http://{HOST}:{port}/mcp/fx"), pid))

    if mcp_proxy is None:
        log("no mcp-proxy found: skipping its column (--mcp-proxy PATH; see the docstring to install it)")
        return variants
    port = free_port()
    log(f"starting {_version(mcp_proxy)} ({mcp_proxy}) on {HOST}:{port}")
    argv = [mcp_proxy, "--host", HOST, "--port", str(port), "--log-level", "WARNING", "--", *shlex.split(command)]
    errors = tmp / "mcp-proxy.stderr"
    try:
        pid = await stack.enter_async_context(_process_group("mcp-proxy", argv, port, errors))
    except (RuntimeError, TimeoutError) as exc:
        log(f"mcp-proxy did not start, skipping its column: {exc}\n{_tail(errors)}")
    else:
        variants.append(Variant("mcp-proxy", _http(f"http://{HOST}:{port}/mcp"), pid))
    return variants


def _short(exc: BaseException) -> str:
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return f"{type(exc).__name__}: {str(exc)[:120]}"


async def _measure_era(variants: list[Variant], era: str, calls: int) -> list[Variant]:
    """Time `calls` interleaved calls per variant; returns the variants that could serve the era."""
    for variant in variants:
        variant.times = []
    async with contextlib.AsyncExitStack() as stack:
        pairs: list[tuple[Variant, Client]] = []
        for variant in variants:
            try:
                client = await stack.enter_async_context(variant.connect(era))
                await _echo(client)
            except Exception as exc:
                if variant is variants[0]:
                    raise
                log(f"{variant.name} cannot serve the {era} era, skipping its column: {_short(exc)}")
                continue
            pairs.append((variant, client))
        for i in range(WARMUP):
            for _, client in pairs[i % len(pairs) :] + pairs[: i % len(pairs)]:
                await _echo(client)
        cpu_before = {v.name: _cpu_seconds(v.pid) for v, _ in pairs}
        for i in range(calls):
            for variant, client in pairs[i % len(pairs) :] + pairs[: i % len(pairs)]:
                start = time.perf_counter()
                await _echo(client)
                variant.times.append(time.perf_counter() - start)
        for variant, _ in pairs:
            before, after = cpu_before[variant.name], _cpu_seconds(variant.pid)
            variant.cpu = after - before if before is not None and after is not None else None
    return [v for v, _ in pairs]


def _cpu_seconds(pid: int | None) -> float | None:
    """User + system CPU time of `pid` (not its children: the stdio server is not the hop)."""
    if pid is None:
        return None
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _table(title: str, variants: list[Variant], calls: int) -> str:
    direct = statistics.median(variants[0].times)
    rows = [
        f"### {title}: tools/call echo, {calls} interleaved calls per variant",
        "",
        "| variant | p50 ms | p99 ms | overhead vs direct stdio (p50) | added µs vs direct stdio (p50) | hop CPU µs/call |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for v in variants:
        p50 = statistics.median(v.times)
        p99 = statistics.quantiles(v.times, n=100)[98]
        if v is variants[0]:
            overhead, added = "-", "-"
        else:
            overhead, added = f"{(p50 / direct - 1) * 100:+.1f}%", f"{(p50 - direct) * 1e6:+.0f}"
        cpu = "-" if v.cpu is None else f"{v.cpu / calls * 1e6:.0f}"
        rows.append(f"| {v.name} | {p50 * 1000:.3f} | {p99 * 1000:.3f} | {overhead} | {added} | {cpu} |")
    return "\n".join(rows)


async def _measure(calls: int, mcp_proxy: str | None, baseline: Path | None) -> None:
    print(f"## stdio.py: {os.cpu_count()} cores, load average at start {_loadavg()}\n", flush=True)
    with tempfile.TemporaryDirectory(prefix="stdio-bench-") as tmpdir:
        async with contextlib.AsyncExitStack() as hops:
            variants = await _start_variants(hops, Path(tmpdir), mcp_proxy, baseline)
            for era, title in ERAS:
                log(
                    f"{title}: {WARMUP} warm-up + {calls} timed calls per variant ({', '.join(v.name for v in variants)})"
                )
                served = await _measure_era(variants, era, calls)
                print(_table(title, served, calls) + "\n", flush=True)
    # The calls are sequential, so this run alone keeps about one core busy.
    print(f"load average at end {_loadavg()} (this run alone: about 1)", flush=True)


def main(argv: list[str] | None = None) -> int:
    without_forks()
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--calls", type=int, default=1500, help="timed calls per variant and era (default 1500)")
    p.add_argument("--mcp-proxy", metavar="PATH", help="the mcp-proxy executable (default: `mcp-proxy` on PATH)")
    p.add_argument(
        "--baseline",
        metavar="DIR",
        type=Path,
        help="also run the router from another source tree (e.g. a `git archive` of main) as a column of its own",
    )
    p.add_argument("--serve", nargs=2, metavar=("PORT", "COMMAND"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.serve:
        import uvloop

        uvloop.run(_bridge(int(args.serve[0]), args.serve[1]))
        return 0
    if args.calls < 2:
        p.error("--calls must be >= 2")
    mcp_proxy = _find_mcp_proxy(args.mcp_proxy)
    if args.baseline is not None and not (args.baseline / "app" / "__main__.py").is_file():
        p.error(f"--baseline {args.baseline}: no app/__main__.py there")
    if args.mcp_proxy and mcp_proxy is None:
        p.error(f"--mcp-proxy {args.mcp_proxy}: not an executable")

    async def guarded() -> None:
        task = asyncio.current_task()
        assert task is not None
        # SIGTERM behaves like ^C: the task is cancelled and every `finally` stops its process by pid.
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
        await _measure(args.calls, mcp_proxy, args.baseline)

    try:
        asyncio.run(guarded())
    except (KeyboardInterrupt, asyncio.CancelledError):
        log("interrupted: all started processes were stopped")
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
