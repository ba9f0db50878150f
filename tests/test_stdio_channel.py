"""The stdio channel's own framing: lines split as they arrive, bounded, in order, over real pipes.

The router-level behaviour (exact bytes, bounds, supervision, resend) is covered end to end by
test_exact_bytes, test_bounds, test_large_messages, test_supervision and test_resend; here the
channel talks to a real process (tests/servers/tiny_stdio.py) with the session's place taken by a
listener that only records what it hears.
"""

from __future__ import annotations

import asyncio
import sys

import orjson
import pytest

from app.proxy import jsonrpc
from app.proxy.channels.base import BackendUnavailable, Channel
from app.proxy.channels.stdio import Lines, StdioChannel
from app.proxy.jsonrpc import Message, RequestId
from app.proxy.limits import KEEP_EDGE
from tests.support.procs import REPO_ROOT, pid_alive, wait_for

TINY = [sys.executable, "-S", str(REPO_ROOT / "tests" / "servers" / "tiny_stdio.py")]


def _split(chunks: list[bytes], keep: int) -> list[tuple[str, bytes, bytes, int]]:
    got: list[tuple[str, bytes, bytes, int]] = []
    lines = Lines()
    for chunk in chunks[:1]:
        lines.feed(chunk)  # before anyone listens: kept, then handed on at `attach`
    lines.attach(
        keep,
        lambda line: got.append(("line", line, b"", len(line))),
        lambda head, tail, size: got.append(("cut", head, tail, size)),
        lambda: got.append(("end", b"", b"", 0)),
    )
    for chunk in chunks[1:]:
        lines.feed(chunk)
    lines.end()
    return got


@pytest.mark.parametrize("step", [1, 7, 4096, 1 << 20])
def test_lines_are_the_same_whatever_the_chunking(step: int) -> None:
    keep = 3 * KEEP_EDGE
    fits = b"F" * (keep - 1)  # with its LF: exactly `keep`
    long_line = b"L" * KEEP_EDGE + b"x" * (2 * keep) + b"T" * KEEP_EDGE
    data = b"short\n" + fits + b"\n" + b"crlf\r\n" + b"\n" + long_line + b"\n" + b"last, no end"
    got = _split([data[i : i + step] for i in range(0, len(data), step)], keep)
    assert got == [
        ("line", b"short", b"", 5),
        ("line", fits, b"", len(fits)),
        ("line", b"crlf", b"", 4),
        ("line", b"", b"", 0),
        ("cut", b"L" * KEEP_EDGE, b"T" * (KEEP_EDGE - 1) + b"\n", len(long_line) + 1),
        ("line", b"last, no end", b"", 12),
        ("end", b"", b"", 0),
    ]


class _Heard:
    def __init__(self) -> None:
        self.messages: asyncio.Queue[Message] = asyncio.Queue()
        self.logs: list[str] = []
        self.lost: list[str] = []
        self.gone = asyncio.Event()
        self.logged = asyncio.Event()

    def on_backend_message(self, channel: Channel, msg: Message, related: RequestId | None, status: int | None) -> None:
        self.messages.put_nowait(msg)

    def on_channel_lost(self, channel: Channel, reason: str) -> None:
        self.lost.append(reason)
        self.gone.set()

    def on_backend_log(self, channel: Channel, line: str, garbage: bool = False) -> None:
        self.logs.append(line)
        self.logged.set()


