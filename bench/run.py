"""mcp-dev-router benchmark: direct vs router vs router --quiet, side by side in one run.

    /work/venv/bin/python bench/run.py                  # defaults: about 1-2 minutes
    /work/venv/bin/python bench/run.py --profile 10     # + py-spy profile of the router under load

One SDK fixture backend (tests/servers/fixture.py, streamable HTTP) serves all three variants:
  direct        SDK client -> backend
  router        SDK client -> router (headless, per-message lines on stdout) -> backend
  router-quiet  SDK client -> router (headless, --quiet) -> backend
Measurements, each in every round for every variant, variants alternating (rotated order per
round) so that drift on the machine hits them equally:
  seq-handshake  N sequential tools/call echo on one handshake-era session, after a warm-up
  seq-modern     the same at 2026-07-28 (mode pinned: no probe, no session)
  throughput     S concurrent handshake-era sessions (one SDK client each) calling echo for T s
  paced          250 calls/s (500 messages/s) through router, router-quiet and the TUI
                 (`mcp-router-tui` in a 200x50 pseudo-terminal) AT THE SAME TIME, their calls
                 interleaved, with `/` pressed in the TUI meanwhile and timed until the trace filter
                 is drawn (skipped if the TUI does not start); the load comes from minimal HTTP
                 clients (bench/rawclient.py) and goes, half each, to two minimal backends
                 (bench/rawserver.py) that every router also has: one answering after 2.5 ms (as
                 long as the SDK's server takes here), one at once

The load generator never runs in this (orchestrating) process: it runs in --workers separate
worker processes (this file with --worker), each owning sessions/workers of the sessions. The
orchestrator only sends commands and sleeps while they run, so its own CPU use is nil.
See bench/README.md for how to read the output.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fcntl
import json
import math
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import termios
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))  # `python bench/run.py` puts bench/ first, not the repo

HOST = "127.0.0.1"
FIXTURE = REPO_ROOT / "tests" / "servers" / "fixture.py"
RAWSERVER = REPO_ROOT / "bench" / "rawserver.py"
# The paced load's backends (bench/rawserver.py), as every router and the TUI name them (`-b NAME=URL`,
# route /mcp/NAME), and how much later each answers a tools/call: half of each variant's calls go to
# each. "like-sdk" takes about what the SDK's own server takes for the call on this machine (2.5-2.6
# ms direct at this pace, measured), without its CPU; "instant" answers at once, so that the routers'
# own time is all of the latency (the strict comparison).
PACED_BACKENDS = {"like-sdk": 2.5, "instant": 0.0}
RESULTS_DIR = REPO_ROOT / "bench" / "results"
WORKER_SCRIPT = Path(__file__).resolve()
VARIANTS = ("direct", "router", "router-quiet")
LISTENING_RE = re.compile(r"mcp-dev-router listening on http://[^\s/]+:(\d+)")
TARGET_OVERHEAD_PCT = 15.0
TARGET_THROUGHPUT_RATIO = 0.75
# The TUI measurement (issue 7): the same paced load through headless routers and through the TUI.
PACED_VARIANTS = ("router", "router-quiet", "tui")
TARGET_TUI_RATIO = 1.10
TARGET_KEY_MS = 100.0
# What `/` makes the TUI draw: the trace filter's placeholder, shown only while the filter is open.
FILTER_MARKER = b"status:error"
KEY_TIMEOUT_S = 5.0
KEY_INTERVAL_S = 0.7  # between key presses: a person typing slowly, not a load of its own
MAX_TYPED = 100  # letters typed into the filter per window: the text stays narrower than the terminal
CLK_TCK = os.sysconf("SC_CLK_TCK")


# --------------------------------------------------------------------------------------------
# worker: the load generator, one process each, driven by JSON lines on stdin
# --------------------------------------------------------------------------------------------


async def _worker_main() -> None:
    # Imported here so that the orchestrator never loads the SDK (it needs none of it).
    from bench.rawclient import connect as raw_connect
    from tests.support.clients import connect

    loop = asyncio.get_running_loop()

    async def read_cmd() -> dict[str, Any]:
        # A blocking readline in a thread: the worker is idle while it waits, and stdin is a pipe.
        line = await loop.run_in_executor(None, sys.stdin.readline)
        if not line:
            return {"op": "quit"}
        result: dict[str, Any] = json.loads(line)
        return result

    def reply(obj: dict[str, Any]) -> None:
        sys.stdout.write(json.dumps(obj) + "\n")
        sys.stdout.flush()

    reply({"ok": True, "ready": True, "pid": os.getpid()})
    while True:
        cmd = await read_cmd()
        op = cmd["op"]
        if op == "quit":
            return
        try:
            if op == "seq":
                reply(await _worker_seq(connect, cmd, read_cmd, reply))
            elif op == "throughput":
                reply(await _worker_throughput(connect, cmd, read_cmd, reply))
            elif op == "paced":
                # A minimal client, which leaves the machine the capacity to carry the pace
                # (bench/rawclient.py says why).
                reply(await _worker_paced(raw_connect, cmd, read_cmd, reply))
            else:
                reply({"ok": False, "error": f"unknown op {op!r}"})
        except Exception as exc:  # report, stay alive: the orchestrator decides what a failure means
            reply({"ok": False, "error": f"{type(exc).__name__}: {exc}"})


async def _worker_seq(connect: Any, cmd: dict[str, Any], read_cmd: Any, reply: Any) -> dict[str, Any]:
    """One session per variant, all open at once; sequential calls interleaved call by call.

    Call i goes to every variant in turn, the order rotating with i, so that a burst of load from
    anything else on the machine hits all variants alike (paired samples, not blocks).
    """
    transport = "streamable-modern" if cmd["era"] == "modern" else "streamable-handshake"
    names: list[str] = list(cmd["urls"])
    lat: dict[str, list[float]] = {n: [] for n in names}
    perf = time.perf_counter
    async with contextlib.AsyncExitStack() as stack:
        clients = [await stack.enter_async_context(connect(cmd["urls"][n], transport)) for n in names]
        for _ in range(cmd["warmup"]):
            for client in clients:
                await client.call_tool("echo", {"text": "warm-up"})
        reply({"ok": True, "connected": len(clients)})
        go = await read_cmd()
        if go.get("op") != "go":
            raise RuntimeError(f"expected go, got {go!r}")
        k = len(names)
        for i in range(cmd["calls"]):
            for j in range(k):
                idx = (i + j) % k
                t0 = perf()
                await clients[idx].call_tool("echo", {"text": f"call {i}"})
                lat[names[idx]].append((perf() - t0) * 1000.0)
    return {"ok": True, "lat_ms": lat}


async def _run_sessions(
    connect: Any,
    targets: list[str],
    read_cmd: Any,
    reply: Any,
    body: Any,
) -> float:
    """Connect a handshake-era session to each URL of `targets`, say "connected", wait for "go",
    run `body` on each.

    `body(i, client, start, end)` does session i's timed work between the window's start and end
    (perf_counter times). Returns the window's elapsed time: until the last session finished its
    work, before the sessions close (closing is not part of the window).

    Each session lives in its own task from connect to close: the SDK client's anyio cancel scopes
    must be entered and exited in the same task.
    """
    perf = time.perf_counter
    n = len(targets)
    finished = [0.0] * n
    connected = 0
    all_connected = asyncio.Event()
    go = asyncio.Event()
    window = {"start": 0.0, "end": 0.0}

    async def session(i: int) -> None:
        nonlocal connected
        async with connect(targets[i], "streamable-handshake") as client:
            await client.call_tool("echo", {"text": "warm-up"})  # the first timed call is not special
            connected += 1
            if connected == n:
                all_connected.set()
            await go.wait()
            await body(i, client, window["start"], window["end"])
            finished[i] = perf()

    tasks = [asyncio.create_task(session(i)) for i in range(n)]
    ready = asyncio.create_task(all_connected.wait())
    try:
        # Handshakes run concurrently but are not timed; a session that fails to connect fails the run.
        while not ready.done():
            await asyncio.wait({ready, *tasks}, return_when=asyncio.FIRST_COMPLETED)
            for t in tasks:
                if t.done() and t.exception() is not None:
                    raise t.exception()  # type: ignore[misc]
        reply({"ok": True, "connected": n})
        go_cmd = await read_cmd()
        if go_cmd.get("op") != "go":
            raise RuntimeError(f"expected go, got {go_cmd!r}")
        window["start"] = perf()
        window["end"] = window["start"] + float(go_cmd["seconds"])
        go.set()
        await asyncio.gather(*tasks)
    finally:
        ready.cancel()
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return max(finished) - window["start"]


async def _worker_throughput(connect: Any, cmd: dict[str, Any], read_cmd: Any, reply: Any) -> dict[str, Any]:
    """cmd["sessions"] sessions call echo back to back for go["seconds"]."""
    n = int(cmd["sessions"])
    perf = time.perf_counter
    counts = [0] * n
    errors = [0] * n

    async def body(i: int, client: Any, _start: float, end: float) -> None:
        while perf() < end:
            try:
                await client.call_tool("echo", {"text": "load"})
                counts[i] += 1
            except Exception:
                errors[i] += 1

    elapsed = await _run_sessions(connect, [cmd["url"]] * n, read_cmd, reply, body)
    return {"ok": True, "calls": sum(counts), "errors": sum(errors), "elapsed": elapsed}


async def _worker_paced(connect: Any, cmd: dict[str, Any], read_cmd: Any, reply: Any) -> dict[str, Any]:
    """An open-loop load of cmd["rate"] calls/s over cmd["sessions"] sessions to EACH of cmd["urls"],
    all at once, for go["seconds"].

    Call k of session i of URL j is due at start + (i + k * sessions + j / len(urls)) / rate: the
    sessions of a URL take turns, so its calls are evenly spaced whatever their latency, and the
    URLs' calls alternate, so that whatever the machine does meanwhile reaches them all alike. A call
    that is due while its session is still busy starts as soon as it is free and counts as late (the
    rate was more than the path keeps up with).
    """
    n = int(cmd["sessions"])
    rate = float(cmd["rate"])
    urls: list[str] = list(cmd["urls"])
    perf = time.perf_counter
    lat: list[list[float]] = [[] for _ in urls]
    errors = [0] * len(urls)
    late = [0] * len(urls)

    async def body(s: int, client: Any, start: float, end: float) -> None:
        j, i = divmod(s, n)
        k = 0
        while (due := start + (i + k * n + j / len(urls)) / rate) < end:
            k += 1
            wait = due - perf()
            if wait > 0:
                await asyncio.sleep(wait)
            elif wait < -0.005:
                late[j] += 1
            t0 = perf()
            try:
                await client.call_tool("echo", {"text": "paced"})
            except Exception:
                errors[j] += 1
                continue
            lat[j].append((perf() - t0) * 1000.0)

    elapsed = await _run_sessions(connect, [u for u in urls for _ in range(n)], read_cmd, reply, body)
    return {
        "ok": True,
        "by_url": [
            {"lat_ms": lat[j], "calls": len(lat[j]), "errors": errors[j], "late": late[j]} for j in range(len(urls))
        ],
        "elapsed": elapsed,
    }


# --------------------------------------------------------------------------------------------
# orchestrator: processes
# --------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


class Procs:
    """Every process this run starts, so that all of them are stopped by pid whatever happens."""

    def __init__(self) -> None:
        self.procs: list[tuple[str, asyncio.subprocess.Process]] = []

    def add(self, name: str, proc: asyncio.subprocess.Process) -> asyncio.subprocess.Process:
        self.procs.append((name, proc))
        return proc

    async def stop(self, proc: asyncio.subprocess.Process, grace: float = 5.0) -> None:
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), grace)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signal.SIGKILL)
                await proc.wait()

    async def stop_all(self) -> None:
        # Reverse start order: load generators first, then routers, then the backend.
        for _, proc in reversed(self.procs):
            await self.stop(proc)


def machine_busy_seconds() -> float:
    """CPU seconds all cores spent busy since boot (user+nice+system+irq+softirq+steal), from /proc/stat."""
    with open("/proc/stat") as f:
        fields = f.readline().split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in fields[:8])
    return (user + nice + system + irq + softirq + steal) / CLK_TCK


class LoadMeter:
    """How many cores *other* programs kept busy during a measured window (machine busy - ours).

    This machine is shared: a test suite running beside the benchmark moves every number.
    The report shows the foreign load per measurement so that a noisy run can be recognised.
    """

    def __init__(self, procs: Procs) -> None:
        self.procs = procs
        self.samples: dict[str, list[float]] = defaultdict(list)
        self._start: tuple[float, float, float] = (0.0, 0.0, 0.0)

    def _ours(self) -> float:
        return sum(cpu_seconds(p.pid) for _, p in self.procs.procs if p.returncode is None) + sum(os.times()[:2])

    def start(self) -> None:
        self._start = (time.monotonic(), machine_busy_seconds(), self._ours())

    def stop(self, key: str) -> None:
        t0, busy0, ours0 = self._start
        dt = time.monotonic() - t0
        if dt > 0:
            foreign = ((machine_busy_seconds() - busy0) - (self._ours() - ours0)) / dt
            self.samples[key].append(max(0.0, foreign))

    def mean(self, key: str) -> float:
        v = self.samples.get(key) or []
        return statistics.fmean(v) if v else math.nan


def cpu_seconds(pid: int) -> float:
    """utime + stime of one process (its threads included), from /proc."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return math.nan
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


