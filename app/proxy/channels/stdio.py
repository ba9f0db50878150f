"""A backend as a child process speaking newline-delimited JSON-RPC on stdin/stdout."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import io
import os
import signal
import sys
from collections.abc import Callable, Mapping, Sequence

from app.proxy import jsonrpc, rawjson
from app.proxy.channels.base import BackendUnavailable, Channel, ChannelListener, ChannelMode
from app.proxy.jsonrpc import Message
from app.proxy.limits import KEEP_EDGE, LOG_LINE_MAX, PIPE_CHUNK, cut_line, read_line

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


class Lines:
    """Splits a pipe's bytes into lines as they arrive and hands each one on at once.

    A line over `keep` bytes (its end included) is never held whole: only its first and last
    KEEP_EDGE bytes are kept, and `on_cut(head, tail, size)` gets them instead of `on_line`.
    Until `attach` names the receivers, what arrives is only kept.
    """

    __slots__ = ("_buf", "_early", "_head", "_over", "_size", "_tail", "keep", "on_cut", "on_end", "on_line")

    def __init__(self) -> None:
        self.keep = PIPE_CHUNK
        self.on_line: Callable[[bytes], None] | None = None
        self.on_cut: Callable[[bytes, bytes, int], None] | None = None
        self.on_end: Callable[[], None] | None = None
        self._early: list[bytes | None] = []  # None: the end, before anyone listened
        # The line being gathered. One buffer, not a list of the reads: a large line's many small
        # reads would stay in the allocator's heap after they are freed, a fourth copy at the peak.
        self._buf = bytearray()
        self._size = 0  # of the line being gathered
        self._over = False
        self._head = self._tail = b""

    def attach(
        self,
        keep: int,
        on_line: Callable[[bytes], None],
        on_cut: Callable[[bytes, bytes, int], None],
        on_end: Callable[[], None],
    ) -> None:
        self.keep, self.on_line, self.on_cut, self.on_end = keep, on_line, on_cut, on_end
        early, self._early = self._early, []
        for data in early:
            if data is None:
                self.end()
            else:
                self.feed(data)

    def feed(self, data: bytes) -> None:
        on_line = self.on_line
        if on_line is None:
            self._early.append(data)
            return
        start, n = 0, len(data)
        while start < n:
            nl = data.find(b"\n", start)
            if nl < 0:
                self._gather(memoryview(data)[start:] if start else data)
                return
            end = nl + 1
            if self._size:
                self._gather(memoryview(data)[start:end])
                self._finish()
            elif end - start > self.keep:
                self._cut(data[start : start + KEEP_EDGE], data[end - KEEP_EDGE : end], end - start)
            else:
                # The usual case: a whole message in one read (its CR, if any, goes with the LF).
                on_line(data[start : nl - 1] if nl > start and data[nl - 1] == 13 else data[start:nl])
            start = end

    def end(self) -> None:
        if self.on_line is None:
            self._early.append(None)
            return
        if self._size:
            self._finish()  # a last line without its end
        if self.on_end is not None:
            self.on_end()

    def _gather(self, piece: bytes | memoryview) -> None:
        self._size += len(piece)
        if self._over:
            self._tail = (self._tail + piece[-KEEP_EDGE:])[-KEEP_EDGE:]
            return
        self._buf += piece
        if self._size > self.keep:
            buf = self._buf
            self._head, self._tail, self._buf, self._over = (
                bytes(buf[:KEEP_EDGE]),
                bytes(buf[-KEEP_EDGE:]),
                bytearray(),
                True,
            )

    def _finish(self) -> None:
        size, buf, over, head, tail = self._size, self._buf, self._over, self._head, self._tail
        self._size, self._buf, self._over, self._head, self._tail = 0, bytearray(), False, b"", b""
        if over:
            self._cut(head, tail, size)
            return
        if buf.endswith(b"\n"):
            del buf[-1:]  # the end goes here, off the buffer: off the line it would copy it again
            if buf.endswith(b"\r"):
                del buf[-1:]
        line = bytes(buf)
        # The buffer goes before the line is handed on: held through its parsing, it would be a
        # fourth copy of a large message at the peak.
        del buf
        assert self.on_line is not None
        self.on_line(line)

    def _cut(self, head: bytes, tail: bytes, size: int) -> None:
        if self.on_cut is not None:
            self.on_cut(head, tail, size)


class _StdoutProtocol(asyncio.Protocol):
    """The read end of the backend's stdout: its bytes go to `Lines` in the callback that brings
    them (no reader task to wake per message, no stream buffer to copy through)."""

    def __init__(self, lines: Lines) -> None:
        self.lines = lines

    def data_received(self, data: bytes) -> None:
        self.lines.feed(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self.lines.end()


class _StdinProtocol(asyncio.BaseProtocol):
    """The write end of the backend's stdin, with the flow control `drain` waits on."""

    def __init__(self) -> None:
        self.paused = False
        self.closed = False
        self._waiters: list[asyncio.Future[None]] = []

    def pause_writing(self) -> None:
        self.paused = True

    def resume_writing(self) -> None:
        self.paused = False
        self._wake()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._wake()

    def _wake(self) -> None:
        waiters, self._waiters = self._waiters, []
        for w in waiters:
            if not w.done():
                w.set_result(None)

    async def drain(self) -> None:
        while self.paused and not self.closed:
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            await waiter
        if self.closed:
            raise ConnectionResetError("the pipe is closed")