async def test_a_real_process_answers_in_order_large_and_small_and_ends_with_the_channel() -> None:
    heard = _Heard()
    ch = StdioChannel("tiny", heard, "handshake", TINY[0], TINY[1:])
    await ch.open()
    try:
        init = jsonrpc.request(0, "initialize", {"protocolVersion": "2025-11-25", "capabilities": {}})
        await ch.send(init)
        assert (await asyncio.wait_for(heard.messages.get(), 10)).id == 0
        # Larger than the pipe holds (the write waits for the process to read), with a line break
        # inside the JSON that must not split the message, then many small ones back to back.
        big = "b" * (3 << 20)
        raw = b'{"jsonrpc":"2.0","id":1,\n"method":"tools/call","params":{"name":"echo","arguments":{"text":"%s"}}}'
        await ch.send(jsonrpc.parse_body(raw % big.encode())[0][0])
        for i in range(2, 202):
            await ch.send(jsonrpc.request(i, "tools/call", {"name": "echo", "arguments": {"text": str(i)}}))
        answers = [await asyncio.wait_for(heard.messages.get(), 10) for _ in range(201)]
        assert [a.id for a in answers] == list(range(1, 202))
        assert orjson.loads(answers[0].raw)["result"]["content"][0]["text"] == big
        assert answers[-1].data["result"]["content"][0]["text"] == "201"
        assert not heard.logs and not heard.lost
    finally:
        await ch.close()
    pid = ch.pid
    assert pid is not None
    await wait_for(lambda: not pid_alive(pid), 5.0, message=f"stdio process {pid} to end")
    assert not heard.lost  # a channel closed on purpose is not reported lost


async def test_a_process_that_exits_is_reported_lost_with_its_exit_code() -> None:
    heard = _Heard()
    command = [sys.executable, "-c", "import sys; sys.stdout.write('not json\\n'); sys.exit(3)"]
    ch = StdioChannel("quits", heard, "handshake", command[0], command[1:])
    await ch.open()
    try:
        await asyncio.wait_for(heard.gone.wait(), 10.0)
        assert heard.lost == [f"process {ch.pid} exited with code 3"]
        assert any("non-JSON-RPC" in line and "not json" in line for line in heard.logs), heard.logs
        assert not ch.alive
    finally:
        await ch.close()


async def test_a_process_that_stops_reading_fails_the_send_and_is_lost() -> None:
    heard = _Heard()
    # Closes its stdin and stays: the router's write finds no reader.
    command = [sys.executable, "-c", "import os, sys, time; os.close(0); print('closed', flush=True); time.sleep(30)"]
    ch = StdioChannel("deaf", heard, "handshake", command[0], command[1:])
    await ch.open()
    try:
        await asyncio.wait_for(_logged(heard, "closed"), 10.0)
        # Seen when the pipe closes, or at the latest when the write fails: either way the send
        # fails (the session holds the request) and the channel is lost (the backend restarts it).
        with pytest.raises(BackendUnavailable, match=r"stopped reading|is not running"):
            await ch.send(jsonrpc.request(1, "ping"))
        assert len(heard.lost) == 1 and not ch.alive
    finally:
        await ch.close()


async def _logged(heard: _Heard, text: str) -> None:
    while not any(text in line for line in heard.logs):
        await heard.logged.wait()
        heard.logged.clear()


class _Faulty(_Heard):
    def on_backend_message(self, channel: Channel, msg: Message, related: RequestId | None, status: int | None) -> None:
        if msg.id == 1:
            raise RuntimeError("a bug in handling answer 1")
        super().on_backend_message(channel, msg, related, status)


async def test_a_fault_in_handling_one_message_loses_only_that_one() -> None:
    faults: list[dict[str, object]] = []
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(lambda _loop, context: faults.append(context))
    heard = _Faulty()
    ch = StdioChannel("tiny", heard, "handshake", TINY[0], TINY[1:])
    await ch.open()
    try:
        for i in (1, 2, 3):
            await ch.send(jsonrpc.request(i, "tools/call", {"name": "echo", "arguments": {"text": str(i)}}))
        answers = [await asyncio.wait_for(heard.messages.get(), 10) for _ in range(2)]
        assert [a.id for a in answers] == [2, 3] and ch.alive and not heard.lost
        assert [str(f["exception"]) for f in faults] == ["a bug in handling answer 1"]
    finally:
        loop.set_exception_handler(None)
        await ch.close()
