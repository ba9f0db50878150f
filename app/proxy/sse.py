"""Server-Sent Events: encoding frames and decoding a byte stream into events."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class SSEEvent:
    event: str = "message"
    data: str = ""
    id: str | None = None
    retry: int | None = None


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


class SSEDecoder:
    """Incremental decoder: feed byte chunks, get complete events."""

    def __init__(self) -> None:
        self._buf = b""
        self._event: str | None = None
        self._data: list[str] = []
        self._id: str | None = None
        self._retry: int | None = None

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        self._buf += chunk
        out: list[SSEEvent] = []
        while True:
            eol = self._find_eol()
            if eol is None:
                break
            end, skip = eol
            line = self._buf[:end].decode("utf-8", "replace")
            self._buf = self._buf[end + skip :]
            ev = self._line(line)
            if ev is not None:
                out.append(ev)
        return out

    def _find_eol(self) -> tuple[int, int] | None:
        buf = self._buf
        n = buf.find(b"\n")
        r = buf.find(b"\r")
        if r >= 0 and (n < 0 or r < n):
            if r + 1 >= len(buf):
                return None  # a CR at the end may be the first half of CRLF
            return (r, 2 if buf[r + 1 : r + 2] == b"\n" else 1)
        if n >= 0:
            return (n, 1)
        return None

    def _line(self, line: str) -> SSEEvent | None:
        if line == "":
            if not self._data and self._event is None:
                self._id = None
                return None
            ev = SSEEvent(self._event or "message", "\n".join(self._data), self._id, self._retry)
            self._event, self._data, self._retry = None, [], None
            return ev
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        if value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id":
            self._id = value
        elif name == "retry" and value.isdigit():
            self._retry = int(value)
        return None
