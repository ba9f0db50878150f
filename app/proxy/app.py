"""The one ASGI app on the router's port: MCP routes as raw handlers, the rest through Starlette."""

from __future__ import annotations

import functools
import hmac
import ipaddress
import socket
from collections.abc import Iterable, Mapping
from urllib.parse import urlsplit

from app.proxy import jsonrpc
from app.proxy.admin import build_admin
from app.proxy.asgi import ASGIMessage, Receive, Scope, Send, header, respond, respond_error
from app.proxy.config import ROUTE_WORDS
from app.proxy.endpoint_sse import LegacySSEEndpoint
from app.proxy.endpoint_streamable import StreamableEndpoint
from app.proxy.router import Router
from app.proxy.streams import DirectReply

LOCAL_NAMES = {"localhost", "localhost.localdomain"}
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
CORS_EXPOSE = b"Mcp-Session-Id, Mcp-Protocol-Version"
CORS_ALLOW_HEADERS = b"Content-Type, Accept, Authorization, Mcp-Session-Id, Mcp-Protocol-Version, Last-Event-ID"


@functools.lru_cache(maxsize=256)
def is_loopback(host: str) -> bool:
    host = host.strip("[]").lower()
    if host in LOCAL_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@functools.lru_cache(maxsize=256)
def is_local_address(host: str) -> bool:
    """True when `host` is an IP literal of this machine (the kernel lets us bind it)."""
    try:
        ip = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    family = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as sock:
            sock.bind((str(ip), 0))
    except OSError:
        return False
    return True


def _hostname(host_header: str) -> str:
    try:
        return urlsplit(f"//{host_header}").hostname or ""
    except ValueError:
        return ""


