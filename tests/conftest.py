"""Suite-wide set-up: TUI snapshots live in snapshots/, and no test touches the user's real state."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pytest_textual_snapshot import SVGImageExtension

from tests.support.forks import SOCKET_ENV, fork_server, forking_enabled

SNAPSHOTS = Path(__file__).resolve().parents[1] / "snapshots"


def _snapshot_dir(cls: Any, *, test_location: Any) -> str:
    return str(SNAPSHOTS / test_location.basename)


# The SVGs are part of the product's review: keep them in one visible folder, not tests/__snapshots__.
SVGImageExtension.dirname = classmethod(_snapshot_dir)  # type: ignore[assignment,method-assign]


XDG_VARS = (
    ("XDG_CONFIG_HOME", "config"),
    ("XDG_DATA_HOME", "data"),
    ("XDG_STATE_HOME", "state"),
    ("XDG_CACHE_HOME", "cache"),
    ("XDG_RUNTIME_DIR", "runtime"),
)


@pytest.fixture(autouse=True, scope="session")
def _fork_server() -> Any:
    """Backends start as forks of one process that has the SDK loaded (tests/servers/fork_server.py):
    the SDK's import was most of the suite's CPU time."""
    if not forking_enabled():
        yield
        return
    server = fork_server()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(SOCKET_ENV, server.socket_path)
        yield


@pytest.fixture(autouse=True, scope="session")
def _isolated_session_dirs(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The same for what starts before any test's own folder exists (module-scoped routers)."""
    base = tmp_path_factory.mktemp("xdg-session")
    with pytest.MonkeyPatch.context() as mp:
        for var, sub in XDG_VARS:
            path = base / sub
            path.mkdir(mode=0o700)
            mp.setenv(var, str(path))
        yield


@pytest.fixture(autouse=True)
def _isolated_user_dirs(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """platformdirs paths (state, logs, runtime files) point into a temporary folder for every test,
    in this process and in every process a test starts."""
    base = tmp_path_factory.mktemp("xdg")
    for var, sub in XDG_VARS:
        path = base / sub
        path.mkdir(mode=0o700)
        monkeypatch.setenv(var, str(path))
