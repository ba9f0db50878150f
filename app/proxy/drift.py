"""Schema drift: what a restart or swap changed in a backend's catalog.

Tools, resources and prompts added or removed, and items that changed (a tool's description,
input or output schema; a prompt's arguments; a resource's type), each change as a structural
diff with paths, so a view can say "search: inputSchema.properties.limit added" and a script can
read the same from `GET /backends/{name}` (`last_change`).
"""

from __future__ import annotations

import time
from typing import Any

from app.jsondiff import diff
from app.proxy.jsonrpc import JSON

KINDS = ("tools", "resources", "prompts")
# What names an item of each kind.
KEYS = {"tools": "name", "resources": "uri", "prompts": "name"}


def _key(kind: str, item: JSON) -> str:
    value = item.get(KEYS[kind])
    return str(value if value is not None else item.get("name"))


def catalog_drift(
    old: dict[str, list[JSON]] | None, new: dict[str, list[JSON]] | None, reason: str | None = None
) -> JSON | None:
    """The difference between two catalogs (None when there is nothing to compare with).

    `{"ts", "reason", "count", "seen", "added": {kind: [names]}, "removed": {kind: [names]},
    "changed": [{"kind", "name", "fields": [names], "diff": [{"op", "path", "old", "new"}]}]}`.
    Paths in "diff" start at the item: `inputSchema.properties.limit`.
    """
    if old is None or new is None:
        return None
    added: dict[str, list[str]] = {}
    removed: dict[str, list[str]] = {}
    changed: list[JSON] = []
    for kind in KINDS:
        before = {_key(kind, i): i for i in old.get(kind, [])}
        after = {_key(kind, i): i for i in new.get(kind, [])}
        gone = [k for k in before if k not in after]
        came = [k for k in after if k not in before]
        if gone:
            removed[kind] = gone
        if came:
            added[kind] = came
        for name, item in after.items():
            prev = before.get(name)
            if prev is None or prev == item:
                continue
            changes = diff(prev, item)
            if not changes:
                continue  # the same JSON (1 vs 1.0): nothing a person would call a change
            fields: list[str] = []
            for c in changes:
                top = str(c.path[0]) if c.path else "(item)"
                if top not in fields:
                    fields.append(top)
            changed.append({"kind": kind, "name": name, "fields": fields, "diff": [c.to_dict() for c in changes]})
    count = sum(len(v) for v in added.values()) + sum(len(v) for v in removed.values()) + len(changed)
    return {
        "ts": time.time(),
        "reason": reason,
        "count": count,
        "seen": count == 0,
        "added": added,
        "removed": removed,
        "changed": changed,
    }


def describe(change: JSON | None) -> str:
    """One line: `tools added: extra_tool; tools changed: search (inputSchema)`."""
    if not change or not change.get("count"):
        return "no changes"
    parts: list[str] = []
    for kind, names in change.get("added", {}).items():
        parts.append(f"{kind} added: {', '.join(names)}")
    for kind, names in change.get("removed", {}).items():
        parts.append(f"{kind} removed: {', '.join(names)}")
    by_kind: dict[str, list[str]] = {}
    for item in change.get("changed", []):
        by_kind.setdefault(item["kind"], []).append(f"{item['name']} ({', '.join(item['fields'])})")
    for kind, names in by_kind.items():
        parts.append(f"{kind} changed: {', '.join(names)}")
    return "; ".join(parts)


SINGULAR = {"tools": "tool", "resources": "resource", "prompts": "prompt"}


def lines(change: Any, width: int = 60) -> list[str]:
    """The change as plain lines: what was added, removed, and each changed item's diff."""
    from app.jsondiff import short

    if not isinstance(change, dict):
        return []
    count = int(change.get("count") or 0)
    when = time.strftime("%H:%M:%S", time.localtime(float(change.get("ts") or 0)))
    out = [f"{count} change{'' if count == 1 else 's'} at {when} ({change.get('reason') or 'restart'})"]
    for section, mark in (("added", "+"), ("removed", "-")):
        for kind, names in (change.get(section) or {}).items():
            out.extend(f"{mark} {SINGULAR.get(kind, kind)} {name}" for name in names)
    for item in change.get("changed") or []:
        out.append(
            f"~ {SINGULAR.get(item['kind'], item['kind'])} {item['name']}: {', '.join(item.get('fields') or [])}"
        )
        for entry in item.get("diff") or []:
            op = entry.get("op")
            if op == "added":
                out.append(f"    + {entry.get('path')} {short(entry.get('new'), width)}")
            elif op == "removed":
                out.append(f"    - {entry.get('path')} (was {short(entry.get('old'), width)})")
            else:
                out.append(
                    f"    ~ {entry.get('path')} {short(entry.get('old'), width // 2)} → {short(entry.get('new'), width // 2)}"
                )
    return out


def count_label(change: Any) -> str | None:
    """The badge text while unseen: "3 changes"; None when there is nothing to show."""
    if not isinstance(change, dict) or change.get("seen") or not change.get("count"):
        return None
    n = int(change["count"])
    return f"{n} change" if n == 1 else f"{n} changes"