class RouterApp:
    """DNS-rebinding protection on every route, then dispatch by path."""

    def __init__(
        self,
        router: Router,
        *,
        bind_host: str = "127.0.0.1",
        token: str | None = None,
        allowed_hosts: Iterable[str] = (),
        allow_origins: Iterable[str] = (),
    ) -> None:
        self.router = router
        self.streamable = StreamableEndpoint(router)
        self.sse = LegacySSEEndpoint(router)
        self.admin = build_admin(router)
        bind = bind_host.strip("[]").lower()
        self.allowed_hosts = {bind, *(h.strip("[]").lower() for h in allowed_hosts)}
        # Bound to every address: a Host naming any of this machine's addresses is the router itself.
        self.bind_any = bind in ("0.0.0.0", "::", "")
        self.token = token
        # Beyond loopback anyone on the network reaches the router, and the MCP routes call tools and
        # (stdio) start processes: there the token guards every route, not just the management API.
        self.token_everywhere = token is not None and not is_loopback(bind)
        # Browser-based MCP clients the user named: CORS on the MCP routes for these origins only.
        self.allow_origins = frozenset(o.rstrip("/").lower() for o in allow_origins)
        self._hosts_ok: dict[bytes, bool] = {}  # Host header -> allowed (the hot path asks on every call)
        # `post_now`'s verdicts on heads read before, by the identity of their headers: the head
        # parser gives the same dict for the same head, call after call. (That dict, the path, its
        # verdict.) Never a head's with credentials: those dicts are new each time, and not kept.
        self._heads_now: dict[int, tuple[dict[bytes, bytes], str, _HeadVerdict | None]] = {}

    @staticmethod
    def _mcp_route(scope: Scope) -> tuple[str, str | None] | None:
        """Which MCP endpoint a request is for, and its backend name (None: the default), if any."""
        path: str = scope["path"]
        if path == "/mcp" or path.startswith("/mcp/"):
            return "streamable", path[5:].strip("/") or None
        if path == "/sse" or path.startswith("/sse/"):
            return "sse", path[5:].strip("/") or None
        if path in ("/messages", "/messages/"):
            return "messages", None
        if path == "/":
            # The bare address: POST/DELETE (and a session's GET stream) are Streamable HTTP, a GET
            # asking for an event stream is legacy SSE, anything else the index (management).
            if scope["method"] != "GET" or header(scope, b"mcp-session-id") is not None:
                return "streamable", None
            if "text/event-stream" in (header(scope, b"accept") or ""):
                return "sse", None
            return None
        parts = path.strip("/").split("/")
        if len(parts) == 2 and parts[1] in ("mcp", "sse") and parts[0] not in ROUTE_WORDS:
            return ("streamable" if parts[1] == "mcp" else "sse"), parts[0]
        return None

    @staticmethod
    def _same_origin(scope: Scope, origin: str) -> bool:
        """Whether `origin` is the router itself as the request addressed it (its Host)."""
        host = header(scope, b"host")
        if host is None:
            return False
        try:
            o = urlsplit(origin)
            h = urlsplit(f"//{host}")
            return (
                o.scheme == "http"
                and (o.hostname or "") == (h.hostname or "")
                and (o.port or 80) == (h.port or 80)
                and o.path in ("", "/")
            )
        except ValueError:
            return False

    def _cors_origin(self, scope: Scope) -> str | None:
        origin = header(scope, b"origin")
        if origin is not None and origin.rstrip("/").lower() in self.allow_origins:
            return origin
        return None

    async def _preflight(self, scope: Scope, send: Send, origin: str) -> None:
        asked = header(scope, b"access-control-request-headers")
        await respond(
            send,
            204,
            headers=[
                (b"access-control-allow-origin", origin.encode("latin-1")),
                (b"access-control-allow-methods", b"GET, POST, DELETE, OPTIONS"),
                # Echo what the page asked for: the modern era's Mcp-Param-* names are open-ended.
                (b"access-control-allow-headers", asked.encode("latin-1") if asked else CORS_ALLOW_HEADERS),
                (b"access-control-expose-headers", CORS_EXPOSE),
                (b"access-control-max-age", b"600"),
                (b"vary", b"Origin"),
            ],
        )

    @staticmethod
    def _with_cors(send: Send, origin: str) -> Send:
        extra = [
            (b"access-control-allow-origin", origin.encode("latin-1")),
            (b"access-control-expose-headers", CORS_EXPOSE),
            (b"vary", b"Origin"),
        ]

        async def cors_send(message: ASGIMessage) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        return cors_send

    def _host_ok(self, scope: Scope) -> bool:
        return self._host_allowed(header(scope, b"host"))

    def _host_allowed(self, host: str | None) -> bool:
        if host is None:
            return True  # HTTP/1.0 without Host cannot be a browser being rebound
        name = _hostname(host)
        return is_loopback(name) or name in self.allowed_hosts or (self.bind_any and is_local_address(name))

    @staticmethod
    def _origin_ok(scope: Scope) -> bool:
        origin = header(scope, b"origin")
        if origin is None:
            return True
        try:
            parts = urlsplit(origin)
        except ValueError:
            return False
        return parts.scheme in ("http", "https") and is_loopback(parts.hostname or "")

    def _token_ok(self, scope: Scope) -> bool:
        return self._token_allowed(header(scope, b"authorization"))

    def _token_allowed(self, auth: str | None) -> bool:
        if self.token is None:
            return True
        auth = auth or ""
        given = auth[7:] if auth.lower().startswith("bearer ") else ""
        return hmac.compare_digest(given.encode(), self.token.encode())

    def post_now(self, scope: Scope, headers: dict[bytes, bytes], body: bytes, reply: DirectReply) -> bool:
        """Serve a whole POST without a task if it is the hot path's kind (see StreamableEndpoint.post_now).

        The same checks as `__call__`; a request any of them would refuse, and one from a web page
        (Origin, CORS), goes the usual way: False, nothing done. `headers`: the request's, by
        lower-case name (none repeated: `header()` would read only the first); the scope has no
        header list (it is made only if the request is handed over), so none is read from it here.
        """
        path: str = scope["path"]
        known = self._heads_now.get(id(headers))
        if known is not None and known[0] is headers and known[1] == path:
            verdict = known[2]  # (the entry holds the dict: its id is not reused)
        else:
            verdict = self._head_verdict(headers, path)
            if not any(name in headers for name in _CREDENTIALS):
                if len(self._heads_now) >= 256:
                    self._heads_now.clear()
                self._heads_now[id(headers)] = (headers, path, verdict)
        if verdict is None:
            return False
        if self.token_everywhere:  # (per request: the credentials are the request's own)
            auth = headers.get(b"authorization")
            if not self._token_allowed(None if auth is None else auth.decode("latin-1")):
                return False
        backend_name, version, forwarded = verdict
        return self.streamable.post_now(scope, body, backend_name, version, forwarded, reply)

    def _head_verdict(self, headers: dict[bytes, bytes], path: str) -> _HeadVerdict | None:
        """What `post_now` reads of a request's path and headers but its credentials: the backend's
        name, the version and the headers to forward. None: not the hot path's."""
        if headers.get(b"origin") is not None:
            return None
        host = headers.get(b"host")
        if host is not None:
            ok = self._hosts_ok.get(host)
            if ok is None:
                ok = self._host_allowed(host.decode("latin-1"))
                if len(self._hosts_ok) < 64:
                    self._hosts_ok[host] = ok
            if not ok:
                return None
        route = _post_route(path)
        if route is None or route[0] != "streamable":
            return None
        verdict = self.streamable.head_verdict(headers)
        if verdict is None:
            return None
        return route[1], verdict[0], verdict[1]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        if not self._host_ok(scope):
            await respond_error(
                send, 403, jsonrpc.INVALID_REQUEST, "Forbidden: Host is not local (DNS rebinding protection)"
            )
            return
        route = self._mcp_route(scope)
        cors = self._cors_origin(scope) if route is not None and self.allow_origins else None
        if cors is None and not self._origin_ok(scope):
            await respond_error(
                send,
                403,
                jsonrpc.INVALID_REQUEST,
                "Forbidden: Origin is not local (DNS rebinding protection)",
            )
            return
        if route is not None and cors is not None and scope["method"] == "OPTIONS":
            await self._preflight(scope, send, cors)  # a preflight carries no credentials
            return
        if self.token_everywhere and not self._token_ok(scope):
            await _unauthorized(send, "this router is reachable beyond loopback: every route needs its token")
            return
        if route is not None:
            kind, name = route
            if cors is not None:
                send = self._with_cors(send, cors)
            if kind == "streamable":
                await self.streamable(scope, receive, send, name)
            elif kind == "sse":
                await self.sse.stream(scope, receive, send, name)
            else:
                await self.sse.messages(scope, receive, send)
            return
        origin = header(scope, b"origin")
        if scope["method"] in WRITE_METHODS and origin is not None and not self._same_origin(scope, origin):
            # A page on any other origin (another localhost port included) could otherwise start a
            # process through POST /backends: a text/plain POST needs no preflight.
            await respond_error(
                send,
                403,
                jsonrpc.INVALID_REQUEST,
                f"Forbidden: Origin {origin} is not this router's own; requests that change state are "
                "accepted from the router's own origin or without an Origin (curl, scripts, mcp-router)",
            )
            return
        if not self._token_ok(scope):
            await _unauthorized(send, "the management API needs the router's token")
        else:
            await self.admin(scope, receive, send)


# What the hot path reads of a request's path and headers: backend name, version, forwarded headers.
_HeadVerdict = tuple[str | None, str, Mapping[str, str]]
_CREDENTIALS = (b"authorization", b"proxy-authorization", b"cookie")


@functools.lru_cache(maxsize=256)
def _post_route(path: str) -> tuple[str, str | None] | None:
    """`RouterApp._mcp_route` of a POST: it depends on the path alone (a client posts to the same one)."""
    return RouterApp._mcp_route({"type": "http", "method": "POST", "path": path, "headers": []})


async def _unauthorized(send: Send, why: str) -> None:
    await respond_error(
        send,
        401,
        jsonrpc.INVALID_REQUEST,
        f"Unauthorized: {why} (send Authorization: Bearer TOKEN)",
        headers=[(b"www-authenticate", b'Bearer realm="mcp-dev-router"')],
    )
