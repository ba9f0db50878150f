"""Saved state and the runtime file, with real router processes stopped and started again.

Each test gives its routers one state folder (XDG_STATE_HOME) and one runtime folder of its own, so
routers of one test share them, as two runs of the router on one machine do.
"""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.procs import Router, run_fixture, run_router, stdio_command, wait_for
from tests.test_cli import run_cli


def dirs(tmp_path: Path) -> dict[str, str]:
    state, runtime = tmp_path / "state", tmp_path / "run"
    state.mkdir(exist_ok=True)
    runtime.mkdir(exist_ok=True, mode=0o700)
    return {"XDG_STATE_HOME": str(state), "XDG_RUNTIME_DIR": str(runtime)}


def state_file(tmp_path: Path, profile: str = "default") -> Path:
    return tmp_path / "state" / "mcp-dev-router" / "profiles" / f"{profile}.json"


def read_bytes(path: Path) -> bytes:
    return path.read_bytes()


def saved(tmp_path: Path, profile: str = "default") -> dict[str, dict[str, Any]]:
    doc = json.loads(state_file(tmp_path, profile).read_text())
    return {b["name"]: b for b in doc["backends"]}


async def backends(r: Router) -> dict[str, dict[str, Any]]:
    async with httpx.AsyncClient(base_url=r.url) as http:
        return {b["name"]: b for b in (await http.get("/backends")).json()}


async def saved_eventually(tmp_path: Path, check: Any, profile: str = "default") -> dict[str, dict[str, Any]]:
    def ok() -> dict[str, dict[str, Any]] | None:
        try:
            s = saved(tmp_path, profile)
        except (OSError, ValueError):
            return None
        return s if check(s) else None

    result: dict[str, dict[str, Any]] = await wait_for(ok, 10, message="the state file to say so")
    return result


async def test_backends_changed_at_runtime_come_back_with_their_flags(tmp_path: Path) -> None:
    env = dirs(tmp_path)
    watched = tmp_path / "src"
    watched.mkdir()
    async with run_fixture("streamable", name="kept") as fx:
        async with run_router("-b", f"first={fx.url}", env=env) as r, httpx.AsyncClient(base_url=r.url) as http:
            argv = stdio_command().split()
            spec = {
                "name": "tool",
                "command": argv[0],
                "args": argv[1:],
                "env": {"K": "v"},
                "cwd": str(tmp_path),
                "watch": [str(watched)],
            }
            assert (await http.post("/backends", json=spec)).status_code == 201
            assert (
                await http.post(
                    "/backends", json={"name": "api", "url": fx.url, "headers": {"Authorization": "Bearer xyz"}}
                )
            ).status_code == 201
            assert (await http.post("/backends", json={"name": "gone", "url": fx.url})).status_code == 201
            assert (await http.post("/backends/api/disable")).status_code == 200
            assert (await http.delete("/backends/gone")).status_code == 200
            s = await saved_eventually(tmp_path, lambda s: "gone" not in s and s.get("api", {}).get("enabled") is False)
            assert list(s) == ["first", "tool", "api"]
            assert stat.S_IMODE(state_file(tmp_path).stat().st_mode) == 0o600
            assert s["api"]["headers"] == {"Authorization": "Bearer xyz"}  # saved as given; shown masked
        # Restarted with nothing on the command line: everything is back, as it was.
        async with run_router(env=env) as r:
            b = await backends(r)
            assert list(b) == ["first", "tool", "api"]
            assert b["tool"]["env"] == {"K": "•••"} and b["tool"]["cwd"] == str(tmp_path)  # env shown masked
            async with httpx.AsyncClient(base_url=r.url) as http:
                revealed = (await http.get("/backends/tool", params={"reveal": "1"})).json()
            assert revealed["env"] == {"K": "v"}
            assert b["tool"]["watch"] == [str(watched)]
            assert b["api"]["enabled"] is False and b["api"]["state"] == "disabled"
            assert b["api"]["headers"] == {"Authorization": "•••"}
            assert b["first"]["url"] == fx.url
            await wait_for(lambda: _up(r, "first", "tool"), 20, message="restored backends up")
        # The command line wins for a name; the others stay.
        async with run_router("-b", "first=http://127.0.0.1:9/mcp", env=env) as r:
            b = await backends(r)
            assert b["first"]["url"] == "http://127.0.0.1:9/mcp"
            assert set(b) == {"first", "tool", "api"}


