"""Starts fixture backends by forking a process that has already imported the MCP SDK.

    python tests/servers/fork_server.py SOCKET   # one per test worker (tests/support/forks.py)

Importing the SDK builds some 550 pydantic models: about 1.3 s of CPU, which every fixture and
workbench backend paid again at its start, some 300 times a suite run on a 2-core machine. A
forked child is serving in tens of milliseconds instead. Each child is a real process with a pid
and a session of its own, running `fixture.main` or `workbench.main` with the argv it was given.

Two kinds of callers:
- The test worker, on this process's stdin and stdout, one JSON object a line, for the HTTP
  fixtures it starts itself (tests stop them by their pid):
    {"spawn": [ARGV...], "env": {...}}  ->  {"pid": N}
    {"wait": N}                         ->  {"code": C}  once child N has ended (C as asyncio's
                                                         returncode: -SIG if a signal ended it)
- A stdio backend the router (or a test) started as `python tests/servers/fixture.py ...`: that
  process finds SOCKET in its environment and becomes a stand-in (`fork_client.py`). It sends its
  argv, cwd and environment with its stdin, stdout and stderr (SCM_RIGHTS); the child serves on
  those very pipes. The stand-in gets {"pid": N}, then {"code": C} when the child ends, and ends
  the same way. If the stand-in dies first (killed by the router or a test), the child is killed.

At EOF on stdin (the test worker is gone) every child still alive is killed and this process exits.
"""

from __future__ import annotations

import ctypes
import gc
import importlib.util
import json
import os
import selectors
import signal
import socket
import struct
import sys
import traceback
from pathlib import Path
from types import ModuleType
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))  # as for `python fixture.py`: its imports

# uvicorn's parts that the servers import at run time, imported once here.
import uvicorn.loops.auto
import uvicorn.protocols.http.auto  # noqa: F401

_PR_SET_PDEATHSIG = 1
try:
    _libc: ctypes.CDLL | None = ctypes.CDLL(None, use_errno=True)
except OSError:
    _libc = None

LOADING = "__fork_server__"
"""Set in a script's globals while this process loads it: its `if __name__ == "__main__"` blocks
then run nothing (see fixture.py)."""


