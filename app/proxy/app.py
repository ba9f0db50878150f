"""The one ASGI app on the router's port: MCP routes as raw handlers, the rest through Starlette."""

from __future__ import annotations

import functools
import hmac
import ipaddress
import socket
from collections.abc import Iterable
from urllib.parse import urlsplit

from app.proxy import jsonrpc
from app.proxy.admin import build_admin
from app.proxy.asgi import Receive, Scope, Send, header, respond_error
from app.proxy.endpoint_sse import LegacySSEEndpoint
from app.proxy.endpoint_streamable import StreamableEndpoint
from app.proxy.router import Router

LOCAL_NAMES = {"localhost", "localhost.localdomain"}


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

    def _host_ok(self, scope: Scope) -> bool:
        host = header(scope, b"host")
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
        if self.token is None:
            return True
        auth = header(scope, b"authorization") or ""
        given = auth[7:] if auth.lower().startswith("bearer ") else ""
        return hmac.compare_digest(given.encode(), self.token.encode())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        if not self._host_ok(scope):
            await respond_error(
                send, 403, jsonrpc.INVALID_REQUEST, "Forbidden: Host is not local (DNS rebinding protection)"
            )
            return
        if not self._origin_ok(scope):
            await respond_error(
                send,
                403,
                jsonrpc.INVALID_REQUEST,
                "Forbidden: Origin is not local (DNS rebinding protection)",
            )
            return
        if self.token_everywhere and not self._token_ok(scope):
            await _unauthorized(send, "this router is reachable beyond loopback: every route needs its token")
            return
        path: str = scope["path"]
        if path == "/mcp" or path.startswith("/mcp/"):
            name = path[5:].strip("/") or None
            await self.streamable(scope, receive, send, name)
        elif path == "/sse" or path.startswith("/sse/"):
            name = path[5:].strip("/") or None
            await self.sse.stream(scope, receive, send, name)
        elif path in ("/messages", "/messages/"):
            await self.sse.messages(scope, receive, send)
        elif not self._token_ok(scope):
            await _unauthorized(send, "the management API needs the router's token")
        else:
            await self.admin(scope, receive, send)


async def _unauthorized(send: Send, why: str) -> None:
    await respond_error(
        send,
        401,
        jsonrpc.INVALID_REQUEST,
        f"Unauthorized: {why} (send Authorization: Bearer TOKEN)",
        headers=[(b"www-authenticate", b'Bearer realm="mcp-dev-router"')],
    )
