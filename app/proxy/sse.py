"""Server-Sent Events: encoding frames and decoding a byte stream into events."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class SSEEvent:
    event: str = "message"
    data: str = ""
    id: str | None = None
    retry: int | None = None
    # Set when the event's data was over the decoder's limit: its size, and only its first and
    # last bytes (to find the message's id); `data` is then empty.
    too_large: int = 0
    head: bytes = b""
    tail: bytes = b""


def encode(data: bytes, event: str | None = None, event_id: str | None = None, retry: int | None = None) -> bytes:
    parts: list[bytes] = []
    if event_id is not None:
        parts.append(b"id: " + event_id.encode() + b"\n")
    if event is not None:
        parts.append(b"event: " + event.encode() + b"\n")
    if retry is not None:
        parts.append(b"retry: " + str(retry).encode() + b"\n")
    # SSE ends a line at CR, LF or CRLF: a payload with any of them goes over several data lines
    # (the reader joins them with LF, which JSON reads as the same whitespace).
    if b"\r" in data:
        data = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    for line in data.split(b"\n"):
        parts.append(b"data: " + line + b"\n")
    parts.append(b"\n")
    return b"".join(parts)


COMMENT_PING = b": ping\n\n"


KEEP_EDGE = 4096  # bytes kept from each end of an event too large to carry


class SSEDecoder:
    """Incremental decoder: feed byte chunks, get complete events.

    Linear in what it is fed: every byte is searched for a line end once (a 64 MiB event arrives
    in hundreds of chunks; rescanning or re-copying the buffer per chunk made it quadratic). With
    `max_data`, an event whose data grows past it is not kept: it comes out with `too_large`
    set, so memory stays bounded whatever the server sends.
    """

    def __init__(self, max_data: int | None = None) -> None:
        self._buf = bytearray()
        self._scan = 0  # bytes of _buf already searched for a line end
        self._max = max_data
        self._event: str | None = None
        self._data: list[bytes] = []
        self._size = 0
        self._over = False
        self._head = b""
        self._tail = b""
        self._id: str | None = None
        self._retry: int | None = None
        self._skipping: bytes | None = None  # the field of a line too long to keep, until its end

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        buf = self._buf
        out: list[SSEEvent] = []
        if self._skipping is not None:
            chunk = self._skip(chunk)
            if self._skipping is not None:
                return out
        buf += chunk
        start = 0
        pos = self._scan
        while True:
            n = buf.find(b"\n", pos)
            r = buf.find(b"\r", pos, n if n >= 0 else len(buf))
            if r >= 0:
                if r + 1 >= len(buf):
                    pos = r  # a CR at the end may be the first half of CRLF
                    break
                end, skip = r, 2 if buf[r + 1] == 0x0A else 1
            elif n >= 0:
                end, skip = n, 1
            else:
                pos = len(buf)
                break
            ev = self._line(bytes(buf[start:end]))
            if ev is not None:
                out.append(ev)
            start = pos = end + skip
        if start:
            del buf[:start]
            pos -= start
        self._scan = pos
        if self._max is not None and len(buf) > self._max + 64:
            self._start_skipping()
        return out

    def _start_skipping(self) -> None:
        """The line in the buffer is already longer than any event may be: keep only its edges."""
        line = bytes(self._buf)
        self._buf.clear()
        self._scan = 0
        name, _, value = line.partition(b":")
        self._skipping = name
        if name == b"data":
            self._go_over()
            self._grow_over((b"\n" if self._size else b"") + (value[1:] if value.startswith(b" ") else value))

    def _skip(self, chunk: bytes) -> bytes:
        """Drop the rest of a too-long line; return what follows its end."""
        n = chunk.find(b"\n")
        r = chunk.find(b"\r", 0, n if n >= 0 else len(chunk))
        end = r if r >= 0 else n
        piece = chunk if end < 0 else chunk[:end]
        if self._skipping == b"data":
            self._grow_over(piece)
        if end < 0:
            return b""
        self._skipping = None
        # A CRLF split across chunks leaves a lone LF, read as an empty line: the event ends
        # there, a line early, which changes nothing for an event that is dropped anyway.
        rest = chunk[end + 1 :]
        return rest[1:] if chunk[end] == 0x0D and rest[:1] == b"\n" else rest

    def _go_over(self) -> None:
        if not self._over:
            joined = b"\n".join(self._data)
            self._head, self._tail = joined[:KEEP_EDGE], joined[-KEEP_EDGE:]
            self._data = []
            self._over = True

    def _grow_over(self, piece: bytes) -> None:
        self._size += len(piece)
        if len(self._head) < KEEP_EDGE:
            self._head += piece[: KEEP_EDGE - len(self._head)]
        self._tail = (self._tail + piece[-KEEP_EDGE:])[-KEEP_EDGE:]

    def _line(self, line: bytes) -> SSEEvent | None:
        if not line:
            if not self._data and not self._over and self._event is None:
                self._id = None
                return None
            if self._over:
                ev = SSEEvent(self._event or "message", "", self._id, self._retry, self._size, self._head, self._tail)
            else:
                data = b"\n".join(self._data).decode("utf-8", "replace")
                ev = SSEEvent(self._event or "message", data, self._id, self._retry)
            self._event, self._data, self._retry = None, [], None
            self._size, self._over, self._head, self._tail = 0, False, b"", b""
            return ev
        if line.startswith(b":"):
            return None
        name, _, value = line.partition(b":")
        if value.startswith(b" "):
            value = value[1:]
        if name == b"data":
            if self._over:
                self._grow_over(b"\n" + value)
                return None
            self._size += len(value) + (1 if self._data else 0)
            self._data.append(value)
            if self._max is not None and self._size > self._max:
                self._go_over()
        elif name == b"event":
            self._event = value.decode("utf-8", "replace")
        elif name == b"id":
            self._id = value.decode("utf-8", "replace")
        elif name == b"retry" and value.isdigit():
            self._retry = int(value)
        return None
