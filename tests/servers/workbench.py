"""An SDK backend for the workbench tests: a tool with an input of every kind, answers and schemas
that change between builds, credentials in arguments, answers and env, an image, an error.

    python tests/servers/workbench.py [--transport stdio|streamable] [--port N] [--build-file PATH]

The build ("v1" or "v2") is read from `--build-file` when the process starts (default v1), so a test
"rebuilds" the server by writing the file and restarting the backend, as a developer would after
editing their code. v2 changes: `version` answers differently; `search` gains an `exact` argument
and a new description; `legacy` is gone; `extra` is new.
"""

from __future__ import annotations

if __name__ == "__main__" and "__fork_server__" not in globals():  # the suite: served by a fork (fork_server.py)
    import os as _os
    import sys as _sys

    _sys.path.insert(0, _os.path.dirname(_os.path.abspath(__file__)))  # also when run by runpy
    import fork_client

    fork_client.serve_forked("workbench")

import argparse
import asyncio
import base64
import logging
import os
import sys
from pathlib import Path
from typing import Annotated, Any, Literal

from mcp.server.mcpserver import Elicit, ElicitationResult, Image, MCPServer, Resolve
from pydantic import BaseModel, Field

# A 1×1 PNG: the workbench shows images as a placeholder with their size.
PIXEL = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)


class Settings(BaseModel):
    """An object argument (shown as JSON text in the form)."""

    depth: int = 1
    verbose: bool = False


class VersionInfo(BaseModel):
    build: str
    major: int
    features: list[str]


class Name(BaseModel):
    name: str


def _ask_name() -> Elicit[Name]:
    return Elicit("What is your name?", Name)


def build_server(build: str) -> MCPServer[Any]:
    mcp: MCPServer[Any] = MCPServer("workbench", version=build)

    @mcp.tool()
    def form(
        text: Annotated[str, Field(description="Some text", min_length=2)],
        tags: list[str],
        count: Annotated[int, Field(ge=0, le=100)] = 3,
        ratio: float = 0.5,
        flag: bool = False,
        color: Literal["red", "green", "blue"] = "green",
        settings: Settings | None = None,
    ) -> dict[str, Any]:
        """Echo every argument back, typed."""
        return {
            "text": text,
            "tags": tags,
            "count": count,
            "ratio": ratio,
            "flag": flag,
            "color": color,
            "settings": settings.model_dump() if settings else None,
        }

    @mcp.tool()
    def login(user: str, password: str) -> dict[str, str]:
        """Log in; answers with a session token."""
        return {"user": user, "token": f"tok-{user}-{len(password)}"}

    @mcp.tool()
    def env_key() -> dict[str, str]:
        """The WORKBENCH_API_KEY this process was started with."""
        return {"api_key": os.environ.get("WORKBENCH_API_KEY", "")}

    @mcp.tool()
    def version() -> VersionInfo:
        """Which build answers."""
        if build == "v2":
            return VersionInfo(build="v2", major=2, features=["search", "exact"])
        return VersionInfo(build="v1", major=1, features=["search"])

    if build == "v2":

        @mcp.tool()
        def search(query: str, limit: int = 10, exact: bool = False) -> list[str]:
            """Search the index (exact or fuzzy)."""
            return [f"{query}-{i}" for i in range(min(limit, 3))]

        @mcp.tool()
        def extra() -> str:
            """New in v2."""
            return "extra"

    else:

        @mcp.tool()
        def search(query: str, limit: int = 10) -> list[str]:
            """Search the index."""
            return [f"{query}-{i}" for i in range(min(limit, 3))]

        @mcp.tool()
        def legacy() -> str:
            """Gone in v2."""
            return "legacy"

    @mcp.tool()
    def picture() -> Image:
        """A tiny PNG."""
        return Image(data=PIXEL, format="png")

    @mcp.tool()
    def fail(why: str = "it broke") -> str:
        """Always fails (isError)."""
        raise ValueError(why)

    @mcp.tool()
    def ask(outcome: Annotated[ElicitationResult[Name], Resolve(_ask_name)]) -> str:
        """Ask the user their name (elicitation): needs the client."""
        return f"hello {outcome.data.name}" if outcome.action == "accept" else outcome.action

    @mcp.resource("wb://readme", name="readme", mime_type="text/plain")
    def readme() -> str:
        return f"workbench {build}"

    @mcp.prompt()
    def review(code: str, style: str = "short") -> str:
        """Review some code."""
        return f"Review this ({style}): {code}"

    return mcp


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="workbench test backend")
    parser.add_argument("--transport", choices=["stdio", "streamable"], default="stdio")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--build-file", default=None)
    args = parser.parse_args(argv)
    build = "v1"
    if args.build_file and Path(args.build_file).exists():
        build = Path(args.build_file).read_text().strip() or "v1"
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    mcp = build_server(build)
    logging.getLogger().setLevel(logging.WARNING)
    try:
        if args.transport == "stdio":
            asyncio.run(mcp.run_stdio_async())
        else:
            import uvicorn

            app = mcp.streamable_http_app(host=args.host)
            config = uvicorn.Config(app, host=args.host, port=args.port, log_level="warning", access_log=False)
            asyncio.run(uvicorn.Server(config).serve())
    except KeyboardInterrupt:
        pass


if __name__ == "__main__" and "__fork_server__" not in globals():  # loaded by fork_server.py: run nothing
    main()
