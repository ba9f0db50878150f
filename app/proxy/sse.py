"""Server-Sent Events: encoding frames and decoding a byte stream into events."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class SSEEvent:
    event: str = "message"
    raw: bytes = b""  # the data, as sent (a JSON-RPC message is parsed from these bytes, not a str)
    id: str | None = None
    retry: int | None = None
    # Set when the event's data was over the decoder's limit: its size, and only its first and
    # last bytes (to find the message's id); `raw` is then empty.
    too_large: int = 0
    head: bytes = b""
    tail: bytes = b""

    @property
    def data(self) -> str:
        return self.raw.decode("utf-8", "replace")


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
    if b"\n" not in data:
        # The usual case (compact JSON), in one copy: a large message is not copied once per step.
        parts += (b"data: ", data, b"\n\n")
        return b"".join(parts)
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
            with memoryview(buf) as view:  # released before the buffer is resized below
                ev = self._line(view[start:end])
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
        name, value = self._field(self._buf)
        self._skipping = name
        if name == b"data":
            self._go_over()
            if self._size:
                self._grow_over(b"\n")
            self._grow_over(value)
        value.release()
        self._buf.clear()
        self._scan = 0

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

    @staticmethod
    def _field(line: bytearray | memoryview) -> tuple[bytes, memoryview]:
        """A line's field name and a view of its value (a data line's value may be megabytes).

        Field names are short: a line with no colon in its first 64 bytes is a field we ignore.
        """
        view = memoryview(line)
        head = bytes(view[:64])
        colon = head.find(b":")
        if colon < 0:
            return head, view[len(view) :]
        value = view[colon + 1 :]
        if len(value) and value[0] == 0x20:
            value = value[1:]
        return head[:colon], value

    def _grow_over(self, piece: bytes | memoryview) -> None:
        self._size += len(piece)
        if len(self._head) < KEEP_EDGE:
            self._head += piece[: KEEP_EDGE - len(self._head)]
        self._tail = (self._tail + piece[-KEEP_EDGE:])[-KEEP_EDGE:]

    def _line(self, line: memoryview) -> SSEEvent | None:
        if not len(line):
            if not self._data and not self._over and self._event is None:
                self._id = None
                return None
            if self._over:
                ev = SSEEvent(self._event or "message", b"", self._id, self._retry, self._size, self._head, self._tail)
            else:
                # One data line (the usual case) is joined without a copy.
                ev = SSEEvent(self._event or "message", b"\n".join(self._data), self._id, self._retry)
            self._event, self._data, self._retry = None, [], None
            self._size, self._over, self._head, self._tail = 0, False, b"", b""
            return ev
        if line[0] == 0x3A:  # ":" a comment
            return None
        name, view = self._field(line)
        if name == b"data":
            if self._over:
                self._grow_over(b"\n")
                self._grow_over(view)
                return None
            value = bytes(view)  # the one copy of a message's bytes the decoder makes
            self._size += len(value) + (1 if self._data else 0)
            self._data.append(value)
            if self._max is not None and self._size > self._max:
                self._go_over()
            return None
        text = bytes(view).decode("utf-8", "replace")
        if name == b"event":
            self._event = text
        elif name == b"id":
            self._id = text
        elif name == b"retry" and text.isdigit():
            self._retry = int(text)
        return None
