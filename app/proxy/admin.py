"""The management API: backends, sessions, status and the live event stream."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from app.proxy.backend import OUTCOME_STATUS, CommandResult
from app.proxy.config import BackendConfig, ConfigError, quote
from app.proxy.events import BATCH_BYTES, EVENT_TYPES
from app.proxy.replay import ReplayRefused, replay
from app.proxy.router import Router, UnknownBackend
from app.proxy.sse import COMMENT_PING, encode

EVENT_KEEPALIVE = 15.0
KNOWN_EVENT_TYPES = set(EVENT_TYPES.values())


class ORJSONResponse(JSONResponse):
    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def _error(status: int, text: str) -> Response:
    return ORJSONResponse({"error": text}, status_code=status)


def _reveal(request: Request) -> bool:
    """Secrets are masked unless the request asks for them by name: `?reveal=1`."""
    return request.query_params.get("reveal", "").lower() in ("1", "true", "yes")


def build_admin(router: Router) -> Starlette:
    async def status(request: Request) -> Response:
        return ORJSONResponse(router.status(_reveal(request)))

    async def list_backends(request: Request) -> Response:
        return ORJSONResponse([b.snapshot(_reveal(request)) for b in router.backends.values()])

    async def index(request: Request) -> Response:
        base = f"http://{request.headers.get('host')}" if request.headers.get("host") else router.listen_url or ""
        backends = [
            {"name": b.name, "state": b.state, "mcp": f"{base}/mcp/{b.name}", "sse": f"{base}/sse/{b.name}"}
            for b in router.backends.values()
        ]
        info = {
            "router": "mcp-dev-router",
            "version": router.status()["version"],
            "mcp": f"{base}/mcp",
            "sse": f"{base}/sse",
            "default": router.default_name,
            "backends": backends,
            "status": f"{base}/status",
        }
        if "text/html" in request.headers.get("accept", ""):
            lines = [
                f"mcp-dev-router {info['version']}: a development router for MCP servers",
                "",
                f"Point an MCP client at {info['mcp']} (Streamable HTTP) or {info['sse']} (legacy SSE)"
                + (f": backend {router.default_name}." if router.default_name else "; no backend yet."),
                "",
                *(f"  {b['name']:<20} {b['state']:<10} {b['mcp']}   {b['sse']}" for b in backends),
                "",
                f"Status as JSON: {info['status']}",
            ]
            return Response("\n".join(lines) + "\n", media_type="text/plain; charset=utf-8")
        return ORJSONResponse(info)

    async def add_backend(request: Request) -> Response:
        ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if ctype != "application/json":
            # Also what makes a page's simple (text/plain, form) POST useless: it cannot send JSON
            # without a preflight, which this router never grants to the management API.
            return _error(415, f"POST /backends takes a JSON body (Content-Type: application/json), not {ctype!r}")
        try:
            data = orjson.loads(await request.body())
        except orjson.JSONDecodeError as exc:
            return _error(400, f"body is not JSON: {exc}")
        try:
            config = BackendConfig.from_dict(data)
        except ConfigError as exc:
            return _error(400, str(exc))
        if config.name in router.backends:
            return _error(409, f"backend '{config.name}' already exists")
        backend = router.add_backend(config)
        return ORJSONResponse({**backend.snapshot(), "seq": backend.added_seq}, status_code=201)

    async def delete_backend(request: Request) -> Response:
        name = request.path_params.get("name") or request.query_params.get("name")
        if not name:
            return _error(400, "say which backend: DELETE /backends?name=NAME")
        try:
            result = await router.remove_backend(name)
        except UnknownBackend as exc:
            return _error(404, str(exc))
        return ORJSONResponse({"removed": name, "seq": result.seq})

    def _backend(request: Request) -> Any:
        name = request.path_params["name"]
        try:
            return router.resolve(name)
        except UnknownBackend as exc:
            return _error(404, str(exc))

    async def get_backend(request: Request) -> Response:
        b = _backend(request)
        return b if isinstance(b, Response) else ORJSONResponse(b.snapshot(_reveal(request)))

    async def catalog(request: Request) -> Response:
        b = _backend(request)
        if isinstance(b, Response):
            return b
        return ORJSONResponse({"backend": b.name, "catalog": b.catalog, "last_change": b.last_change})

    async def ack_change(request: Request) -> Response:
        b = _backend(request)
        if isinstance(b, Response):
            return b
        b.ack_change()
        return ORJSONResponse(b.snapshot())

    async def call(request: Request) -> Response:
        """`{"method", "params"}`: the router sends it on a session of its own; `{"message": {...}}`
        replays a request from a trace (refused, 409, when it needs the client's session)."""
        b = _backend(request)
        if isinstance(b, Response):
            return b
        ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if ctype != "application/json":
            # A call can start a process (a stdio backend's fresh session): no simple POST from a page.
            return _error(
                415, f"POST /backends/NAME/call takes a JSON body (Content-Type: application/json), not {ctype!r}"
            )
        try:
            data = orjson.loads(await request.body())
        except orjson.JSONDecodeError as exc:
            return _error(400, f"body is not JSON: {exc}")
        if not isinstance(data, dict):
            return _error(400, 'body must be {"method": ..., "params": {...}} or {"message": {...}}')
        message = data.get("message")
        if message is None:
            if not isinstance(data.get("method"), str):
                return _error(400, 'say what to send: {"method": "tools/call", "params": {...}}')
            message = {"jsonrpc": "2.0", "id": 0, "method": data.get("method"), "params": data.get("params")}
            if message["params"] is None:
                del message["params"]
        if not isinstance(message, dict):
            return _error(400, '"message" must be a JSON-RPC request object')
        try:
            outcome = await replay(b, message, data.get("direction"))
        except ReplayRefused as exc:
            return _error(409, str(exc))
        return ORJSONResponse(outcome.to_dict())

    async def health(request: Request) -> Response:
        b = _backend(request)
        if isinstance(b, Response):
            return b
        return ORJSONResponse({"backend": b.name, "state": b.state, "samples": [s.to_dict() for s in b.health]})

    async def log(request: Request) -> Response:
        b = _backend(request)
        if isinstance(b, Response):
            return b
        return ORJSONResponse({"backend": b.name, "lines": list(b.log_tail)})

    def _refused(result: CommandResult, body: dict[str, Any] | None = None) -> Response:
        status = OUTCOME_STATUS.get(result.outcome, 409)
        return ORJSONResponse({**(body or {}), "outcome": result.outcome, "error": result.detail}, status_code=status)

    async def restart(request: Request) -> Response:
        try:
            b, result = await router.restart(request.path_params["name"], "restart requested via the API")
        except UnknownBackend as exc:
            return _error(404, str(exc))
        restarted = result.outcome == "restarted"
        body = {"restarted": restarted, "outcome": result.outcome, "seq": result.seq, "backend": b.snapshot()}
        if not restarted:
            return _refused(result, body)
        return ORJSONResponse(body)

    async def enable(request: Request) -> Response:
        try:
            b, result = router.enable(request.path_params["name"])
        except UnknownBackend as exc:
            return _error(404, str(exc))
        if result.outcome != "enabled":
            return _refused(result)
        return ORJSONResponse({**b.snapshot(), "seq": result.seq})

    async def disable(request: Request) -> Response:
        try:
            b, result = await router.disable(request.path_params["name"])
        except UnknownBackend as exc:
            return _error(404, str(exc))
        if result.outcome != "disabled":
            return _refused(result)
        return ORJSONResponse({**b.snapshot(), "seq": result.seq})

    async def sessions(_: Request) -> Response:
        return ORJSONResponse(router.sessions_snapshot())

    async def close_session(request: Request) -> Response:
        sid = request.path_params["sid"]
        session = router.sessions.get(sid)
        if session is None:
            return _error(404, f"unknown session '{sid[:12]}'")
        await session.close("closed through the management API")
        return ORJSONResponse({"closed": sid})

    async def events(request: Request) -> Response:
        wanted_param = request.query_params.get("types")
        wanted = set(wanted_param.split(",")) if wanted_param else None
        if wanted is not None and not wanted <= KNOWN_EVENT_TYPES:
            return _error(
                400,
                f"unknown event types {quote(sorted(wanted - KNOWN_EVENT_TYPES), 120)}; known: {sorted(KNOWN_EVENT_TYPES)}",
            )
        kinds = None if wanted is None else [k for k, name in EVENT_TYPES.items() if name in wanted]
        sub = router.bus.subscribe(kinds=kinds)

        async def stream() -> AsyncIterator[bytes]:
            try:
                yield encode(orjson.dumps({"type": "hello", **router.status()}), event="hello")
                while not sub.closed:
                    try:
                        batch = await asyncio.wait_for(sub.next_batch(BATCH_BYTES), EVENT_KEEPALIVE)
                    except TimeoutError:
                        yield COMMENT_PING
                        continue
                    out = []
                    if sub.dropped:
                        # A reader too slow for the traffic loses the oldest events; tell it how many.
                        dropped, sub.dropped = sub.dropped, 0
                        out.append(encode(orjson.dumps({"type": "dropped", "count": dropped}), event="dropped"))
                    for ev in batch:
                        d = ev.to_dict()
                        out.append(encode(orjson.dumps(d, default=str), event=d["type"]))
                    if out:
                        yield b"".join(out)
            finally:
                sub.close()

        return StreamingResponse(stream(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})

    routes = [
        Route("/", index, methods=["GET"]),
        Route("/status", status, methods=["GET"]),
        Route("/backends", list_backends, methods=["GET"]),
        Route("/backends", add_backend, methods=["POST"]),
        Route("/backends", delete_backend, methods=["DELETE"]),
        Route("/backends/{name}", get_backend, methods=["GET"]),
        Route("/backends/{name}", delete_backend, methods=["DELETE"]),
        Route("/backends/{name}/health", health, methods=["GET"]),
        Route("/backends/{name}/catalog", catalog, methods=["GET"]),
        Route("/backends/{name}/ack", ack_change, methods=["POST"]),
        Route("/backends/{name}/call", call, methods=["POST"]),
        Route("/backends/{name}/log", log, methods=["GET"]),
        Route("/backends/{name}/restart", restart, methods=["POST"]),
        Route("/backends/{name}/enable", enable, methods=["POST"]),
        Route("/backends/{name}/disable", disable, methods=["POST"]),
        Route("/sessions", sessions, methods=["GET"]),
        Route("/sessions/{sid}", close_session, methods=["DELETE"]),
        Route("/events", events, methods=["GET"]),
    ]
    return Starlette(routes=routes)
