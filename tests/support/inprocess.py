"""The router in the test's own event loop, served by real uvicorn on a free loopback port.

For view tests (the TUI's screens) that drive the router through `LocalControl` and reach it with
SDK clients over HTTP at the same time:

    async with served_router(health_interval=0.5) as (router, control):
        control.url  # http://127.0.0.1:PORT
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from app.control import LocalControl
from app.proxy.config import BackendConfig
from app.proxy.router import Router
from app.runtime import bind, make_server, url_for
from app.settings import Settings
from tests.support.procs import HOST


@contextlib.asynccontextmanager
async def served_router(
    *backends: BackendConfig, health_interval: float = 5.0, **router_args: Any
) -> AsyncIterator[tuple[Router, LocalControl]]:
    """A started router with these backends, listening on 127.0.0.1:<free port>; stopped on exit
    (its stdio processes ended, uvicorn shut down, the socket closed)."""
    settings = Settings(host=HOST, port=0, health_interval=health_interval, ui=False)
    router = Router(health_interval=health_interval, **router_args)
    for cfg in backends:
        router.add_backend(cfg)
    sock = bind(HOST, 0)
    router.listen_url = url_for(HOST, sock.getsockname()[1])
    server = make_server(router, settings)
    await router.start()
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        yield router, LocalControl(router)
    finally:
        await router.stop()
        server.should_exit = True
        with contextlib.suppress(BaseException):
            await serving
        sock.close()