def _stdio_pipes() -> tuple[int, int, io.FileIO, io.FileIO]:
    """The child's stdin and stdout fds, and the parent's ends of them as files.

    Files from here on: closing one twice (an error path, then its transport) is harmless,
    closing a bare fd twice is not.
    """
    # Not inheritable: the child gets only the ends it is given. The default size (64 KiB) is
    # kept: a larger one crosses a large message no faster here, and counts against the user's
    # pipe allowance (fs.pipe-user-pages-soft) for every session's process.
    stdin_r, stdin_w = os.pipe()
    stdout_r, stdout_w = os.pipe()
    return stdin_r, stdout_w, io.FileIO(stdin_w, "wb"), io.FileIO(stdout_r, "rb")


class Pipes:
    """A started process with its stdin and stdout as plain pipes (not the event loop's socket
    pairs, which cost more per message on both sides), stdout handed to `Lines` as it comes."""

    def __init__(
        self,
        proc: asyncio.subprocess.Process,
        stdin: asyncio.WriteTransport,
        stdin_flow: _StdinProtocol,
        stdout: asyncio.ReadTransport,
    ) -> None:
        self.proc = proc
        self.stdin = stdin
        self.stdin_flow = stdin_flow
        self.stdout = stdout


async def spawn(
    command: str, args: Sequence[str], env: Mapping[str, str] | None, cwd: str | None, lines: Lines
) -> Pipes:
    """Start `command`; its stdout goes to `lines`, its stderr to `proc.stderr`."""
    full_env = dict(os.environ)
    if env:
        full_env.update(env)
    full_env.setdefault("PYTHONUNBUFFERED", "1")
    loop = asyncio.get_running_loop()
    stdin_r, stdout_w, stdin_file, stdout_file = _stdio_pipes()
    try:
        try:
            proc = await asyncio.create_subprocess_exec(
                command,
                *args,
                stdin=stdin_r,
                stdout=stdout_w,
                stderr=asyncio.subprocess.PIPE,
                env=full_env,
                cwd=cwd or None,
                limit=PIPE_CHUNK,
                preexec_fn=_child_setup,
            )
        finally:
            os.close(stdin_r)  # the child's ends: with the parent's copies closed, its exit is EOF
            os.close(stdout_w)
    except OSError as exc:
        stdin_file.close()
        stdout_file.close()
        raise BackendUnavailable(f"cannot start {command!r}: {exc.strerror or exc}") from None
    # Shielded: a connect cancelled half-way (a restart superseded by the next command) may already
    # own its pipe and have closed it, so the pipes could not be told apart from fds reused since.
    connecting = asyncio.ensure_future(_connect_pipes(loop, stdin_file, stdout_file, lines))
    try:
        stdin, stdin_flow, stdout = await asyncio.shield(connecting)
    except BaseException:
        with contextlib.suppress(BaseException):
            stdin, stdin_flow, stdout = await connecting  # quick, and never cancelled: then closed
            stdin.close()
            stdout.close()
        await terminate(proc)
        raise
    return Pipes(proc, stdin, stdin_flow, stdout)


async def _connect_pipes(
    loop: asyncio.AbstractEventLoop, stdin_file: io.FileIO, stdout_file: io.FileIO, lines: Lines
) -> tuple[asyncio.WriteTransport, _StdinProtocol, asyncio.ReadTransport]:
    """The child's stdin and stdout as transports; on failure every pipe end is closed once."""
    try:
        stdin, stdin_flow = await loop.connect_write_pipe(_StdinProtocol, stdin_file)
    except BaseException:
        stdin_file.close()
        stdout_file.close()
        raise
    try:
        stdout, _ = await loop.connect_read_pipe(lambda: _StdoutProtocol(lines), stdout_file)
    except BaseException:
        stdin.close()
        stdout_file.close()
        raise
    return stdin, stdin_flow, stdout


async def terminate(
    proc: asyncio.subprocess.Process, stdin: asyncio.WriteTransport | None = None, grace: float = 2.0
) -> None:
    """End a child and its process group: EOF on stdin, then SIGTERM, then SIGKILL."""
    if stdin is not None and not stdin.is_closing():
        stdin.close()
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


