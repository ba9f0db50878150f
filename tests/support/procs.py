"""Process helpers for the test suite: fixture backends and the router as real subprocesses.

Every process started here runs in its own session (so a terminal ^C or a test runner's signal
does not hit it twice) and is stopped by its pid in teardown: SIGTERM, then SIGKILL after a
grace period. Readiness is awaited by polling (TCP connect, stdout line) with a deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

from tests.support.forks import ForkedProcess, fork_server, forking_enabled, kill_pid

REPO_ROOT = Path(__file__).resolve().parents[2]
FIXTURE_PATH = REPO_ROOT / "tests" / "servers" / "fixture.py"
# The tools of the fixture backend's v1 (v2 adds "extra_tool").
FIXTURE_V1_TOOLS = frozenset(
    {
        "echo",
        "add",
        "blob",
        "flood",
        "slow",
        "sleep",
        "sleeps",
        "sample",
        "elicit",
        "roots",
        "log",
        "whoami",
        "bump",
        "announce",
    }
    | {"look", "put", "hang_reads", "hung"}  # for the re-send tests (test_resend.py)
    | {"linger", "await_linger"}  # progress after a cancellation (test_own_traffic.py)
)
HOST = "127.0.0.1"

FixtureTransport = Literal["streamable", "sse", "stdio"]

LISTENING_RE = re.compile(r"mcp-dev-router listening on (http://[^\s/]+:(\d+))")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (bind to port 0 and release it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


async def wait_for(
    predicate: Callable[[], Any] | Callable[[], Awaitable[Any]],
    timeout: float = 10.0,
    interval: float = 0.02,
    message: str = "condition",
) -> Any:
    """Poll `predicate` (sync or async) until it returns something truthy, and return that.

    Exceptions from the predicate count as "not yet". Raises TimeoutError naming `message`
    (and the last exception, if any) once `timeout` seconds have passed.
    """
    deadline = time.monotonic() + timeout
    last_exc: BaseException | None = None
    while True:
        try:
            value = predicate()
            if inspect.isawaitable(value):
                value = await value
            if value:
                return value
        except Exception as exc:  # "not yet": keep polling until the deadline
            last_exc = exc
        if time.monotonic() >= deadline:
            detail = f" (last error: {last_exc!r})" if last_exc is not None else ""
            raise TimeoutError(f"timed out after {timeout}s waiting for {message}{detail}")
        await asyncio.sleep(interval)


async def port_accepts(port: int, host: str = HOST) -> bool:
    """True when a TCP connect to host:port succeeds right now."""
    try:
        _, writer = await asyncio.open_connection(host, port)
    except OSError:
        return False
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True


def pid_alive(pid: int) -> bool:
    """True while `pid` names a live process (a zombie awaiting its reaper counts as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def memory_mb(pid: int, field: str = "VmRSS") -> float:
    """A process's memory from /proc/PID/status in MB: VmRSS now, or VmHWM (its peak so far)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024  # the kernel reports kB
    raise LookupError(f"{field} not in /proc/{pid}/status")


def child_pids(pid: int) -> list[int]:
    """Live (non-zombie) processes whose parent is `pid`."""
    try:
        tasks = Path(f"/proc/{pid}/task").iterdir()
        children = [c for t in tasks for c in (t / "children").read_text().split()]
    except OSError:
        return []
    return [int(c) for c in children if pid_alive(int(c))]


def initialize_request(client_name: str, request_id: int = 1) -> dict[str, Any]:
    """A raw handshake-era `initialize`, for tests that speak HTTP to the router by hand."""
    return {
        "jsonrpc": "2.0",
        "id": request_id,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-11-25",
            "capabilities": {},
            "clientInfo": {"name": client_name, "version": "1"},
        },
    }


class Stoppable(Protocol):
    """What stopping a process by pid needs: an asyncio subprocess, or a forked fixture (forks.py)."""

    @property
    def pid(self) -> int: ...

    @property
    def returncode(self) -> int | None: ...

    async def wait(self) -> int: ...


async def stop_process(proc: Stoppable, grace: float = 3.0) -> int:
    """SIGTERM `proc` by pid, SIGKILL it if it is still alive after `grace` s; return its exit code."""
    if proc.returncode is None:
        kill_pid(proc.pid, signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), grace)
        except TimeoutError:
            kill_pid(proc.pid, signal.SIGKILL)
            await proc.wait()
    assert proc.returncode is not None
    return proc.returncode


def stop_popen(popen: subprocess.Popen[Any], grace: float = 3.0) -> None:
    """Blocking twin of `stop_process`, for the sync runners."""
    if popen.poll() is None:
        kill_pid(popen.pid, signal.SIGTERM)
        try:
            popen.wait(grace)
        except subprocess.TimeoutExpired:
            kill_pid(popen.pid, signal.SIGKILL)
            popen.wait()


def fixture_argv(
    transport: FixtureTransport,
    variant: str = "v1",
    port: int | None = None,
    name: str = "fixture",
    extra: tuple[str, ...] = (),
) -> list[str]:
    """argv that runs tests/servers/fixture.py with this interpreter (`extra`: more fixture options)."""
    argv = [sys.executable, str(FIXTURE_PATH), "--transport", transport, "--variant", variant, "--name", name, *extra]
    if transport != "stdio":
        argv += ["--host", HOST, "--port", str(port)]
    return argv


def stdio_command(variant: str = "v1", name: str = "fixture", forked: bool = True) -> str:
    """Shell-style command line for a stdio fixture (e.g. for `-b NAME=COMMAND` or StdioServerParameters).

    In the suite such a process is a stand-in for a fork of the fork server (forks.py), which
    passes signals on; `forked=False` makes it the server itself, for a test that pauses it."""
    return shlex.join(fixture_argv("stdio", variant, name=name, extra=() if forked else ("--no-fork",)))


@dataclass
class Fixture:
    """A running fixture backend (see `run_fixture`)."""

    transport: FixtureTransport
    variant: str
    port: int
    proc: Stoppable

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def base_url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def url(self) -> str:
        """The MCP endpoint: .../mcp for streamable HTTP, .../sse for legacy SSE."""
        return f"{self.base_url}/mcp" if self.transport == "streamable" else f"{self.base_url}/sse"

    async def stop(self, grace: float = 3.0) -> int:
        """Stop it now (idempotent): lets a test kill a backend mid-test, e.g. for hot-swap."""
        return await stop_process(self.proc, grace)


async def start_fixture(
    transport: FixtureTransport,
    variant: str = "v1",
    port: int | None = None,
    name: str = "fixture",
    ready_timeout: float = 15.0,
    extra: tuple[str, ...] = (),
) -> Fixture:
    """Start an HTTP fixture and wait until its port accepts connections. Caller must `stop()` it."""
    if transport == "stdio":
        raise ValueError("stdio fixtures are spawned by their client: use stdio_command()")
    port = port if port is not None else free_port()
    argv = fixture_argv(transport, variant, port, name, extra)
    proc: Stoppable
    if forking_enabled():
        proc = fork_server().spawn(argv[2:])
    else:
        proc = await asyncio.create_subprocess_exec(
            *argv, stdin=asyncio.subprocess.DEVNULL, cwd=REPO_ROOT, start_new_session=True
        )
    fixture = Fixture(transport, variant, port, proc)
    try:

        async def ready() -> bool:
            if proc.returncode is not None:
                raise RuntimeError(f"fixture exited early with code {proc.returncode}")
            return await port_accepts(port)

        await _wait_ready(ready, proc, ready_timeout, f"fixture {transport} on port {port}")
    except BaseException:
        await fixture.stop()
        raise
    return fixture


async def _wait_ready(ready: Callable[[], Awaitable[bool]], proc: Stoppable, limit: float, what: str) -> None:
    # Like wait_for, but an early exit of the process ends the wait at once instead of at the deadline.
    deadline = time.monotonic() + limit
    while not await ready():
        if proc.returncode is not None:
            raise RuntimeError(f"{what}: process exited with code {proc.returncode}")
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {limit}s waiting for {what}")
        await asyncio.sleep(0.02)


@contextlib.asynccontextmanager
async def run_fixture(
    transport: FixtureTransport,
    variant: str = "v1",
    port: int | None = None,
    name: str = "fixture",
    ready_timeout: float = 15.0,
    extra: tuple[str, ...] = (),
) -> AsyncIterator[Fixture]:
    """Run tests/servers/fixture.py (streamable or sse) for the duration of the block.

    Yields a `Fixture` with .url (http://127.0.0.1:PORT/mcp or /sse), .port, .pid, .proc.
    Pass `port=` to restart a backend on the same port (hot-swap tests); `extra` for more fixture
    options (`("--require-bearer", TOKEN)`).
    """
    fixture = await start_fixture(transport, variant, port, name, ready_timeout, extra)
    try:
        yield fixture
    finally:
        await fixture.stop()


@dataclass
class FixtureProcess:
    """A fixture started synchronously (see `run_fixture_sync`), for module/session-scoped fixtures."""

    transport: FixtureTransport
    variant: str
    port: int
    proc: subprocess.Popen[bytes] | ForkedProcess

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}/" + ("mcp" if self.transport == "streamable" else "sse")


@contextlib.contextmanager
def run_fixture_sync(
    transport: FixtureTransport,
    variant: str = "v1",
    port: int | None = None,
    name: str = "fixture",
    ready_timeout: float = 15.0,
) -> Iterator[FixtureProcess]:
    """Blocking twin of `run_fixture`: usable from sync (e.g. module-scoped) pytest fixtures,
    which then serve every test's event loop without tying the process to one loop."""
    if transport == "stdio":
        raise ValueError("stdio fixtures are spawned by their client: use stdio_command()")
    port = port if port is not None else free_port()
    argv = fixture_argv(transport, variant, port, name)
    proc: subprocess.Popen[bytes] | ForkedProcess
    if forking_enabled():
        proc = fork_server().spawn(argv[2:])
    else:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, cwd=REPO_ROOT, start_new_session=True)
    try:
        deadline = time.monotonic() + ready_timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"fixture {transport} exited early with code {proc.poll()}")
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
                if sock.connect_ex((HOST, port)) == 0:
                    break
            if time.monotonic() >= deadline:
                raise TimeoutError(f"timed out after {ready_timeout}s waiting for fixture {transport} on {port}")
            time.sleep(0.02)  # a blocking poll interval: this helper has no event loop to await on
        yield FixtureProcess(transport, variant, port, proc)
    finally:
        if isinstance(proc, ForkedProcess):
            proc.stop_blocking(3.0)
        else:
            stop_popen(proc, 3.0)


