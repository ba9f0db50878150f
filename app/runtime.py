"""Owns the loop: binds the socket, serves the router with uvicorn, runs a view until a signal."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import sys
from collections.abc import Generator

import uvicorn

from app.headless import HeadlessPrinter
from app.proxy.app import RouterApp
from app.proxy.router import Router
from app.server_protocol import CoalescingHttpToolsProtocol
from app.settings import Settings


class RouterServer(uvicorn.Server):
    """uvicorn without its signal handling: the runtime (or the TUI) owns SIGINT/SIGTERM."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


def bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host.strip("[]") else socket.AF_INET
    sock = socket.create_server((host.strip("[]"), port), family=family, reuse_port=False)
    sock.set_inheritable(True)
    return sock


def url_for(host: str, port: int) -> str:
    h = host.strip("[]")
    return f"http://[{h}]:{port}" if ":" in h else f"http://{h}:{port}"


def make_router(settings: Settings) -> Router:
    router = Router(
        hold=settings.hold,
        health_interval=settings.health_interval,
        max_body=settings.max_body,
        default=settings.default,
        session_idle_timeout=settings.session_idle_timeout,
    )
    for cfg in settings.backends:
        router.add_backend(cfg)
    return router


def make_server(router: Router, settings: Settings) -> RouterServer:
    app = RouterApp(router, bind_host=settings.host, token=settings.token, allowed_hosts=settings.allowed_hosts)
    config = uvicorn.Config(
        app,
        log_config=None,
        access_log=False,
        lifespan="off",
        timeout_graceful_shutdown=3,
        http=CoalescingHttpToolsProtocol,
        ws="none",
        loop="none",
        timeout_keep_alive=30,
        proxy_headers=False,
        server_header=False,
        date_header=False,
    )
    return RouterServer(config)


async def run_headless(settings: Settings) -> int:
    try:
        sock = bind(settings.host, settings.port)
    except OSError as exc:
        print(
            f"mcp-dev-router: cannot listen on {settings.host}:{settings.port}: {exc.strerror}",
            file=sys.stderr,
        )
        return 1
    port = sock.getsockname()[1]
    router = make_router(settings)
    router.listen_url = url_for(settings.host, port)
    printer = HeadlessPrinter.on(router.bus, settings.log_format, settings.quiet)
    server = make_server(router, settings)
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stopping.set)

    printer.line(f"mcp-dev-router listening on {router.listen_url}")  # the readiness line, plain in any format
    if not router.backends:
        printer.info(
            "no backend yet: add one with -b NAME=URL or -b 'NAME=COMMAND ARGS', start with --demo, "
            f"or POST {router.listen_url}/backends"
        )
    else:
        default = router.default_name
        for name in router.backends:
            mark = " (default: /mcp, /sse)" if name == default else ""
            printer.info(f"  {name}: {router.listen_url}/mcp/{name}  {router.backends[name].config.target}{mark}")
    await router.start()
    printing = asyncio.create_task(printer.run())
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    stop_wait = asyncio.create_task(stopping.wait())
    await asyncio.wait({serving, stop_wait}, return_when=asyncio.FIRST_COMPLETED)
    # Close sessions first: their open streams end, so uvicorn's graceful shutdown has nothing to wait for.
    await router.stop()
    server.should_exit = True
    with contextlib.suppress(BaseException):
        await serving
    stop_wait.cancel()
    printer.sub.close()  # the printer ends once what was queued (the sessions' closing lines) is out
    with contextlib.suppress(BaseException):
        await asyncio.wait_for(printing, 2)
    with contextlib.suppress(OSError):
        sock.close()
    return 0


def run(settings: Settings) -> int:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency where it builds
        return asyncio.run(run_headless(settings))
    return uvloop.run(run_headless(settings))
