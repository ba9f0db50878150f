"""Saved state (backends per profile), the runtime file a running router leaves for the CLI, and paths.

Everything lives under platformdirs' directories for the application "mcp-dev-router":

- state:   `user_state_path/profiles/PROFILE.json` (backends with their flags), `PROFILE.lock`
- runtime: `user_runtime_path/router-PID.json` (mode 0600: URL, pid, profile, token) while it runs
- logs:    `user_log_path`

A state file is written atomically (a temporary file in the same directory, fsync, rename), so a
crash leaves the old file or the new one, never half of one. One router per profile owns the file
(an advisory lock); a second one on the same profile starts, says so, and keeps its changes in
memory. A file the router cannot read is moved aside under a new name, with a warning.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import platformdirs

from app import __version__
from app.proxy.config import BackendConfig, ConfigError
from app.proxy.events import BackendListEvent
from app.proxy.jsonrpc import JSON
from app.proxy.router import Router

APP_NAME = "mcp-dev-router"
STATE_VERSION = 1


@dataclass(frozen=True)
class Paths:
    state_dir: Path
    runtime_dir: Path
    log_dir: Path

    def state_file(self, profile: str) -> Path:
        return self.state_dir / "profiles" / f"{profile}.json"

    def lock_file(self, profile: str) -> Path:
        return self.state_dir / "profiles" / f"{profile}.lock"

    def runtime_file(self, pid: int) -> Path:
        return self.runtime_dir / f"router-{pid}.json"

    def to_dict(self, profile: str) -> JSON:
        return {
            "profile": profile,
            "state": str(self.state_file(profile)),
            "state_dir": str(self.state_dir),
            "runtime_dir": str(self.runtime_dir),
            "logs": str(self.log_dir),
        }


def paths() -> Paths:
    with warnings.catch_warnings():
        # platformdirs warns when XDG_RUNTIME_DIR is unset and falls back to /tmp/runtime-UID: fine here.
        warnings.simplefilter("ignore")
        runtime = platformdirs.user_runtime_path(APP_NAME)
    return Paths(
        state_dir=platformdirs.user_state_path(APP_NAME),
        runtime_dir=runtime,
        log_dir=platformdirs.user_log_path(APP_NAME),
    )


def write_atomic(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Write `data` to `path` so that a reader (or a crash) sees the old file or the new one, whole."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    with contextlib.suppress(OSError):  # the rename itself survives a power cut once the directory is synced
        dfd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)


class StateFile:
    """One profile's saved backends."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._may_move = True

    def load(self, move_aside: bool = True) -> tuple[list[BackendConfig], list[str]]:
        """The saved backends and warnings. A file that cannot be used is moved aside (never a crash)."""
        self._may_move = move_aside
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return [], []
        except OSError as exc:
            return [], [self._move_aside("unreadable", f"unreadable ({exc.strerror or exc})")]
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            return [], [self._move_aside("corrupt", f"not valid JSON ({exc})")]
        if not isinstance(data, dict) or not isinstance(data.get("backends"), list):
            return [], [self._move_aside("corrupt", 'not a state file (no "backends" list)')]
        version = data.get("version")
        if not isinstance(version, int) or version < 1:
            return [], [self._move_aside("corrupt", f"of an unknown version {version!r}")]
        if version > STATE_VERSION:
            return [], [
                self._move_aside(
                    "future",
                    f"written by a newer mcp-dev-router (state version {version}; this one reads {STATE_VERSION})",
                )
            ]
        out: list[BackendConfig] = []
        notes: list[str] = []
        for entry in data["backends"]:
            try:
                cfg = BackendConfig.from_dict(entry)
            except ConfigError as exc:
                name = entry.get("name") if isinstance(entry, dict) else None
                notes.append(f"saved state {self.path}: skipped backend {name or '?'}: {exc}")
                continue
            if any(b.name == cfg.name for b in out):
                continue
            out.append(cfg)
        return out, notes

    def _move_aside(self, why: str, detail: str) -> str:
        if not self._may_move:
            return f"saved state {self.path} is {detail}: starting without it"
        stamp = time.strftime("%Y%m%d-%H%M%S")
        aside = self.path.with_name(f"{self.path.stem}.{why}-{stamp}{self.path.suffix}")
        n = 1
        while aside.exists():
            n += 1
            aside = self.path.with_name(f"{self.path.stem}.{why}-{stamp}-{n}{self.path.suffix}")
        try:
            self.path.rename(aside)
        except OSError as exc:
            return (
                f"saved state {self.path} is {detail}; it could not be moved aside ({exc.strerror}): "
                "starting without it"
            )
        return f"saved state {self.path} was {detail}: moved it to {aside} and started without it"

    def save(self, backends: list[JSON], profile: str) -> None:
        doc = {
            "version": STATE_VERSION,
            "profile": profile,
            "saved_by": f"mcp-dev-router {__version__}",
            "saved_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "backends": backends,
        }
        write_atomic(self.path, orjson.dumps(doc, option=orjson.OPT_INDENT_2) + b"\n")