@dataclass
class SyncRouter:
    """A router started without an event loop (module scope outlives each test's loop)."""

    url: str
    popen: subprocess.Popen[str]
    lines: list[str] = field(default_factory=list)
    stderr_lines: list[str] = field(default_factory=list)

    def mcp_url(self, name: str) -> str:
        return f"{self.url}/mcp/{name}"

    def sse_url(self, name: str) -> str:
        return f"{self.url}/sse/{name}"

    def tail(self, n: int = 30) -> str:
        return "\n".join([*self.lines[-n:], "--- stderr ---", *self.stderr_lines[-n:]])


def _pump(stream: Any, sink: list[str], first: list[str], ready: threading.Event | None) -> None:
    # Drains a pipe in a thread so the router never blocks on a full stdout/stderr.
    for raw in stream:
        line = raw.rstrip("\r\n")
        sink.append(line)
        if ready is not None and not ready.is_set() and LISTENING_RE.search(line):
            first.append(line)
            ready.set()


@contextlib.contextmanager
def run_router_sync(*args: str, ready_timeout: float = 15.0) -> Iterator[SyncRouter]:
    """Blocking twin of `procs.run_router`: `python -m app --no-ui --port 0 *args`, stopped by pid."""
    state_home = tempfile.mkdtemp(prefix="router-state-")
    popen = subprocess.Popen(
        [sys.executable, "-m", "app", "--no-ui", "--host", HOST, "--port", "0", *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO_ROOT,
        env={**os.environ, "PYTHONUNBUFFERED": "1", "XDG_STATE_HOME": state_home},
        start_new_session=True,
    )
    lines: list[str] = []
    stderr_lines: list[str] = []
    first: list[str] = []
    ready = threading.Event()
    pumps = [
        threading.Thread(target=_pump, args=(popen.stdout, lines, first, ready), daemon=True),
        threading.Thread(target=_pump, args=(popen.stderr, stderr_lines, [], None), daemon=True),
    ]
    for pump in pumps:
        pump.start()
    try:
        deadline = time.monotonic() + ready_timeout
        # Event wait with a short slice so an early exit is noticed at once.
        while not ready.wait(0.05):
            if popen.poll() is not None:
                raise RuntimeError(f"router exited with {popen.returncode}: {lines} {stderr_lines[-20:]}")
            if time.monotonic() >= deadline:
                raise TimeoutError(f"router printed no listening line within {ready_timeout}s: {lines}")
        match = LISTENING_RE.search(first[0])
        assert match is not None
        yield SyncRouter(match.group(1), popen, lines, stderr_lines)
    finally:
        stop_popen(popen, 5.0)
        for pump in pumps:
            pump.join(2.0)
        shutil.rmtree(state_home, ignore_errors=True)


@dataclass
class Router:
    """A running router (see `run_router`)."""

    url: str
    port: int
    proc: asyncio.subprocess.Process
    lines: list[str] = field(default_factory=list)
    """Every stdout line so far (drained continuously so the pipe never fills)."""
    stderr_lines: list[str] = field(default_factory=list)
    returncode: int | None = None

    @property
    def pid(self) -> int:
        return self.proc.pid

    def mcp_url(self, name: str | None = None) -> str:
        return f"{self.url}/mcp" + (f"/{name}" if name else "")

    def sse_url(self, name: str | None = None) -> str:
        return f"{self.url}/sse" + (f"/{name}" if name else "")


async def _drain(stream: asyncio.StreamReader | None, sink: list[str], first: asyncio.Queue[str] | None) -> None:
    if stream is None:
        return
    while line := await stream.readline():
        text = line.decode(errors="replace").rstrip("\r\n")
        sink.append(text)
        if first is not None:
            first.put_nowait(text)


@contextlib.asynccontextmanager
async def run_router(
    *args: str,
    ready_timeout: float = 15.0,
    exit_timeout: float = 5.0,
    env: dict[str, str] | None = None,
    check_exit_code: bool = True,
    module: str = "app",
) -> AsyncIterator[Router]:
    """Run `python -m app --no-ui --host 127.0.0.1 --port 0 *args` for the duration of the block.

    The URL is taken from the first stdout line `mcp-dev-router listening on http://127.0.0.1:PORT`.
    On exit the router gets SIGTERM and must exit within `exit_timeout` s (with code 0 when
    `check_exit_code`); otherwise it is SIGKILLed and the block fails. `env` is merged over
    os.environ (use it to point platformdirs at a temporary HOME / XDG dirs). `module` exists for
    the helper's own self-test (a stand-in router); the suite always runs `app`.

    Each router saves its state in a folder of its own (so no router restores another's backends)
    unless `env` names XDG_STATE_HOME: the state tests share one between the routers they start.
    """
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    own_state: str | None = None
    if "XDG_STATE_HOME" not in (env or {}):
        own_state = full_env["XDG_STATE_HOME"] = tempfile.mkdtemp(prefix="router-state-")
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        module,
        "--no-ui",
        "--host",
        HOST,
        "--port",
        "0",
        *args,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=REPO_ROOT,
        env=full_env,
        start_new_session=True,
    )
    lines: list[str] = []
    stderr_lines: list[str] = []
    first: asyncio.Queue[str] = asyncio.Queue()
    drains = [
        asyncio.create_task(_drain(proc.stdout, lines, first)),
        asyncio.create_task(_drain(proc.stderr, stderr_lines, None)),
    ]
    router: Router | None = None
    try:
        deadline = time.monotonic() + ready_timeout
        while router is None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"router printed no 'listening' line within {ready_timeout}s; stdout={lines}")
            getter = asyncio.ensure_future(first.get())
            exited = asyncio.ensure_future(proc.wait())
            done, _ = await asyncio.wait({getter, exited}, timeout=remaining, return_when=asyncio.FIRST_COMPLETED)
            if getter in done:
                exited.cancel()
                match = LISTENING_RE.search(getter.result())
                if match:
                    router = Router(match.group(1), int(match.group(2)), proc, lines, stderr_lines)
            else:
                getter.cancel()
                exited.cancel()
                if proc.returncode is not None:
                    await asyncio.gather(*drains, return_exceptions=True)
                    raise RuntimeError(
                        f"router exited with code {proc.returncode} before listening; "
                        f"stdout={lines} stderr={stderr_lines[-20:]}"
                    )
    except BaseException:
        await stop_process(proc, grace=1.0)
        for task in drains:
            task.cancel()
        if own_state is not None:
            shutil.rmtree(own_state, ignore_errors=True)
        raise

    body_failed = False
    try:
        yield router
    except BaseException:
        body_failed = True
        raise
    finally:
        killed = False
        if proc.returncode is None:
            kill_pid(proc.pid, signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), exit_timeout)
            except TimeoutError:
                killed = True
                kill_pid(proc.pid, signal.SIGKILL)
                await proc.wait()
        router.returncode = proc.returncode
        # The pipes hit EOF once the router has exited (unless a child it leaked holds them).
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.gather(*drains, return_exceptions=True), 2.0)
        for task in drains:
            task.cancel()
        if own_state is not None:
            shutil.rmtree(own_state, ignore_errors=True)
        # Never mask the body's own failure with a shutdown complaint.
        if not body_failed:
            assert not killed, f"router did not exit within {exit_timeout}s of SIGTERM; stderr={stderr_lines[-20:]}"
            if check_exit_code:
                assert proc.returncode == 0, f"router exit code {proc.returncode}; stderr={stderr_lines[-20:]}"
