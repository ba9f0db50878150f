"""JSON as bytes: check RFC 8259 syntax, find a member's value in the raw text, splice one token.

The router forwards the bytes it received. It reads a few members (`id`, `method`, a token in
`params._meta`) and sometimes has to change one of them (a remapped id); it does so by replacing
that member's value span in the original bytes, so every other byte, however unusual its value
(`-0`, `1E2`, a 30-digit integer, a lone surrogate escape, a duplicate key, deep nesting), reaches
the other side as it was sent.

Nothing here builds Python values for the whole document: the checker is an iterative tokenizer
(no depth limit), the locator skips values with C-speed regular expressions, and only the member
that is asked for is looked at. Duplicate keys resolve to the last one, as in JavaScript, Python
and Go, so the member the router reads and changes is the one the receiver will read.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

_WS = re.compile(rb"[ \t\n\r]*")
# Possessive quantifiers: linear time and no backtracking stack, even for a 64 MiB string.
_STRICT_STRING = re.compile(rb'"(?:[^"\\\x00-\x1f]++|\\["\\/bfnrt]|\\u[0-9a-fA-F]{4})*+"')
_SCALAR = re.compile(rb"-?(?:0|[1-9][0-9]*+)(?:\.[0-9]++)?(?:[eE][+-]?[0-9]++)?|true|false|null")
# For text already known to be valid JSON.
_LOOSE_STRING = re.compile(rb'"(?:[^"\\]++|\\.)*+"', re.S)
_LOOSE_SCALAR = re.compile(rb"[-+.0-9a-zA-Z]++")
_FILLER = re.compile(rb'(?:[^"\[\]{}]++|"(?:[^"\\]++|\\.)*+")*+', re.S)

_QUOTE, _LBRACE, _RBRACE, _LBRACKET, _RBRACKET = 0x22, 0x7B, 0x7D, 0x5B, 0x5D
_COLON, _COMMA = 0x3A, 0x2C
_WS_BYTES = frozenset(b" \t\n\r")


class JSONSyntaxError(ValueError):
    def __init__(self, message: str, pos: int) -> None:
        super().__init__(f"{message} at byte {pos}")
        self.pos = pos


# ---------------------------------------------------------------------------------- checking
_VALUE, _VALUE_OR_CLOSE, _KEY, _KEY_OR_CLOSE, _COLON_NEXT, _AFTER = range(6)


def check(raw: bytes) -> None:
    """Raise JSONSyntaxError unless `raw` is one JSON text by RFC 8259 (any depth, any values)."""
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise JSONSyntaxError("invalid UTF-8", exc.start) from None
    stack = bytearray()
    n = len(raw)
    pos = 0
    state = _VALUE
    ws = _WS.match
    while True:
        w = ws(raw, pos)
        pos = w.end() if w is not None else pos
        if pos >= n:
            break
        c = raw[pos]
        if state == _VALUE or state == _VALUE_OR_CLOSE:
            if c == _LBRACE:
                stack.append(c)
                pos += 1
                state = _KEY_OR_CLOSE
                continue
            if c == _LBRACKET:
                stack.append(c)
                pos += 1
                state = _VALUE_OR_CLOSE
                continue
            if c == _RBRACKET and state == _VALUE_OR_CLOSE:
                stack.pop()
                pos += 1
                state = _AFTER
                continue
            m = (_STRICT_STRING if c == _QUOTE else _SCALAR).match(raw, pos)
            if m is None:
                raise JSONSyntaxError("invalid value", pos)
            pos = m.end()
            state = _AFTER
        elif state == _KEY or state == _KEY_OR_CLOSE:
            if c == _RBRACE and state == _KEY_OR_CLOSE:
                stack.pop()
                pos += 1
                state = _AFTER
                continue
            m = _STRICT_STRING.match(raw, pos) if c == _QUOTE else None
            if m is None:
                raise JSONSyntaxError("expected a string key", pos)
            pos = m.end()
            state = _COLON_NEXT
        elif state == _COLON_NEXT:
            if c != _COLON:
                raise JSONSyntaxError("expected ':'", pos)
            pos += 1
            state = _VALUE
        else:  # _AFTER a value
            if not stack:
                raise JSONSyntaxError("extra data after the JSON text", pos)
            top = stack[-1]
            if c == _COMMA:
                state = _KEY if top == _LBRACE else _VALUE
            elif (c == _RBRACE and top == _LBRACE) or (c == _RBRACKET and top == _LBRACKET):
                stack.pop()
            else:
                raise JSONSyntaxError("expected ',' or a closing bracket", pos)
            pos += 1
    if state != _AFTER or stack:
        raise JSONSyntaxError("unexpected end of the JSON text", pos)


# ---------------------------------------------------------------------------------- locating
def skip_ws(raw: bytes, pos: int) -> int:
    if pos < len(raw) and raw[pos] in _WS_BYTES:
        m = _WS.match(raw, pos)
        return m.end() if m is not None else pos
    return pos


def value_end(raw: bytes, pos: int) -> int:
    """The end of the (valid) value starting at `pos`."""
    c = raw[pos]
    if c == _QUOTE:
        m = _LOOSE_STRING.match(raw, pos)
    elif c == _LBRACE or c == _LBRACKET:
        # One regex call per bracket: everything between brackets (strings included) is skipped in C.
        depth = 0
        n = len(raw)
        filler = _FILLER.match
        start = pos
        while pos < n:
            c = raw[pos]
            if c == _LBRACE or c == _LBRACKET:
                depth += 1
            else:
                depth -= 1
                if depth == 0:
                    return pos + 1
            f = filler(raw, pos + 1)
            pos = f.end() if f is not None else pos + 1
        raise JSONSyntaxError("unterminated container", start)
    else:
        m = _LOOSE_SCALAR.match(raw, pos)
    if m is None:
        raise JSONSyntaxError("invalid value", pos)
    return m.end()


def _key_text(raw: bytes, start: int, end: int) -> str:
    inner = raw[start + 1 : end - 1]
    if b"\\" not in inner:
        return inner.decode("utf-8", "replace")
    text: str = json.loads(raw[start:end])  # escapes, lone surrogates included
    return text


def members(raw: bytes, start: int) -> list[tuple[str, int, int]]:
    """(key, value start, value end) of each member of the object whose `{` is at `start`."""
    out: list[tuple[str, int, int]] = []
    pos = start + 1
    while True:
        pos = skip_ws(raw, pos)
        c = raw[pos]
        if c == _RBRACE:
            return out
        if c == _COMMA:
            pos += 1
            continue
        m = _LOOSE_STRING.match(raw, pos)
        if m is None:
            raise JSONSyntaxError("expected a string key", pos)
        key = _key_text(raw, pos, m.end())
        pos = skip_ws(raw, m.end()) + 1  # past the colon
        vstart = skip_ws(raw, pos)
        vend = value_end(raw, vstart)
        out.append((key, vstart, vend))
        pos = vend


def elements(raw: bytes, start: int) -> list[tuple[int, int]]:
    """(start, end) of each element of the array whose `[` is at `start`."""
    out: list[tuple[int, int]] = []
    pos = start + 1
    while True:
        pos = skip_ws(raw, pos)
        c = raw[pos]
        if c == _RBRACKET:
            return out
        if c == _COMMA:
            pos += 1
            continue
        end = value_end(raw, pos)
        out.append((pos, end))
        pos = end


def find_member(raw: bytes, start: int, key: str) -> tuple[int, int] | None:
    """The value span of `key` in the object at `start` (the last one if the key repeats)."""
    found: tuple[int, int] | None = None
    needle = b'"' + key.encode() + b'"'
    pos = start + 1
    while True:
        pos = skip_ws(raw, pos)
        c = raw[pos]
        if c == _RBRACE:
            return found
        if c == _COMMA:
            pos += 1
            continue
        m = _LOOSE_STRING.match(raw, pos)
        if m is None:
            raise JSONSyntaxError("expected a string key", pos)
        kstart, kend = pos, m.end()
        pos = skip_ws(raw, kend) + 1
        vstart = skip_ws(raw, pos)
        vend = value_end(raw, vstart)
        if raw[kstart:kend] == needle or (b"\\" in raw[kstart:kend] and _key_text(raw, kstart, kend) == key):
            found = (vstart, vend)
            # The common case: nothing after this could be the same key again, so stop reading.
            if raw.rfind(needle, vend) < 0 and not _has_unicode_escape(raw, vend):
                return found
        pos = vend


def root(raw: bytes) -> int:
    return skip_ws(raw, 0)


def _has_unicode_escape(raw: bytes, start: int = 0) -> bool:
    """Whether a `\\u` escape may occur from `start` (a key could then be spelt another way).

    A one-byte search runs at memchr speed, a two-byte one about twenty times slower (35 ms on
    32 MiB here): most large texts have no backslash at all, and the rest are searched from the first.
    """
    j = raw.find(b"\\", start)
    return j >= 0 and raw.find(b"\\u", j) >= 0


def _splice(raw: bytes, start: int, end: int, value: bytes) -> bytes:
    """`raw` with `raw[start:end]` replaced by `value`: one copy of the message, not two (a slice
    of a large message is a copy of its own before the concatenation copies it again)."""
    with memoryview(raw) as view:
        return b"".join((view[:start], value, view[end:]))


_NEEDLES: dict[str, bytes] = {}


_PLAIN_STRING = re.compile(rb'"[A-Za-z0-9:._-]*"')


def _locate_unique(raw: bytes, key: str, current: bytes | None = None) -> tuple[int, int] | None:
    """The value span of the one place `"key":` is written, if it is written exactly once.

    Only for a member known to exist (the decoded message has it): it is then written somewhere as
    `"key"` (no `\\u` escape anywhere in the text), so a single occurrence is that member, whatever
    the nesting around it. Three C-speed scans instead of a walk through the values before it.

    `current`: the member's value as JSON, when it is a plain string (the router's own ids): such
    a value can only be written that way, so if `"key":current` occurs once, that is the member,
    even where the key is used elsewhere too (a result full of objects with ids).
    """
    needle = _NEEDLES.get(key)
    if needle is None:
        needle = b'"' + key.encode() + b'"'
        if len(_NEEDLES) < 256:
            _NEEDLES[key] = needle
    i = raw.find(needle)
    if i < 0 or _has_unicode_escape(raw):
        return None
    if raw.rfind(needle) == i:  # from the end: in CPython a backward search is about twice as fast
        pos = skip_ws(raw, i + len(needle))
        if pos >= len(raw) or raw[pos] != _COLON:
            return None
        vstart = skip_ws(raw, pos + 1)
        return vstart, value_end(raw, vstart)
    if current is None or _PLAIN_STRING.fullmatch(current) is None:
        return None
    j = raw.find(current)
    if j < 0 or raw.rfind(current) != j:
        return None
    k = j - 1
    while k >= 0 and raw[k] in _WS_BYTES:
        k -= 1
    if k < 0 or raw[k] != _COLON:
        return None
    k -= 1
    while k >= 0 and raw[k] in _WS_BYTES:
        k -= 1
    if raw[k + 1 - len(needle) : k + 1] != needle:
        return None
    return j, j + len(current)


def locate(raw: bytes, path: Sequence[str], present: bool = False) -> tuple[int, int] | None:
    """The value span at `path` (keys of nested objects) from the top-level object, if present.

    `present`: the caller knows the member exists (from an exact decoding), which allows a shortcut.
    """
    if present and path:
        unique = _locate_unique(raw, path[-1])
        if unique is not None:
            return unique
    pos = root(raw)
    span: tuple[int, int] | None = None
    for key in path:
        if pos >= len(raw) or raw[pos] != _LBRACE:
            return None
        span = find_member(raw, pos, key)
        if span is None:
            return None
        pos = span[0]
    return span


# ---------------------------------------------------------------------------------- splicing
def encode_key(key: str) -> bytes:
    return json.dumps(key, ensure_ascii=False).encode()


def set_member(raw: bytes, path: Sequence[str], value: bytes, present: bool = False) -> bytes:
    """`raw` with the value at `path` replaced by `value` (or the member added), nothing else changed.

    A missing member is inserted as the object's first member (with any missing objects on the
    way); every object on the path that exists must be an object. `present` as for `locate`.
    """
    return swap_member(raw, path, value, present)[0]


def swap_member(
    raw: bytes, path: Sequence[str], value: bytes, present: bool = False, current: bytes | None = None
) -> tuple[bytes, bytes | None]:
    """`set_member`, also returning the bytes of the value it replaced (None if it added the member).

    `present` and `current` (the present value as JSON, if known) allow shortcuts: see `locate`.
    """
    if not path:
        return value, raw
    if present:
        span = _locate_unique(raw, path[-1], current)
        if span is not None:
            return _splice(raw, span[0], span[1], value), raw[span[0] : span[1]]
    pos = root(raw)
    for i, key in enumerate(path):
        if pos >= len(raw) or raw[pos] != _LBRACE:
            raise ValueError(f"not an object on the way to {'.'.join(path)}")
        span = find_member(raw, pos, key)
        if span is None:
            nested = value
            for k in reversed(path[i + 1 :]):
                nested = b"{" + encode_key(k) + b":" + nested + b"}"
            member = encode_key(key) + b":" + nested
            after = skip_ws(raw, pos + 1)
            sep = b"" if raw[after] == _RBRACE else b","
            return _splice(raw, pos + 1, pos + 1, member + sep), None
        if i == len(path) - 1:
            return _splice(raw, span[0], span[1], value), raw[span[0] : span[1]]
        pos = span[0]
    raise AssertionError("unreachable")


def one_line(raw: bytes) -> bytes:
    """Valid JSON without raw line breaks (newline-delimited framing), values untouched.

    A raw CR or LF can only be whitespace between tokens in JSON (inside strings they must be
    escaped, and UTF-8 never uses those bytes inside a character), so a space replaces each.
    """
    return raw.replace(b"\r", b" ").replace(b"\n", b" ")


# ---------------------------------------------------------------------------------- decoding
DEEP_PLACEHOLDER = "(nested deeper than the router decodes: see the raw message)"
_DECODE_DEPTH = 6


def _parse_int(text: str) -> int | float:
    # Python caps int() at 4300 digits; a longer integer is still valid JSON: read it as a float.
    return int(text) if len(text) <= 4000 else float(text)


def _fix_surrogates(s: str) -> str:
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:
        return "".join("\ufffd" if "\ud800" <= ch <= "\udfff" else ch for ch in s)
    return s


def _sanitize(value: Any) -> Any:
    """Lone surrogates (valid JSON escapes, not valid text) become U+FFFD in the decoded view."""
    if isinstance(value, str):
        return _fix_surrogates(value)
    if not isinstance(value, dict | list):
        return value
    top: Any = value
    stack: list[Any] = [top]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            items = list(node.items())
            bad = [k for k, _ in items if _fix_surrogates(k) is not k]
            for k in bad:
                node[_fix_surrogates(k)] = node.pop(k)
            for k, v in node.items():
                if isinstance(v, str):
                    node[k] = _fix_surrogates(v)
                elif isinstance(v, dict | list):
                    stack.append(v)
        else:
            for i, v in enumerate(node):
                if isinstance(v, str):
                    node[i] = _fix_surrogates(v)
                elif isinstance(v, dict | list):
                    stack.append(v)
    return top


def _decode_span(raw: bytes, start: int, end: int, depth: int) -> Any:
    try:
        return json.loads(raw[start:end], parse_int=_parse_int)
    except RecursionError:
        pass
    if depth >= _DECODE_DEPTH:
        return DEEP_PLACEHOLDER
    if raw[start] == _LBRACE:
        return {k: _decode_span(raw, s, e, depth + 1) for k, s, e in members(raw, start)}
    return [_decode_span(raw, s, e, depth + 1) for s, e in elements(raw, start)]


def loads_tolerant(raw: bytes) -> Any:
    """Decode any RFC 8259 JSON text for reading (raises JSONSyntaxError if it is not JSON).

    What Python cannot hold exactly is approximated in the decoded view only (the bytes are what
    travels): lone surrogates become U+FFFD, 1e400 is inf, deep nesting past a few levels below
    a member is a placeholder string.
    """
    check(raw)
    start = root(raw)
    return _sanitize(_decode_span(raw, start, value_end(raw, start), 0))


def _safe_scalar(v: Any) -> Any:
    if isinstance(v, int) and not isinstance(v, bool) and not -(2**63) <= v < 2**64:
        try:
            return float(v)
        except OverflowError:
            return str(v)
    return v


def json_safe(value: Any) -> Any:
    """A copy of a decoded view that any JSON encoder accepts (integers past 64 bits become floats)."""
    if not isinstance(value, dict | list):
        return _safe_scalar(value)
    out: Any = {} if isinstance(value, dict) else []
    stack: list[tuple[Any, Any]] = [(value, out)]
    while stack:
        src, dst = stack.pop()
        pairs = src.items() if isinstance(src, dict) else enumerate(src)
        for k, v in pairs:
            if isinstance(v, dict | list):
                nv: Any = {} if isinstance(v, dict) else []
                stack.append((v, nv))
            else:
                nv = _safe_scalar(v)
            if isinstance(dst, dict):
                dst[k] = nv
            else:
                dst.append(nv)
    return out