async def _up(r: Router, *names: str) -> bool:
    b = await backends(r)
    return all(b[n]["state"] == "up" for n in names)


async def test_no_persist_and_profiles_are_kept_apart(tmp_path: Path) -> None:
    env = dirs(tmp_path)
    async with run_router("-b", "base=http://127.0.0.1:9/mcp", env=env):
        await saved_eventually(tmp_path, lambda s: "base" in s)
    before = state_file(tmp_path).read_bytes()
    async with run_router("--no-persist", "-b", "temp=http://127.0.0.1:9/mcp", env=env) as r:
        assert list(await backends(r)) == ["temp"]  # nothing read
        async with httpx.AsyncClient(base_url=r.url) as http:
            await http.post("/backends", json={"name": "more", "url": "http://127.0.0.1:9/mcp"})
    assert state_file(tmp_path).read_bytes() == before  # nothing written
    assert not state_file(tmp_path, "work").exists()
    async with run_router("--profile", "work", "-b", "w=http://127.0.0.1:9/mcp", env=env) as r:
        assert list(await backends(r)) == ["w"]
        await saved_eventually(tmp_path, lambda s: list(s) == ["w"], profile="work")
    assert state_file(tmp_path).read_bytes() == before
    async with run_router("--profile", "work", env=env) as r:
        assert list(await backends(r)) == ["w"]
    async with run_router(env=env) as r:
        assert list(await backends(r)) == ["base"]


@pytest.mark.parametrize(
    ("content", "why"),
    [
        (b"{this is not json", "corrupt"),
        (b'{"version": 1, "backends": "no"}', "corrupt"),
        (b'{"version": 99, "backends": []}', "future"),
    ],
)
async def test_a_bad_state_file_is_moved_aside_with_a_warning(tmp_path: Path, content: bytes, why: str) -> None:
    env = dirs(tmp_path)
    path = state_file(tmp_path)
    path.parent.mkdir(parents=True)
    path.write_bytes(content)
    async with run_router("-b", "fresh=http://127.0.0.1:9/mcp", env=env) as r:
        line = await wait_for(
            lambda: next((x for x in r.lines if "warning" in x and "moved it to" in x), None),
            10,
            message="the warning",
        )
        aside = Path(line.split("moved it to ", 1)[1].split(" and started", 1)[0])
        assert aside.parent == path.parent and aside.name.startswith(f"default.{why}-")
        assert read_bytes(aside) == content  # kept for the user, untouched
        assert list(await backends(r)) == ["fresh"]
        await saved_eventually(tmp_path, lambda s: list(s) == ["fresh"])
    assert "Traceback" not in "\n".join(r.stderr_lines)


async def test_an_unusable_saved_entry_is_skipped_by_name(tmp_path: Path) -> None:
    env = dirs(tmp_path)
    path = state_file(tmp_path)
    path.parent.mkdir(parents=True)
    path.write_text(
        json.dumps({"version": 1, "backends": [{"name": "ok", "url": "http://127.0.0.1:9/mcp"}, {"name": "bad"}]})
    )
    async with run_router(env=env) as r:
        assert list(await backends(r)) == ["ok"]
        await wait_for(lambda: any("skipped backend bad" in x for x in r.lines), 10, message="the warning")


