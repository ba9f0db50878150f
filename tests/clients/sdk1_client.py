"""A session of the MCP Python SDK 1.x (`mcp==1.30.0`, what most agents run) against the router.

Run by the 1.x venv's interpreter (.venv-sdk1, built by `./dev.sh test`), never imported by the suite,
whose own venv has the 2.x SDK: stdlib and `mcp` 1.x only.

    python sdk1_client.py TARGET --transport streamable-http|sse|stdio [--restart URL]

TARGET is an MCP URL, or for `stdio` a command line (e.g. `node …/mcp-remote/dist/proxy.js URL`)
spawned with this process's environment. One session does what an agent does: initialize, list
tools, call echo, a tool that reports progress, a resource, a prompt, ping, and the backend's
requests back to the client (sampling, elicitation, roots) and a log line. With --restart it then
POSTs to URL (the management API's `/backends/NAME/restart`, which answers once the new backend
serves) and goes on in the same session. Prints one JSON line with what each step returned; on
the first failure that line has "error" and the exit code is 1.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shlex
import sys
import time
import traceback
import urllib.request
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import timedelta
from typing import Any

import mcp.types as types
from mcp import ClientSession, StdioServerParameters
from mcp.client.sse import sse_client
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.context import RequestContext

ROOT_URI = "file:///work/project"
SAMPLED = "sampled by the 1.x client"


async def on_sampling(
    context: RequestContext[ClientSession, Any], params: types.CreateMessageRequestParams
) -> types.CreateMessageResult:
    return types.CreateMessageResult(
        role="assistant", content=types.TextContent(type="text", text=SAMPLED), model="sdk1-test"
    )


async def on_elicitation(
    context: RequestContext[ClientSession, Any], params: types.ElicitRequestParams
) -> types.ElicitResult:
    return types.ElicitResult(action="accept", content={"answer": "42"})


async def on_roots(context: RequestContext[ClientSession, Any]) -> types.ListRootsResult:
    return types.ListRootsResult(roots=[types.Root(uri=ROOT_URI)])  # type: ignore[arg-type]


@asynccontextmanager
async def streams(target: str, transport: str) -> AsyncIterator[tuple[Any, Any]]:
    cm: AbstractAsyncContextManager[Any]
    if transport == "streamable-http":
        cm = streamable_http_client(target)
    elif transport == "sse":
        cm = sse_client(target)
    else:
        argv = shlex.split(target)
        # The SDK passes a stdio server only a few variables unless told; the bridge needs the
        # caller's (mcp-remote's config folder, PATH for node).
        cm = stdio_client(StdioServerParameters(command=argv[0], args=argv[1:], env=dict(os.environ)))
    async with cm as opened:
        yield opened[0], opened[1]


def text_of(result: types.CallToolResult) -> str:
    if result.isError:
        raise RuntimeError(f"tool error: {result.content}")
    first = result.content[0]
    assert isinstance(first, types.TextContent), first
    return first.text


def post(url: str) -> dict[str, Any]:
    request = urllib.request.Request(url, data=b"", method="POST")
    with urllib.request.urlopen(request, timeout=60) as response:
        body: dict[str, Any] = json.loads(response.read())
        body["status"] = response.status
        return body


async def session(target: str, transport: str, restart: str | None, out: dict[str, Any]) -> None:
    logs: list[str] = []
    started = time.monotonic()
    timeline: dict[str, float] = {}
    out["timeline"] = timeline  # when each step began, in s: where a slow run spent its time

    def step(name: str) -> None:
        out["step"] = name
        timeline[name] = round(time.monotonic() - started, 3)

    step("connect")

    async def on_log(params: types.LoggingMessageNotificationParams) -> None:
        logs.append(str(params.data))

    async with (
        streams(target, transport) as (read, write),
        ClientSession(
            read,
            write,
            read_timeout_seconds=timedelta(seconds=30),
            sampling_callback=on_sampling,
            elicitation_callback=on_elicitation,
            list_roots_callback=on_roots,
            logging_callback=on_log,
        ) as s,
    ):
        step("initialize")
        init = await s.initialize()
        out["server"] = init.serverInfo.name
        out["protocol"] = init.protocolVersion

        step("tools/list")
        out["tools"] = sorted(t.name for t in (await s.list_tools()).tools)
        step("echo")
        out["echo"] = text_of(await s.call_tool("echo", {"text": "héllo ✓"}))

        reported: list[list[Any]] = []

        async def on_progress(progress: float, total: float | None, message: str | None) -> None:
            reported.append([progress, total, message])

        step("slow (progress)")
        out["slow"] = text_of(await s.call_tool("slow", {"steps": 3, "delay": 0.01}, progress_callback=on_progress))
        # Progress arrives before the result on every transport, and the session hands each
        # message to its callback in order: all three are here by now.
        out["progress"] = list(reported)

        step("resources")
        resources = (await s.list_resources()).resources
        out["resources"] = sorted(str(r.uri) for r in resources)
        read_back = await s.read_resource(resources[0].uri)
        out["resource_read"] = len(read_back.contents)
        step("prompts")
        prompt = (await s.list_prompts()).prompts[0]
        got = await s.get_prompt(prompt.name, {a.name: "Ada" for a in prompt.arguments or []})
        out["prompt"] = [prompt.name, len(got.messages)]
        step("ping")
        await s.send_ping()

        step("backend → client requests")
        out["sample"] = text_of(await s.call_tool("sample", {"prompt": "x"}))
        out["elicit"] = text_of(await s.call_tool("elicit", {"question": "q"}))
        out["roots"] = text_of(await s.call_tool("roots", {}))
        step("logging")
        await s.set_logging_level("info")
        out["log_result"] = text_of(await s.call_tool("log", {"message": "from the 1.x test"}))
        out["logs"] = logs

        if restart is None:
            return
        step("whoami")
        out["whoami_before"] = text_of(await s.call_tool("whoami", {}))
        step("restart")
        out["restart"] = await asyncio.to_thread(post, restart)
        step("after the restart")
        after: dict[str, Any] = {}
        out["after"] = after
        after["echo"] = text_of(await s.call_tool("echo", {"text": "again"}))
        after["tools"] = sorted(t.name for t in (await s.list_tools()).tools)
        reported.clear()
        after["slow"] = text_of(await s.call_tool("slow", {"steps": 2, "delay": 0.01}, progress_callback=on_progress))
        after["progress"] = list(reported)
        await s.send_ping()
        after["whoami"] = text_of(await s.call_tool("whoami", {}))
    step("closed")  # the transport's exit: for stdio, the bridge process has ended


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("target")
    parser.add_argument("--transport", choices=["streamable-http", "sse", "stdio"], required=True)
    parser.add_argument("--restart", metavar="URL")
    args = parser.parse_args()
    out: dict[str, Any] = {}
    code = 0
    try:
        asyncio.run(session(args.target, args.transport, args.restart, out))
    except BaseException as exc:
        traceback.print_exc()
        out["error"] = f"{out.get('step')}: {type(exc).__name__}: {exc}"
        code = 1
    print(json.dumps(out), flush=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
