"""`RemoteControl`: the `RouterControl` of a router running elsewhere, over its management API.

Queries and actions are the REST routes; `subscribe()` is a feed fed by `GET /events` (SSE), each
event turned back into the core's event objects. The feed reconnects by itself when the router
goes away (restarted, say) and says so in the feed itself: a `RouterEvent` "lost …: reconnecting"
when the stream drops and "reconnected …" when it is back, so that any view shows it and can
re-read the state it starts from. No Textual here.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote

import httpx
import orjson

from app.control import ControlError, event_kinds
from app.proxy.events import Event, RouterEvent, event_from_dict
from app.proxy.jsonrpc import JSON
from app.proxy.sse import SSEDecoder

RECONNECT_FIRST = 0.2
RECONNECT_MAX = 3.0


class RouterUnreachable(ControlError):
    """No router answered at the URL (refused, timed out, not HTTP)."""


def error_text(resp: httpx.Response) -> str:
    """The router's own message from an error answer: `{"error": …}` (management API) or a JSON-RPC
    error (the guards in front of it), else the body's start."""
    try:
        body: Any = resp.json()
    except ValueError:
        return resp.text[:300].strip() or f"HTTP {resp.status_code}"
    if isinstance(body, dict):
        err = body.get("error")
        if isinstance(err, str):
            return err
        if isinstance(err, dict) and isinstance(err.get("message"), str):
            return str(err["message"])
    return f"HTTP {resp.status_code}: {resp.text[:300]}"


class RemoteFeed:
    """An `EventFeed` over `GET /events`; reconnects until closed."""

    def __init__(self, control: RemoteControl, types: list[str] | None, maxsize: int = 50_000) -> None:
        self._control = control
        self._types = types
        self._queue: deque[Event] = deque(maxlen=maxsize)
        self._wakeup = asyncio.Event()
        self.dropped = 0
        self.closed = False
        self.connected = asyncio.Event()
        self.hello: JSON | None = None  # the router's status when the stream (re)opened
        self._task = asyncio.create_task(self._run(), name="remote-events")

    def _put(self, event: Event) -> None:
        if len(self._queue) == self._queue.maxlen:
            self.dropped += 1
        self._queue.append(event)
        self._wakeup.set()

    def drain(self) -> list[Event]:
        items = list(self._queue)
        self._queue.clear()
        self._wakeup.clear()
        return items

    async def next_batch(self) -> list[Event]:
        while not self._queue:
            if self.closed:
                return []
            self._wakeup.clear()
            await self._wakeup.wait()
        return self.drain()

    def close(self) -> None:
        self.closed = True
        self._wakeup.set()
        self._task.cancel()

    async def aclose(self) -> None:
        self.close()
        with contextlib.suppress(BaseException):
            await self._task

    async def _run(self) -> None:
        url = self._control.url
        delay = RECONNECT_FIRST
        ever = False
        lost_said = False
        params = {"types": ",".join(self._types)} if self._types else None
        while not self.closed:
            problem: str | None = None
            try:
                async with self._control.http.stream(
                    "GET", "/events", params=params, timeout=httpx.Timeout(10.0, read=None)
                ) as resp:
                    if resp.status_code != 200:
                        await resp.aread()
                        text = error_text(resp)
                        if resp.status_code in (400, 401, 403):
                            # Asking again will not help: say why and stop.
                            self._put(RouterEvent(level="error", text=f"{url}/events refused: {text}"))
                            self.closed = True
                            self._wakeup.set()
                            return
                        raise ControlError(text, resp.status_code)
                    if ever:
                        self._put(RouterEvent(level="info", text=f"reconnected to the router at {url}"))
                    ever, lost_said, delay = True, False, RECONNECT_FIRST
                    self.connected.set()
                    decoder = SSEDecoder()
                    async for chunk in resp.aiter_raw():
                        for sse in decoder.feed(chunk):
                            self._take(sse.event, sse.data)
                problem = "the router closed the event stream"
            except (httpx.HTTPError, ControlError) as exc:
                problem = str(exc) or type(exc).__name__
            self.connected.clear()
            if self.closed:
                return
            if not lost_said:
                verb = "lost the router" if ever else "cannot reach the router"
                self._put(RouterEvent(level="warning", text=f"{verb} at {url} ({problem}): reconnecting…"))
                lost_said = True
            await asyncio.sleep(delay)  # reconnect backoff
            delay = min(delay * 2, RECONNECT_MAX)

    def _take(self, event: str | None, data: str) -> None:
        if not data:
            return
        try:
            body = orjson.loads(data)
        except orjson.JSONDecodeError:
            return
        if event == "hello":
            self.hello = body if isinstance(body, dict) else None
            return
        ev = event_from_dict(body)
        if ev is not None:
            self._put(ev)


