"""Command-line settings and how they become backends."""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from app import __version__
from app.proxy.app import is_loopback
from app.proxy.config import NAME_RE, BackendConfig, ConfigError, parse_backend_arg, parse_header, parse_mcp_servers

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8090


@dataclass
class Settings:
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    ui: bool = True
    backends: list[BackendConfig] = field(default_factory=list)
    default: str | None = None
    demo: bool = False
    hold: float = 30.0
    resend: bool = True
    health_interval: float = 5.0
    log_format: str = "text"
    quiet: bool = False
    max_body: int | None = None
    max_message: int = 64 * 1024 * 1024
    token: str | None = None
    allowed_hosts: list[str] = field(default_factory=list)
    session_idle_timeout: float = 1800.0
    trace_buffer: int = 10_000
    profile: str = "default"
    persist: bool = True
    trace_file: Path | None = None
    trace_max_mb: float = 50.0
    allow_origins: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    """Things to say at start that did not stop it (skipped config entries)."""
    max_sessions: int = 32
    probe_timeout: float = 5.0
    park_after: float = 30.0
    open_trace: str | None = None  # --open FILE: show a trace file, read-only, no router


def demo_backend() -> BackendConfig:
    return BackendConfig(name="demo", command=sys.executable, args=["-m", "app.demo_server"])


_SIZE_UNITS = {"": 1, "b": 1, "k": 1 << 10, "kb": 1 << 10, "kib": 1 << 10, "m": 1 << 20, "mb": 1 << 20}
_SIZE_UNITS |= {"mib": 1 << 20, "g": 1 << 30, "gb": 1 << 30, "gib": 1 << 30}


