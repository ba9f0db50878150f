"""Fixture backends forked from a process with the SDK already imported.

`tests/servers/fork_server.py` says why (the SDK's import is most of a backend's start) and how.
One fork server runs per test process, started with the session (tests/conftest.py) and ended
with that process. An HTTP fixture a test starts is a child of it with a pid of its own, stopped by
that pid like every other process the suite starts. A stdio fixture or workbench server that a
router starts finds the fork server's socket in its environment (`SOCKET_ENV`) and is served by a
fork too. `MCP_TEST_FORK=0` in the environment starts every backend as a new interpreter instead.
"""

from __future__ import annotations

import asyncio
import atexit
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import IO, Any

REPO_ROOT = Path(__file__).resolve().parents[2]
FORK_SERVER_PATH = REPO_ROOT / "tests" / "servers" / "fork_server.py"
SOCKET_ENV = "MCP_TEST_FORK_SOCKET"  # the name tests/servers/fork_client.py reads


def forking_enabled() -> bool:
    return os.environ.get("MCP_TEST_FORK", "1") != "0"


def without_forks() -> None:
    """For the benchmarks: backends start as users start them, as new interpreters, in this process
    and in every process it starts (a fork's speed is not what a benchmark's baseline should be)."""
    os.environ["MCP_TEST_FORK"] = "0"
    os.environ.pop(SOCKET_ENV, None)


class ForkServer:
    """The fork server process of this test process, and its one-line questions and answers."""

    def __init__(self) -> None:
        self._lock = threading.Lock()  # the sync runners and the event loop may both start fixtures
        self._dir = tempfile.mkdtemp(prefix="mcp-forks-")  # short: a socket's path has 107 bytes at most
        self.socket_path = os.path.join(self._dir, "fork.sock")
        self.popen = subprocess.Popen(
            [sys.executable, str(FORK_SERVER_PATH), self.socket_path],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            cwd=REPO_ROOT,
            start_new_session=True,
        )
        # Its first line says its socket is listening (the SDK's import takes a second or so).
        stdout: IO[bytes] | None = self.popen.stdout
        assert stdout is not None
        if not stdout.readline():
            raise RuntimeError(f"the fixture fork server ended at its start: code {self.popen.wait()}")

    def _ask(self, request: dict[str, Any]) -> dict[str, Any]:
        stdin: IO[bytes] | None = self.popen.stdin
        stdout: IO[bytes] | None = self.popen.stdout
        assert stdin is not None and stdout is not None
        with self._lock:
            stdin.write(json.dumps(request).encode() + b"\n")
            stdin.flush()
            line = stdout.readline()
        if not line:
            raise RuntimeError(f"the fixture fork server (pid {self.popen.pid}) ended: code {self.popen.poll()}")
        answer: dict[str, Any] = json.loads(line)
        return answer

    def spawn(self, argv: list[str]) -> ForkedProcess:
        pid = int(self._ask({"spawn": argv, "env": dict(os.environ)})["pid"])
        return ForkedProcess(self, pid)

    def exit_code(self, pid: int) -> int:
        """The code of a child that has ended (its pidfd said so): asyncio's convention, -SIG if killed."""
        code = self._ask({"wait": pid})["code"]
        return int(code) if code is not None else -1

    def close(self) -> None:
        # EOF tells the fork server to kill what it still runs and exit; by pid if it does not.
        if self.popen.stdin is not None:
            self.popen.stdin.close()
        try:
            self.popen.wait(5)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait()
        shutil.rmtree(self._dir, ignore_errors=True)


class ForkedProcess:
    """A forked fixture, with what `stop_process` uses of an asyncio subprocess: pid, returncode, wait().

    Its end is seen through a pidfd (it is not this process's child, so there is nothing to wait()
    on here); its exit code comes from the fork server, which reaped it."""

    def __init__(self, server: ForkServer, pid: int) -> None:
        self.pid = pid
        self._server = server
        self._code: int | None = None
        self._waiting = 0
        try:
            self._pidfd = os.pidfd_open(pid)
        except ProcessLookupError:  # ended (bad arguments, a port in use) and reaped already
            self._pidfd = -1
            self._code = server.exit_code(pid)

    def _collect(self) -> int:
        if self._code is None:
            self._code = self._server.exit_code(self.pid)
        if not self._waiting and self._pidfd >= 0:
            os.close(self._pidfd)
            self._pidfd = -1
        return self._code

    @property
    def returncode(self) -> int | None:
        if self._code is None and select.select([self._pidfd], [], [], 0)[0]:  # ended, not yet asked
            self._collect()
        return self._code

    def poll(self) -> int | None:
        """As `subprocess.Popen.poll`, for the sync runners."""
        return self.returncode

    def stop_blocking(self, grace: float) -> int:
        """As `procs.stop_popen`: SIGTERM by pid, SIGKILL after `grace` s; the exit code."""
        if self.returncode is None:
            kill_pid(self.pid, signal.SIGTERM)
            if not select.select([self._pidfd], [], [], grace)[0]:
                kill_pid(self.pid, signal.SIGKILL)
                select.select([self._pidfd], [], [])
        return self._collect()

    async def wait(self) -> int:
        if self._code is None:
            loop = asyncio.get_running_loop()
            ended: asyncio.Future[None] = loop.create_future()

            def readable() -> None:
                if not ended.done():
                    ended.set_result(None)

            pidfd = self._pidfd
            loop.add_reader(pidfd, readable)
            self._waiting += 1
            try:
                await ended
            finally:
                self._waiting -= 1
                loop.remove_reader(pidfd)
        return self._collect()


def kill_pid(pid: int, sig: int = signal.SIGTERM) -> bool:
    """Send `sig` to one process by pid; False if it no longer exists. (Here, not in procs.py,
    which imports this module: procs re-exports it.)"""
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        return False
    return True


_server: ForkServer | None = None


def fork_server() -> ForkServer:
    global _server
    if _server is None or _server.popen.poll() is not None:
        _server = ForkServer()
        atexit.register(_server.close)
    return _server
