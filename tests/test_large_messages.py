"""Large messages reach the client, from every backend transport, in both eras (issue 8).

One router serves three backends (Streamable HTTP, legacy SSE, stdio), each one process for the
whole file; the SDK client calls the fixture's `blob` tool, which answers N characters of a fixed
pattern, and the test checks the text it got by length and hash. A second router with a small
`--max-message` shows the error past the limit. Timing is the benchmark's business
(bench/large.py); here only "arrived, whole, without a hang" and the router's memory.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import mcp_types as types
import pytest
from mcp.shared.exceptions import MCPError

from app.proxy import jsonrpc
from app.proxy.limits import KEEP_EDGE, PIPE_CHUNK, oversized_answer, read_line, top_level_keys
from app.proxy.sse import SSEDecoder, encode
from app.proxy.streams import Outbox
from tests.servers.fixture import blob_text
from tests.support.clients import connect
from tests.support.procs import SyncRouter, memory_mb, run_fixture_sync, run_router_sync, stdio_command, wait_for

MiB = 1024 * 1024
# The JSON-RPC envelope around the text: a "64 MiB" answer is the largest that fits the default limit.
ENVELOPE = 1024
SIZES = {"0.5MiB": MiB // 2, "1MiB": MiB, "4MiB": 4 * MiB, "16MiB": 16 * MiB, "64MiB": 64 * MiB - ENVELOPE}
# (backend, client era): a legacy SSE backend ("legacy": "sse" is a route word) has no 2026-07-28 era.
COMBOS = [
    ("http", "streamable-handshake"),
    ("http", "streamable-modern"),
    ("legacy", "streamable-handshake"),
    ("stdio", "streamable-handshake"),
    ("stdio", "streamable-modern"),
]
SMALL_LIMIT = MiB


@functools.cache
def digest(size: int) -> str:
    return hashlib.sha256(blob_text(size).encode()).hexdigest()


@pytest.fixture(scope="module")
def backends() -> Iterator[dict[str, str]]:
    with run_fixture_sync("streamable", name="big-http") as http, run_fixture_sync("sse", name="big-sse") as sse:
        yield {"http": http.url, "legacy": sse.url, "stdio": stdio_command(name="big-stdio")}


def _router_args(backends: dict[str, str]) -> list[str]:
    return [arg for name, target in backends.items() for arg in ("-b", f"{name}={target}")]


@pytest.fixture(scope="module")
def router(backends: dict[str, str]) -> Iterator[SyncRouter]:
    with run_router_sync("--quiet", "--no-persist", *_router_args(backends)) as r:
        yield r


@pytest.fixture(scope="module")
def small_router(backends: dict[str, str]) -> Iterator[SyncRouter]:
    with run_router_sync("--quiet", "--no-persist", "--max-message", "1MiB", *_router_args(backends)) as r:
        yield r


def _text(result: Any) -> str:
    assert not result.is_error, result
    block = result.content[0]
    assert isinstance(block, types.TextContent)
    text: str = block.text
    return text


@pytest.mark.parametrize("size_name", list(SIZES))
@pytest.mark.parametrize(("backend", "era"), COMBOS, ids=[f"{b}-{e.split('-')[1]}" for b, e in COMBOS])
async def test_large_answer_arrives_whole(router: SyncRouter, backend: str, era: Any, size_name: str) -> None:
    size = SIZES[size_name]
    async with connect(router.mcp_url(backend), era, read_timeout_seconds=60) as client:
        text = _text(await client.call_tool("blob", {"size": size}))
    assert len(text) == size, router.tail()
    assert hashlib.sha256(text.encode()).hexdigest() == digest(size)


async def test_router_memory_stays_a_small_multiple_of_the_largest_message(router: SyncRouter) -> None:
    # Runs after the answers above (pytest keeps file order), so the router's peak RSS covers
    # them all; one more 64 MiB answer makes the test stand on its own when run alone. An answer
    # is held as bytes and as parsed text at once, plus a copy while it is read: 3-4.5x, never 64 x.
    async with connect(router.mcp_url("stdio"), "streamable-handshake", read_timeout_seconds=60) as client:
        assert len(_text(await client.call_tool("blob", {"size": SIZES["64MiB"]}))) == SIZES["64MiB"]
    peak = memory_mb(router.popen.pid, "VmHWM")
    print(f"router peak RSS {peak:.0f} MB")
    assert peak < 64 * 5 + 60, f"router peak RSS {peak:.0f} MB carrying 64 MiB answers"


def _reset_peak(pid: int) -> bool:
    """Start the process's VmHWM again from its current RSS (Linux: /proc/PID/clear_refs, 5)."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        return False
    return True


