"""The headless view: one line per event on stdout, as text or JSON lines."""

from __future__ import annotations

import asyncio
import sys
import time
from typing import Any, TextIO

import orjson

from app.proxy.events import (
    EVENT_TYPES,
    BackendListEvent,
    BackendLogEvent,
    BackendStateEvent,
    CatalogChangeEvent,
    Event,
    EventBus,
    HealthEvent,
    RouterEvent,
    SessionEvent,
    Subscription,
    TrafficEvent,
)
from app.proxy.secrets import mask_json

FLUSH_INTERVAL = 0.02  # 50 writes a second at most: still "live" to a reader

ARROWS = {
    "client->backend": "→",
    "backend->client": "←",
    "router->client": "⇠",
    "router->backend": "⇢",
    "backend->router": "⇠",
}


_second: list[Any] = [None, ""]


def _clock(ts: float) -> str:
    sec = int(ts)
    if _second[0] != sec:  # strftime once a second, not once a line
        _second[0], _second[1] = sec, time.strftime("%H:%M:%S", time.localtime(sec))
    return f"{_second[1]}.{int(ts * 1000) % 1000:03d}"


def format_text(ev: Event) -> str | None:
    t = _clock(ev.ts)
    if isinstance(ev, TrafficEvent):
        what = ev.method or ""
        ident = f" #{ev.msg_id}" if ev.msg_id is not None else ""
        tail = "  re-sent: its backend died with it in flight" if ev.resent else ""
        if ev.msg_kind in ("response", "error"):
            if ev.msg_kind == "error":
                tail = ("  backend fault: " if ev.fault == "backend" else "  error: ") + (ev.error or "")
            else:
                tail = "  ok"
            if ev.latency_ms is not None:
                tail += f"  {ev.latency_ms:.1f} ms"
        return f"{t}  {ARROWS[ev.direction]} {ev.backend}  {ev.session[:8]}  {what}{ident}{tail}"
    if isinstance(ev, SessionEvent):
        extra = f" ({ev.client})" if ev.client else ""
        version = f" {ev.protocol_version}" if ev.protocol_version else ""
        why = f": {ev.reason}" if ev.reason else ""
        return (
            f"{t}  session {ev.session[:8]} {ev.action}{extra} [{ev.transport}, {ev.era}{version}] → {ev.backend}{why}"
        )
    if isinstance(ev, BackendStateEvent):
        why = f" ({ev.reason})" if ev.reason else ""
        return f"{t}  backend {ev.backend}: {ev.previous} → {ev.state}{why}"
    if isinstance(ev, BackendLogEvent):
        return f"{t}  {ev.backend} | {ev.line}"
    if isinstance(ev, BackendListEvent):
        return f"{t}  backend {ev.backend} {ev.action}"
    if isinstance(ev, RouterEvent):
        return f"{t}  {ev.level}: {ev.text}"
    if isinstance(ev, CatalogChangeEvent):
        return None if ev.seen else f"{t}  backend {ev.backend}: catalog changed: {ev.summary}"
    if isinstance(ev, HealthEvent):
        return None  # one probe every few seconds per backend is noise on a console
    return None


class HeadlessPrinter:
    def __init__(self, sub: Subscription, fmt: str = "text", out: TextIO | None = None) -> None:
        self.sub = sub
        self.fmt = fmt
        self.out = out or sys.stdout

    @classmethod
    def on(cls, bus: EventBus, fmt: str = "text", quiet: bool = False) -> HeadlessPrinter:
        """A printer subscribed to what it prints (so `--quiet` costs the hot path no traffic events)."""
        kinds: set[type[Event]] = set(EVENT_TYPES)
        if quiet:
            kinds -= {TrafficEvent, HealthEvent}
        elif fmt == "text":
            kinds.discard(HealthEvent)  # one probe every few seconds per backend is noise on a console
        return cls(bus.subscribe(maxsize=50_000, kinds=kinds), fmt)

    def line(self, text: str) -> None:
        self.out.write(text + "\n")
        self.out.flush()

    def info(self, text: str) -> None:
        """A startup line: plain text, or a router event in JSON mode (so the output stays parseable)."""
        if self.fmt == "json":
            self.line(orjson.dumps(RouterEvent(level="info", text=text.strip()).to_dict()).decode())
        else:
            self.line(text)

    def render(self, events: list[Event]) -> str:
        lines: list[str] = []
        for ev in events:
            if self.fmt == "json":
                if isinstance(ev, HealthEvent) and ev.ok:
                    continue
                d = ev.to_dict()
                if isinstance(ev, TrafficEvent) and ev.message is not None:
                    d["message"] = mask_json(ev.message)  # the console is a screen: secrets as •••
                lines.append(orjson.dumps(d, default=str).decode())
            else:
                text = format_text(ev)
                if text is not None:
                    lines.append(text)
        if self.sub.dropped:
            lines.append(f"({self.sub.dropped} events dropped: the console could not keep up)")
            self.sub.dropped = 0
        return "".join(line + "\n" for line in lines)

    async def run(self) -> None:
        """Print until the subscription is closed and everything queued before that is out."""
        while True:
            batch = await self.sub.next_batch()
            if not batch and self.sub.closed:
                return
            text = self.render(batch)
            if text:
                try:
                    self.out.write(text)
                    self.out.flush()
                except (BrokenPipeError, ValueError):
                    return
            if not self.sub.closed:
                # Pace the console: under load, one write per interval instead of one per message
                # keeps the printer's syscalls and wake-ups off the proxy's hot path.
                await asyncio.sleep(FLUSH_INTERVAL)
