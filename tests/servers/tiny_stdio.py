"""A minimal stdio MCP server without the SDK: starts in milliseconds, for tests that spawn hundreds.

    python tests/servers/tiny_stdio.py [--stderr-lines N --stderr-size BYTES]

Answers `initialize` (echoing the offered version), `ping`, `tools/list` and `tools/call` of four
tools: `echo` (returns its `text`), `hang` (never answers: a request that stays in flight),
`bump` (tells every `subscriptions/listen` it was ever sent that test://counter changed, and
also the subscription its `also` argument names: a backend's mistake) and `unlisten` (ends every
listen the way a stdio server does: a `notifications/cancelled` naming it). A listen is
acknowledged, never answered, and ends only by `unlisten`: this server ignores
`notifications/cancelled` (the spec lets a server ignore a cancellation), so it goes on notifying
listens the client closed. Exits at the end of stdin. With --stderr-lines it first writes that many lines of --stderr-size
bytes each to stderr (a chatty server, for the log bounds).
"""

import json
import sys

TOOLS = [
    {"name": "echo", "inputSchema": {"type": "object", "properties": {"text": {"type": "string"}}}},
    {"name": "hang", "inputSchema": {"type": "object"}},
    {"name": "bump", "inputSchema": {"type": "object"}},
    {"name": "unlisten", "inputSchema": {"type": "object"}},
]
COUNTER_URI = "test://counter"
SUBSCRIPTION_ID = "io.modelcontextprotocol/subscriptionId"
listens: list[object] = []  # ids of every subscriptions/listen request, in order


def write(msg: dict) -> None:  # type: ignore[type-arg]
    sys.stdout.write(json.dumps(msg) + "\n")
    sys.stdout.flush()


def notify(method: str, subscription: object, params: dict) -> None:  # type: ignore[type-arg]
    write({"jsonrpc": "2.0", "method": method, "params": {**params, "_meta": {SUBSCRIPTION_ID: subscription}}})


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
    if method == "subscriptions/listen":
        listens.append(msg["id"])
        wanted = params.get("notifications") or {}
        honored = {"resourceSubscriptions": [u for u in wanted.get("resourceSubscriptions", []) if u == COUNTER_URI]}
        notify("notifications/subscriptions/acknowledged", msg["id"], {"notifications": honored})
        return None
    if method == "tools/call":
        if params.get("name") == "hang":
            return None
        if params.get("name") == "bump":
            also = (params.get("arguments") or {}).get("also")
            for subscription in [*listens, *([also] if also is not None else [])]:
                notify("notifications/resources/updated", subscription, {"uri": COUNTER_URI})
            return {"content": [{"type": "text", "text": str(len(listens))}]}
        if params.get("name") == "unlisten":
            ended = len(listens)
            for subscription in listens:
                write({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": subscription}})
            listens.clear()
            return {"content": [{"type": "text", "text": str(ended)}]}
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
            meta = (msg.get("params") or {}).get("_meta") or {}
            if "io.modelcontextprotocol/protocolVersion" in meta:
                result["resultType"] = "complete"  # a 2026-07-28 request's result says it is final
                if msg["method"] == "tools/list":
                    result.update(cacheScope="private", ttlMs=0)  # and a list says how long it holds
            write({"jsonrpc": "2.0", "id": msg["id"], "result": result})


if __name__ == "__main__":
    main()
