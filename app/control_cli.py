"""`mcp-router`: drive a running router over its management API.

The router is found from the runtime file it writes while it runs (one per router, under the user
runtime directory; the newest of the chosen `--profile`), or from `--url`. The token comes from
`--token`, `MCP_ROUTER_TOKEN` or that runtime file. Tables for people, `--json` for scripts.

Exit codes: 0 ok; 1 the router answered an error (its message is printed); 2 no router reachable
(the message says where it looked) or a usage error.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import os
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, NoReturn

import orjson
from rich.console import Console
from rich.table import Table

from app import __version__
from app.client_config import CLIENTS, WHERE, snippets
from app.control import ControlError
from app.control_remote import RemoteControl, RouterUnreachable
from app.proxy.app import is_loopback
from app.proxy.config import ConfigError, as_url, parse_header
from app.proxy.events import EVENT_TYPES, Event, RouterEvent
from app.proxy.jsonrpc import JSON
from app.state import paths, running_routers

OK, REFUSED, UNREACHABLE = 0, 1, 2

EXAMPLES: dict[str, tuple[str, str]] = {
    "status": ("the router and its backends", "mcp-router status\n  mcp-router status --json | jq .backends"),
    "list": ("the backends, one line each", "mcp-router list"),
    "add": (
        "add a backend: a URL, HOST:PORT, or a command and its arguments",
        "mcp-router add weather http://127.0.0.1:8000/mcp\n"
        "  mcp-router add web localhost:8080\n"
        "  mcp-router add files python server.py --root .\n"
        "  mcp-router add api https://api.example/mcp -H 'Authorization: Bearer $TOKEN'\n"
        "  mcp-router add tool -- node tool.js --json   (after --, arguments are the command's)",
    ),
    "remove": ("remove a backend (its sessions end)", "mcp-router remove weather"),
    "enable": ("enable a disabled backend", "mcp-router enable weather"),
    "disable": ("disable a backend: requests are held, stdio processes stop", "mcp-router disable weather"),
    "restart": ("restart a backend, blue/green", "mcp-router restart files"),
    "sessions": ("client sessions", "mcp-router sessions"),
    "health": ("a backend's recent health probes", "mcp-router health weather --limit 50"),
    "logs": ("a backend's log (stderr and the router's notes)", "mcp-router logs files\n  mcp-router logs files -f"),
    "tail": (
        "follow the router's live events, one line each",
        "mcp-router tail\n  mcp-router tail --types traffic --backend files\n  mcp-router tail --json",
    ),
    "client-config": (
        "what to paste or run to point an MCP client at the router",
        "mcp-router client-config                 (every client)\n"
        "  mcp-router client-config claude-code files\n"
        "  mcp-router client-config cursor > ~/.cursor/mcp.json",
    ),
    "paths": ("where state, logs and runtime files live", "mcp-router paths\n  mcp-router paths --profile work --json"),
    "tui": (
        "the terminal UI, attached to a running router",
        "mcp-router tui\n  mcp-router tui --url http://127.0.0.1:8090",
    ),
}

# `add` reads these itself; anything else after NAME belongs to the backend's command line.
ADD_VALUE_OPTS = {"--url", "--token", "--profile", "--env", "-e", "--cwd", "--watch", "-H", "--header"}
ADD_FLAGS = {"--json", "--disabled", "-h", "--help"}


class Exit(Exception):
    def __init__(self, code: int) -> None:
        self.code = code


@dataclass
class Located:
    url: str
    token: str | None
    source: str  # where the URL came from, for messages


def build_parser(prog: str = "mcp-router") -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    # SUPPRESS: an option given after the command does not reset one given before it.
    common.add_argument("--url", default=argparse.SUPPRESS, help="the router's URL (default: from its runtime file)")
    common.add_argument(
        "--token", default=argparse.SUPPRESS, help="the router's token (default: MCP_ROUTER_TOKEN, the runtime file)"
    )
    common.add_argument(
        "--profile", default=argparse.SUPPRESS, help="which running router: the one of this profile (default: default)"
    )
    common.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="JSON output for scripts")
    p = argparse.ArgumentParser(
        prog=prog,
        description="Drive a running mcp-dev-router over its management API.",
        epilog="Exit codes: 0 ok, 1 the router answered an error, 2 no router reachable.\n\nExamples:\n"
        "  mcp-router status\n  mcp-router add files python server.py\n  mcp-router tail --types traffic\n"
        "  mcp-router client-config claude-code",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=[common],
    )
    p.add_argument("--version", action="version", version=f"mcp-dev-router {__version__}")
    p.set_defaults(url=None, token=None, profile="default", json=False)
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    def cmd(name: str) -> argparse.ArgumentParser:
        what, example = EXAMPLES[name]
        return sub.add_parser(
            name,
            help=what,
            description=what[0].upper() + what[1:] + ".",
            epilog=f"Example:\n  {example}",
            formatter_class=argparse.RawDescriptionHelpFormatter,
            parents=[common],
        )

    cmd("status")
    cmd("list")
    add = cmd("add")
    add.add_argument("name", help="the backend's name (served at /mcp/NAME and /NAME/mcp)")
    add.add_argument("target", nargs="+", help="URL, HOST:PORT, or COMMAND [ARGS…]")
    add.add_argument("-e", "--env", action="append", default=[], metavar="KEY=VALUE", help="stdio: environment")
    add.add_argument("--cwd", help="stdio: working directory")
    add.add_argument("--watch", action="append", default=[], metavar="PATH", help="stdio: restart on changes here")
    add.add_argument(
        "-H", "--header", action="append", default=[], metavar="'Name: value'", help="HTTP: a header on every request"
    )
    add.add_argument("--disabled", action="store_true", help="add it disabled")
    for name in ("remove", "enable", "disable", "restart"):
        cmd(name).add_argument("name", help="the backend")
    cmd("sessions")
    health = cmd("health")
    health.add_argument("name", help="the backend")
    health.add_argument("--limit", type=int, default=20, help="how many recent probes (default 20)")
    logs = cmd("logs")
    logs.add_argument("name", help="the backend")
    logs.add_argument("-f", "--follow", action="store_true", help="keep printing new lines")
    tail = cmd("tail")
    tail.add_argument("--types", help=f"comma-separated event types: {', '.join(EVENT_TYPES.values())}")
    tail.add_argument("--backend", help="only events of this backend")
    cc = cmd("client-config")
    cc.add_argument(
        "words", nargs="*", metavar="[CLIENT] [NAME]", help=f"CLIENT: {', '.join(CLIENTS)}; NAME: a backend"
    )
    cmd("paths")
    cmd("tui")
    return p


def split_add(argv: list[str]) -> list[str]:
    """`add NAME TARGET…`: the CLI's own options anywhere before `--`, the rest is the target in order."""
    at = 0
    while at < len(argv) and argv[at].startswith("-"):  # global options before the command
        at += 2 if argv[at] in ("--url", "--token", "--profile") else 1
    if at >= len(argv) or argv[at] != "add":
        return argv
    head, rest = argv[: at + 1], argv[at + 1 :]
    opts: list[str] = []
    positional: list[str] = []
    i = 0
    while i < len(rest):
        tok = rest[i]
        if tok == "--":
            positional.extend(rest[i + 1 :])
            break
        key = tok.split("=", 1)[0]
        if tok in ADD_FLAGS:
            opts.append(tok)
        elif key in ADD_VALUE_OPTS:
            opts.append(tok)
            if "=" not in tok and i + 1 < len(rest):
                opts.append(rest[i + 1])
                i += 1
        else:
            positional.append(tok)
        i += 1
    return [*head, *opts, "--", *positional] if positional else [*head, *opts]


