"""Large messages: router vs direct, by size, backend transport and era, in one interleaved run.

    .venv/bin/python bench/large.py                    # 0.5, 1, 4, 16, 64 MiB; 3 rounds
    .venv/bin/python bench/large.py --sizes 1,16 --rounds 5

Backends (tests/servers/fixture.py, the SDK's MCPServer): one Streamable HTTP process, one legacy
SSE process, and stdio (the router spawns its own; "direct" is the SDK's stdio client spawning
one). The fixture's `blob` tool answers N characters of a fixed pattern; the "64 MiB" answer is
1 KiB short of it so that the whole JSON-RPC message fits the default --max-message.

Variants per (backend transport, client era): "direct" (SDK client -> backend) and "router" (SDK
client -> `python -m app --no-ui --quiet` -> backend); one client per variant stays open for the
whole run. Every round calls every size on every variant, the two variants of a case back to back
in alternating order, so both see the same machine state. A call that fails is shown with its
error (the SDK's client refuses an SSE event over 1 MiB, so handshake-era Streamable HTTP direct
fails from 1 MiB: the router answers JSON and makes it work). A client that died is opened again
for its next call, so the smaller sizes of later rounds are measured too.

Output (stdout): a markdown table of the median seconds per call, router/direct ratio, the
router's peak RSS, and the load average at start and end (the machine may be shared).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import os
import signal
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # `python bench/large.py` puts bench/ first, not the repo

from tests.support.forks import without_forks  # noqa: E402

MiB = 1024 * 1024
ENVELOPE = 1024
# (backend transport, era, client transport for the router, client transport/target for direct)
CASES = (
    ("streamable-http", "modern"),
    ("streamable-http", "handshake"),
    ("sse", "handshake"),
    ("stdio", "modern"),
    ("stdio", "handshake"),
)


def log(message: str) -> None:
    print(f"large: {message}", file=sys.stderr, flush=True)


def _loadavg() -> str:
    return " / ".join(f"{x:.2f}" for x in os.getloadavg())


class Worker:
    """One SDK client in a task of its own: a client whose transport dies (the SDK's SSE reader
    refuses an event over 1 MiB) cancels the task that holds it, which must not be the run."""

    def __init__(self, target: str, transport: Any, version: str | None) -> None:
        self._jobs: asyncio.Queue[tuple[int, asyncio.Future[Any]]] = asyncio.Queue()
        self._ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._task = asyncio.ensure_future(self._run(target, transport, version))
        self.dead: str | None = None

    async def _run(self, target: str, transport: Any, version: str | None) -> None:
        from tests.support.clients import connect

        job: asyncio.Future[Any] | None = None
        try:
            async with connect(target, transport, protocol_version=version, read_timeout_seconds=300) as client:
                self._ready.set_result(None)
                while True:
                    size, job = await self._jobs.get()
                    try:
                        job.set_result(await client.call_tool("blob", {"size": size}))
                    except Exception as exc:
                        job.set_exception(exc)
                    job = None
        except BaseException as exc:
            self.dead = _short(exc) if not isinstance(exc, asyncio.CancelledError) else "client ended"
            for fut in (self._ready, job):
                if fut is not None and not fut.done():
                    fut.set_exception(RuntimeError(self.dead))
            if not isinstance(exc, Exception):
                raise

    async def ready(self) -> None:
        await self._ready

    async def call(self, size: int) -> Any:
        if self.dead is not None:
            raise RuntimeError(self.dead)
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._jobs.put_nowait((size, fut))
        return await fut

    async def close(self) -> None:
        self._task.cancel()
        with contextlib.suppress(BaseException):
            await self._task


@dataclass
class Variant:
    name: str
    client: Worker | None
    error: str | None = None
    # How to open its client again: the SDK's SSE client dies on an event over 1 MiB, and the
    # smaller sizes of the next rounds are still worth measuring (with a client of their own).
    reopen: tuple[contextlib.AsyncExitStack, str, Any, str | None] | None = None
    times: dict[int, list[float]] = field(default_factory=dict)
    failures: dict[int, str] = field(default_factory=dict)


@dataclass
class Case:
    transport: str
    era: str
    variants: list[Variant]


def _size_label(size: int) -> str:
    whole = size + ENVELOPE
    return f"{whole // MiB} MiB" if whole % MiB == 0 else f"{size / MiB:g} MiB"


async def _call(variant: Variant, size: int, digest: str) -> None:
    if variant.client is None or size in variant.failures:
        return
    if variant.client.dead is not None and variant.reopen is not None:
        stack, target, transport, version = variant.reopen
        worker = Worker(target, transport, version)
        stack.push_async_callback(worker.close)
        with contextlib.suppress(Exception):
            await worker.ready()
        variant.client = worker
    start = time.perf_counter()
    try:
        result = await variant.client.call(size)
    except Exception as exc:  # a failing variant is a result, not a crash
        variant.failures[size] = _short(exc)
        return
    elapsed = time.perf_counter() - start
    text = getattr(result.content[0], "text", "") if result.content else ""
    if result.is_error or len(text) != size or hashlib.sha256(text.encode()).hexdigest() != digest:
        variant.failures[size] = "wrong or incomplete answer"
        return
    variant.times.setdefault(size, []).append(elapsed)


def _short(exc: BaseException) -> str:
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return f"{type(exc).__name__}: {str(exc)[:80]}"


async def _open(stack: contextlib.AsyncExitStack, name: str, target: str, transport: Any, era: str) -> Variant:
    from tests.support.clients import MODERN_VERSION

    version = MODERN_VERSION if era == "modern" and transport == "stdio" else None
    worker = Worker(target, transport, version)
    stack.push_async_callback(worker.close)
    try:
        await worker.ready()
    except Exception as exc:
        return Variant(name, None, _short(exc))
    return Variant(name, worker, reopen=(stack, target, transport, version))


async def _measure(sizes: list[int], rounds: int) -> None:
    from tests.servers.fixture import blob_text
    from tests.support.procs import memory_mb, run_fixture, run_router, stdio_command

    print(f"## bench/large.py: {os.cpu_count()} cores, load average at start {_loadavg()}\n", flush=True)
    digests = {s: hashlib.sha256(blob_text(s).encode()).hexdigest() for s in sizes}
    async with (
        run_fixture("streamable", name="large-http") as http_fx,
        run_fixture("sse", name="large-sse") as sse_fx,
        run_router(
            "--quiet",
            "--no-persist",  # the user's saved backends stay out of the measurement
            "-b",
            f"http={http_fx.url}",
            "-b",
            f"legacy={sse_fx.url}",
            "-b",
            f"stdio={stdio_command(name='large-stdio')}",
        ) as router,
        contextlib.AsyncExitStack() as stack,
    ):
        direct_targets = {"streamable-http": http_fx.url, "sse": sse_fx.url, "stdio": stdio_command(name="large-stdio")}
        router_names = {"streamable-http": "http", "sse": "legacy", "stdio": "stdio"}  # "sse" is a route word
        cases: list[Case] = []
        for transport, era in CASES:
            client_transport = "sse" if transport == "sse" else f"streamable-{era}"
            direct_transport = {"streamable-http": client_transport, "sse": "sse", "stdio": "stdio"}[transport]
            direct = await _open(stack, "direct", direct_targets[transport], direct_transport, era)
            routed = await _open(stack, "router", router.mcp_url(router_names[transport]), f"streamable-{era}", era)
            cases.append(Case(transport, era, [direct, routed]))
        for case in cases:  # warm-up: the first modern-era stdio call spawns the router's process for it
            for variant in case.variants:
                await _call(variant, 1, hashlib.sha256(blob_text(1).encode()).hexdigest())
        log(f"{rounds} rounds of {', '.join(_size_label(s) for s in sizes)} on {len(cases)} cases")
        for r in range(rounds):
            for size in sizes:
                for case in cases:
                    order = case.variants if (r + sizes.index(size)) % 2 == 0 else case.variants[::-1]
                    for variant in order:
                        await _call(variant, size, digests[size])
            log(f"round {r + 1}/{rounds} done; load average {_loadavg()}")
        peak = memory_mb(router.pid, "VmHWM")
        print(_table(cases, sizes, rounds), flush=True)
        print(f"\nrouter peak RSS over the run: {peak:.0f} MB", flush=True)
    print(f"load average at end {_loadavg()} (this run alone: about 1.5)", flush=True)


def _cell(variant: Variant, size: int) -> tuple[str, float | None]:
    if variant.error is not None:
        return f"no client ({variant.error})", None
    times = variant.times.get(size)
    if not times:
        return (f"fails: {variant.failures[size]}" if size in variant.failures else "-"), None
    p50 = statistics.median(times)
    # A client that died on a larger answer fails its later rounds: the time is from those before.
    return f"{p50:.3f}" + (" (later rounds: client gone)" if size in variant.failures else ""), p50


def _table(cases: list[Case], sizes: list[int], rounds: int) -> str:
    rows = [
        f"### tools/call blob: median seconds per call over {rounds} interleaved rounds",
        "",
        "| size | backend | era | direct s | router s | router / direct |",
        "|---|---|---|---:|---:|---:|",
    ]
    for size in sizes:
        for case in cases:
            direct, d = _cell(case.variants[0], size)
            routed, rt = _cell(case.variants[1], size)
            ratio = f"{rt / d:.2f}" if d and rt else "-"
            rows.append(f"| {_size_label(size)} | {case.transport} | {case.era} | {direct} | {routed} | {ratio} |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    without_forks()
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default="0.5,1,4,16,64", help="MiB, comma-separated (default 0.5,1,4,16,64)")
    p.add_argument("--rounds", type=int, default=3, help="rounds (default 3)")
    args = p.parse_args(argv)
    try:
        sizes = [int(float(x) * MiB) for x in args.sizes.split(",")]
    except ValueError:
        p.error(f"--sizes: not a list of numbers: {args.sizes}")
    # A whole number of MiB is a message that size: its text is 1 KiB shorter (the envelope).
    sizes = [s - ENVELOPE if s % MiB == 0 else s for s in sizes]
    if args.rounds < 1 or any(s <= 0 for s in sizes):
        p.error("--rounds and --sizes must be positive")

    async def guarded() -> None:
        task = asyncio.current_task()
        assert task is not None
        # SIGTERM behaves like ^C: the task is cancelled and every `finally` stops its process by pid.
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
        await _measure(sizes, args.rounds)

    try:
        asyncio.run(guarded())
    except (KeyboardInterrupt, asyncio.CancelledError):
        log("interrupted: all started processes were stopped")
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