def _line(msg: Message) -> bytes:
    """A message's bytes as stdio frames them: one message per line."""
    raw = msg.raw
    return rawjson.one_line(raw) if b"\n" in raw or b"\r" in raw else raw


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
        self._pipes: Pipes | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._write_lock = asyncio.Lock()
        self._on_exit = on_exit
        self._detached = False  # closed: what the pipe still brings goes to nobody
        self._stdout_ended = asyncio.Event()

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    async def open(self) -> None:
        lines = Lines()
        pipes = await spawn(self.command, self.args, self.env, self.cwd, lines)
        if self.closing:
            # Closed while the process was being started (its backend disabled or removed): a
            # process that nobody will ever close must not be left behind.
            await terminate(pipes.proc, pipes.stdin)
            pipes.stdout.close()
            raise BackendUnavailable(f"backend '{self.backend}' was stopped while its process started")
        self._pipes = pipes
        self.proc = pipes.proc
        self.alive = True
        self._tasks = [asyncio.create_task(self._watch_exit()), asyncio.create_task(self._read_stderr())]
        # Lines arrive in the pipe's own callback from here on: a message is handed on in the
        # callback that brings it, not in a reader task's turn later.
        lines.attach(self.max_message + 2, self._on_line, self._on_cut, self._on_stdout_end)  # + its CRLF

    def _on_line(self, line: bytes) -> None:
        if self._detached:
            return
        if line[-1:].isspace() or line[:1].isspace():
            line = line.strip()  # a CR before the end, or blanks around the message
            if not line:
                return
        elif not line:
            return
        try:
            messages, _ = jsonrpc.parse_body(line)
        except jsonrpc.ProtocolError as exc:
            self.listener.on_backend_log(
                self, f"backend wrote non-JSON-RPC to stdout ({exc.message}): {line[:200]!r}", garbage=True
            )
            return
        for m in messages:
            self._hand_on(m)

    def _on_cut(self, head: bytes, tail: bytes, size: int) -> None:
        if self._detached:
            return
        err = self.oversized(size, None, head, tail.rstrip())
        if err is not None:
            self._hand_on(err)

    def _hand_on(self, msg: Message) -> None:
        try:
            self.listener.on_backend_message(self, msg, None, None)
        except Exception as exc:
            # This runs in the pipe's callback: a fault in handling one message must not close
            # the pipe (the transport would) or lose the messages after it in the same read.
            asyncio.get_running_loop().call_exception_handler(
                {"message": f"{self.describe}: handling a message failed", "exception": exc}
            )

    def _on_stdout_end(self) -> None:
        self._stdout_ended.set()

    async def _watch_exit(self) -> None:
        assert self.proc is not None
        await self._stdout_ended.wait()
        code = await self.proc.wait()
        if self._on_exit is not None:
            self._on_exit(self, code)
        self.lost(f"process {self.proc.pid} exited with code {code}")

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

    def can_send_now(self) -> bool:
        """Whether `send_now` would write at once: the process is running and its pipe has taken
        everything written before (nothing queued, no one waiting for it to drain)."""
        pipes = self._pipes
        return (
            self.alive
            and pipes is not None
            and not pipes.stdin.is_closing()
            and not self._write_lock.locked()
            and not pipes.stdin.get_write_buffer_size()
        )

    def send_now(self, msg: Message) -> None:
        """`send` without a task, after `can_send_now`: the line is written to the pipe at once.

        A pipe that breaks in the write loses the channel, as in `send`: what was in flight on it,
        this request among them, is failed or held for a resend by the session.
        """
        pipes = self._pipes
        assert pipes is not None
        pipes.stdin.writelines((_line(msg), b"\n"))
        if pipes.stdin.is_closing():
            self.lost(f"process {pipes.proc.pid} stopped reading: broken pipe")

    async def send(self, msg: Message, headers: Mapping[str, str] | None = None) -> None:
        pipes = self._pipes
        if not self.alive or pipes is None or pipes.stdin.is_closing():
            reason = f"{self.describe} is not running"
            self.lost(reason)
            raise BackendUnavailable(reason)
        raw = _line(msg)
        stdin = pipes.stdin
        try:
            if not self._write_lock.locked():
                stdin.writelines((raw, b"\n"))
                if stdin.is_closing():
                    raise ConnectionResetError("broken pipe")  # the write failed at once
                if not stdin.get_write_buffer_size():
                    return  # the usual case: it went to the pipe at once, nothing to wait for
                async with self._write_lock:
                    await pipes.stdin_flow.drain()
                return
            # Someone waits for the pipe to take what it has: queue behind them, in order.
            async with self._write_lock:
                stdin.writelines((raw, b"\n"))
                if stdin.is_closing():
                    raise ConnectionResetError("broken pipe")
                await pipes.stdin_flow.drain()
        except (ConnectionError, OSError) as exc:
            reason = f"process {pipes.proc.pid} stopped reading: {exc}"
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
        pipes = self._pipes
        if pipes is not None:
            if pipes.proc.returncode is None:
                await terminate(pipes.proc, pipes.stdin)
            pipes.stdin.close()
            pipes.stdout.close()  # a grandchild may still hold the other end
        self._detached = True
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(BaseException):
                await t