async def wait_port(port: int, proc: asyncio.subprocess.Process, what: str, limit: float = 20.0) -> None:
    deadline = time.monotonic() + limit
    while True:
        if proc.returncode is not None:
            raise RuntimeError(f"{what} exited with code {proc.returncode} before accepting connections")
        try:
            _, writer = await asyncio.open_connection(HOST, port)
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
            return
        except OSError:
            pass
        if time.monotonic() >= deadline:
            raise TimeoutError(f"{what} did not accept connections on port {port} within {limit}s")
        await asyncio.sleep(0.05)


async def start_backend(procs: Procs, light: str | None = None) -> tuple[str, asyncio.subprocess.Process]:
    """The SDK fixture backend, or the paced load's minimal one named `light` (bench/rawserver.py)."""
    port = free_port()
    if light is not None:
        argv = [sys.executable, str(RAWSERVER), "--host", HOST, "--port", str(port)]
        argv += ["--delay-ms", str(PACED_BACKENDS[light])]
    else:
        argv = [sys.executable, str(FIXTURE), "--transport", "streamable", "--host", HOST, "--port", str(port)]
        argv += ["--name", "bench"]
    proc = procs.add(
        f"{light}-backend" if light else "backend",
        await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,  # the SDK server logs each request at INFO: not our business
            cwd=REPO_ROOT,
            start_new_session=True,  # a terminal ^C reaches only us; we stop it by pid
        ),
    )
    await wait_port(port, proc, f"{light} backend" if light else "fixture backend")
    return f"http://{HOST}:{port}/mcp", proc


def private_env(log_dir: Path, name: str) -> dict[str, str]:
    """A private HOME/XDG so that a router neither reads nor writes the user's saved backends."""
    home = log_dir / f"{name}-home"
    home.mkdir(exist_ok=True)
    return {
        **os.environ,
        "PYTHONUNBUFFERED": "1",
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home / "config"),
        "XDG_STATE_HOME": str(home / "state"),
        "XDG_DATA_HOME": str(home / "data"),
        "XDG_CACHE_HOME": str(home / "cache"),
    }


async def start_router(
    procs: Procs, name: str, backend_url: str, light_urls: dict[str, str], quiet: bool, log_dir: Path
) -> tuple[str, asyncio.subprocess.Process, Path]:
    """Start a headless router with its stdout going to a file (see README: what the console costs).

    Its default backend (/mcp) is the fixture; the paced load's are /mcp/NAME (`light_urls`: NAME: URL).
    """
    log_path = log_dir / f"{name}.stdout.log"
    argv = [sys.executable, "-m", "app", "--no-ui", "--host", HOST, "--port", "0", "-b", f"fx={backend_url}"]
    argv += [a for name, url in light_urls.items() for a in ("-b", f"{name}={url}")]
    if quiet:
        argv.append("--quiet")
    env = private_env(log_dir, name)
    with open(log_path, "wb") as out:  # noqa: ASYNC230 - a create, once, before anything is timed
        proc = procs.add(
            name,
            await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=REPO_ROOT,
                env=env,
                start_new_session=True,
            ),
        )
    deadline = time.monotonic() + 20.0
    port: int | None = None
    while port is None:
        if proc.returncode is not None:
            raise RuntimeError(f"{name} exited with code {proc.returncode}: {log_path.read_text()[-2000:]}")
        if time.monotonic() >= deadline:
            raise TimeoutError(f"{name} printed no 'listening' line within 20 s: {log_path.read_text()[-2000:]}")
        first = log_path.read_text(errors="replace").split("\n", 1)[0]
        match = LISTENING_RE.search(first)
        if match:
            port = int(match.group(1))
            break
        await asyncio.sleep(0.05)
    await wait_port(port, proc, name)
    return f"http://{HOST}:{port}/mcp", proc, log_path