class RemoteControl:
    """A router elsewhere, driven over HTTP. Close it with `await aclose()`."""

    def __init__(self, url: str, token: str | None = None, *, timeout: float = 30.0) -> None:
        self._url = url.rstrip("/")
        headers = {"Accept": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self.http = httpx.AsyncClient(base_url=self._url, headers=headers, timeout=timeout)
        self._feeds: list[RemoteFeed] = []

    @property
    def url(self) -> str | None:
        return self._url

    async def aclose(self) -> None:
        for feed in self._feeds:
            await feed.aclose()
        await self.http.aclose()

    async def __aenter__(self) -> RemoteControl:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def request(self, method: str, path: str, body: Any = None) -> Any:
        """One management request: its JSON answer, or ControlError with the router's message."""
        try:
            if body is None:
                resp = await self.http.request(method, path)
            else:
                resp = await self.http.request(
                    method, path, content=orjson.dumps(body), headers={"Content-Type": "application/json"}
                )
        except httpx.HTTPError as exc:
            raise RouterUnreachable(f"no router answers at {self._url}: {exc or type(exc).__name__}") from None
        if resp.status_code >= 400:
            raise ControlError(error_text(resp), resp.status_code)
        try:
            return resp.json()
        except ValueError:
            raise RouterUnreachable(f"{self._url} answered something that is not the router's JSON") from None

    @staticmethod
    def _name(name: str) -> str:
        return quote(name, safe="")

    def subscribe(self, kinds: Iterable[str] | None = None) -> RemoteFeed:
        names = None if kinds is None else sorted(set(kinds))
        event_kinds(names)  # an unknown type is refused here, as LocalControl does
        feed = RemoteFeed(self, names)
        self._feeds = [f for f in self._feeds if not f.closed]
        self._feeds.append(feed)
        return feed

    async def status(self, reveal: bool = False) -> JSON:
        result: JSON = await self.request("GET", "/status?reveal=1" if reveal else "/status")
        return result

    async def backend(self, name: str, reveal: bool = False) -> JSON:
        path = f"/backends/{self._name(name)}"
        result: JSON = await self.request("GET", f"{path}?reveal=1" if reveal else path)
        return result

    async def catalog(self, name: str) -> JSON:
        body = await self.request("GET", f"/backends/{self._name(name)}/catalog")
        catalog: JSON = body.get("catalog") or {}
        return catalog

    async def ack_change(self, name: str) -> JSON:
        result: JSON = await self.request("POST", f"/backends/{self._name(name)}/ack")
        return result

    async def call(self, name: str, method: str, params: JSON | None = None) -> JSON:
        body: JSON = {"method": method}
        if params is not None:
            body["params"] = params
        result: JSON = await self.request("POST", f"/backends/{self._name(name)}/call", body)
        return result

    async def replay(self, name: str, message: JSON, direction: str | None = None) -> JSON:
        result: JSON = await self.request(
            "POST", f"/backends/{self._name(name)}/call", {"message": message, "direction": direction}
        )
        return result

    async def health(self, name: str) -> list[JSON]:
        body = await self.request("GET", f"/backends/{self._name(name)}/health")
        samples: list[JSON] = body.get("samples", [])
        return samples

    async def log(self, name: str) -> list[str]:
        body = await self.request("GET", f"/backends/{self._name(name)}/log")
        lines: list[str] = body.get("lines", [])
        return lines

    async def sessions(self) -> list[JSON]:
        result: list[JSON] = await self.request("GET", "/sessions")
        return result

    async def add_backend(self, spec: JSON) -> JSON:
        result: JSON = await self.request("POST", "/backends", spec)
        return result

    async def remove_backend(self, name: str) -> None:
        await self.request("DELETE", f"/backends/{self._name(name)}")

    async def enable(self, name: str) -> JSON:
        result: JSON = await self.request("POST", f"/backends/{self._name(name)}/enable")
        return result

    async def disable(self, name: str) -> JSON:
        result: JSON = await self.request("POST", f"/backends/{self._name(name)}/disable")
        return result

    async def restart(self, name: str) -> JSON:
        body = await self.request("POST", f"/backends/{self._name(name)}/restart")
        snap: JSON = body.get("backend", body)
        return snap

    async def close_session(self, session_id: str) -> None:
        await self.request("DELETE", f"/sessions/{quote(session_id, safe='')}")
