"""A backend as a child process speaking newline-delimited JSON-RPC on stdin/stdout."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import signal
import sys
from collections.abc import Callable, Mapping, Sequence

from app.proxy import jsonrpc, rawjson
from app.proxy.channels.base import BackendUnavailable, Channel, ChannelListener, ChannelMode
from app.proxy.jsonrpc import Message
from app.proxy.limits import LOG_LINE_MAX, PIPE_CHUNK, Line, cut_line, read_line

_PR_SET_PDEATHSIG = 1

try:
    _libc: ctypes.CDLL | None = ctypes.CDLL(None, use_errno=True) if sys.platform == "linux" else None
except OSError:  # pragma: no cover - no libc to speak of
    _libc = None


def _child_setup() -> None:
    # Runs in the child between fork and exec. Its own session/process group lets the router end
    # the whole tree; PDEATHSIG ends the child even when the router is killed with SIGKILL.
    os.setsid()
    if _libc is not None:
        _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


async def spawn(
    command: str, args: Sequence[str], env: Mapping[str, str] | None, cwd: str | None
) -> asyncio.subprocess.Process:
    full_env = dict(os.environ)
    if env:
        full_env.update(env)
    full_env.setdefault("PYTHONUNBUFFERED", "1")
    try:
        return await asyncio.create_subprocess_exec(
            command,
            *args,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=full_env,
            cwd=cwd or None,
            limit=PIPE_CHUNK,
            preexec_fn=_child_setup,
        )
    except OSError as exc:
        raise BackendUnavailable(f"cannot start {command!r}: {exc.strerror or exc}") from None


async def terminate(proc: asyncio.subprocess.Process, grace: float = 2.0) -> None:
    """End a child and its process group: EOF on stdin, then SIGTERM, then SIGKILL."""
    if proc.stdin is not None and not proc.stdin.is_closing():
        proc.stdin.close()
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(proc.wait(), grace / 2)
    for sig in (signal.SIGTERM, signal.SIGKILL):
        if proc.returncode is not None:
            break
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, sig)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(proc.wait(), grace / 2)
    # The group may outlive its leader (a shell wrapper's children): make sure it is gone.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


class StdioChannel(Channel):
    transport = "stdio"

    def __init__(
        self,
        backend: str,
        listener: ChannelListener,
        mode: ChannelMode,
        command: str,
        args: Sequence[str],
        env: Mapping[str, str] | None = None,
        cwd: str | None = None,
        on_exit: Callable[[StdioChannel, int | None], None] | None = None,
    ) -> None:
        super().__init__(backend, listener, mode)
        self.command = command
        self.args = list(args)
        self.env = env
        self.cwd = cwd
        self.proc: asyncio.subprocess.Process | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._write_lock = asyncio.Lock()
        self._on_exit = on_exit

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    async def open(self) -> None:
        proc = await spawn(self.command, self.args, self.env, self.cwd)
        if self.closing:
            # Closed while the process was being started (its backend disabled or removed): a
            # process that nobody will ever close must not be left behind.
            await terminate(proc)
            raise BackendUnavailable(f"backend '{self.backend}' was stopped while its process started")
        self.proc = proc
        self.alive = True
        self._tasks = [asyncio.create_task(self._read_stdout()), asyncio.create_task(self._read_stderr())]

    async def _read_stdout(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        stdout = self.proc.stdout
        while True:
            try:
                got = await read_line(stdout, self.max_message + 2)  # + its CRLF
            except (ConnectionError, OSError):
                break
            if got is None:
                break
            self._take_line(got)
            # Not kept while the next line is awaited: a quiet backend would otherwise hold its
            # last line and message (128 MB after a 64 MiB answer) until it writes again.
            got = None
        code = await self.proc.wait()
        if self._on_exit is not None:
            self._on_exit(self, code)
        self.lost(f"process {self.proc.pid} exited with code {code}")

    def _take_line(self, got: Line) -> None:
        if got.cut:
            err = self.oversized(got.size, None, got.data, got.tail.rstrip())
            if err is not None:
                self.listener.on_backend_message(self, err, None, None)
            return
        line = got.data.strip()
        if not line:
            return
        try:
            messages, _ = jsonrpc.parse_body(line)
        except jsonrpc.ProtocolError as exc:
            self.listener.on_backend_log(
                self, f"backend wrote non-JSON-RPC to stdout ({exc.message}): {line[:200]!r}", garbage=True
            )
            return
        for m in messages:
            self.listener.on_backend_message(self, m, None, None)

    async def _read_stderr(self) -> None:
        assert self.proc is not None and self.proc.stderr is not None
        stderr = self.proc.stderr
        while True:
            try:
                got = await read_line(stderr, LOG_LINE_MAX)
            except (ConnectionError, OSError):
                return
            if got is None:
                return
            text = got.data.decode("utf-8", "replace").rstrip()
            if got.cut:
                text = cut_line(text, size=got.size)
            if text:
                self.listener.on_backend_log(self, text)

    async def send(self, msg: Message, headers: Mapping[str, str] | None = None) -> None:
        proc = self.proc
        if not self.alive or proc is None or proc.stdin is None or proc.stdin.is_closing():
            reason = f"{self.describe} is not running"
            self.lost(reason)
            raise BackendUnavailable(reason)
        raw = msg.raw
        if b"\n" in raw or b"\r" in raw:
            raw = rawjson.one_line(raw)  # stdio framing: one message per line
        try:
            async with self._write_lock:
                proc.stdin.write(raw + b"\n")
                await proc.stdin.drain()
        except (ConnectionError, OSError) as exc:
            reason = f"process {proc.pid} stopped reading: {exc}"
            self.lost(reason)
            raise BackendUnavailable(reason) from None

    def cancel(self, request_id: jsonrpc.RequestId) -> None:
        if self.alive:
            msg = jsonrpc.notification(
                "notifications/cancelled", {"requestId": request_id, "reason": "client closed the stream"}
            )
            task = asyncio.ensure_future(self.send(msg))
            task.add_done_callback(lambda t: t.cancelled() or t.exception())

    async def close(self) -> None:
        self.closing = True
        self.alive = False
        if self.proc is not None and self.proc.returncode is None:
            await terminate(self.proc)
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(BaseException):
                await t
