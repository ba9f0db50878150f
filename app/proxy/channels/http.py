"""What the two HTTP backend transports share: the client pool, the URL, the errors that mean "unreachable"."""

from __future__ import annotations

import asyncio

import aiohttp

from app.proxy.channels.base import Channel, ChannelListener, ChannelMode

CONNECT_ERRORS = (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError, OSError, asyncio.TimeoutError)


class HTTPChannel(Channel):
    def __init__(
        self,
        backend: str,
        listener: ChannelListener,
        mode: ChannelMode,
        http: aiohttp.ClientSession,
        url: str,
    ) -> None:
        super().__init__(backend, listener, mode)
        self.http = http
        self.url = url
