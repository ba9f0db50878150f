"""A minimal stdio MCP server without the SDK: starts in milliseconds, for tests that spawn hundreds.

    python tests/servers/tiny_stdio.py [--stderr-lines N --stderr-size BYTES]

Answers `initialize` (echoing the offered version), `ping`, `tools/list` and `tools/call` of two
tools: `echo` (returns its `text`) and `hang` (never answers: a request that stays in flight).
Exits at the end of stdin. With --stderr-lines it first writes that many lines of --stderr-size
bytes each to stderr (a chatty server, for the log bounds).
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
    args = sys.argv[1:]
    if "--stderr-lines" in args:
        lines = int(args[args.index("--stderr-lines") + 1])
        size = int(args[args.index("--stderr-size") + 1])
        chunk = "e" * (1 << 20)
        for _ in range(lines):
            for start in range(0, size, len(chunk)):
                sys.stderr.write(chunk[: size - start])
            sys.stderr.write("\n")
        sys.stderr.flush()
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