def _size(text: str) -> int:
    """A byte count: 1048576, 512KiB, 64MiB, 1.5M (binary units either way)."""
    t = text.strip().lower().replace(" ", "")
    num = t.rstrip("abcdefghijklmnopqrstuvwxyz")
    unit = t[len(num) :]
    try:
        value = int(float(num) * _SIZE_UNITS[unit])
    except (KeyError, ValueError):
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (e.g. 1048576, 512KiB, 64MiB)") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"a size must be positive: {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="mcp-router-tui",
        description="A development router for MCP servers: restart and swap backends while clients stay connected.",
        epilog="Examples:\n"
        "  mcp-router-tui --demo\n"
        "  mcp-router-tui -b weather=http://127.0.0.1:8000/mcp\n"
        '  mcp-router-tui -b "files=python server.py" --watch files=./src\n'
        "  mcp-router-tui paths          (where state, logs and runtime files live)\n",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--version", action="version", version=f"mcp-dev-router {__version__}")
    p.add_argument("--no-ui", action="store_true", help="run headless: one line per event on stdout")
    p.add_argument("--host", default=DEFAULT_HOST, help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help="port to bind; 0 picks a free one (default 8090)")
    p.add_argument(
        "-b",
        "--backend",
        action="append",
        default=[],
        metavar="NAME=TARGET",
        help="a backend: NAME=URL or NAME=HOST:PORT (Streamable HTTP, or legacy SSE) or 'NAME=COMMAND ARGS' "
        "(stdio); repeatable",
    )
    p.add_argument(
        "-H",
        "--header",
        action="append",
        default=[],
        metavar='NAME="Header: value"',
        help="an HTTP header sent on every request to backend NAME (a bearer token); repeatable",
    )
    p.add_argument(
        "--config",
        type=Path,
        help="read backends from an mcpServers JSON file (Claude Desktop, Cursor, VS Code)",
    )
    p.add_argument("--default", help="backend served at /mcp and /sse (default: the first)")
    p.add_argument("--demo", action="store_true", help="add the built-in demo backend")
    p.add_argument("--hold", type=float, default=30.0, help="seconds a request waits for a down backend (default 30)")
    p.add_argument(
        "--no-resend",
        action="store_true",
        help="fail a read or idempotent request in flight when its backend dies, instead of re-sending it",
    )
    p.add_argument("--health-interval", type=float, default=5.0, help="seconds between health probes (default 5)")
    p.add_argument(
        "--watch",
        action="append",
        default=[],
        metavar="NAME=PATH",
        help="restart stdio backend NAME when files under PATH change; repeatable",
    )
    p.add_argument("--log-format", choices=["text", "json"], default="text", help="headless output format")
    p.add_argument("--quiet", action="store_true", help="headless: no per-message lines, only state changes")
    p.add_argument(
        "--max-message",
        type=_size,
        default=64 * 1024 * 1024,
        metavar="SIZE",
        help="largest JSON-RPC message carried either way, e.g. 64MiB (default); past it, a JSON-RPC error",
    )
    p.add_argument(
        "--max-body",
        type=_size,
        default=None,
        metavar="SIZE",
        help="largest request body a client may POST (default: --max-message); past it, 413",
    )
    p.add_argument(
        "--session-idle-timeout",
        type=float,
        default=1800.0,
        metavar="SECONDS",
        help="close a client session idle this long with no open stream (default 1800)",
    )
    p.add_argument(
        "--park-after",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="a restart leaves a client session idle this long with no open stream to be rebuilt at its"
        " next request, instead of moving it at once (default 30; negative: always move it)",
    )
    p.add_argument(
        "--trace-buffer",
        type=int,
        default=10_000,
        metavar="N",
        help="messages the terminal UI's trace keeps; older ones are dropped and counted (default 10000)",
    )
    p.add_argument(
        "--token",
        default=os.environ.get("MCP_ROUTER_TOKEN"),
        help="bearer token: required on every route when bound beyond loopback, on the management API otherwise",
    )
    p.add_argument(
        "--allowed-host",
        action="append",
        default=[],
        metavar="NAME",
        help="also accept this Host name (e.g. the machine's LAN name, devbox.lan); repeatable",
    )
    p.add_argument("--profile", default="default", help="which saved set of backends to use (default: default)")
    p.add_argument("--no-persist", action="store_true", help="neither read nor write saved state")
    p.add_argument("--trace-file", type=Path, metavar="PATH", help="write every JSON-RPC message as a JSON line")
    p.add_argument(
        "--trace-max-mb", type=float, default=50.0, metavar="MB", help="rotate the trace file at this size (default 50)"
    )
    p.add_argument(
        "--allow-origin",
        action="append",
        default=[],
        metavar="ORIGIN",
        help="answer CORS on the MCP routes for this browser origin (https://app.example); repeatable",
    )
    p.add_argument(
        "--max-sessions",
        type=int,
        default=32,
        metavar="N",
        help="client sessions per backend (for stdio, processes); past it the least recently active idle one"
        " is closed (default 32)",
    )
    p.add_argument(
        "--probe-timeout",
        type=float,
        default=5.0,
        metavar="SECONDS",
        help="how long a health probe waits for an answer (default 5); a backend silent longer is shown"
        " as not answering",
    )
    p.add_argument(
        "--open",
        dest="open_trace",
        metavar="FILE.jsonl",
        help="show a trace file (an export, or --trace-file) in the terminal UI, read-only; no router is started",
    )
    return p


def parse_args(argv: list[str] | None = None) -> Settings:
    parser = build_parser()
    ns = parser.parse_args(argv)
    try:
        backends = [parse_backend_arg(b) for b in ns.backend]
        warnings: list[str] = []
        if ns.config is not None:
            try:
                data = orjson.loads(ns.config.read_bytes())
            except OSError as exc:
                raise ConfigError(f"cannot read {ns.config}: {exc.strerror}") from None
            except orjson.JSONDecodeError as exc:
                raise ConfigError(f"{ns.config} is not valid JSON: {exc}") from None
            read, skipped = parse_mcp_servers(data)
            backends.extend(read)
            warnings.extend(f"{ns.config}: skipped mcpServers entry {s}" for s in skipped)
        if ns.demo and not any(b.name == "demo" for b in backends):
            backends.append(demo_backend())
        names = [b.name for b in backends]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ConfigError(f"backend names must be unique: {', '.join(dupes)}")
        by_name = {b.name: b for b in backends}
        for spec in ns.watch:
            name, sep, path = spec.partition("=")
            if not sep or name not in by_name:
                raise ConfigError(f"--watch {spec!r}: expected NAME=PATH for a configured backend")
            by_name[name].watch.append(path)
        for spec in ns.header:
            name, sep, text = spec.partition("=")
            target = by_name.get(name.strip()) if sep else None
            if target is None or target.kind != "http":
                raise ConfigError(f'-H {spec!r}: expected NAME="Header: value" for an HTTP backend given with -b')
            key, value = parse_header(text)
            target.headers[key] = value
        check_profile(ns.profile)
        for origin in ns.allow_origin:
            if not origin.startswith(("http://", "https://")) or origin.count("/") != 2:
                raise ConfigError(f"--allow-origin {origin!r}: expected an origin like https://app.example:3000")
        if ns.trace_max_mb <= 0:
            raise ConfigError("--trace-max-mb must be > 0")
        if ns.default is not None and ns.default not in by_name and ns.default not in _saved_names(ns):
            raise ConfigError(f"--default {ns.default!r}: no such backend")
        if not is_loopback(ns.host) and not ns.token:
            raise ConfigError(
                f"binding {ns.host} exposes the router beyond this machine: set --token (or MCP_ROUTER_TOKEN)"
            )
        if ns.open_trace is not None and ns.no_ui:
            raise ConfigError("--open shows a trace file in the terminal UI: it cannot be combined with --no-ui")
        if ns.trace_buffer < 1:
            raise ConfigError("--trace-buffer must be at least 1")
        if ns.probe_timeout <= 0:
            raise ConfigError("--probe-timeout must be > 0")
        if ns.max_sessions < 1:
            raise ConfigError("--max-sessions must be at least 1")
        if ns.hold < 0 or ns.health_interval <= 0:
            raise ConfigError("--hold must be >= 0 and --health-interval > 0")
    except ConfigError as exc:
        parser.error(str(exc))
    return Settings(
        host=ns.host,
        port=ns.port,
        ui=not ns.no_ui,
        backends=backends,
        default=ns.default,
        demo=ns.demo,
        hold=ns.hold,
        resend=not ns.no_resend,
        health_interval=ns.health_interval,
        log_format=ns.log_format,
        quiet=ns.quiet,
        max_body=ns.max_body,
        max_message=ns.max_message,
        token=ns.token,
        allowed_hosts=[h.strip().lower() for h in ns.allowed_host if h.strip()],
        session_idle_timeout=ns.session_idle_timeout,
        trace_buffer=ns.trace_buffer,
        profile=ns.profile,
        persist=not ns.no_persist,
        trace_file=ns.trace_file,
        trace_max_mb=ns.trace_max_mb,
        allow_origins=[o.rstrip("/").lower() for o in ns.allow_origin],
        warnings=warnings,
        max_sessions=ns.max_sessions,
        probe_timeout=ns.probe_timeout,
        park_after=ns.park_after,
        open_trace=ns.open_trace,
    )


def _saved_names(ns: argparse.Namespace) -> set[str]:
    """Names in the profile's saved state (read only: the router takes the file when it starts)."""
    if ns.no_persist:
        return set()
    from app.state import StateFile, paths

    saved, _ = StateFile(paths().state_file(ns.profile)).load(move_aside=False)
    return {b.name for b in saved}


def check_profile(profile: str) -> str:
    if not NAME_RE.fullmatch(profile):
        raise ConfigError(
            f"invalid profile {profile!r}: 1-64 ASCII letters, digits, '-', '_' or '.', starting with a letter or digit"
        )
    return profile
