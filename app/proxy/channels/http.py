"""What the two HTTP backend transports share: the client pool, the URL, the errors that mean "unreachable"."""

from __future__ import annotations

from collections.abc import Mapping

from app.proxy.channels.base import Channel, ChannelListener, ChannelMode
from app.proxy.http_client import HTTPClient

# Every failure of the HTTP client is an OSError (timeouts included): ConnectFailed before anything
# was sent, ConnectionBroke after.
CONNECT_ERRORS = (OSError,)


class HTTPChannel(Channel):
    def __init__(
        self,
        backend: str,
        listener: ChannelListener,
        mode: ChannelMode,
        http: HTTPClient,
        url: str,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(backend, listener, mode)
        self.http = http
        self.url = url
        # The backend's own headers (a bearer token): on every request this channel makes.
        self.extra_headers: dict[str, str] = dict(headers or {})
