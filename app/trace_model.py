"""The trace panel's model: rows built from the core's events, requests paired with their answers,
a bounded buffer, and the `/` filter language. No Textual here, so it is tested (and costed) alone.

Filter language: whitespace-separated terms, all of which must hold (AND). A term is free text
(a case-insensitive substring of the row's method, backend, session, id, status or error) or a
token `method:` `backend:` `session:` `dir:` `kind:` `status:` `id:`. A leading `!` negates a term.
"""

from __future__ import annotations

import shlex
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson

from app.proxy.events import BackendStateEvent, Event, RouterEvent, TrafficEvent

DEFAULT_CAPACITY = 10_000
# Requests still waiting for their answer, remembered at most this many (a client that never gets
# an answer must not grow the map forever).
MAX_PENDING = 20_000

DIRECTION_SHORT = {
    "client->backend": "C→B",
    "backend->client": "B→C",
    "router->client": "R→C",
    "router->backend": "R→B",
    "backend->router": "B→R",
    "mark": "───",
}
DIRECTION_ALIASES = {
    "client->backend": ("c2b", "cb", "client", "in"),
    "backend->client": ("b2c", "bc", "backend", "out"),
    "router->client": ("r2c", "rc", "router"),
    "router->backend": ("r2b", "rb", "router"),
    "backend->router": ("b2r", "br", "router"),
    "mark": ("mark",),
}
# States in which a backend takes no request (it waits, up to --hold, for the backend to return).
HOLDING_STATES = frozenset({"starting", "down", "failed", "disabled"})


@dataclass(slots=True, eq=False)
class TraceRow:
    """One line of the trace: a message, or a marked line for a backend's state change."""

    seq: int
    ts: float
    direction: str  # an events.Direction, or "mark"
    session: str
    backend: str
    # request, response, notification; server-request / server-response for the backend's own
    # requests to the client (sampling, elicitation, roots); mark for a state change.
    kind: str
    method: str
    msg_id: str | int | None
    status: str  # ok, error CODE, pending, held, cancelled; "" for notifications
    latency_ms: float | None = None
    error: str | None = None
    # The message: as its exact bytes when they decode to it (`message` decodes them when asked),
    # else decoded. Ten thousand rows of bytes are ten thousand objects for the GC to walk; of
    # decoded messages, four or five times as many (a dict per level), at every full collection.
    stored: dict[str, Any] | bytes | None = field(default=None, repr=False)
    # A request row and its answer's row point at each other, for the detail view.
    partner: TraceRow | None = None
    subject: str = ""  # what a request is about: the tool or prompt name, the resource URI
    text: str = ""  # a mark's description
    version: int = 0  # bumped when the row changes (its rendered line is cached by seq and version)
    marked: bool = False  # `m` on the main screen; kept through filtering, written to exports
    # What free text in the filter searches, made when first searched: most rows never are.
    _haystack: str | None = field(default=None, repr=False)

    @property
    def is_request(self) -> bool:
        return self.kind in ("request", "server-request")

    @property
    def message(self) -> dict[str, Any] | None:
        stored = self.stored
        if isinstance(stored, bytes):
            # Decoded once someone looks (the detail view, a copy, an export): few rows ever are.
            stored = self.stored = orjson.loads(stored)
        return stored

    @message.setter
    def message(self, value: dict[str, Any] | None) -> None:
        self.stored = value

    @property
    def haystack(self) -> str:
        text = self._haystack
        if text is None:
            text = self._haystack = " ".join(
                str(x)
                for x in (
                    self.method,
                    self.subject,
                    self.backend,
                    self.session,
                    self.msg_id,
                    self.status,
                    self.error,
                    self.text,
                )
                if x not in (None, "")
            ).lower()
        return text

    def changed(self) -> None:
        """The row's status (or what it shows) changed: drawn again, searched anew."""
        self.version += 1
        self._haystack = None


def _status_of_answer(ev: TrafficEvent) -> str:
    if ev.msg_kind != "error":
        return "ok"
    err = (ev.message or {}).get("error")
    code = err.get("code") if isinstance(err, dict) else None
    return f"error {code}" if code is not None else "error"


Predicate = Callable[[TraceRow], bool]


class FilterError(ValueError):
    pass