@pytest.mark.parametrize(("backend", "era"), COMBOS, ids=[f"{b}-{e.split('-')[1]}" for b, e in COMBOS])
async def test_a_large_answer_costs_three_times_its_size_at_most_and_nothing_once_delivered(
    router: SyncRouter, backend: str, era: Any
) -> None:
    # While it is carried, a message is held as its bytes and as its parsed text, and the JSON
    # decoder builds that text in a scratch copy first: 3x. Once delivered nothing may keep it:
    # a reader that held its last message until the next one (a quiet backend: forever) kept
    # 128 MB per legacy SSE stream and stdio process, and a mixed run reached 650 MB.
    pid = router.popen.pid
    size = SIZES["64MiB"]
    async with connect(router.mcp_url(backend), era, read_timeout_seconds=60) as client:
        assert len(_text(await client.call_tool("blob", {"size": 1}))) == 1
        before = memory_mb(pid)
        measured = _reset_peak(pid)
        assert len(_text(await client.call_tool("blob", {"size": size}))) == size
        peak = memory_mb(pid, "VmHWM") - before
        after = await wait_for(
            lambda: memory_mb(pid) < before + 32 and memory_mb(pid),
            timeout=10,
            message=f"the router's RSS back near {before:.0f} MB after a 64 MiB answer (now {memory_mb(pid):.0f} MB)",
        )
    print(f"{backend} {era}: RSS {before:.0f} MB, peak +{peak:.0f} MB while carrying 64 MiB, then {after:.0f} MB")
    if measured:
        assert peak < 3.5 * 64, f"the router's RSS grew by {peak:.0f} MB carrying a 64 MiB answer"