# ---------------------------------------------------------------------------- output


class Out:
    def __init__(self, as_json: bool) -> None:
        self.json = as_json
        # Piped output keeps whole lines (a script greps them); a terminal gets its own width.
        self.console = Console(highlight=False, width=None if sys.stdout.isatty() else 250)
        self.err = Console(stderr=True, highlight=False, soft_wrap=True)

    def data(self, value: Any) -> None:
        sys.stdout.write(orjson.dumps(value, option=orjson.OPT_INDENT_2, default=str).decode() + "\n")
        sys.stdout.flush()

    def line(self, text: str) -> None:
        sys.stdout.write(text + "\n")
        sys.stdout.flush()

    def fail(self, code: int, message: str, **extra: Any) -> NoReturn:
        if self.json:
            self.data({"error": message, **extra})
        else:
            self.err.print(f"mcp-router: {message}", markup=False)
        raise Exit(code)


def _ms(v: Any) -> str:
    return f"{v:.1f} ms" if isinstance(v, int | float) else "-"


def _ago(ts: Any) -> str:
    if not isinstance(ts, int | float):
        return "-"
    s = max(0.0, time.time() - ts)
    return f"{s:.0f}s" if s < 120 else f"{s / 60:.0f}m" if s < 7200 else f"{s / 3600:.0f}h"


