"""The router's own requests to a backend: replay a request from the trace, or call a tool, read a
resource, get a prompt from the workbench.

Each call runs on a fresh connection of the router's own (a new backend session; for a stdio
backend a new process), set up as a probe is: `initialize`, `notifications/initialized`, then the
request. The raw answer comes back as the backend sent it, error or not. Both appear in the trace
as the router's (`router->backend`, `backend->router`), on the session "router".

What needs the client cannot be done here: the backend's own requests (sampling, elicitation,
roots) are answered with an error on this connection, and the outcome says which were asked, so a
view can say why the answer differs from the client's.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from app import __version__
from app.proxy import jsonrpc
from app.proxy.backend import PROBE_INIT_PARAMS, RouterListener
from app.proxy.calls import RouterCallError, RouterCalls, new_router_id
from app.proxy.channels.base import BackendUnavailable
from app.proxy.events import TrafficEvent
from app.proxy.jsonrpc import JSON, Message

if TYPE_CHECKING:
    from app.proxy.backend import Backend

ROUTER_SESSION = "router"
CALL_TIMEOUT = 30.0
SETUP_TIMEOUT = 15.0

# A probe's handshake (no client capabilities), under a name of its own in the backend's logs.
WORKBENCH_INIT_PARAMS: JSON = {
    **PROBE_INIT_PARAMS,
    "clientInfo": {"name": "mcp-dev-router-workbench", "version": __version__},
}

# Requests that only make sense inside the client's own session.
_SESSION_BOUND = {
    "subscriptions/listen": "it opens a long-lived stream that belongs to the client's session",
    "resources/subscribe": "a subscription belongs to the client's session",
    "resources/unsubscribe": "a subscription belongs to the client's session",
}
# Requests a backend sends to the client: only the client can answer them.
SERVER_TO_CLIENT = ("sampling/", "elicitation/", "roots/")


class ReplayRefused(Exception):
    """A request that cannot be sent again from a session of the router's own; says why."""


def replay_refusal(message: JSON, direction: str | None = None) -> str | None:
    """Why this trace message cannot be replayed (None: it can)."""
    method = message.get("method")
    if not isinstance(method, str):
        return "only a request can be replayed: this is a response (pick the request it answers)"
    if "id" not in message:
        return f"{method} is a notification: it has no answer to compare"
    if direction == "backend->client" or method.startswith(SERVER_TO_CLIENT):
        return f"{method} is a request the backend sent to the client: only the client can answer it"
    if method in _SESSION_BOUND:
        return f"{method} cannot be replayed: {_SESSION_BOUND[method]}"
    params = message.get("params")
    if isinstance(params, dict) and "requestState" in params:
        return (
            f"{method} continues an input round (requestState) that the backend sealed for the client's "
            "exchange: replay the request that started it"
        )
    if params is not None and not isinstance(params, dict):
        return f"{method} has params that are not an object"
    return None


@dataclass
class CallOutcome:
    backend: str
    method: str
    request: JSON
    response: JSON | None = None  # the JSON-RPC answer as the backend sent it (result or error)
    error: str | None = None  # no answer at all: why (the backend is down, timed out, …)
    latency_ms: float | None = None
    asked: list[str] = field(default_factory=list)  # methods the backend asked the client for, refused
    era: str = "handshake"

    @property
    def needs_client(self) -> str | None:
        """Why the answer may differ from the client's: the backend needed the client's help."""
        if self.asked:
            return (
                f"the backend asked the client for {', '.join(sorted(set(self.asked)))}, which the router's own "
                "session cannot answer"
            )
        response = self.response or {}
        err = response.get("error")
        data = err.get("data") if isinstance(err, dict) else None
        if isinstance(data, dict) and isinstance(data.get("requiredCapabilities"), dict):
            # -32021: the backend checks the client's capabilities before it asks for anything.
            wanted = ", ".join(sorted(data["requiredCapabilities"]))
            return f"the backend needs client capabilities ({wanted}) that the router's own session does not offer"
        result = response.get("result")
        if isinstance(result, dict) and "inputRequests" in result:
            return "the backend asked for client input (inputRequests), which the router's own session cannot give"
        return None

    def to_dict(self) -> JSON:
        return {
            "backend": self.backend,
            "method": self.method,
            "era": self.era,
            "request": self.request,
            "response": self.response,
            "error": self.error,
            "latency_ms": self.latency_ms,
            "asked": self.asked,
            "needs_client": self.needs_client,
        }