@pytest.mark.parametrize(("backend", "era"), COMBOS, ids=[f"{b}-{e.split('-')[1]}" for b, e in COMBOS])
async def test_answer_past_max_message_is_an_error_naming_size_and_option(
    small_router: SyncRouter, backend: str, era: Any
) -> None:
    size = 2 * SMALL_LIMIT
    async with connect(small_router.mcp_url(backend), era, read_timeout_seconds=30) as client:
        with pytest.raises(MCPError) as info:
            await client.call_tool("blob", {"size": size})
        message = str(info.value)
        assert "--max-message" in message and "limit of 1 MiB" in message, message
        said = re.search(r"answer is [\d.]+ MiB \((\d+) bytes\)", message)  # the answer's own size
        assert said is not None and int(said.group(1)) > size, message
        # No hang and nothing broken: the same session carries the next answer within the limit.
        assert len(_text(await client.call_tool("blob", {"size": SMALL_LIMIT // 2}))) == SMALL_LIMIT // 2


# ------------------------------------------------------------------------------ the pieces, byte by byte


def test_sse_decoder_gives_the_same_events_whatever_the_chunking() -> None:
    stream = (
        encode(b'{"a":1}', event_id="1")
        + b"event: endpoint\r\ndata: /x?y=1\r\n\r\n: ping\n\ndata: a\ndata: b\n\nid: 7\rdata: z\r\r"
    ) * 20 + b"data: end\n\n"
    whole = SSEDecoder().feed(stream)
    assert [e.data for e in whole[:5]] == ['{"a":1}', "/x?y=1", "a\nb", "z", '{"a":1}']
    for step in (1, 2, 3, 7, 64):
        decoder = SSEDecoder()
        events = [ev for i in range(0, len(stream), step) for ev in decoder.feed(stream[i : i + step])]
        assert events == whole, step


def test_sse_decoder_drops_an_event_over_its_limit_keeping_its_size_and_edges() -> None:
    big = b'{"jsonrpc":"2.0","id":5,"result":{"text":"' + b"x" * (3 * MiB) + b'"}}'
    stream = encode(big, event_id="9") + encode(b'{"jsonrpc":"2.0","method":"n"}')
    decoder = SSEDecoder(max_data=MiB)
    events = [ev for i in range(0, len(stream), 65536) for ev in decoder.feed(stream[i : i + 65536])]
    assert [(e.too_large, e.data) for e in events] == [(len(big), ""), (0, '{"jsonrpc":"2.0","method":"n"}')]
    assert events[0].head.startswith(b'{"jsonrpc":"2.0","id":5') and events[0].tail.endswith(b'"}}')
    answer = oversized_answer(events[0].head, events[0].tail, len(big), MiB, None, exact=True, backend="b")
    assert answer is not None and answer.id == 5 and answer.data["error"]["data"]["size"] == len(big)


def test_the_id_of_an_oversized_message_is_its_own_never_one_inside_it() -> None:
    assert top_level_keys(b'{"result":{"id":3,"x":"') == (None, False)
    assert top_level_keys(b'{"jsonrpc":"2.0","id":"a\\"b","result":{"id":3') == ('a"b', False)
    assert top_level_keys(b'{"jsonrpc":"2.0","method":"notifications/progress","params":{') == (None, True)
    # Result first, id last (another SDK's key order): found at the end.
    answer = oversized_answer(b'{"result":{"id":3,"t":"xx', b'xx"},"id":42}', 10, 5, None, exact=True, backend="b")
    assert answer is not None and answer.id == 42


async def test_read_line_keeps_lines_within_its_limit_and_the_edges_of_longer_ones() -> None:
    reader = asyncio.StreamReader(limit=PIPE_CHUNK)
    long_line = b"L" * (3 * PIPE_CHUNK + 5)
    reader.feed_data(b"short\n" + b"M" * (2 * PIPE_CHUNK) + b"\r\n" + long_line + b"\nlast")
    reader.feed_eof()
    lines = []
    while (line := await read_line(reader, keep=2 * PIPE_CHUNK + 2)) is not None:
        lines.append(line)
    assert [(x.size, x.cut) for x in lines] == [
        (6, False),
        (2 * PIPE_CHUNK + 2, False),
        (len(long_line) + 1, True),
        (4, False),
    ]
    assert lines[0].data == b"short\n" and lines[1].data == b"M" * (2 * PIPE_CHUNK)
    assert lines[2].data == b"L" * KEEP_EDGE and lines[2].tail.endswith(b"L\n") and lines[3].data == b"last"


def test_sse_encode_frames_any_payload_so_that_the_decoder_gives_it_back() -> None:
    for payload in (b'{"a":1}', b"", b'{\n  "a": 1\n}', b"a\r\nb\rc\n", b"x" * MiB):
        frame = encode(payload, event="message", event_id="4")
        [event] = SSEDecoder().feed(frame)
        assert (event.event, event.id) == ("message", "4")
        assert event.raw == payload.replace(b"\r\n", b"\n").replace(b"\r", b"\n")


async def test_the_session_stream_does_not_keep_a_message_over_its_bound_once_read() -> None:
    outbox = Outbox(max_bytes=MiB)
    small = jsonrpc.notification("notifications/message", {"data": "x"})
    big = jsonrpc.result(1, {"text": "x" * (2 * MiB)})
    outbox.put(small)
    outbox.put(big)  # the newest is kept whatever its size, until a reader has it
    assert [m for _, m in await outbox.read(0)] == [big]
    assert outbox.bytes == 0 and not outbox.history
    outbox.put(small)  # and the stream goes on, numbered as before
    assert [(i, m) for i, m in await outbox.read(2)] == [(3, small)]
    assert [(i, m) for i, m in outbox.after(0)] == [(3, small)]  # within the bound: kept for a replay
