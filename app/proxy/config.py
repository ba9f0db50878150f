"""What a backend is: a name and either a URL (HTTP) or a command line (stdio)."""

from __future__ import annotations

import os
import re
import shlex
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlparse

from app.proxy.jsonrpc import JSON

# A name is one URL path segment (/mcp/NAME) that needs no escaping: ASCII letters and digits, then
# also '-', '_' or '.'. Starting with a letter or digit rules out '.', '..' and hidden-file lookalikes.
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
NAME_RULE = "1-64 characters: ASCII letters, digits, '-', '_' or '.', starting with a letter or digit"
QUOTE_LIMIT = 40
# Path words of the router's own routes: a backend of that name would shadow `/{name}/mcp` or the API.
ROUTE_WORDS = frozenset({"mcp", "sse", "messages", "status", "backends", "sessions", "events"})
MASK = "•••"
# `host:port`, `[v6]:port`, optionally followed by a path: what people type for a local server.
HOST_PORT_RE = re.compile(r"^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9][A-Za-z0-9.-]*):\d{1,5}(?:/\S*)?$")
ENV_REF_RE = re.compile(r"\$\{(?:env:)?([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class ConfigError(ValueError):
    pass


def quote(value: object, limit: int = QUOTE_LIMIT) -> str:
    """`value` for an error message: its repr, cut to a short prefix (bad input may be huge)."""
    text = value if isinstance(value, str) else repr(value)
    if len(text) <= limit:
        return repr(text) if isinstance(value, str) else text
    cut = text[:limit]
    return f"{cut!r}… ({len(text)} characters)" if isinstance(value, str) else f"{cut}… ({len(text)} characters)"


def check_name(name: object) -> str:
    if not isinstance(name, str):
        raise ConfigError(f"a backend name must be a string, not {type(name).__name__}")
    if not NAME_RE.fullmatch(name):
        raise ConfigError(f"invalid backend name {quote(name)}: {NAME_RULE}")
    if name in ROUTE_WORDS:
        raise ConfigError(
            f"invalid backend name {name!r}: it is one of the router's route words ({', '.join(sorted(ROUTE_WORDS))})"
        )
    return name


def as_url(target: str) -> str | None:
    """A target as people type it, as a URL: `http(s)://…` as is, `host:port[/path]` as http; else None."""
    target = target.strip()
    if target.startswith(("http://", "https://")):
        return target
    if HOST_PORT_RE.match(target):
        return f"http://{target}"
    return None


def parse_header(text: str) -> tuple[str, str]:
    """`Header: value` (as curl's -H) into its name and value."""
    key, sep, value = text.partition(":")
    key = key.strip()
    if not sep or not key or any(c in key for c in " \t\r\n") or "\n" in value or "\r" in value:
        raise ConfigError(f"header {text!r}: expected 'Name: value'")
    return key, value.strip()


def masked(headers: dict[str, str]) -> dict[str, str]:
    return {k: MASK for k in headers}


def expand_env(value: str, missing: list[str]) -> str:
    """`${VAR}`, `${env:VAR}` and `${VAR:-default}` from the environment (as Claude Code and VS Code
    read them); the names of unset variables without a default are appended to `missing`."""

    def sub(m: re.Match[str]) -> str:
        found = os.environ.get(m.group(1))
        if found is not None:
            return found
        if m.group(2) is not None:
            return m.group(2)
        missing.append(m.group(1))
        return m.group(0)

    return ENV_REF_RE.sub(sub, value) if "${" in value else value


@dataclass
class BackendConfig:
    name: str
    url: str | None = None
    command: str | None = None
    args: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    cwd: str | None = None
    watch: list[str] = field(default_factory=list)
    enabled: bool = True
    headers: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_name(self.name)
        if (self.url is None) == (self.command is None):
            raise ConfigError(f"backend {self.name!r} needs either a url or a command")
        if self.url is not None:
            self.url = as_url(self.url) or self.url
            try:
                parsed = urlparse(self.url)
                ok = parsed.scheme in ("http", "https") and bool(parsed.netloc)
            except ValueError:
                ok = False
            if not ok:
                raise ConfigError(f"backend {self.name!r}: {quote(self.url, 200)} is not an http(s) URL")

    @property
    def kind(self) -> str:
        return "http" if self.url is not None else "stdio"

    @property
    def target(self) -> str:
        if self.url is not None:
            return self.url
        return shlex.join([self.command or "", *self.args])

    def to_dict(self, secrets: bool = False) -> JSON:
        """As the API shows it (header values masked), or with `secrets` as saved state keeps it."""
        d: JSON = {"name": self.name, "enabled": self.enabled}
        if self.url is not None:
            d["url"] = self.url
            if self.headers:
                d["headers"] = dict(self.headers) if secrets else masked(self.headers)
        else:
            d.update(command=self.command, args=self.args, env=self.env, cwd=self.cwd)
        if self.watch:
            d["watch"] = self.watch
        return d

    @classmethod
    def from_dict(cls, data: Any) -> BackendConfig:
        """From the management API's or a saved state's JSON (also the mcpServers entry shape)."""
        if not isinstance(data, dict):
            raise ConfigError("a backend must be a JSON object")
        name = data.get("name")
        if not isinstance(name, str):
            raise ConfigError('a backend needs a "name" string')
        check_name(name)
        url = data.get("url", data.get("serverUrl"))  # Windsurf writes serverUrl
        command = data.get("command")
        args = data.get("args", [])
        env = data.get("env", {})
        cwd = data.get("cwd")
        watch = data.get("watch", [])
        if isinstance(watch, str):
            watch = [watch]
        if url is not None and not isinstance(url, str):
            raise ConfigError('"url" must be a string')
        if command is not None and not isinstance(command, str):
            raise ConfigError('"command" must be a string')
        if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
            raise ConfigError('"args" must be a list of strings')
        if not isinstance(env, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in env.items()):
            raise ConfigError('"env" must be an object of strings')
        if cwd is not None and not isinstance(cwd, str):
            raise ConfigError('"cwd" must be a string')
        if not isinstance(watch, list) or not all(isinstance(w, str) for w in watch):
            raise ConfigError('"watch" must be a path or a list of paths')
        headers = data.get("headers", {})
        if not isinstance(headers, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in headers.items()
        ):
            raise ConfigError('"headers" must be an object of strings')
        if headers and url is None:
            raise ConfigError('"headers" apply to a URL backend only')
        for k, v in headers.items():
            parse_header(f"{k}: {v}")
        enabled = data.get("enabled", True)
        if not isinstance(enabled, bool):
            # "false" is truthy: reading it as a flag would enable what the sender meant to disable.
            raise ConfigError(f'"enabled" must be true or false, not {quote(enabled, 20)}')
        if command is not None and url is None and not args and " " in command.strip():
            # A whole command line in "command" (as typed on the command line): split it.
            try:
                parts = shlex.split(command)
            except ValueError as exc:
                raise ConfigError(f'"command" {quote(command, 80)}: {exc}') from None
            command, args = parts[0], parts[1:]
        return cls(
            name=name,
            url=url,
            command=command,
            args=list(args),
            env=dict(env),
            cwd=cwd,
            watch=list(watch),
            enabled=enabled,
            headers=dict(headers),
        )


def parse_backend_arg(spec: str) -> BackendConfig:
    """`-b NAME=TARGET`: a URL makes an HTTP backend, anything else a stdio command line."""
    name, sep, target = spec.partition("=")
    if not sep or not target.strip():
        raise ConfigError(f"-b {spec!r}: expected NAME=URL or NAME=COMMAND")
    url = as_url(target)
    if url is not None:
        return BackendConfig(name=name.strip(), url=url)
    try:
        parts = shlex.split(target)
    except ValueError as exc:
        raise ConfigError(f"-b {spec!r}: {exc}") from None
    return BackendConfig(name=name.strip(), command=parts[0], args=parts[1:])


def parse_mcp_servers(data: Any) -> tuple[list[BackendConfig], list[str]]:
    """The `mcpServers` JSON that Claude Desktop, Cursor and VS Code use (VS Code calls it `servers`).

    Returns the backends it could read and one message per entry it skipped (named), so that one
    entry the router cannot read does not stop the others. `${VAR}`/`${env:VAR}` are expanded.
    """
    if not isinstance(data, dict):
        raise ConfigError("config file must hold a JSON object")
    servers = data.get("mcpServers", data.get("servers"))
    if not isinstance(servers, dict):
        raise ConfigError('config file has no "mcpServers" object')
    out: list[BackendConfig] = []
    skipped: list[str] = []
    for name, entry in servers.items():
        if not isinstance(entry, dict):
            skipped.append(f"{name}: the entry must be an object")
            continue
        missing: list[str] = []
        entry = _expand(entry, missing)
        if missing:
            names = ", ".join(sorted(set(missing)))
            skipped.append(f"{name}: environment variable{'s' if len(set(missing)) > 1 else ''} {names} not set")
            continue
        if entry.get("disabled") is True:
            entry = {**entry, "enabled": False}
        try:
            out.append(BackendConfig.from_dict({**entry, "name": name}))
        except ConfigError as exc:
            skipped.append(f"{name}: {exc}")
    return out, skipped


def _expand(value: Any, missing: list[str]) -> Any:
    if isinstance(value, str):
        return expand_env(value, missing)
    if isinstance(value, list):
        return [_expand(v, missing) for v in value]
    if isinstance(value, dict):
        return {k: _expand(v, missing) for k, v in value.items()}
    return value