def _load_script(path: Path) -> ModuleType:
    """Load a server script as `python SCRIPT` would: as module `__main__`, which is what the SDK
    puts in the keys of its resolvers (`__main__:_ask_llm`, which tests compare), without running it."""
    spec = importlib.util.spec_from_file_location("__main__", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    module.__dict__[LOADING] = True
    ours = sys.modules["__main__"]
    sys.modules["__main__"] = module  # where its classes' annotations are resolved while it loads
    try:
        spec.loader.exec_module(module)
    finally:
        sys.modules["__main__"] = ours
    return module


HERE = Path(__file__).resolve().parent
SCRIPTS: dict[str, ModuleType] = {name: _load_script(HERE / f"{name}.py") for name in ("fixture", "workbench")}


class ForkServer:
    def __init__(self, path: str) -> None:
        self.sel = selectors.DefaultSelector()
        self.children: set[int] = set()
        self.ended: dict[int, int] = {}  # the worker's children that ended, until it asks
        self.waiting: set[int] = set()  # the worker asked; answer when they end
        self.stand_ins: dict[int, socket.socket] = {}  # child pid -> its stand-in's connection
        self.child_of: dict[socket.socket, int] = {}
        self.wake_r, self.wake_w = socket.socketpair()  # both kept: a collected one would free its fd
        self.wake_r.setblocking(False)
        self.wake_w.setblocking(False)
        signal.set_wakeup_fd(self.wake_w.fileno())
        signal.signal(signal.SIGCHLD, lambda signum, frame: None)  # the wakeup fd does the work
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a ^C in the terminal is the test runner's
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(path)
        self.listener.listen(64)
        self.sel.register(self.listener, selectors.EVENT_READ, self._accept)
        self.sel.register(self.wake_r, selectors.EVENT_READ, self._reap)
        os.set_blocking(sys.stdin.fileno(), True)
        self.sel.register(sys.stdin.fileno(), selectors.EVENT_READ, self._worker)
        _answer({"ready": path})  # the socket is there: stand-ins started from now on find it
        self.stdin = os.fdopen(sys.stdin.fileno(), "rb", buffering=0, closefd=False)
        self.pending = b""
        self.running = True

    def serve(self) -> None:
        while self.running:
            for key, _ in self.sel.select():
                key.data(key.fileobj)
        for pid in list(self.children):
            _kill(pid, signal.SIGKILL)

    # ------------------------------------------------------------------ the test worker
    def _worker(self, _: object) -> None:
        data = self.stdin.read(65536)
        if not data:
            self.running = False
            return
        self.pending += data
        while b"\n" in self.pending:
            line, self.pending = self.pending.split(b"\n", 1)
            request = json.loads(line)
            if "spawn" in request:
                pid = self._fork("fixture", request["spawn"], request["env"], None, None, None)
                _answer({"pid": pid})
            else:
                pid = request["wait"]
                if pid in self.ended or pid not in self.children:
                    _answer({"code": self.ended.pop(pid, None)})
                else:
                    self.waiting.add(pid)

    # ------------------------------------------------------------------ stand-ins
    def _accept(self, _: object) -> None:
        conn, _addr = self.listener.accept()
        data, fds, _flags, _ = socket.recv_fds(conn, 1 << 20, 3)
        while data and not data.endswith(b"\n"):
            more = conn.recv(1 << 20)
            if not more:
                break
            data += more
        try:
            request = json.loads(data)
            if len(fds) != 3:
                raise ValueError(f"expected stdin, stdout and stderr, got {len(fds)} descriptors")
        except ValueError:
            for fd in fds:
                os.close(fd)
            conn.close()
            return
        # The child answers to the pid its starter knows: the stand-in's (whoami, in the tests).
        creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
        stand_in = struct.unpack("3i", creds)[0]
        pid = self._fork(request["main"], request["argv"], request["env"], request["cwd"], fds, stand_in)
        for fd in fds:
            os.close(fd)
        self.stand_ins[pid] = conn
        self.child_of[conn] = pid
        conn.sendall(json.dumps({"pid": pid}).encode() + b"\n")
        self.sel.register(conn, selectors.EVENT_READ, self._stand_in_gone)

    def _stand_in_gone(self, conn: Any) -> None:
        # A stand-in never writes after its request: readable means it is gone.
        pid = self.child_of.pop(conn)
        self.stand_ins.pop(pid, None)
        self.sel.unregister(conn)
        conn.close()
        if pid in self.children:
            _kill(pid, signal.SIGKILL)

    # ------------------------------------------------------------------ children
    def _fork(
        self, main: str, argv: list[str], env: dict[str, str], cwd: str | None, fds: list[int] | None, known: int | None
    ) -> int:
        pid = os.fork()
        if pid == 0:
            _run_child(SCRIPTS[main], argv, env, cwd, fds, known)
        self.children.add(pid)
        return pid

    def _reap(self, _: object) -> None:
        try:
            while self.wake_r.recv(4096):
                pass
        except BlockingIOError:
            pass
        while self.children:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            self.children.discard(pid)
            code = os.waitstatus_to_exitcode(status)
            conn = self.stand_ins.pop(pid, None)
            if conn is not None:
                self.child_of.pop(conn, None)
                self.sel.unregister(conn)
                try:
                    conn.sendall(json.dumps({"code": code}).encode() + b"\n")
                except OSError:
                    pass
                conn.close()
            elif pid in self.waiting:
                self.waiting.discard(pid)
                _answer({"code": code})
            else:
                self.ended[pid] = code


def _run_child(
    script: ModuleType, argv: list[str], env: dict[str, str], cwd: str | None, fds: list[int] | None, known: int | None
) -> None:
    code = 1
    try:
        signal.set_wakeup_fd(-1)
        if _libc is not None:  # ended with the fork server, as its children end with a router
            _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)  # as a new interpreter has it
        os.setsid()
        os.environ.clear()
        os.environ.update(env)
        if cwd is not None:
            os.chdir(cwd)
        if fds is None:  # the worker's fixture: no stdin, prints to stderr (stdout is the answer pipe)
            os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
            os.dup2(2, 1)
        else:
            for target, fd in enumerate(fds):
                os.dup2(fd, target)
        os.closerange(3, 256)  # nothing of the fork server's: its pipes and sockets end with it
        sys.modules["__main__"] = script
        sys.argv = [str(script.__file__), *argv]
        if known is not None:
            script.__dict__["KNOWN_PID"] = known
        script.main(argv)
        code = 0
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else 1
    except BaseException:
        traceback.print_exc()
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


def _answer(obj: dict[str, Any]) -> None:
    os.write(sys.stdout.fileno(), json.dumps(obj).encode() + b"\n")


def _kill(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


if __name__ == "__main__":
    # The children's collections leave what is loaded here alone: its pages stay shared, not copied.
    gc.freeze()
    ForkServer(sys.argv[1]).serve()