class TuiTerminal:
    """The TUI in a pseudo-terminal: everything it draws is read as it comes (and discarded, as a
    terminal would after painting it), and keys are written to it like a person typing.

    `press()` writes a key and times how long until a marker the key should make the TUI draw
    appears in its output: what a person sees as the key's answer.
    """

    def __init__(self, proc: asyncio.subprocess.Process, master: int) -> None:
        self.proc = proc
        self.master = master
        self.bytes_read = 0
        self._tail = b""
        self._waiting: tuple[bytes, asyncio.Future[float]] | None = None
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(master, self._readable)

    def _readable(self) -> None:
        try:
            data = os.read(self.master, 1 << 16)
        except OSError:  # the TUI closed its end (it exited)
            data = b""
        if not data:
            self._loop.remove_reader(self.master)
            return
        self.bytes_read += len(data)
        if self._waiting is not None:
            marker, fut = self._waiting
            # The tail of the previous read: a marker split between two reads is still seen.
            if marker in self._tail + data and not fut.done():
                fut.set_result(time.perf_counter())
                self._waiting = None
        self._tail = data[-512:]

    def write(self, keys: bytes) -> None:
        os.write(self.master, keys)

    async def press(self, key: bytes, marker: bytes, timeout: float) -> float | None:
        """ms from writing `key` until `marker` is drawn; None if it was not within `timeout` s."""
        fut: asyncio.Future[float] = self._loop.create_future()
        self._tail = b""  # only output drawn after the key counts
        self._waiting = (marker, fut)
        t0 = time.perf_counter()
        self.write(key)
        try:
            t1 = await asyncio.wait_for(fut, timeout)
        except TimeoutError:
            self._waiting = None
            return None
        return (t1 - t0) * 1000.0

    def close(self) -> None:
        self._loop.remove_reader(self.master)
        with contextlib.suppress(OSError):
            os.close(self.master)


async def start_tui(
    procs: Procs, backend_url: str, light_urls: dict[str, str], log_dir: Path, size: tuple[int, int]
) -> tuple[str, TuiTerminal] | str:
    """Start `mcp-router-tui` (the TUI, not --no-ui) in a pseudo-terminal of size (cols, rows).

    Returns its MCP URL and terminal, or why it could not run (a tree without the TUI yet).
    """
    port = free_port()  # the TUI owns its terminal and prints no "listening" line to read a port from
    cols, rows = size
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
    env = {**private_env(log_dir, "tui"), "TERM": "xterm-256color", "COLORTERM": "truecolor"}
    env.pop("NO_COLOR", None)
    argv = [sys.executable, "-m", "app", "--host", HOST, "--port", str(port), "-b", f"fx={backend_url}"]
    argv += [a for name, url in light_urls.items() for a in ("-b", f"{name}={url}")]
    try:
        proc = procs.add(
            "tui",
            await asyncio.create_subprocess_exec(
                *argv, stdin=slave, stdout=slave, stderr=slave, cwd=REPO_ROOT, env=env, start_new_session=True
            ),
        )
    finally:
        os.close(slave)
    tui = TuiTerminal(proc, master)
    try:
        await wait_port(port, proc, "the TUI")
    except (RuntimeError, TimeoutError) as exc:
        tui.close()
        await procs.stop(proc)
        return f"the TUI did not start ({exc}); is it built on this branch?"
    deadline = time.monotonic() + 20.0
    while tui.bytes_read < 2000:  # its first frame
        if proc.returncode is not None or time.monotonic() >= deadline:
            tui.close()
            await procs.stop(proc)
            return "the TUI drew nothing in 20 s"
        await asyncio.sleep(0.05)
    return f"http://{HOST}:{port}/mcp", tui


async def key_probes(tui: TuiTerminal, traffic: asyncio.Future[Any], opened: list[float], typed: list[float]) -> int:
    """While the traffic flows (until `traffic` is done), time key presses in the TUI. Returns the misses.

    `/` opens the trace filter: timed until its placeholder is drawn. Then letters are typed into
    the filter one at a time, each timed until the filter's text with it is drawn: that text is new
    on every press, so a frame drawn before the key was read can never be taken for its answer, and
    a slow press cannot leave the next one in another state. The filter is `!zz…` (hide messages
    containing "zz…"): it hides nothing, so the trace carries the same rows as without it, and
    each letter makes the TUI apply the changed filter to its whole buffer, as a user's typing does.
    At the end: ctrl+u empties the filter and escape closes it.
    """
    missed = 0
    await asyncio.wait({traffic}, timeout=0.5)  # the load runs at its pace first
    ms = await tui.press(b"/", FILTER_MARKER, KEY_TIMEOUT_S)
    if ms is None:
        return 1
    opened.append(ms)
    text = b"!zz"
    if await tui.press(text, text, KEY_TIMEOUT_S) is None:
        missed += 1
    letters = b"abcdefghijklmnopqrstuvwxy"
    for k in range(MAX_TYPED):
        await asyncio.wait({traffic}, timeout=KEY_INTERVAL_S)
        if traffic.done():
            break
        key = letters[k % len(letters) : k % len(letters) + 1]
        text += key
        ms = await tui.press(key, text, KEY_TIMEOUT_S)
        if ms is None:
            missed += 1
        else:
            typed.append(ms)
    tui.write(b"\x15")  # ctrl+u: the filter is empty again
    await asyncio.sleep(0.3)
    tui.write(b"\x1b")  # escape: an empty filter closes
    return missed


async def run_paced(
    worker: Worker,
    urls: dict[str, str],
    rate: float,
    seconds: float,
    sessions: int,
    watch: dict[str, int],
    meter: LoadMeter | None = None,
    tui: TuiTerminal | None = None,
    keys: tuple[list[float], list[float]] | None = None,
) -> tuple[dict[str, dict[str, Any]], float, dict[str, float], int]:
    """One paced window on all `urls` at once (variant: URL), with key probes on the TUI.

    Returns each variant's worker result, the window's elapsed s, the CPU s of each `watch` process
    (name: pid), and the key presses missed.
    """
    names = list(urls)
    await worker.call({"op": "paced", "urls": [urls[v] for v in names], "rate": rate, "sessions": sessions})
    cpu0 = {k: cpu_seconds(pid) for k, pid in watch.items()}
    if meter:
        meter.start()
    await worker.send({"op": "go", "seconds": seconds})
    traffic = asyncio.ensure_future(worker.recv(timeout=seconds + 120))
    missed = 0
    if tui is not None and keys is not None:
        missed = await key_probes(tui, traffic, *keys)
    msg = await traffic
    if meter:
        meter.stop("paced")
    cpu1 = {k: cpu_seconds(pid) for k, pid in watch.items()}
    by_variant = dict(zip(names, msg["by_url"], strict=True))
    return by_variant, msg["elapsed"], {k: cpu1[k] - cpu0[k] for k in watch}, missed