class ProfileLock:
    """An advisory lock on one profile's state: the first router of a profile owns its file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None
        self.holder: str | None = None  # what the lock file says about the router that has it

    def acquire(self) -> bool:
        if sys.platform == "win32":  # pragma: no cover - the router targets POSIX (uvloop, process groups)
            return True
        import fcntl

        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            with contextlib.suppress(OSError):
                self.holder = os.pread(fd, 512, 0).decode(errors="replace").strip() or None
            os.close(fd)
            return False
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()}".encode(), 0)
        self._fd = fd
        return True

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing drops the flock; the file stays for the next owner
            self._fd = None


class Persistence:
    """A router's saved state for one run: load and merge at start, save on every change."""

    def __init__(self, profile: str, enabled: bool = True, where: Paths | None = None) -> None:
        self.profile = profile
        self.enabled = enabled
        self.paths = where or paths()
        self.file = StateFile(self.paths.state_file(profile))
        self.lock = ProfileLock(self.paths.lock_file(profile))
        self.owner = False  # whether this router writes the file
        self.warnings: list[str] = []
        self._task: asyncio.Task[None] | None = None
        self._last: bytes | None = None

    def load(self) -> list[BackendConfig]:
        """Take the profile (if free) and read its saved backends; problems end up in `warnings`."""
        if not self.enabled:
            return []
        try:
            self.owner = self.lock.acquire()
        except OSError as exc:
            self.warnings.append(f"cannot lock saved state in {self.paths.state_dir}: {exc}; not saving this run")
            return []
        if not self.owner:
            who = f" ({self.lock.holder})" if self.lock.holder else ""
            self.warnings.append(
                f"profile '{self.profile}' is in use by another router{who}: this one starts with its saved "
                "backends but does not save changes (use --profile NAME for a set of your own)"
            )
        # Never move aside a file another router owns: just do without it.
        saved, notes = self.file.load(move_aside=self.owner)
        self.warnings.extend(notes)
        return saved

    @staticmethod
    def merge(given: list[BackendConfig], saved: list[BackendConfig]) -> list[BackendConfig]:
        """The command line's backends first (they win for a name), then the saved ones."""
        names = {b.name for b in given}
        return [*given, *(b for b in saved if b.name not in names)]

    def _document(self, router: Router) -> list[JSON]:
        return [b.config.to_dict(secrets=True) for b in router.backends.values()]

    async def save(self, router: Router) -> None:
        if not self.owner:
            return
        backends = self._document(router)
        key = orjson.dumps(backends)
        if key == self._last:
            return
        try:
            # fsync can take a while on a busy disk: not on the loop that forwards messages.
            await asyncio.to_thread(self.file.save, backends, self.profile)
            self._last = key
        except OSError as exc:
            router.notice("warning", f"could not save state to {self.file.path}: {exc}")

    def attach(self, router: Router) -> None:
        """Save now, then after every backend added, removed, enabled or disabled."""
        if not self.owner:
            return
        sub = router.bus.subscribe(kinds=[BackendListEvent])

        async def run() -> None:
            await self.save(router)
            while True:
                batch = await sub.next_batch()
                if not batch and sub.closed:
                    return
                await self.save(router)

        self._task = asyncio.create_task(run(), name="state-saver")

    async def close(self, router: Router | None = None) -> None:
        if self._task is not None:
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(self._task, 5)
        if router is not None:
            await self.save(router)
        self.lock.release()


# ---------------------------------------------------------------------------- runtime files


class RuntimeFile:
    """Where this router listens, for `mcp-router` (0600: it may hold the token)."""

    def __init__(self, where: Paths | None = None) -> None:
        self.paths = where or paths()
        self.path = self.paths.runtime_file(os.getpid())
        self.written = False

    def write(self, url: str, profile: str, token: str | None) -> str | None:
        """Write it; on failure return a warning (the router runs anyway, the CLI then needs --url)."""
        doc = {
            "url": url,
            "pid": os.getpid(),
            "profile": profile,
            "token_required": token is not None,
            "token": token,
            "version": __version__,
            "started": time.time(),
        }
        try:
            write_atomic(self.path, orjson.dumps(doc))
        except OSError as exc:
            return f"cannot write the runtime file {self.path}: {exc.strerror}; mcp-router will need --url {url}"
        self.written = True
        return None

    def remove(self) -> None:
        if self.written:
            with contextlib.suppress(OSError):
                self.path.unlink()
            self.written = False


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def running_routers(where: Paths | None = None, cleanup: bool = True) -> list[JSON]:
    """Routers that left a runtime file and whose process still runs, newest first. Stale files
    (a router killed with SIGKILL) are ignored, and removed when `cleanup`."""
    p = where or paths()
    found: list[JSON] = []
    try:
        files = list(p.runtime_dir.glob("router-*.json"))
    except OSError:
        return []
    for f in files:
        try:
            doc: Any = orjson.loads(f.read_bytes())
        except (OSError, orjson.JSONDecodeError):
            continue
        if not isinstance(doc, dict) or not isinstance(doc.get("pid"), int) or not isinstance(doc.get("url"), str):
            continue
        if not pid_alive(doc["pid"]):
            if cleanup:
                with contextlib.suppress(OSError):
                    f.unlink()
            continue
        doc["file"] = str(f)
        found.append(doc)
    found.sort(key=lambda d: d.get("started") or 0, reverse=True)
    return found
