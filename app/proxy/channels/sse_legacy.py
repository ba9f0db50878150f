"""Legacy HTTP+SSE to a backend (2024-11-05): one GET stream for everything, POSTs to its endpoint."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from urllib.parse import urljoin

from app.proxy import jsonrpc
from app.proxy.channels.base import BackendUnavailable, NotAnEndpoint
from app.proxy.channels.http import CONNECT_ERRORS, HTTPChannel
from app.proxy.http_client import Response
from app.proxy.jsonrpc import Message
from app.proxy.sse import SSEDecoder, SSEEvent

ENDPOINT_TIMEOUT = 10.0


class LegacySSEChannel(HTTPChannel):
    transport = "sse"

    endpoint: str | None = None  # where messages are POSTed, from the stream's first event
    _reader: asyncio.Task[None] | None = None
    _resp: Response | None = None

    async def open(self) -> None:
        try:
            resp = await self.http.request(
                "GET", self.url, headers={**self.extra_headers, "Accept": "text/event-stream"}
            )
        except CONNECT_ERRORS as exc:
            raise BackendUnavailable(f"cannot reach {self.url}: {exc or type(exc).__name__}") from None
        if resp.status != 200 or not resp.headers.get("content-type", "").startswith("text/event-stream"):
            resp.release()
            raise NotAnEndpoint(f"{self.url} answered HTTP {resp.status}, not an SSE stream")
        self._resp = resp
        endpoint_seen: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self.alive = True
        self._reader = asyncio.create_task(self._read(resp, endpoint_seen))
        try:
            endpoint = await asyncio.wait_for(asyncio.shield(endpoint_seen), ENDPOINT_TIMEOUT)
        except (TimeoutError, BackendUnavailable) as exc:
            await self.close()
            raise NotAnEndpoint(f"{self.url} sent no endpoint event: {exc or 'timed out'}") from None
        # SDKs differ in what they send (absolute path, relative path, full URL): resolve like a browser.
        self.endpoint = urljoin(self.url, endpoint)

    async def _read(self, resp: Response, endpoint_seen: asyncio.Future[str]) -> None:
        decoder = SSEDecoder(self.max_message)
        reason = "backend closed its SSE stream"
        try:
            async for chunk in resp.iter_chunks():
                # The events are taken in a call of their own: a loop variable here would keep the
                # last one (and its message) alive while the stream waits, for as long as the
                # backend is quiet (a 64 MiB answer held 128 MB until the next message).
                self._take(decoder.feed(chunk), endpoint_seen)
        except CONNECT_ERRORS as exc:
            reason = f"backend SSE stream dropped: {exc or type(exc).__name__}"
        finally:
            resp.release()
        if not endpoint_seen.done():
            endpoint_seen.set_exception(BackendUnavailable(reason))
        self.lost(reason)

    def _take(self, events: list[SSEEvent], endpoint_seen: asyncio.Future[str]) -> None:
        for ev in events:
            if ev.too_large:
                err = self.oversized(ev.too_large, None, ev.head, ev.tail)
                if err is not None:
                    self.listener.on_backend_message(self, err, None, None)
                continue
            if ev.event == "endpoint":
                if not endpoint_seen.done():
                    endpoint_seen.set_result(ev.data.strip())
                continue
            if ev.event != "message" or not ev.raw:
                continue
            try:
                messages, _ = jsonrpc.parse_body(ev.raw)
            except jsonrpc.ProtocolError as exc:
                self.listener.on_backend_log(
                    self,
                    f"backend sent invalid JSON-RPC ({exc.message}): {ev.raw[:200].decode('utf-8', 'replace')}",
                    garbage=True,
                )
                continue
            for m in messages:
                self.listener.on_backend_message(self, m, None, None)

    async def send(self, msg: Message, headers: Mapping[str, str] | None = None) -> None:
        if not self.alive or self.endpoint is None:
            raise BackendUnavailable(f"{self.describe} is closed")
        try:
            resp = await self.http.request(
                "POST", self.endpoint, msg.raw, {**self.extra_headers, "Content-Type": "application/json"}
            )
            try:
                if resp.status == 404:
                    self.lost("backend no longer knows this SSE session (it restarted)")
                    raise BackendUnavailable("backend session expired")
                if resp.status >= 400:
                    text = (await resp.read())[:300].decode("utf-8", "replace")
                    if msg.is_request and msg.id is not None:
                        err = jsonrpc.error(
                            msg.id, jsonrpc.INTERNAL_ERROR, f"backend answered HTTP {resp.status}: {text}"
                        )
                        self.listener.on_backend_message(self, err, msg.id, resp.status)
                else:
                    await resp.read()  # "Accepted": read to the end so the connection can be reused
            finally:
                resp.release()
        except CONNECT_ERRORS as exc:
            reason = f"cannot reach {self.endpoint}: {exc or type(exc).__name__}"
            self.lost(reason)
            raise BackendUnavailable(reason) from None

    async def close(self) -> None:
        self.closing = True
        self.alive = False
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(BaseException):
                await self._reader
        if self._resp is not None:
            self._resp.release()