def backends_table(backends: list[JSON]) -> Table:
    t = Table(box=None, pad_edge=False, header_style="bold")
    for col in ("NAME", "STATE", "TRANSPORT", "TARGET", "SESSIONS", "RESTARTS", "LATENCY", "REASON"):
        folds = col in ("TARGET", "REASON")
        t.add_column(col, no_wrap=not folds, overflow="fold" if folds else "ellipsis", min_width=len(col))
    for b in backends:
        name = b["name"] + (" *" if b.get("default") else "")
        t.add_row(
            name,
            b.get("state") or "-",
            b.get("transport") or "-",
            b.get("endpoint") or b.get("target") or "-",
            str(b.get("sessions", 0)),
            str(b.get("restarts", 0)),
            _ms(b.get("latency_ms")),
            b.get("reason") or "",
        )
    return t


def format_event(ev: Event) -> str | None:
    from app.headless import format_text

    return format_text(ev)


# ---------------------------------------------------------------------------- locating the router


def locate(args: argparse.Namespace, out: Out) -> Located:
    token = args.token or os.environ.get("MCP_ROUTER_TOKEN") or None
    if args.url:
        url = as_url(args.url) or args.url
        return Located(url.rstrip("/"), token, "--url")
    where = paths().runtime_dir
    found = running_routers()
    mine = [r for r in found if r.get("profile", "default") == args.profile]
    if not mine:
        others = ", ".join(f"{r['url']} (profile {r.get('profile')}, pid {r['pid']})" for r in found)
        hint = f"; running with other profiles: {others} (use --profile or --url)" if others else ""
        out.fail(
            UNREACHABLE,
            f"no running router of profile '{args.profile}' found: looked for router-*.json in {where}{hint}. "
            "Start one with `mcp-router-tui --no-ui`, or pass --url",
            looked_in=str(where),
        )
    r = mine[0]
    return Located(r["url"], token or r.get("token"), f"runtime file {r['file']}")


# ---------------------------------------------------------------------------- commands


async def run_command(args: argparse.Namespace, out: Out) -> int:
    if args.command == "paths":
        p = paths()
        info = {
            **p.to_dict(args.profile),
            "running": [{k: r[k] for k in ("url", "pid", "profile", "file")} for r in running_routers()],
        }
        if out.json:
            out.data(info)
        else:
            for key in ("profile", "state", "runtime_dir", "logs"):
                out.line(f"{key.replace('_dir', ''):<8} {info[key]}")
            for r in info["running"]:
                out.line(f"running  {r['url']}  pid {r['pid']}  profile {r['profile']}  ({r['file']})")
        return OK
    where = locate(args, out)
    control = RemoteControl(where.url, where.token)
    try:
        return await dispatch(args, out, control, where)
    except RouterUnreachable as exc:
        out.fail(UNREACHABLE, f"{exc.message} (found via {where.source})", url=where.url)
    except ControlError as exc:
        out.fail(REFUSED, exc.message, status=exc.status)
    finally:
        await control.aclose()


