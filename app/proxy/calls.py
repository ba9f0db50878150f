"""Requests the router makes on its own account (probes, replayed handshakes), in their own id space."""

from __future__ import annotations

import asyncio
import itertools

from app.proxy import jsonrpc
from app.proxy.channels.base import Channel
from app.proxy.jsonrpc import JSON, Message, RequestId

_router_ids = itertools.count(1)
ROUTER_ID_PREFIX = "mcp-router-"


def new_router_id() -> str:
    return f"{ROUTER_ID_PREFIX}{next(_router_ids)}"


class RouterCallError(Exception):
    def __init__(self, method: str, detail: str) -> None:
        super().__init__(f"{method}: {detail}")
        self.method = method
        self.detail = detail


class RouterCallTimeout(RouterCallError):
    """The backend took the request (or its connection) and said nothing within the timeout."""

    def __init__(self, method: str, timeout: float) -> None:
        super().__init__(method, f"no answer within {timeout:g} s")
        self.args = (f"no answer to {method} within {timeout:g} s",)
        self.timeout = timeout

    def __str__(self) -> str:
        return str(self.args[0])


class RouterCalls:
    def __init__(self) -> None:
        # By id: the channel it was sent on (only that channel's loss fails it) and its answer.
        self.waiting: dict[RequestId, tuple[Channel, asyncio.Future[Message]]] = {}

    async def call(self, channel: Channel, method: str, params: JSON | None = None, timeout: float = 10.0) -> JSON:
        """Send a request and return its result; errors and silence raise RouterCallError."""
        rid = new_router_id()
        fut: asyncio.Future[Message] = asyncio.get_running_loop().create_future()
        self.waiting[rid] = (channel, fut)
        try:
            # The send is inside the timeout: over HTTP it waits for the answer's head, and a
            # backend that accepts the connection and never answers would hold it forever.
            async with asyncio.timeout(timeout):
                await channel.send(jsonrpc.request(rid, method, params))
                reply = await fut
        except TimeoutError:
            raise RouterCallTimeout(method, timeout) from None
        finally:
            self.waiting.pop(rid, None)
        if reply.is_error:
            err = reply.data.get("error") or {}
            raise RouterCallError(method, f"error {err.get('code')}: {err.get('message')}")
        res = reply.data.get("result")
        return res if isinstance(res, dict) else {}

    async def request(self, channel: Channel, msg: Message, timeout: float = 10.0) -> Message:
        """Send a request (its id from `new_router_id`) and return the reply as it came, error or not.

        Silence raises RouterCallError."""
        rid = msg.id
        assert rid is not None
        fut: asyncio.Future[Message] = asyncio.get_running_loop().create_future()
        self.waiting[rid] = (channel, fut)
        try:
            # As in `call`: the send is inside the timeout (over HTTP it waits for the answer's head).
            async with asyncio.timeout(timeout):
                await channel.send(msg)
                return await fut
        except TimeoutError:
            raise RouterCallTimeout(msg.method or "request", timeout) from None
        finally:
            self.waiting.pop(rid, None)

    def take(self, msg: Message) -> bool:
        """Claim a reply to one of our own requests."""
        if not self.waiting or not msg.is_response:
            return False  # (none waiting: the common case, asked of every answer to a client)
        waiting = self.waiting.get(msg.id) if msg.id is not None else None
        if waiting is None:
            return False
        fut = waiting[1]
        if not fut.done():
            fut.set_result(msg)
        return True

    def fail_on(self, channel: Channel, reason: str) -> None:
        """`channel` is lost: what was sent on it gets no answer. Calls on the session's other
        channels go on (at a blue/green move the old process may end while the new one's handshake
        is being replayed)."""
        for rid, (ch, fut) in list(self.waiting.items()):
            if ch is channel and not fut.done():
                fut.set_result(jsonrpc.error(rid, jsonrpc.BACKEND_LOST, reason))


async def list_catalog(calls: RouterCalls, channel: Channel, capabilities: JSON) -> dict[str, list[JSON]]:
    """Fetch the tools, resources and prompts a backend offers (following pagination)."""
    catalog: dict[str, list[JSON]] = {}
    for kind in ("tools", "resources", "prompts"):
        if kind not in capabilities:
            continue
        items: list[JSON] = []
        cursor: str | None = None
        for _page in range(50):
            params: JSON = {"cursor": cursor} if cursor else {}
            res = await calls.call(channel, f"{kind}/list", params or None, timeout=10.0)
            page = res.get(kind)
            if isinstance(page, list):
                items.extend(i for i in page if isinstance(i, dict))
            nxt = res.get("nextCursor")
            if not isinstance(nxt, str) or not nxt:
                break
            cursor = nxt
        catalog[kind] = sorted(items, key=lambda i: str(i.get("name") or i.get("uri")))
    return catalog


def catalog_changes(old: dict[str, list[JSON]] | None, new: dict[str, list[JSON]] | None) -> list[str]:
    """The kinds (tools, resources, prompts) whose lists differ."""
    if old is None or new is None:
        return []
    return [k for k in ("tools", "resources", "prompts") if old.get(k) != new.get(k) and (k in old or k in new)]
