"""JSON-RPC 2.0 message helpers: parsing, classification, the error vocabulary.

Messages travel through the router as `Message`: the decoded dict plus the bytes it came in as, so
that an untouched message is forwarded byte for byte and only a changed one is re-encoded.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Final

import orjson

from app.proxy import rawjson

JSON = dict[str, Any]
RequestId = str | int

PARSE_ERROR: Final = -32700
INVALID_REQUEST: Final = -32600
METHOD_NOT_FOUND: Final = -32601
INVALID_PARAMS: Final = -32602
INTERNAL_ERROR: Final = -32603
HEADER_MISMATCH: Final = -32020
UNSUPPORTED_PROTOCOL_VERSION: Final = -32022
# Router-originated errors live in the implementation-defined server range (-32000..-32099).
BACKEND_UNAVAILABLE: Final = -32050
BACKEND_LOST: Final = -32051

HANDSHAKE_VERSIONS: Final = ("2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25")
MODERN_VERSIONS: Final = ("2026-07-28",)
LATEST_HANDSHAKE_VERSION: Final = HANDSHAKE_VERSIONS[-1]
BATCH_VERSION: Final = "2025-03-26"

META_PROTOCOL_VERSION: Final = "io.modelcontextprotocol/protocolVersion"
META_SUBSCRIPTION_ID: Final = "io.modelcontextprotocol/subscriptionId"

# Status codes the modern era pairs with JSON-RPC error codes (the SDK and the spec agree on these).
ERROR_HTTP_STATUS: Final[Mapping[int, int]] = {
    PARSE_ERROR: 400,
    INVALID_REQUEST: 400,
    INVALID_PARAMS: 400,
    HEADER_MISMATCH: 400,
    -32021: 400,
    UNSUPPORTED_PROTOCOL_VERSION: 400,
    METHOD_NOT_FOUND: 404,
}


class Message:
    """One JSON-RPC message: the bytes it travels as, and a decoded view of them for reading.

    A forwarded message keeps the exact bytes it arrived as; where the router must change a member
    (a remapped id) only that member's value is spliced into them (`rawjson.set_member`). Only
    the router's own messages are encoded from their dict. `exact` says whether the view came from
    the fast decoder (orjson); otherwise it was decoded tolerantly and may approximate what Python
    cannot hold (lone surrogates, 1e400, very deep nesting): the bytes are the message.
    """

    __slots__ = ("_raw", "data", "exact", "id")

    def __init__(self, data: JSON, raw: bytes | None = None, exact: bool = True) -> None:
        self.data = data
        self._raw = raw
        self.exact = exact
        i = data.get("id")
        # Exact types (what a decoder gives): a bool is no id. Read once: the hot path asks often.
        self.id: RequestId | None = i if type(i) is int or type(i) is str else None

    @property
    def raw(self) -> bytes:
        if self._raw is None:
            try:
                self._raw = orjson.dumps(self.data)
            except orjson.JSONEncodeError:  # an integer past 64 bits (a client's id, echoed)
                self._raw = json.dumps(self.data, ensure_ascii=False, separators=(",", ":")).encode()
        return self._raw

    def with_value(self, path: tuple[str, ...], value: Any, raw_value: bytes | None = None) -> Message:
        """A copy with the member at `path` set to `value` (bytes: `raw_value`, or its encoding)."""
        return self.swap(path, value, raw_value)[0]

    def swap(self, path: tuple[str, ...], value: Any, raw_value: bytes | None = None) -> tuple[Message, bytes | None]:
        """`with_value`, also returning the exact bytes of the value it replaced (None: it was absent)."""
        present = _has(self.data, path)
        data = _set_in(self.data, path, value)
        if self._raw is None:
            return Message(data), self.raw_at(path) if present else None
        if raw_value is None:
            raw_value = orjson.dumps(value)
        current = None
        if present and self.exact:
            now = _get_in(self.data, path)
            current = orjson.dumps(now) if isinstance(now, str) and len(now) < 200 else None
        raw, old = rawjson.swap_member(self._raw, path, raw_value, present and self.exact, current)
        return Message(data, raw, self.exact), old

    def replaced(self, **changes: Any) -> Message:
        """A copy with top-level members changed: spliced into the bytes, never a re-encoding."""
        out = self
        for key, value in changes.items():
            out = out.with_value((key,), value)
        return out

    def raw_at(self, path: tuple[str, ...]) -> bytes | None:
        """The exact bytes of the member at `path`, if present."""
        if self._raw is None:
            node: Any = self.data
            for key in path:
                if not isinstance(node, dict) or key not in node:
                    return None
                node = node[key]
            return orjson.dumps(node)
        span = rawjson.locate(self._raw, path, self.exact and _has(self.data, path))
        return None if span is None else self._raw[span[0] : span[1]]

    @property
    def view(self) -> JSON:
        """The decoded message in a form any JSON encoder accepts (for events and views)."""
        if self.exact:
            return self.data
        safe: JSON = rawjson.json_safe(self.data)
        return safe

    @property
    def method(self) -> str | None:
        m = self.data.get("method")
        return m if isinstance(m, str) else None

    @property
    def is_request(self) -> bool:
        return "method" in self.data and "id" in self.data

    @property
    def is_notification(self) -> bool:
        return "method" in self.data and "id" not in self.data

    @property
    def is_response(self) -> bool:
        return "method" not in self.data and ("result" in self.data or "error" in self.data)

    @property
    def is_error(self) -> bool:
        return "error" in self.data

    @property
    def params(self) -> JSON:
        p = self.data.get("params")
        return p if isinstance(p, dict) else {}

    def __repr__(self) -> str:
        return f"Message({self.data!r})"


class ProtocolError(Exception):
    """Input that is not a JSON-RPC message we can forward; carries the error to answer with."""

    def __init__(self, code: int, message: str, http_status: int = 400, msg_id: RequestId | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.http_status = http_status
        self.msg_id = msg_id  # when the message's id could be read, the error answers it


def decode(raw: bytes) -> tuple[Any, bool]:
    """Decode a JSON text; the flag says whether the fast decoder read it (an exact view)."""
    try:
        return orjson.loads(raw), True
    except orjson.JSONDecodeError:
        pass
    # orjson refuses some valid JSON (lone surrogate escapes, 1e400, nesting past 1024): still JSON.
    try:
        return rawjson.loads_tolerant(raw), False
    except rawjson.JSONSyntaxError as exc:
        raise ProtocolError(PARSE_ERROR, f"Parse error: {exc}") from None


_ABSENT: Any = object()


def validate(obj: Any, raw: bytes | None = None, exact: bool = True) -> Message:
    """Check the JSON-RPC 2.0 shape of one decoded message.

    Every message crossing the router comes through here, so each member is read once (`get`
    with a marker for "absent") and the usual types are checked first by identity.
    """
    if not isinstance(obj, dict):
        raise ProtocolError(INVALID_REQUEST, "Invalid Request: a JSON-RPC message must be an object")
    if obj.get("jsonrpc") != "2.0":
        raise ProtocolError(INVALID_REQUEST, 'Invalid Request: "jsonrpc" must be "2.0"')
    method = obj.get("method", _ABSENT)
    if method is not _ABSENT and not isinstance(method, str):
        raise ProtocolError(INVALID_REQUEST, 'Invalid Request: "method" must be a string')
    i = obj.get("id", _ABSENT)
    if i is not _ABSENT and type(i) is not int and type(i) is not str:
        if isinstance(i, float) and exact and raw is not None:
            # orjson reads an integer past 64 bits as a float: read this one exactly.
            return validate(rawjson.loads_tolerant(raw), raw, exact=False)
        if not (i is None and method is _ABSENT):
            raise ProtocolError(INVALID_REQUEST, 'Invalid Request: "id" must be a string or an integer')
    if method is _ABSENT and (i is _ABSENT or ("result" not in obj and "error" not in obj)):
        raise ProtocolError(INVALID_REQUEST, "Invalid Request: neither a request, a notification nor a response")
    params = obj.get("params", _ABSENT)
    if params is not _ABSENT and type(params) is not dict:
        if isinstance(params, list):
            # JSON-RPC allows by-position params; MCP does not, and SDK servers drop such a request
            # without a word (stdio) or answer it with a null id: either way the client would wait.
            raise ProtocolError(
                INVALID_PARAMS, 'Invalid params: MCP "params" must be an object, not an array', msg_id=obj.get("id")
            )
        if not isinstance(params, dict):
            raise ProtocolError(INVALID_REQUEST, 'Invalid Request: "params" must be an object')
    # `Message(obj, raw, exact)` without the frame of its __init__ (twice a call on the hot path),
    # from the id already read.
    msg = object.__new__(Message)
    msg.data = obj
    msg._raw = raw
    msg.exact = exact
    msg.id = i if type(i) is int or type(i) is str else None
    return msg


def parse_body(raw: bytes) -> tuple[list[Message], bool]:
    """Decode a POST body (or a line, an SSE event): one message or a batch; and whether it was a batch.

    Each message keeps its own bytes: a batch's elements are forwarded as they were written.
    """
    try:
        obj, exact = orjson.loads(raw), True  # (decode's first step, without its frame: every message)
    except orjson.JSONDecodeError:
        obj, exact = decode(raw)
    if type(obj) is list:
        if not obj:
            raise ProtocolError(INVALID_REQUEST, "Invalid Request: empty batch")
        spans = rawjson.elements(raw, rawjson.root(raw))
        return [validate(item, raw[s:e], exact) for item, (s, e) in zip(obj, spans, strict=True)], True
    return [validate(obj, raw, exact)], False


def error(msg_id: RequestId | None, code: int, message: str, data: Any = None) -> Message:
    err: JSON = {"code": code, "message": message}
    if data is not None:
        err["data"] = data
    return Message({"jsonrpc": "2.0", "id": msg_id, "error": err})


def backend_fault(backend: str) -> JSON:
    """`data` of an error the router answers because the backend did not (shown as the backend's fault)."""
    return {"backend": backend, "fault": "backend"}


def is_backend_fault(msg: Message) -> bool:
    err = msg.data.get("error")
    data = err.get("data") if isinstance(err, dict) else None
    return isinstance(data, dict) and data.get("fault") == "backend"


def result(msg_id: RequestId, value: JSON) -> Message:
    return Message({"jsonrpc": "2.0", "id": msg_id, "result": value})


def request(msg_id: RequestId, method: str, params: JSON | None = None) -> Message:
    data: JSON = {"jsonrpc": "2.0", "id": msg_id, "method": method}
    if params is not None:
        data["params"] = params
    return Message(data)


def notification(method: str, params: JSON | None = None) -> Message:
    data: JSON = {"jsonrpc": "2.0", "method": method}
    if params is not None:
        data["params"] = params
    return Message(data)


def msg_meta(msg: Message) -> Any:
    """What a message's params hold as `_meta` (None: nothing).

    Without the `params` property (validated params are a dict when present). The hot path
    (`StreamableEndpoint.post_now`) reads the same inline, once for all its uses.
    """
    params = msg.data.get("params")
    return params.get("_meta") if type(params) is dict else None


def meta_version(msg: Message) -> str | None:
    """The protocol version a modern-era message carries in its `_meta` envelope."""
    meta = msg_meta(msg)
    if isinstance(meta, dict):
        v = meta.get(META_PROTOCOL_VERSION)
        if isinstance(v, str):
            return v
    return None


def progress_token(msg: Message) -> str | int | None:
    meta = msg_meta(msg)
    if isinstance(meta, dict):
        tok = meta.get("progressToken")
        if type(tok) is int or type(tok) is str:
            return tok
    return None


def _get_in(data: JSON, path: tuple[str, ...]) -> Any:
    node: Any = data
    for key in path:
        node = node[key]
    return node


def _has(data: JSON, path: tuple[str, ...]) -> bool:
    node: Any = data
    for key in path:
        if not isinstance(node, dict) or key not in node:
            return False
        node = node[key]
    return True


def _set_in(data: JSON, path: tuple[str, ...], value: Any) -> JSON:
    """A copy of `data` with `path` set (the dicts on the way copied, the rest shared)."""
    out = dict(data)
    if len(path) == 1:
        out[path[0]] = value
    else:
        inner = out.get(path[0])
        out[path[0]] = _set_in(inner if isinstance(inner, dict) else {}, path[1:], value)
    return out


def encode_batch(messages: list[Message]) -> bytes:
    return b"[" + b",".join(m.raw for m in messages) + b"]"
