"""What the two HTTP backend transports share: the client pool, the URL, the errors that mean "unreachable"."""

from __future__ import annotations

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
    ) -> None:
        super().__init__(backend, listener, mode)
        self.http = http
        self.url = url
