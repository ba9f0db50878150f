"""`mcp-router tui --url`: the terminal UI attached to a headless router in another process, through
`RemoteControl` (Pilot): its backends, an SDK client's traffic, and a restart made from the UI."""

from __future__ import annotations

from typing import Any

import pytest

from app.control_cli import tui_app
from app.control_remote import RemoteControl
from tests.support.clients import connect
from tests.support.procs import run_fixture, run_router, stdio_command, wait_for

pytest.importorskip("app.tui", reason="the terminal UI is not on this branch yet")

SIZE = (140, 40)


def find(app: Any, **want: Any) -> Any:
    for row in app.main.model.visible:
        if all(getattr(row, k) == v for k, v in want.items()):
            return row
    return None


async def test_the_tui_attached_to_a_headless_router_shows_it_and_restarts_a_backend() -> None:
    async with (
        run_fixture("streamable", name="web") as fx,
        run_router("-b", f"web={fx.url}", "-b", f"tool={stdio_command(name='tool')}") as r,
    ):
        async with RemoteControl(r.url) as control:
            await wait_for(lambda: _all_up(control, "web", "tool"), 20, message="backends up before the UI attaches")
            app = tui_app(control)
            async with app.run_test(size=SIZE) as pilot:
                await wait_for(lambda: set(app.main.backends) == {"web", "tool"}, 15, message="backends shown")
                assert app.main.backends["tool"]["state"] == "up"
                async with connect(r.mcp_url("tool"), "streamable-handshake") as client:
                    await client.call_tool("echo", {"text": "through the router"})
                    request = await wait_for(
                        lambda: find(app, kind="request", method="tools/call", subject="echo"), 15, message="the call"
                    )
                    await wait_for(lambda: request.status == "ok", 15, message="its answer")
                    await wait_for(lambda: app.main.backends["tool"]["sessions"] == 1, 15, message="session counted")
                table = app.main.backends_table
                table.focus()
                table.select_key("tool")
                await pilot.press("r")
                snap = await wait_for(lambda: _restarted(control, "tool"), 20, message="the restart on the router")
                assert snap["state"] == "up"
                await wait_for(lambda: app.main.backends["tool"]["restarts"] == 1, 15, message="restart shown")


async def _all_up(control: RemoteControl, *names: str) -> bool:
    st = await control.status()
    return all(b["state"] == "up" for b in st["backends"] if b["name"] in names)


async def _restarted(control: RemoteControl, name: str) -> Any:
    snap = await control.backend(name)
    return snap if snap["restarts"] == 1 else None
