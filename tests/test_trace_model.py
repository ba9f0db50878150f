"""The trace's model without Textual: pairing, held and cancelled requests, the bounded buffer, and
the filter language."""

from __future__ import annotations

from typing import Any

import pytest

from app.proxy.events import BackendStateEvent, TrafficEvent
from app.trace_model import FilterError, TraceModel, parse_filter


def msg(direction: str, kind: str, method: str | None, msg_id: Any, session: str = "s1", **kw: Any) -> TrafficEvent:
    body: dict[str, Any] = {"jsonrpc": "2.0"}
    if msg_id is not None:
        body["id"] = msg_id
    if kind in ("request", "notification"):
        body.update(method=method, params=kw.pop("params", {}))
    elif kind == "error":
        body["error"] = {"code": kw.pop("code", -32603), "message": "boom"}
    else:
        body["result"] = {}
    return TrafficEvent(
        direction=direction,  # type: ignore[arg-type]
        session=session,
        backend=kw.pop("backend", "b"),
        msg_kind=kind,  # type: ignore[arg-type]
        method=method,
        msg_id=msg_id,
        message=body,
        **kw,
    )


def test_request_and_answer_are_paired_per_session_and_direction() -> None:
    m = TraceModel()
    m.add(
        [
            msg("client->backend", "request", "tools/call", 1, params={"name": "echo"}),
            msg("client->backend", "request", "tools/call", 1, session="s2"),
            # The backend asks the client with an id that collides with the client's own request.
            msg("backend->client", "request", "sampling/createMessage", 1),
            msg("client->backend", "response", "sampling/createMessage", 1),
            msg("backend->client", "response", "tools/call", 1, latency_ms=2.5),
        ]
    )
    call, other, ask, reply, answer = m.rows
    assert (call.status, call.partner, call.latency_ms, answer.subject) == ("ok", answer, 2.5, "echo")
    assert other.status == "pending" and other.partner is None
    assert ask.kind == "server-request" and ask.partner is reply and reply.kind == "server-response"


def test_a_listen_its_backend_cancels_is_over_and_other_requests_stay_pending() -> None:
    m = TraceModel()
    cancel = {"requestId": 7}
    m.add(
        [
            msg("client->backend", "request", "subscriptions/listen", 7),
            msg("client->backend", "request", "tools/call", 8),
            # A backend's cancellation naming a client's call (not a listen) does not end it.
            msg("backend->client", "notification", "notifications/cancelled", None, params={"requestId": 8}),
            msg("backend->client", "notification", "notifications/cancelled", None, params=cancel),
            # Another session's listen with the same id is not this one.
            msg("client->backend", "request", "subscriptions/listen", 7, session="s2"),
        ]
    )
    listen, call, _, _, other = m.rows
    assert listen.status == "cancelled"
    assert call.status == "pending" and other.status == "pending"


def test_errors_cancellations_and_held_requests() -> None:
    m = TraceModel()
    m.add(
        [
            msg("client->backend", "request", "tools/call", 1),
            msg("router->client", "error", "tools/call", 1, code=-32050),
            msg("client->backend", "request", "tools/call", 2),
            msg("client->backend", "notification", "notifications/cancelled", None, params={"requestId": 2}),
            msg("client->backend", "request", "tools/call", 3),
            BackendStateEvent(backend="b", state="down", previous="up", reason="exited"),
            msg("client->backend", "request", "tools/call", 4),
        ]
    )
    assert [r.status for r in m.rows] == [
        "error -32050",
        "error -32050",
        "cancelled",
        "",
        "held",
        "down",
        "held",
    ]
    assert m.rows[5].kind == "mark" and "up → down (exited)" in m.rows[5].text
    m.add([msg("backend->client", "response", "tools/call", 4)])
    assert m.rows[6].status == "ok"


def test_a_resent_request_is_shown_and_its_answer_pairs_with_the_clients_request() -> None:
    m = TraceModel()
    m.add(
        [
            msg("client->backend", "request", "tools/call", 7, params={"name": "look"}),
            msg("router->backend", "request", "tools/call", 7, params={"name": "look"}, resent=True),
        ]
    )
    call, resend = m.rows
    assert (resend.status, resend.kind, resend.subject) == ("re-sent", "request", "look")
    assert call.status == "pending"
    m.add([msg("backend->client", "response", "tools/call", 7, latency_ms=40.0)])
    assert (call.status, call.latency_ms, call.partner) == ("ok", 40.0, m.rows[2])


def test_the_buffer_is_bounded_and_counts_what_it_dropped() -> None:
    m = TraceModel(capacity=3)
    m.set_filter("method:tools/list")
    m.add([msg("client->backend", "notification", f"n/{i}", None) for i in range(4)])
    m.add([msg("client->backend", "request", "tools/list", 9)])
    assert len(m.rows) == 3 and m.dropped == 2
    assert [r.method for r in m.visible] == ["tools/list"]
    m.set_filter("")
    assert len(m.visible) == 3


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", [0, 1, 2, 3]),
        ("echo", [0, 1]),
        ("method:tools/list", [2]),
        ("status:error", [0, 1]),  # the request shows its answer's outcome
        ("!status:error", [2, 3]),
        ("dir:backend", [1]),
        ("kind:notification", [3]),
        ("id:7 status:ok", []),
        ("id:7", [0, 1]),
        ("session:s2", [2]),
        ("backend:other !kind:request", []),
        ("method:", [0, 1, 2, 3]),  # half typed: no constraint yet
    ],
)
def test_filter_language(text: str, expected: list[int]) -> None:
    m = TraceModel()
    m.add(
        [
            msg("client->backend", "request", "tools/call", 7, params={"name": "echo"}),
            msg("backend->client", "error", "tools/call", 7),
            msg("client->backend", "request", "tools/list", 8, session="s2"),
            msg("client->backend", "notification", "notifications/initialized", None),
        ]
    )
    m.set_filter(text)
    assert [m.rows.index(r) for r in m.visible] == expected


def test_an_unknown_token_is_an_error_that_keeps_the_old_filter() -> None:
    with pytest.raises(FilterError, match="unknown token colour"):
        parse_filter("colour:red")
    with pytest.raises(FilterError, match="dir:sideways"):
        parse_filter("dir:sideways")
    m = TraceModel()
    m.set_filter("method:x")
    with pytest.raises(FilterError):
        m.set_filter("nope:1")
    assert m.filter_text == "method:x"