async def test_two_routers_on_one_profile_never_corrupt_the_file(tmp_path: Path) -> None:
    env = dirs(tmp_path)
    async with run_router("-b", "one=http://127.0.0.1:9/mcp", env=env) as first:
        await saved_eventually(tmp_path, lambda s: "one" in s)
        async with run_router("-b", "two=http://127.0.0.1:9/mcp", env=env) as second:
            await wait_for(
                lambda: any("in use by another router" in x and f"pid {first.pid}" in x for x in second.lines),
                10,
                message="the second router's warning",
            )
            assert set(await backends(second)) == {"one", "two"}  # it read the saved set
            async with httpx.AsyncClient() as http:
                await http.post(f"{second.url}/backends", json={"name": "second-only", "url": "http://127.0.0.1:9/x"})
                await http.post(f"{first.url}/backends", json={"name": "first-added", "url": "http://127.0.0.1:9/y"})
            s = await saved_eventually(tmp_path, lambda s: "first-added" in s)
            assert "second-only" not in s and "two" not in s
    # Once the first is gone, the profile is free again.
    async with run_router(env=env) as r:
        assert set(await backends(r)) == {"one", "first-added"}
        assert not any("in use" in x for x in r.lines)


async def test_the_runtime_file_says_where_the_router_listens(tmp_path: Path) -> None:
    env = dirs(tmp_path)
    run_dir = Path(env["XDG_RUNTIME_DIR"]) / "mcp-dev-router"
    async with run_router("--token", "sekrit", "--no-persist", env=env) as r:
        f = run_dir / f"router-{r.pid}.json"
        await wait_for(f.exists, 10, message="the runtime file")
        assert stat.S_IMODE(f.stat().st_mode) == 0o600
        doc = json.loads(f.read_text())
        assert doc["url"] == r.url and doc["pid"] == r.pid and doc["token_required"] is True
        assert doc["profile"] == "default"
    assert not f.exists()


async def test_stale_runtime_files_are_ignored_and_paths_are_printed(tmp_path: Path) -> None:
    env = dirs(tmp_path)
    run_dir = Path(env["XDG_RUNTIME_DIR"]) / "mcp-dev-router"
    run_dir.mkdir(parents=True)
    dead = await _dead_pid()
    stale = run_dir / f"router-{dead}.json"
    stale.write_text(json.dumps({"url": "http://127.0.0.1:9", "pid": dead, "profile": "default"}))
    done = await _cli(env, "status")
    assert done.code == 2, done
    assert "no running router" in done.stderr and str(run_dir) in done.stderr
    assert not stale.exists()
    for program in (["app.control_cli"], ["app"]):
        shown = await _cli(env, "paths", "--profile", "work", module=program[0])
        assert shown.code == 0, shown
        assert str(state_file(tmp_path, "work")) in shown.stdout
        assert str(run_dir) in shown.stdout and "log" in shown.stdout
    as_json = json.loads((await _cli(env, "paths", "--json")).stdout)
    assert as_json["state"] == str(state_file(tmp_path))
    assert as_json["runtime_dir"] == str(run_dir)


async def _dead_pid() -> int:
    import asyncio

    proc = await asyncio.create_subprocess_exec(sys.executable, "-c", "pass")
    await proc.wait()
    return proc.pid


async def _cli(env: dict[str, str], *argv: str, module: str = "app.control_cli") -> Any:
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        return await run_cli(*argv, program=[sys.executable, "-m", module])
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


async def test_an_unreadable_state_file_is_moved_aside_too(tmp_path: Path) -> None:
    env = dirs(tmp_path)
    path = state_file(tmp_path)
    path.mkdir(parents=True)  # a folder where the file should be: reading it fails even as root (mode 0o000 would not)
    async with run_router("-b", "fresh=http://127.0.0.1:9/mcp", env=env) as r:
        line = await wait_for(
            lambda: next((x for x in r.lines if "default.unreadable-" in x), None), 10, message="the warning"
        )
        assert "was unreadable (Is a directory): moved it to" in line
        await saved_eventually(tmp_path, lambda s: list(s) == ["fresh"])
