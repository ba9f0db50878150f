"""`mcp-router-tui` as a user runs it: in a real pseudo-terminal, with the demo backend, an SDK
client connected, then quit with `q` or SIGTERM; nothing may be left running. A port in use is
refused before the UI starts."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import re
import signal
import socket
import struct
import subprocess
import sys
import termios
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.support.clients import connect
from tests.support.procs import HOST, REPO_ROOT, pid_alive, stop_process, wait_for

LISTENING = re.compile(r"listening on (http://\S+)")


@dataclass
class TuiProcess:
    proc: asyncio.subprocess.Process
    master: int
    url: str = ""
    screen: bytearray = field(default_factory=bytearray)

    def type(self, keys: str) -> None:
        os.write(self.master, keys.encode())


def log_file() -> Path:
    # conftest points XDG_STATE_HOME into the test's temporary folder; platformdirs puts logs there.
    from platformdirs import user_log_path

    return user_log_path("mcp-dev-router") / "mcp-router-tui.log"


@contextlib.asynccontextmanager
async def run_tui(*args: str) -> AsyncIterator[TuiProcess]:
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 140, 0, 0))
    env = {**os.environ, "TERM": "xterm-256color", "COLUMNS": "140", "LINES": "40"}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "app",
        *args,
        stdin=slave,
        stdout=slave,
        stderr=slave,
        cwd=REPO_ROOT,
        env=env,
        start_new_session=True,
    )
    os.close(slave)
    tui = TuiProcess(proc, master)
    loop = asyncio.get_running_loop()

    def drain() -> None:
        # The terminal's output must be read, or the app blocks on a full pty buffer.
        try:
            tui.screen += os.read(master, 65536)
        except OSError:
            loop.remove_reader(master)

    loop.add_reader(master, drain)
    try:
        match = await wait_for(
            lambda: LISTENING.search(log_file().read_text()) if log_file().exists() else None,
            20,
            message="the TUI's log says where it listens",
        )
        tui.url = match.group(1)
        yield tui
    finally:
        loop.remove_reader(master)
        await stop_process(proc)
        os.close(master)


async def demo_pids(url: str) -> list[int]:
    async with httpx.AsyncClient() as http:
        status = (await http.get(f"{url}/status")).json()
    return [pid for b in status["backends"] for pid in b["pids"]]


@pytest.mark.parametrize("how", ["q", "ctrl+c", "sigterm"])
async def test_quit_ends_everything(how: str) -> None:
    async with run_tui("--demo", "--port", "0") as tui:
        pids = await wait_for(lambda: demo_pids(tui.url), 20, message="demo backend process")
        async with connect(f"{tui.url}/mcp", "streamable-handshake") as client:
            await client.call_tool("echo", {"text": "through the TUI"})
        await wait_for(lambda: b"tools/call echo" in tui.screen, message="the call on screen")
        if how == "q":
            tui.type("q")
        elif how == "ctrl+c":
            tui.type("\x03")  # the terminal is raw while the UI runs: ctrl+c is a key, not SIGINT
        else:
            tui.proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(tui.proc.wait(), 15) == 0
        await wait_for(lambda: not any(pid_alive(p) for p in pids), message="demo processes gone")
        assert "stopped" in log_file().read_text()


def test_port_in_use_is_refused_before_the_ui() -> None:
    with socket.create_server((HOST, 0)) as taken:
        port = taken.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "-m", "app", "--demo", "--port", str(port)],
            capture_output=True,
            cwd=REPO_ROOT,
            timeout=30,
            stdin=subprocess.DEVNULL,
        )
    assert done.returncode == 1
    assert f"cannot listen on {HOST}:{port}" in done.stderr.decode()
    assert b"\x1b[" not in done.stdout + done.stderr  # the UI never started
