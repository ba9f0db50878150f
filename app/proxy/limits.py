"""Size limits: the largest message the router carries, how it says so, and how it finds whom to tell.

One limit, `--max-message` (default 64 MiB), bounds a single JSON-RPC message in either direction:
a backend's answer past it is never buffered whole; its request gets a JSON-RPC error that names
the size and the option instead of a hang. (A client's POST body has `--max-body`, which defaults
to the same figure and answers 413.)
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass

import orjson

from app.proxy import jsonrpc
from app.proxy.jsonrpc import Message, RequestId

DEFAULT_MAX_MESSAGE = 64 * 1024 * 1024
# In the router's own range (-32000..-32099), beside BACKEND_UNAVAILABLE and BACKEND_LOST.
MESSAGE_TOO_LARGE = -32052
SESSION_LIMIT = -32053  # with HTTP 503: the backend's --max-sessions are all active
INBOX_FULL = -32054  # a legacy SSE session's posted messages not yet handed on are at their bound
# How much of an oversized message is kept to find its id (SDKs put it first or last).
KEEP_EDGE = 4096


# A backend's log line (stderr, the router's notes) is kept and shown up to this much.
LOG_LINE_MAX = 8 * 1024
# What a process pipe's reader buffers before a line is taken in pieces (see read_line).
PIPE_CHUNK = 1024 * 1024


def fmt_size(n: int) -> str:
    """Bytes as people read them: 512 KiB, 64 MiB, 1.5 GiB."""
    for unit, shift in (("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if n >= 1 << shift:
            value = n / (1 << shift)
            if value == int(value) or value >= 100:
                return f"{value:.0f} {unit}"
            return f"{value:.1f} {unit}" if round(value, 1) != round(value) else f"{value:.3f} {unit}"
    return f"{n} bytes"


def too_large_text(size: int, limit: int, *, exact: bool = True, what: str = "the backend's answer") -> str:
    amount = f"{fmt_size(size)} ({size} bytes)" if exact else f"more than {fmt_size(limit)}"
    return f"{what} is {amount}, over the router's limit of {fmt_size(limit)} (--max-message); not forwarded"


def too_large_error(
    request_id: RequestId, size: int, limit: int, *, exact: bool = True, backend: str | None = None
) -> Message:
    data = {"size": size if exact else None, "limit": limit, "option": "--max-message"}
    if backend is not None:
        data["backend"] = backend
    return jsonrpc.error(request_id, MESSAGE_TOO_LARGE, too_large_text(size, limit, exact=exact), data)


_ID_VALUE = re.compile(rb'\s*:\s*(-?\d+|"(?:[^"\\]|\\.)*")')
_TAIL_ID = re.compile(rb'"id"\s*:\s*(-?\d+|"(?:[^"\\]|\\.)*")\s*}\s*$')


def _id_value(token: bytes) -> RequestId | None:
    try:
        value = orjson.loads(token)  # a number or a string token, nothing deeper
    except orjson.JSONDecodeError:
        return None
    return value if isinstance(value, str | int) and not isinstance(value, bool) else None


def top_level_keys(head: bytes) -> tuple[RequestId | None, bool]:
    """From the start of a JSON object: its top-level `id` (if seen) and whether it has a `method`.

    A small scanner over the first few KB only (strings and nesting tracked), so an `"id"` inside
    the result is never taken for the message's own.
    """
    depth = 0
    i = 0
    n = len(head)
    found_id: RequestId | None = None
    has_method = False
    while i < n:
        c = head[i]
        if c == 0x22:  # a string: find its end
            j = i + 1
            while j < n and head[j] != 0x22:
                j += 2 if head[j] == 0x5C else 1
            if j >= n:
                break
            if depth == 1:
                key = head[i + 1 : j]
                rest = head[j + 1 :]
                if rest.lstrip().startswith(b":"):
                    if key == b"id":
                        m = _ID_VALUE.match(rest)
                        if m:
                            found_id = _id_value(m.group(1))
                    elif key == b"method":
                        has_method = True
            i = j + 1
            continue
        if c in (0x7B, 0x5B):
            depth += 1
        elif c in (0x7D, 0x5D):
            depth -= 1
        i += 1
    return found_id, has_method


def oversized_answer(
    head: bytes, tail: bytes, size: int, limit: int, related: RequestId | None, *, exact: bool, backend: str
) -> Message | None:
    """The error that answers an oversized message in its place, or None if it answers nothing.

    `related` is the request whose response stream carried it, when the transport says; otherwise
    the message's own id, from its first or last bytes. A notification or request too large to
    carry answers nothing (the caller logs it).
    """
    rid, has_method = top_level_keys(head)
    if has_method:
        return None
    if rid is None:
        m = _TAIL_ID.search(tail)
        rid = _id_value(m.group(1)) if m else None
    if rid is None:
        rid = related
    if rid is None:
        return None
    return too_large_error(rid, size, limit, exact=exact, backend=backend)


def cut_line(text: str, limit: int = LOG_LINE_MAX, size: int | None = None) -> str:
    """A log line as kept: at most `limit` characters, and a marker that says it was cut."""
    total = size if size is not None else len(text)
    if total <= limit and len(text) <= limit:
        return text
    return f"{text[:limit]} … [cut: {fmt_size(total)} in all]"


@dataclass(slots=True)
class Line:
    """A line from a pipe: whole, or (when over the reader's `keep`) only its first and last bytes."""

    data: bytes
    size: int  # of the whole line, its end included
    tail: bytes = b""
    cut: bool = False


async def read_line(reader: asyncio.StreamReader, keep: int) -> Line | None:
    """The next line (with its end), kept whole up to `keep` bytes; None at end of stream.

    The reader's own limit (PIPE_CHUNK) bounds its buffer; a longer line is taken in pieces and
    joined only if it is within `keep`, so a 30 MB stderr line costs KEEP_EDGE bytes, not 30 MB.
    """
    try:
        data = await reader.readuntil(b"\n")
        return Line(data, len(data))
    except asyncio.IncompleteReadError as exc:
        return Line(exc.partial, len(exc.partial)) if exc.partial else None
    except asyncio.LimitOverrunError as exc:
        consumed = exc.consumed
    pieces: list[bytes] = []
    size = 0
    head = tail = b""
    over = False
    while True:
        piece = await reader.read(consumed) if consumed else b""
        last = False
        if not consumed:
            try:
                piece = await reader.readuntil(b"\n")
                last = True
            except asyncio.IncompleteReadError as exc:
                piece, last = exc.partial, True
            except asyncio.LimitOverrunError as exc:
                consumed = exc.consumed
                continue
        else:
            consumed = 0
        size += len(piece)
        if not over:
            pieces.append(piece)
            if size > keep:
                joined = b"".join(pieces)
                head, tail, pieces, over = joined[:KEEP_EDGE], joined[-KEEP_EDGE:], [], True
        else:
            tail = (tail + piece[-KEEP_EDGE:])[-KEEP_EDGE:]
        if last:
            break
    if over:
        return Line(head, size, tail, cut=True)
    if pieces and pieces[-1].endswith(b"\n"):
        # The line end goes here, before the join: a strip() afterwards would copy the whole line
        # again. (Its CR may be the end of the piece before.)
        final = pieces.pop()[:-1]
        if final:
            pieces.append(final)
        if pieces and pieces[-1].endswith(b"\r"):
            pieces[-1] = pieces[-1][:-1]
    data = b"".join(pieces)
    return Line(data, size) if size else None
