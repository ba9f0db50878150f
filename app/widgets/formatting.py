"""Small text helpers shared by the widgets (no Textual here)."""

from __future__ import annotations

from collections.abc import Sequence

from app.proxy.jsonrpc import JSON

SPARK = "▁▂▃▄▅▆▇█"
MODERN_VERSION = "2026-07-28"

# State word -> theme colour variable, for the backends table and the header.
STATE_COLOURS = {
    "up": "$success",
    "starting": "$warning",
    "restarting": "$warning",
    "down": "$error",
    "failed": "$error",
    "disabled": "$text-muted",
}


def sparkline(values: Sequence[float | None], width: int = 12) -> str:
    """A one-line chart of recent values, scaled to their own range; a failed probe is `×`."""
    recent = list(values)[-width:]
    numbers = [v for v in recent if v is not None]
    if not numbers:
        return "×" * len(recent)
    low, high = min(numbers), max(numbers)
    span = high - low or 1.0
    out = []
    for v in recent:
        if v is None:
            out.append("×")
        else:
            out.append(SPARK[min(len(SPARK) - 1, int((v - low) / span * (len(SPARK) - 1)))])
    return "".join(out)


def duration(seconds: float) -> str:
    s = max(0, int(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{(s % 3600) // 60:02d}m"


def era_of(protocol_version: str | None) -> str:
    if not protocol_version:
        return ""
    return "modern" if protocol_version >= MODERN_VERSION else protocol_version


def transport_text(snap: JSON) -> str:
    transport = snap.get("transport") or ("stdio" if snap.get("kind") == "stdio" else "http")
    short = {"streamable-http": "http"}.get(transport, transport)
    era = era_of(snap.get("protocol_version"))
    return f"{short} {era}".strip()


def client_text(info: JSON | None) -> str:
    if not isinstance(info, dict):
        return "?"
    name = str(info.get("name") or "?")
    version = info.get("version")
    return f"{name} {version}" if version else name
