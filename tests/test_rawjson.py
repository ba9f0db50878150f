"""The byte-level JSON tools under the 1:1 proxy: RFC 8259 checking, locating members, splicing.

The checker is compared with Python's own strict parser on generated text (the oracle: the same
grammar, minus NaN/Infinity), and every splice is checked to change exactly the one value asked
for: the bytes before and after it are the original bytes.
"""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.proxy import jsonrpc, rawjson
from app.proxy.events import TrafficEvent

ODD_VALUES = [
    b"123456789012345678901234567890",
    b"18446744073709551616",
    b"-0",
    b"1E2",
    b"-1.5e-7",
    b'"\\ud83d"',
    b'"\\udc00 tail"',
    b"1e400",
    b"[" * 3000 + b"]" * 3000,
    b'{"a":1,"a":2}',
    b'"\\u0000\\"\\\\\\/\\b\\f\\n\\r\\t"',
    b'"caf\xc3\xa9 \xf0\x9f\x98\x80"',
    b"9" * 5000,
]


def _python_accepts(raw: bytes) -> bool:
    def refuse(name: str) -> Any:
        raise ValueError(name)

    try:
        json.loads(raw.decode("utf-8"), parse_constant=refuse)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return False
    return True


@pytest.mark.parametrize("value", ODD_VALUES, ids=lambda v: v[:24].decode("utf-8", "replace"))
def test_odd_but_valid_json_is_json(value: bytes) -> None:
    rawjson.check(value)
    body = b'{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"v":' + value + b"}}"
    [msg], batch = jsonrpc.parse_body(body)
    assert not batch and msg.id == 7 and msg.method == "tools/call"
    assert msg.raw is body
    changed = msg.with_value(("id",), "router-1")
    assert changed.raw == body.replace(b'"id":7', b'"id":"router-1"')
    assert changed.id == "router-1"


@pytest.mark.parametrize(
    "bad",
    [b"", b" ", b"{", b"[1,]", b'{"a" 1}', b"01", b'"\\x"', b'{"a":1}x', b"\xff", b"[1 2]", b"{,}", b"NaN",
     b"Infinity", b"'a'", b'"a\nb"', b"[1,,2]", b'{"a":1,}', b"-", b"1.", b".5", b"+1", b"tru", b"nul"],
)  # fmt: skip
def test_invalid_json_is_refused(bad: bytes) -> None:
    with pytest.raises(rawjson.JSONSyntaxError):
        rawjson.check(bad)
    with pytest.raises(jsonrpc.ProtocolError) as excinfo:
        jsonrpc.parse_body(bad)
    assert excinfo.value.code == jsonrpc.PARSE_ERROR


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=300, derandomize=True, database=None)
@given(value=json_values, indent=st.sampled_from([None, 0, 2]), ascii=st.booleans())
def test_checker_accepts_what_python_writes(value: Any, indent: int | None, ascii: bool) -> None:
    raw = json.dumps(value, indent=indent, ensure_ascii=ascii).encode()
    rawjson.check(raw)
    start = rawjson.root(raw)
    assert rawjson.value_end(raw, start) == len(raw.rstrip())


@settings(max_examples=500, derandomize=True, database=None)
@given(raw=st.lists(st.sampled_from([b"{", b"}", b"[", b"]", b":", b",", b'"a"', b"1", b"-", b"0", b".5", b"e",
                                     b"true", b" ", b"\n", b'"', b"\\", b"n", b"\x01", b"\xc3\xa9", b"\xff"]),
                    max_size=12).map(b"".join))  # fmt: skip
def test_checker_agrees_with_python(raw: bytes) -> None:
    try:
        rawjson.check(raw)
        ours = True
    except rawjson.JSONSyntaxError:
        ours = False
    assert ours == _python_accepts(raw), raw


@settings(max_examples=200, derandomize=True, database=None)
@given(
    members=st.dictionaries(st.sampled_from(["jsonrpc", "id", "method", "params", "x", "é", 'a"b']), json_values),
    key=st.sampled_from(["id", "params", "new", "é", 'a"b']),
    indent=st.sampled_from([None, 1]),
)
def test_set_member_changes_only_that_value(members: dict[str, Any], key: str, indent: int | None) -> None:
    raw = json.dumps(members, indent=indent, ensure_ascii=False).encode()
    out = rawjson.set_member(raw, (key,), b'"NEW"')
    assert json.loads(out) == {**members, key: "NEW"}
    span = rawjson.locate(raw, (key,))
    if span is not None:
        # Everything around the value is the original bytes.
        assert out == raw[: span[0]] + b'"NEW"' + raw[span[1] :]


