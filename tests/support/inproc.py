"""A real router in the test's own event loop: the core, its uvicorn server on a free loopback port,
and a `LocalControl` over it, as the TUI runs it. For tests that drive views or the control
interface and still want SDK clients to reach the router over HTTP.

    async with local_router(BackendConfig(name="wb", command=...)) as lr:
        lr.control, lr.router, lr.url, lr.mcp_url("wb")
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from app.control import LocalControl
from app.proxy.config import BackendConfig
from app.proxy.router import Router
from app.runtime import bind, make_server, url_for
from app.settings import Settings
from tests.support.procs import HOST, wait_for


@dataclass
class LocalRouter:
    router: Router
    control: LocalControl
    url: str

    def mcp_url(self, name: str) -> str:
        return f"{self.url}/mcp/{name}"

    async def wait_state(self, name: str, state: str, timeout: float = 20.0) -> None:
        backend = self.router.backends[name]
        await wait_for(lambda: backend.state == state, timeout, message=f"backend {name!r} to be {state!r}")


@contextlib.asynccontextmanager
async def local_router(
    *backends: BackendConfig, wait_up: bool = True, **router_args: Any
) -> AsyncIterator[LocalRouter]:
    """Run a router with these backends; by default wait until every enabled one is up."""
    router_args.setdefault("hold", 10.0)
    router_args.setdefault("health_interval", 30.0)  # probes would only add noise to the traces
    router = Router(**router_args)
    for cfg in backends:
        router.add_backend(cfg)
    sock = bind(HOST, 0)
    router.listen_url = url_for(HOST, sock.getsockname()[1])
    server = make_server(router, Settings(host=HOST, port=0))
    await router.start()
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    lr = LocalRouter(router, LocalControl(router), router.listen_url)
    try:
        if wait_up:
            for cfg in backends:
                if cfg.enabled:
                    await lr.wait_state(cfg.name, "up")
        yield lr
    finally:
        await router.stop()
        server.should_exit = True
        with contextlib.suppress(BaseException):
            await serving
        sock.close()