def _term(key: str, value: str) -> Predicate:
    v = value.lower()
    if key == "method":
        return lambda r: v in r.method.lower() or v in r.subject.lower()
    if key == "backend":
        return lambda r: v in r.backend.lower()
    if key == "session":
        return lambda r: r.session.lower().startswith(v)
    if key == "id":
        return lambda r: r.msg_id is not None and str(r.msg_id).lower() == v
    if key == "status":
        return lambda r: v in r.status
    if key == "kind":
        if v in ("server", "s2c"):
            return lambda r: r.kind.startswith("server-")
        return lambda r: r.kind == v or r.kind == f"server-{v}"
    if key == "dir":
        matching = {d for d, aliases in DIRECTION_ALIASES.items() if v == d or v in aliases}
        if not matching:
            raise FilterError(f"dir:{value}? use client, backend or router (or c2b, b2c, r2c)")
        return lambda r: r.direction in matching
    raise FilterError(f"unknown token {key}: (method: backend: session: dir: kind: status: id:)")


TOKENS = ("method", "backend", "session", "dir", "kind", "status", "id")


def parse_filter(text: str) -> Predicate | None:
    """The predicate for a filter expression (None: everything passes). Raises FilterError."""
    try:
        words = shlex.split(text)
    except ValueError:  # an unclosed quote while the user is still typing
        words = text.split()
    preds: list[Predicate] = []
    for word in words:
        negate = word.startswith("!")
        if negate:
            word = word[1:]
        if not word:
            continue
        key, sep, value = word.partition(":")
        if sep and key.lower() in TOKENS:
            if not value:
                continue  # "method:" half typed: no constraint yet
            pred = _term(key.lower(), value)
        elif sep and key and key.isalpha() and key.lower() not in TOKENS:
            raise FilterError(f"unknown token {key}: (method: backend: session: dir: kind: status: id:)")
        else:
            needle = word.lower()

            def pred(r: TraceRow, needle: str = needle) -> bool:
                return needle in r.haystack

        if negate:

            def negated(r: TraceRow, p: Predicate = pred) -> bool:
                return not p(r)

            preds.append(negated)
        else:
            preds.append(pred)
    if not preds:
        return None
    if len(preds) == 1:
        return preds[0]
    return lambda r: all(p(r) for p in preds)


