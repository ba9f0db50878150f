"""`mcp-router tui --url`: the terminal UI attached to a headless router in another process, through
`RemoteControl` (Pilot): its backends, an SDK client's traffic, a restart made from the UI, and the
router itself restarted under it (the UI says so and shows the new router)."""

from __future__ import annotations

from typing import Any

import pytest

from app.control_cli import tui_app
from app.control_remote import RemoteControl
from tests.support.clients import connect
from tests.support.procs import free_port, run_fixture, run_router, stdio_command, stop_process, wait_for

pytest.importorskip("app.tui", reason="the terminal UI is not on this branch yet")

SIZE = (140, 40)


def find(app: Any, **want: Any) -> Any:
    for row in app.main.model.visible:
        if all(getattr(row, k) == v for k, v in want.items()):
            return row
    return None


async def test_the_tui_attached_to_a_headless_router_shows_it_and_restarts_a_backend() -> None:
    from textual.notifications import Notify

    port = free_port()
    notes: list[str] = []

    def hook(message: Any) -> None:
        if isinstance(message, Notify):
            notes.append(message.notification.message)

    async with run_fixture("streamable", name="web") as fx, RemoteControl(f"http://127.0.0.1:{port}") as control:
        async with run_router(
            "--port", str(port), "-b", f"web={fx.url}", "-b", f"tool={stdio_command(name='tool')}"
        ) as r:
            await wait_for(lambda: _all_up(control, "web", "tool"), 20, message="backends up before the UI attaches")
            app = tui_app(control)
            async with app.run_test(size=SIZE, notifications=True, message_hook=hook) as pilot:
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

                # The router stops and another starts on the same port: the UI says so, and follows it.
                await stop_process(r.proc)
                await wait_for(lambda: any("reconnecting" in n for n in notes), 15, message="the lost notice")
                async with run_router("--port", str(port), "--no-persist", "-b", f"fresh={fx.url}"):
                    await wait_for(lambda: any("reconnected" in n for n in notes), 15, message="the back notice")
                    await wait_for(lambda: "fresh" in app.main.backends, 15, message="the new router's backends")
                    assert "tool" not in app.main.backends


async def _all_up(control: RemoteControl, *names: str) -> bool:
    st = await control.status()
    return all(b["state"] == "up" for b in st["backends"] if b["name"] in names)


async def _restarted(control: RemoteControl, name: str) -> Any:
    snap = await control.backend(name)
    return snap if snap["restarts"] == 1 else None