def _modern(params: JSON | None) -> bool:
    meta = (params or {}).get("_meta")
    version = meta.get(jsonrpc.META_PROTOCOL_VERSION) if isinstance(meta, dict) else None
    return version in jsonrpc.MODERN_VERSIONS


async def router_call(
    backend: Backend, method: str, params: JSON | None = None, timeout: float = CALL_TIMEOUT
) -> CallOutcome:
    """Send one request to the backend on a fresh connection of the router's own."""
    outcome = CallOutcome(backend.name, method, {})
    # A 2026-07-28 request is self-contained (its `_meta` carries the version): it goes as it is, on
    # a modern-era connection with no handshake, as its client sent it.
    era = "modern" if method != "initialize" and _modern(params) else "handshake"
    outcome.era = era
    calls = RouterCalls()
    listener = RouterListener(backend, calls)
    outcome.asked = listener.asked
    request = jsonrpc.request(new_router_id(), method, params)
    outcome.request = request.data
    if not backend.accepting:
        outcome.error = f"backend '{backend.name}' is {backend.state}" + (
            f": {backend.state_reason}" if backend.state_reason else ""
        )
        return outcome
    try:
        ch = backend.new_channel(listener, era)  # type: ignore[arg-type]
    except BackendUnavailable as exc:
        outcome.error = str(exc)
        return outcome
    try:
        await asyncio.wait_for(ch.open(), SETUP_TIMEOUT)
        if era == "handshake" and method != "initialize":
            res = await calls.call(ch, "initialize", WORKBENCH_INIT_PARAMS, timeout=SETUP_TIMEOUT)
            version = res.get("protocolVersion")
            ch.protocol_version = version if isinstance(version, str) else None
            await ch.send(jsonrpc.notification("notifications/initialized"))
        _publish(backend, "router->backend", request, None, method)
        started = time.perf_counter()
        reply = await calls.request(ch, request, timeout)
        latency = time.perf_counter() - started
        outcome.latency_ms = round(latency * 1000, 3)
        outcome.response = reply.data
        _publish(backend, "backend->router", reply, latency, method)
    except (BackendUnavailable, RouterCallError, TimeoutError, OSError) as exc:
        outcome.error = str(exc) or type(exc).__name__
    finally:
        await ch.close()
    return outcome


def _publish(backend: Backend, direction: Any, msg: Message, latency: float | None, method: str) -> None:
    bus = backend.router.bus
    if not bus.wants(TrafficEvent):
        return
    d = msg.data
    if "method" in d:
        kind: Any = "request"
    else:
        kind = "error" if "error" in d else "response"
    err = d.get("error")
    bus.publish(
        TrafficEvent(
            direction=direction,
            session=ROUTER_SESSION,
            backend=backend.name,
            msg_kind=kind,
            method=method,
            msg_id=msg.id,
            latency_ms=None if latency is None else round(latency * 1000, 3),
            error=err.get("message") if isinstance(err, dict) else None,
            message=d,
        )
    )


async def replay(
    backend: Backend, message: JSON, direction: str | None = None, timeout: float = CALL_TIMEOUT
) -> CallOutcome:
    """Send a request from the trace again, to the backend as it is now. Raises ReplayRefused."""
    reason = replay_refusal(message, direction)
    if reason is not None:
        raise ReplayRefused(reason)
    params = message.get("params")
    return await router_call(backend, str(message["method"]), params if isinstance(params, dict) else None, timeout)
