"""Backends that can be killed and brought back as a new version, for the hot-swap tests."""

from __future__ import annotations

import asyncio
import contextlib
import shlex
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx

from tests.support.procs import FIXTURE_PATH, Fixture, kill_pid, start_fixture, wait_for

WRAPPER = """\
# A developer's stdio server: its version is whatever this file says. While the file "building"
# exists beside it, a new start waits (a build in progress), so a test controls when it is back.
import os, runpy, sys, time
here = os.path.dirname(os.path.abspath(__file__))
while os.path.exists(os.path.join(here, "building")):
    time.sleep(0.02)
with open(os.path.join(here, "variant.txt")) as f:
    VARIANT = f.read().strip()
sys.argv = [{fixture!r}, "--transport", "stdio", "--variant", VARIANT, "--name", "stdio"]
runpy.run_path({fixture!r}, run_name="__main__")
"""


def write_stdio_server(directory: Path, variant: str) -> Path:
    path = directory / "server.py"
    path.write_text(WRAPPER.format(fixture=str(FIXTURE_PATH)))
    (directory / "variant.txt").write_text(variant)
    return path


def stdio_backend_command(path: Path) -> str:
    return shlex.join([sys.executable, str(path)])


class SwappableBackend:
    """One backend of a given transport that a test can kill and restart as another version."""

    def __init__(self, transport: str, workdir: Path) -> None:
        self.transport = transport
        self.workdir = workdir
        self.fixture: Fixture | None = None
        self.port: int | None = None
        self.script: Path | None = None
        self.router_url: str | None = None
        self.name = "be"

    @property
    def target(self) -> str:
        if self.transport == "stdio":
            assert self.script is not None
            return stdio_backend_command(self.script)
        assert self.fixture is not None
        return self.fixture.url

    async def start(self, variant: str = "v1") -> None:
        if self.transport == "stdio":
            self.script = write_stdio_server(self.workdir, variant)
            return
        self.fixture = await start_fixture(self.transport, variant, port=self.port)  # type: ignore[arg-type]
        self.port = self.fixture.port

    async def pids(self) -> list[int]:
        assert self.router_url is not None
        async with httpx.AsyncClient() as http:
            info = (await http.get(f"{self.router_url}/backends/{self.name}")).json()
        return list(info["pids"])

    async def kill(self) -> None:
        """The developer's server dies (every process of it, for stdio) and is not back until revived."""
        if self.transport == "stdio":
            (self.workdir / "building").touch()
            for pid in await self.pids():
                kill_pid(pid, 9)
            return
        assert self.fixture is not None
        await self.fixture.stop(grace=0.5)

    async def revive(self, variant: str) -> None:
        """A new build comes up: same port (HTTP), or the file the router runs (stdio)."""
        if self.transport == "stdio":
            assert self.script is not None
            write_stdio_server(self.workdir, variant)
            (self.workdir / "building").unlink(missing_ok=True)
            return
        self.fixture = await start_fixture(self.transport, variant, port=self.port)  # type: ignore[arg-type]

    async def stop(self) -> None:
        if self.fixture is not None:
            await self.fixture.stop()


@contextlib.asynccontextmanager
async def swappable(transport: str, workdir: Path, variant: str = "v1") -> AsyncIterator[SwappableBackend]:
    backend = SwappableBackend(transport, workdir)
    await backend.start(variant)
    try:
        yield backend
    finally:
        await backend.stop()


async def backend_state(router_url: str, name: str) -> dict[str, Any]:
    async with httpx.AsyncClient() as http:
        r = await http.get(f"{router_url}/backends/{name}")
        r.raise_for_status()
        data: dict[str, Any] = r.json()
        return data


async def wait_state(router_url: str, name: str, state: str, timeout: float = 15.0) -> dict[str, Any]:
    seen: dict[str, Any] = {}

    async def check() -> bool:
        nonlocal seen
        seen = await backend_state(router_url, name)
        return bool(seen["state"] == state)

    await wait_for(check, timeout, message=f"backend {name} to be {state}")
    return seen


def collect_notifications() -> tuple[list[str], Any]:
    """A message_handler that records the methods of the notifications the client receives."""
    seen: list[str] = []

    async def handler(message: Any) -> None:
        root = getattr(message, "root", message)
        method = getattr(root, "method", None)
        if isinstance(method, str):
            seen.append(method)

    return seen, handler


async def gather_with_timeout(*aws: Any, timeout: float) -> list[Any]:
    return await asyncio.wait_for(asyncio.gather(*aws), timeout)
