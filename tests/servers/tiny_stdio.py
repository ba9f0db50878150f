"""A minimal stdio MCP server without the SDK: starts in milliseconds, for tests that spawn hundreds.

    python tests/servers/tiny_stdio.py

Answers `initialize` (echoing the offered version), `ping`, `tools/list` and `tools/call` of two
tools: `echo` (returns its `text`) and `hang` (never answers: a request that stays in flight).
Exits at the end of stdin.
"""

import json
import sys

TOOLS = [
    {"name": "echo", "inputSchema": {"type": "object", "properties": {"text": {"type": "string"}}}},
    {"name": "hang", "inputSchema": {"type": "object"}},
]


def answer(msg: dict) -> dict | None:  # type: ignore[type-arg]
    method = msg.get("method")
    params = msg.get("params") or {}
    if method == "initialize":
        return {
            "protocolVersion": params.get("protocolVersion", "2025-11-25"),
            "capabilities": {"tools": {}},
            "serverInfo": {"name": "tiny", "version": "1"},
        }
    if method == "tools/list":
        return {"tools": TOOLS}
    if method == "tools/call":
        if params.get("name") == "hang":
            return None
        text = str((params.get("arguments") or {}).get("text", ""))
        return {"content": [{"type": "text", "text": text}]}
    return {}


def main() -> None:
    for line in sys.stdin:
        try:
            msg = json.loads(line)
        except ValueError:
            continue
        if "id" not in msg or "method" not in msg:
            continue
        result = answer(msg)
        if result is not None:
            sys.stdout.write(json.dumps({"jsonrpc": "2.0", "id": msg["id"], "result": result}) + "\n")
            sys.stdout.flush()


if __name__ == "__main__":
    main()
