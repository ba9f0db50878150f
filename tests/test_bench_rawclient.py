"""bench/rawclient.py, the paced benchmark's light client, against a real router and SDK backend."""

from __future__ import annotations

import httpx
import pytest

from bench.rawclient import CallFailed, connect
from tests.support.procs import run_fixture, run_router


async def test_the_raw_client_calls_through_the_router_and_ends_its_session() -> None:
    async with run_fixture("streamable") as fx, run_router("-b", f"fx={fx.url}") as r:
        async with httpx.AsyncClient(base_url=r.url, timeout=10.0) as admin:
            async with connect(r.mcp_url("fx")) as client:
                result = await client.call_tool("echo", {"text": "paced"})
                assert result["content"][0]["text"] == "paced"
                assert (await client.call_tool("add", {"a": 2, "b": 3}))["content"][0]["text"] == "5"
                sessions = (await admin.get("/sessions")).json()
                assert [s["client"]["name"] for s in sessions] == ["bench-raw"]
                # A failed call is an exception (the benchmark counts it as an error), not a result.
                with pytest.raises(CallFailed):
                    await client.call_tool("no_such_tool", {})
                with pytest.raises(CallFailed):
                    await client.call_tool("add", {"a": "x"})
                assert (await client.call_tool("echo", {"text": "still"}))["content"][0]["text"] == "still"
            # Leaving the block ends the session, as the SDK's client does: nothing lingers.
            assert (await admin.get("/sessions")).json() == []
