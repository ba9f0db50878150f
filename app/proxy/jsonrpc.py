"""JSON-RPC 2.0 message helpers: parsing, classification, the error vocabulary.

Messages travel through the router as `Message`: the decoded dict plus the bytes it came in as, so
that an untouched message is forwarded byte for byte and only a changed one is re-encoded.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

import orjson

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
    """One JSON-RPC message: its dict and, while unchanged, the exact bytes it arrived as."""

    __slots__ = ("_raw", "data")

    def __init__(self, data: JSON, raw: bytes | None = None) -> None:
        self.data = data
        self._raw = raw

    @property
    def raw(self) -> bytes:
        if self._raw is None:
            self._raw = orjson.dumps(self.data)
        return self._raw

    def replaced(self, **changes: Any) -> Message:
        """A copy with top-level fields changed (its bytes are re-encoded when needed)."""
        data = dict(self.data)
        data.update(changes)
        return Message(data)

    @property
    def method(self) -> str | None:
        m = self.data.get("method")
        return m if isinstance(m, str) else None

    @property
    def id(self) -> RequestId | None:
        i = self.data.get("id")
        return i if isinstance(i, str | int) and not isinstance(i, bool) else None

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


def decode(raw: bytes) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ProtocolError(PARSE_ERROR, f"Parse error: {exc}") from None


def validate(obj: Any) -> Message:
    """Check the JSON-RPC 2.0 shape of one decoded message."""
    if not isinstance(obj, dict):
        raise ProtocolError(INVALID_REQUEST, "Invalid Request: a JSON-RPC message must be an object")
    if obj.get("jsonrpc") != "2.0":
        raise ProtocolError(INVALID_REQUEST, 'Invalid Request: "jsonrpc" must be "2.0"')
    has_method = "method" in obj
    if has_method and not isinstance(obj["method"], str):
        raise ProtocolError(INVALID_REQUEST, 'Invalid Request: "method" must be a string')
    if "id" in obj:
        i = obj["id"]
        if isinstance(i, bool) or not isinstance(i, str | int):
            if not (i is None and not has_method):
                raise ProtocolError(INVALID_REQUEST, 'Invalid Request: "id" must be a string or an integer')
    if not has_method:
        if "id" not in obj or ("result" not in obj and "error" not in obj):
            raise ProtocolError(INVALID_REQUEST, "Invalid Request: neither a request, a notification nor a response")
    if "params" in obj:
        params = obj["params"]
        if isinstance(params, list):
            # JSON-RPC allows by-position params; MCP does not, and SDK servers drop such a request
            # without a word (stdio) or answer it with a null id: either way the client would wait.
            raise ProtocolError(
                INVALID_PARAMS, 'Invalid params: MCP "params" must be an object, not an array', msg_id=obj.get("id")
            )
        if not isinstance(params, dict):
            raise ProtocolError(INVALID_REQUEST, 'Invalid Request: "params" must be an object')
    return Message(obj)


def parse_body(raw: bytes) -> tuple[list[Message], bool]:
    """Decode a POST body: one message or a batch. Returns the messages and whether it was a batch."""
    obj = decode(raw)
    if isinstance(obj, list):
        if not obj:
            raise ProtocolError(INVALID_REQUEST, "Invalid Request: empty batch")
        return [validate(item) for item in obj], True
    msg = validate(obj)
    msg._raw = raw
    return [msg], False


def error(msg_id: RequestId | None, code: int, message: str, data: Any = None) -> Message:
    err: JSON = {"code": code, "message": message}
    if data is not None:
        err["data"] = data
    return Message({"jsonrpc": "2.0", "id": msg_id, "error": err})


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


def meta_version(msg: Message) -> str | None:
    """The protocol version a modern-era message carries in its `_meta` envelope."""
    meta = msg.params.get("_meta")
    if isinstance(meta, dict):
        v = meta.get(META_PROTOCOL_VERSION)
        if isinstance(v, str):
            return v
    return None


def progress_token(msg: Message) -> str | int | None:
    meta = msg.params.get("_meta")
    if isinstance(meta, dict):
        tok = meta.get("progressToken")
        if isinstance(tok, str | int) and not isinstance(tok, bool):
            return tok
    return None


def encode_batch(messages: list[Message]) -> bytes:
    return b"[" + b",".join(m.raw for m in messages) + b"]"
