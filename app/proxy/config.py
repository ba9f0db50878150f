"""What a backend is: a name and either a URL (HTTP) or a command line (stdio)."""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlparse

from app.proxy.jsonrpc import JSON

NAME_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.")


class ConfigError(ValueError):
    pass


def check_name(name: str) -> str:
    if not name or not set(name) <= NAME_CHARS or len(name) > 64:
        raise ConfigError(f"invalid backend name {name!r}: use letters, digits, '-', '_' or '.' (at most 64)")
    return name


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

    def __post_init__(self) -> None:
        check_name(self.name)
        if (self.url is None) == (self.command is None):
            raise ConfigError(f"backend {self.name!r} needs either a url or a command")
        if self.url is not None:
            parsed = urlparse(self.url)
            if parsed.scheme not in ("http", "https") or not parsed.netloc:
                raise ConfigError(f"backend {self.name!r}: {self.url!r} is not an http(s) URL")

    @property
    def kind(self) -> str:
        return "http" if self.url is not None else "stdio"

    @property
    def target(self) -> str:
        if self.url is not None:
            return self.url
        return shlex.join([self.command or "", *self.args])

    def to_dict(self) -> JSON:
        d: JSON = {"name": self.name, "enabled": self.enabled}
        if self.url is not None:
            d["url"] = self.url
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
        url = data.get("url")
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
        enabled = data.get("enabled", True)
        if command is not None and url is None and not args and " " in command.strip():
            # A whole command line in "command" (as typed on the command line): split it.
            parts = shlex.split(command)
            command, args = parts[0], parts[1:]
        return cls(
            name=name,
            url=url,
            command=command,
            args=list(args),
            env=dict(env),
            cwd=cwd,
            watch=list(watch),
            enabled=bool(enabled),
        )


def parse_backend_arg(spec: str) -> BackendConfig:
    """`-b NAME=TARGET`: a URL makes an HTTP backend, anything else a stdio command line."""
    name, sep, target = spec.partition("=")
    if not sep or not target.strip():
        raise ConfigError(f"-b {spec!r}: expected NAME=URL or NAME=COMMAND")
    target = target.strip()
    if target.startswith(("http://", "https://")):
        return BackendConfig(name=name.strip(), url=target)
    try:
        parts = shlex.split(target)
    except ValueError as exc:
        raise ConfigError(f"-b {spec!r}: {exc}") from None
    return BackendConfig(name=name.strip(), command=parts[0], args=parts[1:])


def parse_mcp_servers(data: Any) -> list[BackendConfig]:
    """The `mcpServers` JSON that Claude Desktop, Cursor and VS Code use (VS Code calls it `servers`)."""
    if not isinstance(data, dict):
        raise ConfigError("config file must hold a JSON object")
    servers = data.get("mcpServers", data.get("servers"))
    if not isinstance(servers, dict):
        raise ConfigError('config file has no "mcpServers" object')
    out = []
    for name, entry in servers.items():
        if not isinstance(entry, dict):
            raise ConfigError(f"mcpServers.{name} must be an object")
        if entry.get("disabled") is True:
            entry = {**entry, "enabled": False}
        out.append(BackendConfig.from_dict({**entry, "name": name}))
    return out