class TraceModel:
    """A bounded buffer of rows, the filtered view of it, and request/response pairing."""

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        self.capacity = max(1, capacity)
        self.rows: deque[TraceRow] = deque()
        self.visible: deque[TraceRow] = deque()
        self.dropped = 0  # rows that fell out of the buffer (and events the feed lost)
        self.visible_dropped = 0  # of those, rows that were on show: a view shifts by as many
        self.predicate: Predicate | None = None
        self.filter_text = ""
        self._seq = 0
        self._pending: OrderedDict[tuple[str, str, Any], TraceRow] = OrderedDict()
        self.backend_states: dict[str, str] = {}
        self.only_marked = False  # `M`: only marked rows, with the filter

    # ------------------------------------------------------------------ filter
    def set_filter(self, text: str) -> None:
        """Apply a new filter to everything in the buffer (raises FilterError, keeping the old one)."""
        predicate = parse_filter(text)
        if self.only_marked:
            given = predicate
            predicate = (lambda r: r.marked) if given is None else (lambda r: r.marked and given(r))
        self.predicate = predicate
        self.filter_text = text
        self.visible = deque(self.rows) if predicate is None else deque(r for r in self.rows if predicate(r))

    def clear(self) -> None:
        self.rows.clear()
        self.visible.clear()
        self._pending.clear()

    # ------------------------------------------------------------------ building rows
    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def _append(self, row: TraceRow) -> None:
        if len(self.rows) >= self.capacity:
            old = self.rows.popleft()
            self.dropped += 1
            if self.visible and self.visible[0] is old:
                self.visible.popleft()
                self.visible_dropped += 1
        self.rows.append(row)
        if self.predicate is None or self.predicate(row):
            self.visible.append(row)

    def _remember(self, key: tuple[str, str, Any], row: TraceRow) -> None:
        self._pending[key] = row
        if len(self._pending) > MAX_PENDING:
            self._pending.popitem(last=False)

    def add(self, events: Iterable[Event]) -> int:
        """Turn events into rows; returns how many rows were added (answers also update their request)."""
        added = 0
        for ev in events:
            if isinstance(ev, TrafficEvent):
                self._traffic(ev)
                added += 1
            elif isinstance(ev, BackendStateEvent):
                self.backend_states[ev.backend] = ev.state
                self._mark(ev)
                added += 1
            elif isinstance(ev, RouterEvent):
                self._notice(ev)
                added += 1
        return added

    def _notice(self, ev: RouterEvent) -> None:
        self._append(
            TraceRow(
                seq=self._next_seq(),
                ts=ev.ts,
                direction="mark",
                session="",
                backend="",
                kind="mark",
                method="",
                msg_id=None,
                status=ev.level,
                text=f"router {ev.level}: {ev.text}",
            )
        )

    def _mark(self, ev: BackendStateEvent) -> None:
        why = f" ({ev.reason})" if ev.reason else ""
        row = TraceRow(
            seq=self._next_seq(),
            ts=ev.ts,
            direction="mark",
            session="",
            backend=ev.backend,
            kind="mark",
            method="",
            msg_id=None,
            status=ev.state,
            text=f"backend {ev.backend}: {ev.previous} → {ev.state}{why}",
        )
        self._append(row)
        if ev.state in HOLDING_STATES:
            for pending in self._pending.values():
                if pending.backend == ev.backend and pending.status == "pending":
                    pending.status = "held"
                    pending.changed()

    def _traffic(self, ev: TrafficEvent) -> None:
        kind = ev.msg_kind
        # The router's own requests (a replay, a workbench call) are asked and answered like a client's.
        server_side = ev.direction == "backend->client"
        method = ev.method or ""
        row = TraceRow(
            seq=self._next_seq(),
            ts=ev.ts,
            direction=ev.direction,
            session=ev.session,
            backend=ev.backend,
            kind=kind,
            method=method,
            msg_id=ev.msg_id,
            status="",
            latency_ms=ev.latency_ms,
            error=ev.error,
            stored=ev.raw if ev.exact and ev.raw is not None and ev.message is not None else ev.message,
        )
        if ev.resent:
            # The router sent a client's request again to a new backend: shown, and the client's
            # own request row stays pending for the answer.
            row.status = "re-sent"
            request = self._pending.get(("c", ev.session, ev.msg_id))
            if request is not None:
                row.subject = request.subject
        elif kind == "request":
            # A request the backend sends the client is answered by the client, and vice versa.
            origin = "s" if server_side else "c"
            row.kind = "server-request" if server_side else "request"
            held = not server_side and self.backend_states.get(ev.backend) in HOLDING_STATES
            row.status = "held" if held else "pending"
            params = (ev.message or {}).get("params")
            if isinstance(params, dict):
                subject = params.get("name", params.get("uri"))
                if isinstance(subject, str):
                    row.subject = subject
            self._remember((origin, ev.session, ev.msg_id), row)
        elif kind in ("response", "error"):
            origin = "c" if ev.direction in ("backend->client", "router->client", "backend->router") else "s"
            row.kind = "response" if origin == "c" else "server-response"
            row.status = _status_of_answer(ev)
            request = self._pending.pop((origin, ev.session, ev.msg_id), None)
            if request is not None:
                request.partner, row.partner = row, request
                request.status = row.status
                if row.latency_ms is None:
                    row.latency_ms = round((ev.ts - request.ts) * 1000, 3)
                request.latency_ms = row.latency_ms
                if not row.method:
                    row.method = request.method
                row.subject = request.subject
                request.changed()
        else:
            row.kind = "notification"
            if method == "notifications/cancelled":
                params = (ev.message or {}).get("params")
                rid = params.get("requestId") if isinstance(params, dict) else None
                # The client cancels its own request; the router (or backend) withdraws one it sent.
                origin = "c" if ev.direction == "client->backend" else "s"
                request = self._pending.pop((origin, ev.session, rid), None)
                if request is None and origin == "s":
                    # A backend ends a client's listen by cancelling it (as a stdio server does):
                    # the listen is over, not pending for ever.
                    listen = self._pending.get(("c", ev.session, rid))
                    if listen is not None and listen.method == "subscriptions/listen":
                        request = self._pending.pop(("c", ev.session, rid))
                if request is not None:
                    request.status = "cancelled"
                    request.changed()
        self._append(row)
