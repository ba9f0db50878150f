"""Owns the loop: binds the socket, serves the router with uvicorn, runs a view until a signal."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
import sys
from collections.abc import AsyncIterator, Generator
from pathlib import Path

import uvicorn

from app.headless import HeadlessPrinter
from app.proxy.app import RouterApp
from app.proxy.router import Router
from app.proxy.tracefile import TraceFileWriter
from app.server_protocol import CoalescingHttpToolsProtocol
from app.settings import Settings
from app.state import Persistence, RuntimeFile


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
        resend=settings.resend,
        health_interval=settings.health_interval,
        max_body=settings.max_body,
        max_message=settings.max_message,
        default=settings.default,
        session_idle_timeout=settings.session_idle_timeout,
        max_sessions=settings.max_sessions,
        probe_timeout=settings.probe_timeout,
        park_after=settings.park_after,
    )
    for cfg in settings.backends:
        router.add_backend(cfg)
    return router


def load_state(settings: Settings) -> Persistence:
    """Take the profile's saved state and merge it into `settings.backends` (the command line wins)."""
    persistence = Persistence(settings.profile, enabled=settings.persist)
    settings.backends = persistence.merge(settings.backends, persistence.load())
    return persistence


@contextlib.asynccontextmanager
async def services(settings: Settings, router: Router, persistence: Persistence) -> AsyncIterator[None]:
    """What runs beside a started router in any view: saving state on every change, the runtime file
    for `mcp-router`, the trace file. Warnings go to the event bus (a view shows them)."""
    notes = [*settings.warnings, *persistence.warnings]
    if settings.default is not None and settings.default not in router.backends:
        notes.append(f"--default {settings.default}: no such backend; serving {router.default_name} at /mcp")
    runtime_file = RuntimeFile()
    if router.listen_url is not None:
        problem = runtime_file.write(router.listen_url, settings.profile, settings.token)
        if problem:
            notes.append(problem)
    tracing: asyncio.Task[None] | None = None
    if settings.trace_file is not None:
        try:
            writer = TraceFileWriter(settings.trace_file, int(settings.trace_max_mb * 1024 * 1024))
            tracing = asyncio.create_task(writer.follow(router.bus), name="trace-file")
        except OSError as exc:
            notes.append(f"cannot write the trace file {settings.trace_file}: {exc.strerror}")
    logger = logging.getLogger("mcp-dev-router")
    for note in notes:
        if logger.hasHandlers():  # the TUI's log file keeps them too (headless prints the event)
            logger.warning("%s", note)
        router.notice("warning", note)
    persistence.attach(router)
    try:
        yield
    finally:
        runtime_file.remove()
        await persistence.close(router)
        if tracing is not None:
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(tracing, 2)


def make_server(router: Router, settings: Settings) -> RouterServer:
    app = RouterApp(
        router,
        bind_host=settings.host,
        token=settings.token,
        allowed_hosts=settings.allowed_hosts,
        allow_origins=settings.allow_origins,
    )
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
    persistence = load_state(settings)
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
    async with services(settings, router, persistence):
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


def log_to_file() -> Path:
    """While the TUI owns the terminal, every log line (uvicorn's, the core's, asyncio's) goes to a
    file under platformdirs' user_log_path instead: one stray line would garble the screen."""
    from platformdirs import user_log_path

    directory = user_log_path("mcp-dev-router", ensure_exists=True)
    path = directory / "mcp-router-tui.log"
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "asyncio"):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
    logging.captureWarnings(True)
    return path


async def run_tui(settings: Settings) -> int:
    """The router and the TUI in one loop: the socket is bound first (a port in use is reported on
    the terminal before the UI takes it), uvicorn serves as a task, and the UI runs until quit."""
    try:
        sock = bind(settings.host, settings.port)
    except OSError as exc:
        print(
            f"mcp-dev-router: cannot listen on {settings.host}:{settings.port}: {exc.strerror}",
            file=sys.stderr,
        )
        return 1
    from app.control import LocalControl
    from app.tui import RouterTUI

    log_path = log_to_file()
    port = sock.getsockname()[1]
    persistence = load_state(settings)
    router = make_router(settings)
    router.listen_url = url_for(settings.host, port)
    logging.getLogger("mcp-dev-router").info("listening on %s", router.listen_url)
    server = make_server(router, settings)
    await router.start()
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    app = RouterTUI(LocalControl(router), trace_buffer=settings.trace_buffer, freeze_heap=True)
    loop = asyncio.get_running_loop()
    # SIGTERM quits like `q` (Textual reads ctrl+c as a key, so SIGINT only comes from outside).
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        with contextlib.suppress(ValueError, RuntimeError):
            loop.add_signal_handler(sig, app.exit, 0)
    try:
        async with services(settings, router, persistence):
            try:
                await app.run_async()
            finally:
                # Sessions first: their open streams end, so uvicorn's graceful shutdown has nothing to wait for.
                await router.stop()
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            loop.remove_signal_handler(sig)
        server.should_exit = True
        with contextlib.suppress(BaseException):
            await serving
        with contextlib.suppress(OSError):
            sock.close()
        logging.getLogger("mcp-dev-router").info("stopped")
    if app.return_code not in (0, None):
        print(f"mcp-router-tui: stopped with an error; see {log_path}", file=sys.stderr)
    return app.return_code or 0


async def run_trace_file(settings: Settings) -> int:
    """`--open FILE`: the TUI over a trace file; no socket, no router, nothing started."""
    from app.control_file import FileControl
    from app.tui import RouterTUI

    assert settings.open_trace is not None
    try:
        control = FileControl.open(settings.open_trace)
    except OSError as exc:
        print(f"mcp-router-tui: cannot open {settings.open_trace}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    log_to_file()
    app = RouterTUI(control, trace_buffer=max(settings.trace_buffer, len(control.trace.events)), freeze_heap=True)
    await app.run_async()
    return app.return_code or 0


def run(settings: Settings) -> int:
    if settings.open_trace is not None:
        main = run_trace_file(settings)
    else:
        main = run_tui(settings) if settings.ui else run_headless(settings)
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency where it builds
        return asyncio.run(main)
    return uvloop.run(main)
