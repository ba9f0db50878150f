"""The router in the test's own event loop: the in-process `Router` served by uvicorn on a free
loopback port, as the TUI runs it. For tests of views that drive it through `LocalControl`."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

from app.control import LocalControl
from app.proxy.config import BackendConfig
from app.proxy.router import Router
from app.runtime import bind, make_router, make_server, url_for
from app.settings import Settings
from tests.support.procs import HOST


@dataclass
class InProcessRouter:
    router: Router
    control: LocalControl
    url: str

    def mcp_url(self, name: str | None = None) -> str:
        return f"{self.url}/mcp" if name is None else f"{self.url}/mcp/{name}"


@contextlib.asynccontextmanager
async def serve_router(
    backends: list[BackendConfig], *, hold: float = 5.0, health_interval: float = 5.0
) -> AsyncIterator[InProcessRouter]:
    """Start a router with these backends in this loop; stop it (sessions, processes, server) after."""
    settings = Settings(host=HOST, port=0, backends=backends, hold=hold, health_interval=health_interval)
    sock = bind(HOST, 0)
    router = make_router(settings)
    router.listen_url = url_for(HOST, sock.getsockname()[1])
    server = make_server(router, settings)
    await router.start()
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        yield InProcessRouter(router, LocalControl(router), router.listen_url)
    finally:
        await router.stop()
        server.should_exit = True
        with contextlib.suppress(BaseException):
            await serving
        sock.close()