async def dispatch(args: argparse.Namespace, out: Out, control: RemoteControl, where: Located) -> int:
    c = args.command
    if c == "status":
        st = await control.status()
        if out.json:
            out.data(st)
            return OK
        up = sum(1 for b in st["backends"] if b.get("state") == "up")
        out.line(
            f"mcp-dev-router {st.get('version')} at {st.get('url') or where.url}  "
            f"up {_ago(time.time() - float(st.get('uptime_s') or 0))}  "
            f"backends {up}/{len(st['backends'])} up  sessions {st.get('sessions', 0)}  default {st.get('default') or '-'}"
        )
        if st["backends"]:
            out.console.print(backends_table(st["backends"]))
        else:
            out.line("no backends: add one with `mcp-router add NAME URL|COMMAND`")
        return OK
    if c == "list":
        backends: list[JSON] = await control.request("GET", "/backends")
        if out.json:
            out.data(backends)
        elif backends:
            out.console.print(backends_table(backends))
        else:
            out.line("no backends")
        return OK
    if c == "add":
        spec = add_spec(args, out)
        snap = await control.add_backend(spec)
        if out.json:
            out.data(snap)
        else:
            out.line(f"added {snap['name']}: {snap.get('target')}  ({snap.get('state')})")
            out.line(f"clients: {where.url}/mcp/{snap['name']}")
        return OK
    if c == "remove":
        await control.remove_backend(args.name)
        if out.json:
            out.data({"removed": args.name})
        else:
            out.line(f"removed {args.name}")
        return OK
    if c in ("enable", "disable", "restart"):
        action: Callable[[str], Awaitable[JSON]] = getattr(control, c)
        snap = await action(args.name)
        if out.json:
            out.data(snap)
        else:
            past = {"enable": "enabled", "disable": "disabled", "restart": "restarted"}[c]
            out.line(f"{past} {args.name}: {snap.get('state')}")
        return OK
    if c == "sessions":
        sessions = await control.sessions()
        if out.json:
            out.data(sessions)
            return OK
        if not sessions:
            out.line("no client sessions")
            return OK
        t = Table(box=None, pad_edge=False, header_style="bold")
        for col in ("ID", "BACKEND", "CLIENT", "TRANSPORT", "ERA", "PROTOCOL", "STATE", "PENDING", "IDLE"):
            t.add_column(col, no_wrap=True)
        for s in sessions:
            client = s.get("client") or {}
            who = f"{client.get('name', '?')} {client.get('version', '')}".strip() if isinstance(client, dict) else "-"
            t.add_row(
                str(s["id"])[:12],
                s.get("backend", "-"),
                who,
                s.get("transport") or "-",
                s.get("era") or "-",
                s.get("protocol_version") or "-",
                str(s.get("state") or "-"),  # connected, held, idle; "seen" for a 2026-07-28 client
                str(s.get("pending", 0)),
                _ago(s.get("last_activity")),
            )
        out.console.print(t)
        return OK
    if c == "health":
        samples = (await control.health(args.name))[-max(1, args.limit) :]
        if out.json:
            out.data({"backend": args.name, "samples": samples})
            return OK
        if not samples:
            out.line(f"{args.name}: no probes yet")
            return OK
        t = Table(box=None, pad_edge=False, header_style="bold")
        for col in ("TIME", "OK", "LATENCY", "DETAIL"):
            t.add_column(col, no_wrap=col != "DETAIL")
        for s in samples:
            t.add_row(
                time.strftime("%H:%M:%S", time.localtime(s["ts"])),
                "ok" if s.get("ok") else "FAIL",
                _ms(s.get("latency_ms")),
                s.get("detail") or "",
            )
        out.console.print(t)
        return OK
    if c == "logs":
        return await logs(args, out, control)
    if c == "tail":
        return await tail(args, out, control)
    if c == "client-config":
        return await client_config(args, out, control, where)
    if c == "tui":
        return await tui(control)
    raise AssertionError(c)


def add_spec(args: argparse.Namespace, out: Out) -> JSON:
    target: list[str] = args.target
    spec: JSON = {"name": args.name, "enabled": not args.disabled}
    url = as_url(target[0]) if len(target) == 1 else None
    try:
        if url is not None:
            spec["url"] = url
            if args.env or args.cwd or args.watch:
                raise ConfigError("--env, --cwd and --watch are for a command, not a URL")
            headers: dict[str, str] = {}
            for h in args.header:
                k, v = parse_header(h)
                headers[k] = v
            if headers:
                spec["headers"] = headers
        else:
            if args.header:
                raise ConfigError("-H is for a URL backend, not a command")
            spec.update(command=target[0], args=target[1:])
            env = {}
            for kv in args.env:
                k, sep, v = kv.partition("=")
                if not sep or not k:
                    raise ConfigError(f"--env {kv!r}: expected KEY=VALUE")
                env[k] = v
            if env:
                spec["env"] = env
            # A command typed here names files relative to here, not to where the router runs.
            spec["cwd"] = os.path.abspath(args.cwd or os.getcwd())
            if args.watch:
                spec["watch"] = [os.path.abspath(w) for w in args.watch]
    except ConfigError as exc:
        out.fail(UNREACHABLE, str(exc))  # a usage error: the router was not asked
    return spec


async def logs(args: argparse.Namespace, out: Out, control: RemoteControl) -> int:
    feed = control.subscribe(["backend_log"]) if args.follow else None
    try:
        if feed is not None:
            # Listen before reading the backlog, so nothing written in between is lost.
            await wait_connected(feed)
        lines = await control.log(args.name)
        if out.json and not args.follow:
            out.data({"backend": args.name, "lines": lines})
            return OK
        for text in lines:
            out.data({"backend": args.name, "line": text}) if out.json else out.line(text)
        if feed is None:
            return OK
        while not feed.closed:
            for ev in await feed.next_batch():
                if getattr(ev, "backend", None) == args.name:
                    line = getattr(ev, "line", "")
                    out.line(orjson.dumps(ev.to_dict()).decode() if out.json else line)
                elif isinstance(ev, RouterEvent):
                    out.err.print(f"mcp-router: {ev.text}", markup=False)
        return OK
    finally:
        if feed is not None:
            await feed.aclose()


