"""The stand-in side of tests/servers/fork_server.py (standard library only: it must start fast).

A backend script started with MCP_TEST_FORK_SOCKET in its environment calls `serve_forked(MAIN)`
before it imports the SDK. If the fork server answers, this process hands it its argv, cwd,
environment, stdin, stdout and stderr; a forked child serves on those pipes, and this process
stays as its stand-in under the pid its starter knows: SIGTERM, SIGINT and SIGHUP are passed on
to the child, and when the child ends this process ends the same way (its exit code, or the same
signal). If this process is killed, the fork server kills the child. With no fork server to be
reached, or with `--no-fork` in its argv (a test that pauses the process itself), `serve_forked`
returns and the script runs as a new interpreter.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sys

SOCKET_ENV = "MCP_TEST_FORK_SOCKET"


def serve_forked(main: str) -> None:
    path = os.environ.get(SOCKET_ENV)
    if not path or "--no-fork" in sys.argv:
        return
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        conn.connect(path)
    except OSError:
        conn.close()
        return
    request = {"main": main, "argv": sys.argv[1:], "cwd": os.getcwd(), "env": dict(os.environ)}
    socket.send_fds(conn, [json.dumps(request).encode() + b"\n"], [0, 1, 2])
    replies = conn.makefile("rb")
    child = int(json.loads(replies.readline())["pid"])

    def pass_on(signum: int, frame: object) -> None:
        try:
            os.kill(child, signum)
        except ProcessLookupError:
            pass

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, pass_on)
    # Only the child uses the pipes: closing them here makes their ends the child's alone.
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1):
        os.dup2(devnull, fd)
    line = replies.readline()
    code = int(json.loads(line)["code"]) if line else 1
    if code < 0:
        signal.signal(-code, signal.SIG_DFL)
        os.kill(os.getpid(), -code)
    os._exit(code)
