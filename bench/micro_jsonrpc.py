"""Micro-benchmark of the per-message work on the hot path: parse, remap the id, get the bytes.

    python bench/micro_jsonrpc.py                          # this checkout's app/proxy/jsonrpc.py
    python bench/micro_jsonrpc.py --compare OTHER/jsonrpc.py   # interleaved with another version

Ordinary messages as the SDK writes them (a `tools/call` request with the 2026-07-28 `_meta`
envelope, and its answer), a few thousand times: the parse of every message (in the handshake era
that is all the router does to a message), and in the modern era also the id swap on the way in
(keeping the client's id bytes) and on the way out. Prints µs per message: the best of many
interleaved rounds, since on a shared machine the best round is the least disturbed one.
"""

from __future__ import annotations

import argparse
import importlib.util
import time
from collections.abc import Callable
from types import ModuleType
from typing import Any

from app.proxy import jsonrpc

REQUEST = (
    b'{"method":"tools/call","params":{"name":"echo","arguments":{"text":"hello world"},"_meta":{'
    b'"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientInfo":'
    b'{"name":"mcp","version":"2.3.0"},"io.modelcontextprotocol/clientCapabilities":{}}},'
    b'"jsonrpc":"2.0","id":1}'
)
RESPONSE = (
    b'{"jsonrpc":"2.0","id":"modern:demo-1","result":{"content":[{"type":"text","text":"hello world"}],'
    b'"structuredContent":{"result":"hello world"},"isError":false}}'
)
N = 2000


def handshake(mod: Any) -> None:
    for _ in range(N):
        [req], _ = mod.parse_body(REQUEST)
        [resp], _ = mod.parse_body(RESPONSE)
        _ = req.raw, resp.raw


def modern(mod: Any) -> None:
    splicing = hasattr(mod.Message, "swap")
    for _ in range(N):
        [req], _ = mod.parse_body(REQUEST)
        out = req.swap(("id",), "modern:demo-1")[0] if splicing else req.replaced(id="modern:demo-1")
        [resp], _ = mod.parse_body(RESPONSE)
        back = resp.replaced(id=1)
        _ = out.raw, back.raw


def load(path: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location("other_jsonrpc", path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--compare", help="another jsonrpc.py to measure side by side")
    parser.add_argument("--rounds", type=int, default=30)
    args = parser.parse_args()
    versions: dict[str, Any] = {"this": jsonrpc}
    if args.compare:
        versions["other"] = load(args.compare)
    cases: dict[str, Callable[[Any], None]] = {
        "handshake era (parse)": handshake,
        "modern era (parse + id swap)": modern,
    }
    best: dict[tuple[str, str], float] = {}
    for _ in range(args.rounds):
        for case, fn in cases.items():
            for name, mod in versions.items():
                t = time.perf_counter()
                fn(mod)
                per_msg = (time.perf_counter() - t) / (2 * N) * 1e6
                best[(case, name)] = min(best.get((case, name), per_msg), per_msg)
    for case in cases:
        print(case + ": " + "  ".join(f"{name} {best[(case, name)]:.2f} µs/msg" for name in versions))


if __name__ == "__main__":
    main()
