"""An answer as the client would see it: a tool's text, structured content, images (a placeholder
with their size), `isError`; a resource's contents; a prompt's messages. Views render the blocks;
secrets are masked unless revealed. This module never imports Textual.
"""

from __future__ import annotations

import binascii
import json
from dataclasses import dataclass
from typing import Any, Literal

from app.proxy.secrets import mask_json

BlockKind = Literal["heading", "text", "json", "media", "error", "note"]
JSON = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Block:
    kind: BlockKind
    text: str


def human_size(n: int) -> str:
    if n < 1024:
        return f"{n} B"
    if n < 1024 * 1024:
        return f"{n / 1024:.1f} KB"
    return f"{n / 1024 / 1024:.1f} MB"


def _decoded_size(data: Any) -> int | None:
    if not isinstance(data, str):
        return None
    try:
        return len(binascii.a2b_base64(data.encode("ascii")))
    except (binascii.Error, UnicodeEncodeError):
        return None


def _media(kind: str, item: JSON) -> Block:
    size = _decoded_size(item.get("data") if "data" in item else item.get("blob"))
    mime = item.get("mimeType") or "unknown type"
    where = f" {item['uri']}" if isinstance(item.get("uri"), str) else ""
    return Block("media", f"[{kind}{where}: {mime}, {human_size(size) if size is not None else 'size unknown'}]")


def pretty(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False)


def content_blocks(items: Any) -> list[Block]:
    """MCP content items (tool results, prompt messages)."""
    out: list[Block] = []
    for item in items if isinstance(items, list) else []:
        if not isinstance(item, dict):
            continue
        kind = item.get("type")
        if kind == "text":
            out.append(Block("text", str(item.get("text", ""))))
        elif kind in ("image", "audio"):
            out.append(_media(str(kind), item))
        elif kind == "resource_link":
            name = f" ({item['name']})" if item.get("name") else ""
            out.append(Block("note", f"[link {item.get('uri')}{name}]"))
        elif kind == "resource" and isinstance(item.get("resource"), dict):
            res = item["resource"]
            if "text" in res:
                out.append(Block("heading", f"resource {res.get('uri')}"))
                out.append(Block("text", str(res["text"])))
            else:
                out.append(_media("resource", res))
        else:
            out.append(Block("json", pretty(item)))
    return out


def result_blocks(method: str, outcome: JSON, reveal: bool = False) -> list[Block]:
    """Blocks for the outcome of a workbench call (`RouterControl.call`'s JSON)."""
    blocks: list[Block] = []
    response = outcome.get("response")
    if not isinstance(response, dict):
        return [Block("error", f"No answer: {outcome.get('error') or 'the backend did not answer'}")]
    if not reveal:
        response = mask_json(response)
    needs = outcome.get("needs_client")
    if needs:
        blocks.append(Block("note", f"Note: {needs}."))
    err = response.get("error")
    if isinstance(err, dict):
        blocks.append(Block("error", f"JSON-RPC error {err.get('code')}: {err.get('message')}"))
        if "data" in err:
            blocks.append(Block("json", pretty(err["data"])))
        return blocks
    result = response.get("result")
    if not isinstance(result, dict):
        return [*blocks, Block("json", pretty(result))]
    if method == "tools/call":
        if result.get("isError") is True:
            blocks.append(Block("error", "The tool reported an error (isError: true)"))
        blocks.extend(content_blocks(result.get("content")))
        if "structuredContent" in result:
            blocks.append(Block("heading", "structured content"))
            blocks.append(Block("json", pretty(result["structuredContent"])))
    elif method == "resources/read":
        for item in result.get("contents") or []:
            if not isinstance(item, dict):
                continue
            mime = f" ({item['mimeType']})" if item.get("mimeType") else ""
            if "text" in item:
                blocks.append(Block("heading", f"{item.get('uri')}{mime}"))
                blocks.append(Block("text", str(item["text"])))
            else:
                blocks.append(_media("blob", item))
    elif method == "prompts/get":
        if result.get("description"):
            blocks.append(Block("note", str(result["description"])))
        for message in result.get("messages") or []:
            if isinstance(message, dict):
                blocks.append(Block("heading", str(message.get("role", "?"))))
                content = message.get("content")
                blocks.extend(content_blocks(content if isinstance(content, list) else [content]))
    else:
        blocks.append(Block("json", pretty(result)))
    latency = outcome.get("latency_ms")
    if isinstance(latency, int | float):
        blocks.append(Block("note", f"answered in {latency:.1f} ms"))
    return blocks