def test_set_member_nested_and_duplicates() -> None:
    assert rawjson.set_member(b"{ }", ("a", "b"), b"1") == b'{"a":{"b":1} }'
    assert rawjson.set_member(b'{"x" : {}}', ("x", "y"), b"2") == b'{"x" : {"y":2}}'
    assert rawjson.set_member(b'{"x":{"z":1E2}}', ("x", "y"), b"2") == b'{"x":{"y":2,"z":1E2}}'
    # The last of duplicate keys is the one every common parser reads: that is the one changed.
    assert rawjson.set_member(b'{"x":1,"x":2}', ("x",), b"3") == b'{"x":1,"x":3}'
    assert rawjson.set_member(b'{"\\u0069d":1}', ("id",), b"3") == b'{"\\u0069d":3}'
    with pytest.raises(ValueError):
        rawjson.set_member(b'{"x":[1]}', ("x", "y"), b"2")


def test_one_line_keeps_every_value() -> None:
    raw = b'{\r\n "a": "line\\nbreak",\r"b":\n[1,\r\n2]}'
    flat = rawjson.one_line(raw)
    assert b"\n" not in flat and b"\r" not in flat
    assert json.loads(flat) == json.loads(raw)
    assert flat.replace(b" ", b"") == raw.replace(b"\r", b"").replace(b"\n", b"").replace(b" ", b"")


def test_tolerant_view_is_json_encodable() -> None:
    body = (
        b'{"jsonrpc":"2.0","id":123456789012345678901234567890,"result":{"s":"\\ud83d","f":1e400,"d":'
        + b"[" * 2000
        + b"]" * 2000
        + b"}}"
    )
    [msg], _ = jsonrpc.parse_body(body)
    assert msg.id == 123456789012345678901234567890  # exact: the router matches ids by value
    assert not msg.exact
    view = msg.view
    assert json.loads(json.dumps(view))["result"]["s"] == "\ufffd"
    assert msg.raw is body
    # An error the router answers to such an id names it exactly.
    err = jsonrpc.error(msg.id, -32000, "x")
    assert b'"id":123456789012345678901234567890' in err.raw


def test_batch_elements_keep_their_bytes() -> None:
    a = b'{"jsonrpc":"2.0","id":1,"method":"m","params":{"n":1E2}}'
    b = b'{ "jsonrpc" : "2.0" , "method" : "n" , "params" : { "v" : -0 } }'
    messages, batch = jsonrpc.parse_body(b"[ " + a + b" ,\n" + b + b"]")
    assert batch
    assert [m.raw for m in messages] == [a, b]


def test_traffic_event_of_odd_json_encodes() -> None:
    """A view (headless JSON, /events) can always encode the event of a message with odd values."""
    body = b'{"jsonrpc":"2.0","id":123456789012345678901234567890,"method":"\\ud83d","params":{"v":1e400}}'
    [msg], _ = jsonrpc.parse_body(body)
    event = TrafficEvent(
        direction="client->backend",
        session="s",
        backend="b",
        msg_kind="request",
        method=msg.method,
        msg_id=msg.id,
        message=msg.view,
        raw=msg.raw,
        exact=msg.exact,
    )
    out = orjson.loads(orjson.dumps(event.to_dict()))
    assert out["msg_id"] == "123456789012345678901234567890"
    assert out["method"] == "\ufffd"
    assert out["raw"] == body.decode()
    assert "raw" not in TrafficEvent("client->backend", "s", "b", "request", "m", 1, raw=b"{}").to_dict()


@pytest.mark.parametrize(
    "raw",
    [
        b'{"jsonrpc":"2.0","id":"r-1","result":{"items":[{"id":1},{"id":"r-2"}]}}',
        b'{"jsonrpc":"2.0","id":"r-1","result":{"id":"r-1"}}',
        b'{"jsonrpc":"2.0","result":{"t":"x\\"r-1"},"id":"r-1","x":{"id":2}}',
        b'{"jsonrpc":"2.0","result":{"t":"say \\"id\\": \\"r-1\\""},"id" : "r-1","x":{"id":2}}',
        b'{"jsonrpc":"2.0","id":"r-1","result":{"id":3},"id":"r-2"}',
        b'{"jsonrpc":"2.0","id":"r-1","result":{"id":3},"id":"r-1"}',
        b'{"jsonrpc":"2.0","id":"r\\u002d1","result":{"id":"r-1"}}',
        b'{"jsonrpc":"2.0","result":{"a":{"id":"r-1"}},"id":7}',
    ],
)
def test_shortcuts_splice_what_the_full_walk_splices(raw: bytes) -> None:
    """The C-scan shortcuts (a key or a plain value written once) agree with walking the members."""
    [msg], _ = jsonrpc.parse_body(raw)
    assert msg.with_value(("id",), "NEW").raw == rawjson.set_member(raw, ("id",), b'"NEW"')
    assert json.loads(msg.with_value(("id",), "NEW").raw)["id"] == "NEW"