async def wait_connected(feed: Any, timeout: float = 10.0) -> None:
    """Wait for the event stream to open; a router that is not there is exit 2, a refusal exit 1."""
    waiter = asyncio.ensure_future(feed.connected.wait())
    try:
        done, _ = await asyncio.wait({waiter}, timeout=timeout)
    finally:
        waiter.cancel()
    if not done:
        first = next((e for e in feed.drain() if isinstance(e, RouterEvent)), None)
        raise RouterUnreachable(first.text if first else "the router's event stream did not open")
    if feed.closed:
        first = next((e for e in feed.drain() if isinstance(e, RouterEvent)), None)
        raise ControlError(first.text if first else "the router refused the event stream")


async def tail(args: argparse.Namespace, out: Out, control: RemoteControl) -> int:
    types = [t.strip() for t in args.types.split(",") if t.strip()] if args.types else None
    feed = control.subscribe(types)
    try:
        await wait_connected(feed)
        what = ", ".join(types) if types else "all events"
        out.err.print(f"following {what} at {control.url} (Ctrl-C to stop)", markup=False)
        while True:
            batch = await feed.next_batch()
            if not batch and feed.closed:
                return REFUSED
            lines = []
            for ev in batch:
                if args.backend and not isinstance(ev, RouterEvent) and getattr(ev, "backend", None) != args.backend:
                    continue
                if out.json:
                    lines.append(orjson.dumps(ev.to_dict(), default=str).decode())
                else:
                    text = format_event(ev)
                    if text is not None:
                        lines.append(text)
            if lines:
                sys.stdout.write("".join(line + "\n" for line in lines))
                sys.stdout.flush()
    finally:
        await feed.aclose()


async def client_config(args: argparse.Namespace, out: Out, control: RemoteControl, where: Located) -> int:
    words: list[str] = list(args.words)
    client = words.pop(0) if words and words[0] in CLIENTS else None
    name = words.pop(0) if words else None
    if words:
        out.fail(UNREACHABLE, f"client-config takes [CLIENT] [NAME]; CLIENT is one of {', '.join(CLIENTS)}")
    st = await control.status()
    if name is not None:
        await control.backend(name)  # an unknown backend is the router's 404, exit 1
    url = st.get("url") or where.url
    host = (url.split("//", 1)[-1].split("/", 1)[0]).rsplit(":", 1)[0]
    # The MCP routes need the token only where the router is reachable from elsewhere.
    token = where.token if where.token and not is_loopback(host) else None
    snips = snippets(url, name, token)
    chosen = [client] if client else list(CLIENTS)
    if out.json:
        out.data(
            {c: {"text": snips[c], "where": WHERE[c]} for c in chosen}
            if client is None
            else {"client": client, "text": snips[client], "where": WHERE[client]}
        )
        return OK
    if client is not None:
        out.err.print(WHERE[client], markup=False)
        out.line(snips[client])
        return OK
    for c in chosen:
        out.line(f"# {c}: {WHERE[c]}")
        out.line(snips[c])
        out.line("")
    return OK


def tui_app(control: RemoteControl, freeze_heap: bool = False) -> Any:
    """The terminal UI attached through `control` (imported here: no other command needs Textual).

    `freeze_heap`: the program's own choice (see RouterTUI), not the tests'."""
    try:
        tui_module = importlib.import_module("app.tui")
    except ImportError:  # pragma: no cover - the TUI ships with the package
        raise ControlError("the terminal UI is not part of this build") from None
    return tui_module.RouterTUI(control, freeze_heap=freeze_heap)


async def tui(control: RemoteControl) -> int:
    await control.status()  # not there: exit 2 before the screen is taken over
    app = tui_app(control, freeze_heap=True)
    result = await app.run_async()
    return int(result or 0)


def main(argv: list[str] | None = None, prog: str = "mcp-router") -> int:
    args_in = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(prog)
    args = parser.parse_args(split_add(args_in))
    out = Out(args.json)
    try:
        return asyncio.run(run_command(args, out))
    except Exit as exc:
        return exc.code
    except KeyboardInterrupt:
        return OK


if __name__ == "__main__":
    with contextlib.suppress(BrokenPipeError):
        sys.exit(main())