@dataclass
class Worker:
    proc: asyncio.subprocess.Process

    async def send(self, obj: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write((json.dumps(obj) + "\n").encode())
        await self.proc.stdin.drain()

    async def recv(self, timeout: float = 300.0) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = await asyncio.wait_for(self.proc.stdout.readline(), timeout)
        if not line:
            raise RuntimeError(f"worker {self.proc.pid} exited (code {self.proc.returncode})")
        msg: dict[str, Any] = json.loads(line)
        if not msg.get("ok"):
            raise RuntimeError(f"worker {self.proc.pid}: {msg.get('error')}")
        return msg

    async def call(self, obj: dict[str, Any], timeout: float = 300.0) -> dict[str, Any]:
        await self.send(obj)
        return await self.recv(timeout)


async def start_worker(procs: Procs, index: int) -> Worker:
    proc = procs.add(
        f"worker{index}",
        await asyncio.create_subprocess_exec(
            sys.executable,
            str(WORKER_SCRIPT),
            "--worker",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            cwd=REPO_ROOT,
            start_new_session=True,
            limit=64 * 1024 * 1024,  # a long paced window answers with one line of every latency
        ),
    )
    worker = Worker(proc)
    await worker.recv(timeout=60.0)  # the "ready" line: SDK imported
    return worker


# --------------------------------------------------------------------------------------------
# orchestrator: measurements
# --------------------------------------------------------------------------------------------


@dataclass
class Results:
    # lat[measurement][variant] = pooled samples over rounds; per_round[measurement][variant] = p50s
    lat: dict[str, dict[str, list[float]]] = field(default_factory=lambda: defaultdict(lambda: defaultdict(list)))
    round_p50: dict[str, dict[str, list[float]]] = field(default_factory=lambda: defaultdict(lambda: defaultdict(list)))
    tput: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    tput_errors: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    # CPU seconds per process role during the throughput runs, and the calls they served.
    cpu: dict[str, dict[str, float]] = field(default_factory=lambda: defaultdict(lambda: defaultdict(float)))
    tput_calls: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    # Router CPU seconds during the sequential runs, and the calls each variant got.
    seq_cpu: dict[str, dict[str, float]] = field(default_factory=lambda: defaultdict(lambda: defaultdict(float)))
    seq_calls: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    # The paced measurement (headless routers and the TUI at the same pace): latencies, the calls/s
    # reached per round, late starts, errors, CPU s of the router (or TUI) process and its calls.
    # paced_lat[paced backend][variant], paced_round_p50 likewise; the others by variant.
    paced_lat: dict[str, dict[str, list[float]]] = field(default_factory=lambda: defaultdict(lambda: defaultdict(list)))
    paced_round_p50: dict[str, dict[str, list[float]]] = field(
        default_factory=lambda: defaultdict(lambda: defaultdict(list))
    )
    paced_rate: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    paced_late: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    paced_errors: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    paced_cpu: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    paced_calls: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    key_open_ms: list[float] = field(default_factory=list)  # `/` until the filter is drawn
    key_type_ms: list[float] = field(default_factory=list)  # a letter typed in the filter until drawn
    key_missed: int = 0
    tui_note: str = ""
    tui_idle_cores: float = math.nan  # the TUI's own CPU with no traffic (clock, probes, redraws)


async def run_seq(
    worker: Worker,
    urls: dict[str, str],
    era: str,
    calls: int,
    warmup: int,
    watch: dict[str, int],
    meter: LoadMeter | None = None,
) -> tuple[dict[str, list[float]], dict[str, float]]:
    """Interleaved sequential calls on all variants; (latencies per variant, CPU s per watched pid)."""
    await worker.call({"op": "seq", "urls": urls, "era": era, "calls": calls, "warmup": warmup})
    cpu0 = {k: cpu_seconds(pid) for k, pid in watch.items()}
    if meter:
        meter.start()
    msg = await worker.call({"op": "go"})
    if meter:
        meter.stop(f"seq-{era}")
    cpu1 = {k: cpu_seconds(pid) for k, pid in watch.items()}
    lat: dict[str, list[float]] = msg["lat_ms"]
    return lat, {k: cpu1[k] - cpu0[k] for k in watch}


async def run_throughput(
    workers: list[Worker],
    url: str,
    sessions: int,
    seconds: float,
    watch: dict[str, int],
    meter: LoadMeter | None = None,
    key: str = "",
) -> tuple[float, int, int, dict[str, float]]:
    """Returns (calls/s, calls, errors, CPU seconds per watched process during the timed window)."""
    share = [sessions // len(workers) + (1 if i < sessions % len(workers) else 0) for i in range(len(workers))]
    active = [(w, n) for w, n in zip(workers, share, strict=True) if n > 0]
    await asyncio.gather(*(w.send({"op": "throughput", "url": url, "sessions": n}) for w, n in active))
    await asyncio.gather(*(w.recv() for w, _ in active))  # all sessions connected and warm
    watch = {**watch, **{f"client{i}": w.proc.pid for i, (w, _) in enumerate(active)}}
    cpu0 = {k: cpu_seconds(pid) for k, pid in watch.items()}
    if meter:
        meter.start()
    await asyncio.gather(*(w.send({"op": "go", "seconds": seconds}) for w, _ in active))
    done = await asyncio.gather(*(w.recv(timeout=seconds + 120) for w, _ in active))
    if meter:
        meter.stop(key)
    cpu1 = {k: cpu_seconds(pid) for k, pid in watch.items()}
    calls = sum(d["calls"] for d in done)
    errors = sum(d["errors"] for d in done)
    rate = sum(d["calls"] / d["elapsed"] for d in done)
    cpu = {k: cpu1[k] - cpu0[k] for k in watch}
    return rate, calls, errors, cpu


def pct(samples: list[float], p: float) -> float:
    """Nearest-rank percentile."""
    if not samples:
        return math.nan
    s = sorted(samples)
    return s[max(0, math.ceil(p / 100.0 * len(s)) - 1)]


def lat_stats(samples: list[float]) -> dict[str, float]:
    return {
        "n": len(samples),
        "p10": pct(samples, 10),
        "p25": pct(samples, 25),
        "p50": pct(samples, 50),
        "p90": pct(samples, 90),
        "p99": pct(samples, 99),
        "mean": statistics.fmean(samples) if samples else math.nan,
    }


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


async def profile_router(
    procs: Procs,
    workers: list[Worker],
    url: str,
    pid: int,
    args: argparse.Namespace,
    out_dir: Path,
    stamp: str,
    label: str,
) -> dict[str, Any]:
    """py-spy record the router (by pid) while the throughput load runs; summarise the hot spots."""
    py_spy = Path(sys.executable).parent / "py-spy"
    if not py_spy.exists():
        return {"error": f"py-spy not found at {py_spy}: /work/venv/bin/pip install py-spy"}
    raw = out_dir / f"{stamp}-profile-{label}.collapsed.txt"
    share = [
        args.sessions // len(workers) + (1 if i < args.sessions % len(workers) else 0) for i in range(len(workers))
    ]
    active = [(w, n) for w, n in zip(workers, share, strict=True) if n > 0]
    await asyncio.gather(*(w.send({"op": "throughput", "url": url, "sessions": n}) for w, n in active))
    await asyncio.gather(*(w.recv() for w, _ in active))
    seconds = args.profile
    spy = await start_py_spy(procs, py_spy, pid, args.profile, raw)
    await asyncio.gather(*(w.send({"op": "go", "seconds": seconds}) for w, _ in active))
    done = await asyncio.gather(*(w.recv(timeout=seconds + 120) for w, _ in active))
    rate = sum(d["calls"] / d["elapsed"] for d in done)
    return await py_spy_summary(procs, spy, raw, rate)


async def start_py_spy(procs: Procs, py_spy: Path, pid: int, seconds: float, raw: Path) -> asyncio.subprocess.Process:
    # Collapsed stacks at 250 Hz; --nonblocking: the process is not paused per sample, so it is barely slowed.
    spy = procs.add(
        "py-spy",
        await asyncio.create_subprocess_exec(
            str(py_spy),
            "record",
            "--pid",
            str(pid),
            "--duration",
            str(math.ceil(seconds)),
            "--rate",
            "250",
            "--nonblocking",
            "--format",
            "raw",
            "--output",
            str(raw),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,
        ),
    )
    await asyncio.sleep(0.5)  # py-spy attaches (ptrace) before the load starts
    return spy


async def py_spy_summary(procs: Procs, spy: asyncio.subprocess.Process, raw: Path, rate: float) -> dict[str, Any]:
    err = ""
    try:
        await asyncio.wait_for(spy.wait(), 30)
    except TimeoutError:
        await procs.stop(spy)
    if spy.returncode != 0 and spy.stderr is not None:
        err = (await spy.stderr.read()).decode(errors="replace")[-1000:]
    text = _read_if_there(raw)
    if text is None:
        return {"error": f"py-spy wrote no profile (exit {spy.returncode}): {err}"}
    summary = summarise_collapsed(text)
    summary.update({"calls_per_s_while_profiling": rate, "collapsed": str(raw.relative_to(REPO_ROOT))})
    return summary


def _read_if_there(path: Path) -> str | None:
    try:
        return path.read_text()
    except FileNotFoundError:
        return None


async def profile_tui(
    procs: Procs, worker: Worker, url: str, tui: TuiTerminal, args: argparse.Namespace, out_dir: Path, stamp: str
) -> dict[str, Any]:
    """py-spy record the TUI (by pid) through a paced window, key presses included (not recorded)."""
    py_spy = Path(sys.executable).parent / "py-spy"
    if not py_spy.exists():
        return {"error": f"py-spy not found at {py_spy}: .venv/bin/pip install py-spy"}
    raw = out_dir / f"{stamp}-profile-tui.collapsed.txt"
    spy = await start_py_spy(procs, py_spy, tui.proc.pid, args.profile, raw)
    msgs, elapsed, _, _ = await run_paced(
        worker, {"tui": url}, args.tui_rate, max(2.0, args.profile - 0.5), args.tui_sessions, {}, tui=tui, keys=([], [])
    )
    summary = await py_spy_summary(procs, spy, raw, msgs["tui"]["calls"] / elapsed)
    summary["target"] = "tui"
    return summary


_FRAME_RE = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")


def _short_frame(frame: str) -> str:
    """`func (path/to/file.py:12)` -> `func (pkg/file.py)` with site-packages and repo prefixes cut."""
    m = _FRAME_RE.match(frame)
    if not m:
        return frame
    path = m.group("file")
    for cut in ("site-packages/", "/lib/python3.11/", str(REPO_ROOT) + "/"):
        if cut in path:
            path = path.split(cut, 1)[1]
    return f"{m.group('func')} ({path})"


def _area(frame: str) -> str:
    short = _short_frame(frame)
    if "(app/" in short:
        return "app/" + short.split("(app/", 1)[1].split("/", 1)[0].split(".py", 1)[0]
    for name in ("uvicorn", "httptools", "httpx", "httpcore", "orjson", "starlette", "asyncio", "json"):
        if f"({name}/" in short or f"({name}." in short:
            return name
    return "other"


def summarise_collapsed(text: str, top: int = 25) -> dict[str, Any]:
    """Self time per function, inclusive time per function, and self time per area (module)."""
    self_t: Counter[str] = Counter()
    incl: Counter[str] = Counter()
    area_t: Counter[str] = Counter()
    app_incl: Counter[str] = Counter()
    total = 0
    for line in text.splitlines():
        stack, _, count_s = line.rpartition(" ")
        if not stack or not count_s.isdigit():
            continue
        n = int(count_s)
        frames = stack.split(";")
        # py-spy --format raw: first frame is "process ..." / thread name; skip non-code frames.
        code = [f for f in frames if "(" in f and f.endswith(")")]
        if not code:
            continue
        total += n
        leaf = _short_frame(code[-1])
        self_t[leaf] += n
        area_t[_area(code[-1])] += n
        seen: set[str] = set()
        for f in code:
            s = _short_frame(f)
            if s not in seen:
                seen.add(s)
                incl[s] += n
                if "(app/" in s:
                    app_incl[s] += n

    def rows(c: Counter[str]) -> list[dict[str, Any]]:
        return [{"frame": k, "samples": v, "pct": 100.0 * v / total if total else 0.0} for k, v in c.most_common(top)]

    return {
        "samples": total,
        "self": rows(self_t),
        "inclusive": rows(incl),
        "app_inclusive": rows(app_incl),
        "areas": rows(area_t),
    }


async def orchestrate(args: argparse.Namespace) -> int:
    procs = Procs()
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    tmp = Path(tempfile.mkdtemp(prefix="mcp-router-bench-"))
    res = Results()
    t_begin = time.monotonic()
    tui: TuiTerminal | None = None
    try:
        log(f"starting backend, routers and {args.workers} load-generator worker(s) ...")
        backend_url, backend = await start_backend(procs)
        light_urls = {name: (await start_backend(procs, light=name))[0] for name in PACED_BACKENDS}
        r_url, r_proc, r_log = await start_router(procs, "router", backend_url, light_urls, False, tmp)
        q_url, q_proc, q_log = await start_router(procs, "router-quiet", backend_url, light_urls, True, tmp)
        workers = list(await asyncio.gather(*(start_worker(procs, i) for i in range(args.workers))))
        urls = {"direct": backend_url, "router": r_url, "router-quiet": q_url}
        paced_pids = {"router": r_proc.pid, "router-quiet": q_proc.pid}
        if args.tui != "off":
            started = await start_tui(procs, backend_url, light_urls, tmp, args.tui_size)
            if isinstance(started, str):
                if args.tui == "on":
                    raise RuntimeError(started)
                res.tui_note = started
                log(f"no TUI measurement: {started}")
            else:
                urls["tui"], tui = started
                paced_pids["tui"] = tui.proc.pid
                log(f"TUI {urls['tui']} in a {args.tui_size[0]}x{args.tui_size[1]} pseudo-terminal")
        paced = [v for v in PACED_VARIANTS if v in paced_pids] if tui is not None else []
        # One stream per variant and paced backend, "VARIANT BACKEND": half the variant's calls each.
        paced_urls = {f"{v} {b}": f"{urls[v]}/{b}" for v in paced for b in PACED_BACKENDS}
        stream_rate = args.tui_rate / len(PACED_BACKENDS)
        stream_sessions = max(1, args.tui_sessions // len(PACED_BACKENDS))
        watch_pids = {
            "direct": {"backend": backend.pid},
            "router": {"backend": backend.pid, "router": r_proc.pid},
            "router-quiet": {"backend": backend.pid, "router": q_proc.pid},
        }
        log(f"backend {backend_url} | router {r_url} | router --quiet {q_url}")

        # Warm-up pass (not recorded): first-call imports, connection pools, caches in every process.
        log("warm-up ...")
        everything = args.only != "paced"
        for era in ("handshake", "modern") if everything else ():
            await run_seq(workers[0], urls, era, 20, 10, {})
        for v in VARIANTS if everything else ():
            await run_throughput(workers, urls[v], args.sessions, 1.0, watch_pids[v])
        if paced:
            await run_paced(workers[0], paced_urls, stream_rate, 1.0, stream_sessions, {})
        if tui is not None:
            cpu0, t0 = cpu_seconds(tui.proc.pid), time.monotonic()
            await asyncio.sleep(3.0)  # no traffic: what the TUI costs by itself
            res.tui_idle_cores = (cpu_seconds(tui.proc.pid) - cpu0) / (time.monotonic() - t0)

        router_pids = {"router": r_proc.pid, "router-quiet": q_proc.pid}
        meter = LoadMeter(procs)
        for rnd in range(args.rounds):
            for meas in ("seq-handshake", "seq-modern") if everything else ():
                era = "modern" if meas == "seq-modern" else "handshake"
                lat, cpu = await run_seq(workers[0], urls, era, args.calls, args.warmup, router_pids, meter)
                for v in VARIANTS:
                    res.lat[meas][v].extend(lat[v])
                    res.round_p50[meas][v].append(pct(lat[v], 50))
                for v, sec in cpu.items():
                    res.seq_cpu[meas][v] += sec
                res.seq_calls[meas] += args.calls
                log(
                    f"round {rnd + 1}/{args.rounds}  {meas:<13} p50 "
                    + "  ".join(f"{v} {pct(lat[v], 50):5.2f} ms" for v in VARIANTS)
                )
            # Throughput runs cannot be interleaved: rotate the order each round (A B C, B C A, ...).
            order = [VARIANTS[(rnd + i) % len(VARIANTS)] for i in range(len(VARIANTS))] if everything else []
            for v in order:
                rate, calls, errors, cpu = await run_throughput(
                    workers, urls[v], args.sessions, args.seconds, watch_pids[v], meter, f"throughput-{v}"
                )
                res.tput[v].append(rate)
                res.tput_errors[v] += errors
                res.tput_calls[v] += calls
                for k, sec in cpu.items():
                    res.cpu[v]["client" if k.startswith("client") else k] += sec
                log(f"round {rnd + 1}/{args.rounds}  throughput    {v:<13} {rate:8.1f} calls/s  ({errors} errors)")
            # The paced variants carry their loads at the same time, call by call in turn: the TUI must
            # carry the traffic for a while to be measured under it, and windows one after another
            # met the host at different speeds (bench/README.md, "The TUI figures").
            if paced:
                msgs, elapsed, cpu, missed = await run_paced(
                    workers[0],
                    paced_urls,
                    stream_rate,
                    args.tui_seconds,
                    stream_sessions,
                    {v: paced_pids[v] for v in paced},
                    meter,
                    tui,
                    (res.key_open_ms, res.key_type_ms),
                )
                res.key_missed += missed
                for v in paced:
                    streams = {b: msgs[f"{v} {b}"] for b in PACED_BACKENDS}
                    calls = sum(m["calls"] for m in streams.values())
                    for b, m in streams.items():
                        res.paced_lat[b][v].extend(m["lat_ms"])
                        res.paced_round_p50[b][v].append(pct(m["lat_ms"], 50))
                    late = sum(m["late"] for m in streams.values())
                    errors = sum(m["errors"] for m in streams.values())
                    res.paced_rate[v].append(calls / elapsed)
                    res.paced_late[v] += late
                    res.paced_errors[v] += errors
                    res.paced_cpu[v] += cpu[v]
                    res.paced_calls[v] += calls
                    keys = f"  keys p50 {pct(res.key_type_ms, 50):.0f} ms ({missed} missed)" if v == "tui" else ""
                    log(
                        f"round {rnd + 1}/{args.rounds}  paced         {v:<13} p50 "
                        + "  ".join(f"{b} {pct(m['lat_ms'], 50):5.2f} ms" for b, m in streams.items())
                        + f"  {calls / elapsed:6.1f} calls/s  ({late} late, {errors} errors){keys}"
                    )

        profile: dict[str, Any] = {}
        if args.profile > 0 and args.profile_target == "tui" and tui is not None:
            log(f"profiling the TUI (pid {tui.proc.pid}) with py-spy for {args.profile:.0f} s under the paced load ...")
            profile = await profile_tui(procs, workers[0], urls["tui"] + "/instant", tui, args, RESULTS_DIR, stamp)
        elif args.profile > 0:
            target = args.profile_target
            pid = r_proc.pid if target == "router" else q_proc.pid
            log(
                f"profiling {target} (pid {pid}) with py-spy for {args.profile:.0f} s under {args.sessions}-session load ..."
            )
            profile = await profile_router(procs, workers, urls[target], pid, args, RESULTS_DIR, stamp, target)

        log_bytes = {"router": r_log.stat().st_size, "router-quiet": q_log.stat().st_size}
        for w in workers:
            with contextlib.suppress(Exception):
                await w.send({"op": "quit"})
        foreign = {k: meter.mean(k) for k in sorted(meter.samples)}
        report = build_report(args, res, profile, log_bytes, foreign, time.monotonic() - t_begin)
    finally:
        await procs.stop_all()
        if tui is not None:
            tui.close()
        shutil.rmtree(tmp, ignore_errors=True)

    text = render_text(report)
    print(text)
    json_path = RESULTS_DIR / f"{stamp}.json"
    md_path = RESULTS_DIR / f"{stamp}.md"
    json_path.write_text(json.dumps(report, indent=2))
    md_path.write_text(render_markdown(report))
    (RESULTS_DIR / "latest.json").write_text(json.dumps(report, indent=2))
    (RESULTS_DIR / "latest.md").write_text(render_markdown(report))
    print(f"\nwrote {json_path.relative_to(REPO_ROOT)} and {md_path.relative_to(REPO_ROOT)}")
    return 0


# --------------------------------------------------------------------------------------------
# report
# --------------------------------------------------------------------------------------------


def build_report(
    args: argparse.Namespace,
    res: Results,
    profile: dict[str, Any],
    log_bytes: dict[str, int],
    foreign: dict[str, float],
    wall: float,
) -> dict[str, Any]:
    try:
        load = os.getloadavg()
    except OSError:
        load = (math.nan, math.nan, math.nan)
    common: dict[str, Any] = {
        "paced": paced_report(args, res),
        "when": time.strftime("%Y-%m-%d %H:%M:%S"),
        "wall_s": wall,
        "settings": {
            "calls": args.calls,
            "warmup": args.warmup,
            "sessions": args.sessions,
            "seconds": args.seconds,
            "rounds": args.rounds,
            "workers": args.workers,
            "only": args.only,
        },
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "loadavg_at_end": load,
        },
        "foreign_load_cores": foreign,
        "profile": profile,
    }
    if args.only == "paced":
        return common
    latency: dict[str, dict[str, Any]] = {}
    for meas in ("seq-handshake", "seq-modern"):
        latency[meas] = {v: lat_stats(res.lat[meas][v]) for v in VARIANTS}
        for v in VARIANTS:
            latency[meas][v]["round_p50"] = res.round_p50[meas][v]
    throughput: dict[str, dict[str, Any]] = {
        v: {
            "calls_per_s": statistics.fmean(res.tput[v]),
            "rounds": res.tput[v],
            "errors": res.tput_errors[v],
            "calls": res.tput_calls[v],
            "cpu_us_per_call": {
                role: 1e6 * sec / res.tput_calls[v] if res.tput_calls[v] else math.nan
                for role, sec in sorted(res.cpu[v].items())
            },
            "cpu_cores_busy": {role: sec / (args.seconds * args.rounds) for role, sec in sorted(res.cpu[v].items())},
        }
        for v in VARIANTS
    }
    ratios: dict[str, dict[str, Any]] = {}
    for v in ("router", "router-quiet"):
        entry: dict[str, Any] = {}
        for meas in ("seq-handshake", "seq-modern"):
            d, r = latency[meas]["direct"]["p50"], latency[meas][v]["p50"]
            per_round = [
                (rr / dd - 1) * 100
                for rr, dd in zip(res.round_p50[meas][v], res.round_p50[meas]["direct"], strict=True)
            ]
            paired = [rr / dd for rr, dd in zip(res.lat[meas][v], res.lat[meas]["direct"], strict=True)]
            entry[meas] = {
                "overhead_pct_p50": (r / d - 1) * 100,
                "overhead_pct_paired_median": (statistics.median(paired) - 1) * 100,
                "router_cpu_us_per_call": 1e6 * res.seq_cpu[meas][v] / res.seq_calls[meas],
                "overhead_pct_mean": (latency[meas][v]["mean"] / latency[meas]["direct"]["mean"] - 1) * 100,
                "overhead_ms_p50": r - d,
                "per_round_overhead_pct": per_round,
                "meets_target": (r / d - 1) * 100 <= TARGET_OVERHEAD_PCT,
            }
        tr = throughput[v]["calls_per_s"] / throughput["direct"]["calls_per_s"]
        entry["throughput"] = {
            "ratio": tr,
            "per_round_ratio": [a / b for a, b in zip(res.tput[v], res.tput["direct"], strict=True)],
            "meets_target": tr >= TARGET_THROUGHPUT_RATIO,
        }
        ratios[v] = entry
    q_vs_r = {
        "seq-handshake_p50_pct": (
            latency["seq-handshake"]["router"]["p50"] / latency["seq-handshake"]["router-quiet"]["p50"] - 1
        )
        * 100,
        "seq-modern_p50_pct": (
            latency["seq-modern"]["router"]["p50"] / latency["seq-modern"]["router-quiet"]["p50"] - 1
        )
        * 100,
        "throughput_pct": (throughput["router-quiet"]["calls_per_s"] / throughput["router"]["calls_per_s"] - 1) * 100,
    }
    return {
        **common,
        "targets": {"overhead_pct_max": TARGET_OVERHEAD_PCT, "throughput_ratio_min": TARGET_THROUGHPUT_RATIO},
        "latency_ms": latency,
        "throughput": throughput,
        "ratios": ratios,
        "console_cost": q_vs_r,
        "router_stdout_bytes": log_bytes,
    }


def paced_report(args: argparse.Namespace, res: Results) -> dict[str, Any]:
    """The TUI measurement: per-call latency at the same pace headless and with the TUI, key presses."""
    out: dict[str, Any] = {
        "rate_calls_per_s": args.tui_rate,
        "messages_per_s": 2 * args.tui_rate,  # a call is a request and its response in the trace
        "seconds": args.tui_seconds,
        "sessions": args.tui_sessions,
        "client": "raw HTTP clients, a minimal backend, the variants at once",
        "terminal": f"{args.tui_size[0]}x{args.tui_size[1]}",
        "note": res.tui_note,
    }
    if "tui" not in res.paced_rate:
        return out
    out["backend_delay_ms"] = PACED_BACKENDS
    out["latency_ms"] = {
        b: {v: {**lat_stats(res.paced_lat[b][v]), "round_p50": res.paced_round_p50[b][v]} for v in res.paced_lat[b]}
        for b in PACED_BACKENDS
    }
    out["variants"] = {
        v: {
            "calls_per_s": statistics.fmean(res.paced_rate[v]),
            "late": res.paced_late[v],
            "errors": res.paced_errors[v],
            "process_cpu_us_per_call": 1e6 * res.paced_cpu[v] / res.paced_calls[v] if res.paced_calls[v] else math.nan,
        }
        for v in res.paced_rate
    }
    out["tui_idle_cpu_cores"] = res.tui_idle_cores
    # Open-loop pacing only means something if the calls went out at the pace asked for.
    out["slowest_round_calls_per_s"] = min(r for v in res.paced_rate for r in res.paced_rate[v])
    out["pace_held"] = out["slowest_round_calls_per_s"] >= 0.9 * args.tui_rate
    out["tui_ratio"] = {}
    for b in PACED_BACKENDS:
        lat = out["latency_ms"][b]
        rounds = res.paced_round_p50[b]
        out["tui_ratio"][b] = {
            "vs_router_p50": lat["tui"]["p50"] / lat["router"]["p50"],
            "vs_router_quiet_p50": lat["tui"]["p50"] / lat["router-quiet"]["p50"],
            "vs_router_mean": lat["tui"]["mean"] / lat["router"]["mean"],
            "per_round_vs_router": [t / r for t, r in zip(rounds["tui"], rounds["router"], strict=True)],
            "meets_target": lat["tui"]["p50"] / lat["router"]["p50"] <= TARGET_TUI_RATIO,
        }
    keys = res.key_open_ms + res.key_type_ms
    out["key_ms"] = {
        **lat_stats(keys),
        "max": max(keys, default=math.nan),
        "missed": res.key_missed,
        "open": {**lat_stats(res.key_open_ms), "max": max(res.key_open_ms, default=math.nan)},
        "type": {**lat_stats(res.key_type_ms), "max": max(res.key_type_ms, default=math.nan)},
        "meets_target": bool(keys) and pct(keys, 90) <= TARGET_KEY_MS and res.key_missed == 0,
    }
    return out


def _fmt_table(headers: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    line = "  ".join(h.ljust(w) if i == 0 else h.rjust(w) for i, (h, w) in enumerate(zip(headers, widths, strict=True)))
    out = [line, "  ".join("-" * w for w in widths)]
    for r in rows:
        out.append(
            "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True)))
        )
    return out


def _tables(rep: dict[str, Any]) -> list[tuple[str, list[str], list[list[str]]]]:
    tables = []
    everything = "latency_ms" in rep  # not with --only paced
    for meas, title in (
        ()
        if not everything
        else (
            ("seq-handshake", "Sequential tools/call echo, one handshake-era session (ms)"),
            ("seq-modern", "Sequential tools/call echo, modern era 2026-07-28 (ms)"),
        )
    ):
        rows = []
        for v in VARIANTS:
            s = rep["latency_ms"][meas][v]
            over = paired = spread = cpu = ""
            if v != "direct":
                r = rep["ratios"][v][meas]
                over = f"{r['overhead_pct_p50']:+.1f}%"
                paired = f"{r['overhead_pct_paired_median']:+.1f}%"
                pr = r["per_round_overhead_pct"]
                spread = f"{min(pr):+.0f}..{max(pr):+.0f}%"
                cpu = f"{r['router_cpu_us_per_call']:.0f}"
            rows.append(
                [
                    v,
                    str(s["n"]),
                    f"{s['p50']:.2f}",
                    f"{s['p90']:.2f}",
                    f"{s['p99']:.2f}",
                    f"{s['mean']:.2f}",
                    over,
                    paired,
                    spread,
                    cpu,
                ]
            )
        tables.append(
            (
                title,
                [
                    "variant",
                    "n",
                    "p50",
                    "p90",
                    "p99",
                    "mean",
                    "overhead p50",
                    "paired median",
                    "per-round p50",
                    "router µs/call",
                ],
                rows,
            )
        )
    rows = []
    for v in VARIANTS if everything else ():
        t = rep["throughput"][v]
        ratio = "" if v == "direct" else f"{rep['ratios'][v]['throughput']['ratio']:.2f}"
        spread = ""
        if v != "direct":
            pr = rep["ratios"][v]["throughput"]["per_round_ratio"]
            spread = f"{min(pr):.2f}..{max(pr):.2f}"
        cpu = t["cpu_us_per_call"]
        rows.append(
            [
                v,
                f"{t['calls_per_s']:.0f}",
                ratio,
                spread,
                str(t["errors"]),
                f"{cpu.get('client', math.nan):.0f}",
                f"{cpu.get('backend', math.nan):.0f}",
                f"{cpu.get('router', math.nan):.0f}" if "router" in cpu else "-",
            ]
        )
    s = rep["settings"]
    paced = rep.get("paced") or {}
    if "latency_ms" in paced:
        prow = []
        for b in PACED_BACKENDS:
            r = paced["tui_ratio"][b]
            for v in PACED_VARIANTS:
                st = paced["latency_ms"][b][v]
                var = paced["variants"][v]
                vs = spread = ""
                if v == "tui":
                    vs = f"{r['vs_router_p50']:.2f}x"
                    spread = f"{min(r['per_round_vs_router']):.2f}..{max(r['per_round_vs_router']):.2f}x"
                prow.append(
                    [
                        f"{v}, {b} ({paced['backend_delay_ms'][b]:g} ms)",
                        str(st["n"]),
                        f"{st['p10']:.2f}",
                        f"{st['p50']:.2f}",
                        f"{st['p90']:.2f}",
                        f"{st['p99']:.2f}",
                        f"{st['mean']:.2f}",
                        vs,
                        spread,
                        f"{var['calls_per_s']:.0f}",
                        str(var["late"]),
                        str(var["errors"]),
                        f"{var['process_cpu_us_per_call']:.0f}",
                    ]
                )
        tables.append(
            (
                f"Paced load, {paced['rate_calls_per_s']:.0f} calls/s ({paced['messages_per_s']:.0f} messages/s) through "
                f"each variant at once, half to each paced backend (answering a call after the time in brackets), "
                f"on {paced['sessions']} handshake-era sessions each (raw HTTP clients), "
                f"{paced['seconds']:.0f} s x {s['rounds']} rounds; "
                f"the TUI in a {paced['terminal']} pseudo-terminal (ms; calls/s, late, errors and CPU: the variant's)",
                [
                    "variant, backend",
                    "n",
                    "p10",
                    "p50",
                    "p90",
                    "p99",
                    "mean",
                    "tui vs router p50",
                    "per round",
                    "calls/s",
                    "late",
                    "errors",
                    "router µs/call",
                ],
                prow,
            )
        )
        k = paced["key_ms"]
        krows = [
            [label, str(x["n"]), f"{x['p50']:.0f}", f"{x['p90']:.0f}", f"{x['max']:.0f}", missed]
            for label, x, missed in (
                ("/ opens the filter", k["open"], ""),
                ("a letter typed in the filter", k["type"], ""),
                ("all", k, str(k["missed"])),
            )
        ]
        tables.append(
            (
                "Key presses in the TUI under that load: written to its terminal until their answer is drawn (ms)",
                ["key", "n", "p50", "p90", "max", "missed"],
                krows,
            )
        )
    if not everything:
        return tables
    tables.append(
        (
            f"Throughput, {s['sessions']} concurrent handshake-era sessions, {s['seconds']:.0f} s x {s['rounds']} rounds",
            [
                "variant",
                "calls/s",
                "vs direct",
                "per round",
                "errors",
                "client µs/call",
                "backend µs/call",
                "router µs/call",
            ],
            rows,
        )
    )
    return tables


def _verdicts(rep: dict[str, Any]) -> list[str]:
    out = []
    everything = "ratios" in rep  # not with --only paced
    for v in ("router", "router-quiet") if everything else ():
        r = rep["ratios"][v]
        for meas in ("seq-handshake", "seq-modern"):
            o = r[meas]["overhead_pct_p50"]
            out.append(
                f"{v:<13} per-call overhead ({meas}): {o:+.1f}%  target <= {TARGET_OVERHEAD_PCT:.0f}%  "
                + ("MET" if r[meas]["meets_target"] else "NOT MET")
            )
        t = r["throughput"]["ratio"]
        out.append(
            f"{v:<13} throughput ratio: {t:.2f}  target >= {TARGET_THROUGHPUT_RATIO:.2f}  "
            + ("MET" if r["throughput"]["meets_target"] else "NOT MET")
        )
    paced = rep.get("paced") or {}
    if "tui_ratio" in paced:
        k = paced["key_ms"]
        for b, r in paced["tui_ratio"].items():
            out.append(
                f"tui           per-call latency at {paced['messages_per_s']:.0f} messages/s, {b} backend: "
                f"{r['vs_router_p50']:.2f}x the headless router's p50 ({r['vs_router_quiet_p50']:.2f}x --quiet)  "
                f"target <= {TARGET_TUI_RATIO:.2f}x  " + ("MET" if r["meets_target"] else "NOT MET")
            )
        out.append(
            f"tui           key presses (/ opening the filter, letters typed in it): p90 {k['p90']:.0f} ms, "
            f"max {k['max']:.0f} ms, "
            f"{k['missed']} missed  target p90 <= {TARGET_KEY_MS:.0f} ms  "
            + ("MET" if k["meets_target"] else "NOT MET")
        )
        out.append(f"tui           CPU with no traffic: {paced['tui_idle_cpu_cores']:.2f} of a core")
        if not paced["pace_held"]:
            out.append(
                f"tui           WARNING: the machine did not hold the pace (slowest window "
                f"{paced['slowest_round_calls_per_s']:.0f} of {paced['rate_calls_per_s']:.0f} calls/s): these are the "
                "latencies of a saturated machine, not of the rate asked for"
            )
    elif paced.get("note"):
        out.append(f"tui           not measured: {paced['note']}")
    f = rep["foreign_load_cores"]
    worst = max(f.values(), default=0.0)
    out.append(
        "foreign load (cores kept busy by other programs while measuring): "
        + ", ".join(f"{k} {v:.2f}" for k, v in f.items())
        + (
            f"  -- WARNING: the machine was not idle (up to {worst:.2f} of {os.cpu_count()} cores); "
            "expect noisy ratios, rerun on an idle machine"
            if worst > 0.25
            else ""
        )
    )
    if not everything:
        return out
    c = rep["console_cost"]
    out.append(
        f"console output cost (router vs router --quiet, positive = slower with output): p50 {c['seq-handshake_p50_pct']:+.1f}% (handshake), "
        f"{c['seq-modern_p50_pct']:+.1f}% (modern), throughput {c['throughput_pct']:+.1f}% "
        f"({rep['router_stdout_bytes']['router'] / 1e6:.1f} MB of stdout written)"
    )
    return out


def render_text(rep: dict[str, Any]) -> str:
    lines = [""]
    for title, headers, rows in _tables(rep):
        lines += [title, *_fmt_table(headers, rows), ""]
    lines += _verdicts(rep)
    prof = rep.get("profile") or {}
    if prof.get("error"):
        lines += ["", f"profile: {prof['error']}"]
    elif prof:
        lines += [
            "",
            f"{prof.get('target', 'router')} profile ({prof['samples']} samples, {prof['calls_per_s_while_profiling']:.0f} calls/s while sampled): top self time",
        ]
        for row in prof["self"][:12]:
            lines.append(f"  {row['pct']:5.1f}%  {row['frame']}")
        lines.append("  by area (self): " + ", ".join(f"{r['frame']} {r['pct']:.0f}%" for r in prof["areas"][:8]))
    m = rep["machine"]
    s = rep["settings"]
    lines += [
        "",
        f"{m['cpus']} CPUs, Python {m['python']}; {s['workers']} load-generator process(es); "
        f"wall {rep['wall_s']:.0f} s; loadavg {m['loadavg_at_end'][0]:.2f}",
    ]
    return "\n".join(lines)


def render_markdown(rep: dict[str, Any]) -> str:
    s = rep["settings"]
    m = rep["machine"]
    out = [
        f"# mcp-dev-router benchmark, {rep['when']}",
        "",
        f"calls={s['calls']} (warm-up {s['warmup']}), sessions={s['sessions']}, seconds={s['seconds']}, "
        f"rounds={s['rounds']}, load-generator processes={s['workers']}; {m['cpus']} CPUs, Python {m['python']}, "
        f"{m['platform']}; wall {rep['wall_s']:.0f} s.",
        "",
    ]
    for title, headers, rows in _tables(rep):
        out += [f"## {title}", "", "| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
        out += ["| " + " | ".join(r) + " |" for r in rows]
        out.append("")
    out += ["## Targets", ""] + [f"- {v}" for v in _verdicts(rep)] + [""]
    prof = rep.get("profile") or {}
    if prof and not prof.get("error"):
        out += [
            f"## {prof.get('target', 'router')} profile (py-spy, {prof['samples']} samples under load)",
            "",
            "Self time (where the CPU is actually spent):",
            "",
            "| % | frame |",
            "|---|---|",
        ]
        out += [f"| {r['pct']:.1f} | `{r['frame']}` |" for r in prof["self"][:20]]
        out += ["", "Inclusive time, router code only:", "", "| % | frame |", "|---|---|"]
        out += [f"| {r['pct']:.1f} | `{r['frame']}` |" for r in prof["app_inclusive"][:20]]
        out += ["", "Self time by area: " + ", ".join(f"{r['frame']} {r['pct']:.0f}%" for r in prof["areas"][:10]), ""]
        out += [f"Collapsed stacks (flamegraph.pl / speedscope input): `{prof['collapsed']}`.", ""]
    return "\n".join(out)


# --------------------------------------------------------------------------------------------


def _size(text: str) -> tuple[int, int]:
    cols, sep, rows = text.lower().partition("x")
    if not sep or not cols.isdigit() or not rows.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r}: expected COLSxROWS, e.g. 200x50")
    return int(cols), int(rows)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n", 1)[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--calls", type=int, default=300, help="timed sequential calls per variant per round (default 300)")
    p.add_argument("--warmup", type=int, default=30, help="untimed calls before the sequential ones (default 30)")
    p.add_argument("--sessions", type=int, default=32, help="concurrent sessions for throughput (default 32)")
    p.add_argument("--seconds", type=float, default=5.0, help="throughput duration per variant per round (default 5)")
    p.add_argument("--rounds", type=int, default=3, help="rounds; variant order rotates each round (default 3)")
    p.add_argument("--workers", type=int, default=2, help="load-generator processes sharing the sessions (default 2)")
    p.add_argument(
        "--profile",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="after the rounds, py-spy the router for SECONDS under the throughput load (default off)",
    )
    p.add_argument(
        "--profile-target",
        choices=["router", "router-quiet", "tui"],
        default="router",
        help="which router to profile (default: router, with console output); tui: the TUI under the paced load",
    )
    p.add_argument(
        "--tui",
        choices=["auto", "on", "off"],
        default="auto",
        help="the paced TUI measurement: auto runs it if the TUI starts, on requires it (default auto)",
    )
    p.add_argument(
        "--tui-rate",
        type=float,
        default=250.0,
        help="paced calls/s, each a request and a response in the trace (default 250: 500 messages/s)",
    )
    p.add_argument("--tui-seconds", type=float, default=5.0, help="paced window per round (default 5)")
    p.add_argument("--tui-sessions", type=int, default=4, help="sessions sharing each variant's paced load (default 4)")
    p.add_argument(
        "--tui-size", type=_size, default=(200, 50), metavar="COLSxROWS", help="the TUI's terminal (default 200x50)"
    )
    p.add_argument(
        "--only",
        choices=["all", "paced"],
        default="all",
        help="paced: only the paced measurement (router, router-quiet, TUI), for working on the TUI (default all)",
    )
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if min(args.calls, args.sessions, args.rounds, args.workers, args.tui_sessions) < 1 or args.seconds <= 0:
        p.error("--calls, --sessions, --rounds, --workers, --tui-sessions must be >= 1 and --seconds > 0")
    if args.tui_rate <= 0 or args.tui_seconds < 2:
        p.error("--tui-rate must be > 0 and --tui-seconds at least 2 (room for key presses)")
    if args.only == "paced":
        if args.tui == "off":
            p.error("--only paced measures the TUI: not with --tui off")
        args.tui = "on"
    if args.profile_target == "tui" and args.tui == "off":
        p.error("--profile-target tui: not with --tui off")
    args.workers = min(args.workers, args.sessions)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker:
        # The orchestrator stops us by pid (SIGTERM); die quietly on it and on a terminal ^C.
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        with contextlib.suppress(KeyboardInterrupt, BrokenPipeError):
            asyncio.run(_worker_main())
        return 0

    async def guarded() -> int:
        task = asyncio.current_task()
        assert task is not None
        loop = asyncio.get_running_loop()
        # SIGTERM behaves like ^C: the task is cancelled and `finally` stops every process by pid.
        loop.add_signal_handler(signal.SIGTERM, task.cancel)
        return await orchestrate(args)

    try:
        return asyncio.run(guarded())
    except (KeyboardInterrupt, asyncio.CancelledError):
        log("interrupted: all started processes were stopped")
        return 130


if __name__ == "__main__":
    sys.exit(main())
