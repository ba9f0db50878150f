"""A backend's probe latency over the last minutes, down periods shaded, recoveries marked.

The x-axis is "seconds ago" (0 is now, on the right), so the chart reads the same whatever the
clock says and a snapshot of it is stable. Samples and state changes are added as they arrive; the
figure is rebuilt on an interval, and only when something changed (or the time axis moved on).
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from textual.color import Color
from textual_plotext import PlotextPlot

DOWN_STATES = frozenset({"down", "failed"})
NICE_STEPS = (1.0, 2.0, 2.5, 5.0, 10.0)


@dataclass(frozen=True, slots=True)
class Probe:
    ts: float
    ok: bool
    latency_ms: float | None
    # A new process came up (its "latency" is how long it took to start): a moment, not a probe.
    started: bool = False


@dataclass(frozen=True, slots=True)
class Span:
    start: float
    end: float | None  # None: still down


def nice_ceiling(value: float) -> float:
    """The smallest 1/2/2.5/5 × 10^k at or above `value` (a y-limit that reads well)."""
    if value <= 0:
        return 1.0
    exp = math.floor(math.log10(value))
    for step in NICE_STEPS:
        top = step * 10**exp
        if top >= value * (1 - 1e-9):
            return float(round(top, 6))
    return float(10 ** (exp + 1))


def down_spans(probes: Iterable[Probe], states: Iterable[tuple[float, str]]) -> list[Span]:
    """When the backend was down: runs of failed probes (until the next good one) and down/failed
    states (until the next other state), merged where they overlap, oldest first."""
    raw: list[tuple[float, float | None]] = []
    start: float | None = None
    for p in probes:
        if not p.ok and start is None:
            start = p.ts
        elif p.ok and start is not None:
            raw.append((start, p.ts))
            start = None
    if start is not None:
        raw.append((start, None))
    start = None
    for ts, state in sorted(states):
        if state in DOWN_STATES and start is None:
            start = ts
        elif state not in DOWN_STATES and start is not None:
            raw.append((start, ts))
            start = None
    if start is not None:
        raw.append((start, None))
    merged: list[Span] = []
    for s, e in sorted(raw, key=lambda r: r[0]):
        if merged:
            last = merged[-1]
            if last.end is None or s <= last.end:
                end = None if last.end is None or e is None else max(last.end, e)
                merged[-1] = Span(last.start, end)
                continue
        merged.append(Span(s, e))
    return merged


class HealthChart(PlotextPlot):
    """Probe latency (ms) against seconds ago."""

    DEFAULT_CSS = """
    HealthChart {
        height: 1fr;
        min-height: 8;
    }
    """

    def __init__(
        self,
        *,
        window: float = 300.0,
        clock: Callable[[], float] = time.time,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        super().__init__(id=id, classes=classes)
        self.window = window
        self.clock = clock
        self.probes: deque[Probe] = deque(maxlen=4000)
        self.states: deque[tuple[float, str]] = deque(maxlen=500)
        self._version = 0
        self._drawn: tuple[int, int, str] | None = None
        self.points = 0  # probes in the window at the last draw (for tests and the legend)
        self.draws = 0

    def on_mount(self) -> None:
        super().on_mount()
        self.redraw()
        self.set_interval(1.0, self.redraw)

    # ------------------------------------------------------------------ data
    def replace(self, probes: Iterable[Probe], states: Iterable[tuple[float, str]] = ()) -> None:
        self.probes.clear()
        self.probes.extend(probes)
        self.states.clear()
        self.states.extend(states)
        self._version += 1

    def add_probe(self, probe: Probe) -> None:
        self.probes.append(probe)
        self._version += 1

    def add_state(self, ts: float, state: str) -> None:
        self.states.append((ts, state))
        self._version += 1

    # ------------------------------------------------------------------ drawing
    def _rgb(self, variable: str, fallback: str) -> tuple[int, int, int]:
        value = self.app.theme_variables.get(variable, fallback)
        try:
            return Color.parse(value).rgb
        except Exception:  # a theme without this variable: the fallback colour
            return Color.parse(fallback).rgb

    def redraw(self, force: bool = False) -> bool:
        """Rebuild the figure if the data changed or the time axis moved on (every 5 s)."""
        now = self.clock()
        key = (self._version, int(now // 5), self.app.theme)
        if key == self._drawn and not force:
            return False
        self._drawn = key
        self._draw(now)
        self.draws += 1
        self.refresh()
        return True

    def _draw(self, now: float) -> None:
        plt = self.plt
        plt.clear_data()
        window = self.window
        visible = [p for p in self.probes if 0 <= now - p.ts <= window]
        self.points = len(visible)
        lat = [p.latency_ms for p in visible if p.ok and not p.started and p.latency_ms is not None]
        top = nice_ceiling(max(lat) * 1.25) if lat else 1.0
        line = self._rgb("primary", "#0178D4")
        bad = self._rgb("error", "#ba3c5b")
        good = self._rgb("success", "#4EBF71")

        ups: list[float] = [p.ts - now for p in visible if p.started]
        for span in down_spans(self.probes, self.states):
            x0 = max(span.start - now, -window)
            x1 = 0.0 if span.end is None else min(span.end - now, 0.0)
            if x1 < -window or x0 > 0:
                continue
            plt.plot([x0, max(x1, x0)], [top, top], fillx=True, color=bad, marker="░")
            if span.end is not None and -window <= x1 <= 0:
                ups.append(x1)
        for x in ups:  # recoveries, and new processes taking over (a restart, blue/green)
            plt.plot([x, x], [0, top], color=good, marker="│")
            plt.scatter([x], [top], color=good, marker="▲")

        # One line per run of good probes: a failed probe breaks the line instead of joining across it.
        run: list[Probe] = []
        for p in [*visible, None]:
            if p is not None and p.started:
                continue  # not a probe: the line goes on across it
            if p is not None and p.ok and p.latency_ms is not None:
                run.append(p)
                continue
            if run:
                xs = [q.ts - now for q in run]
                ys = [q.latency_ms or 0.0 for q in run]
                plt.plot(xs, ys, color=line, marker="hd")
                run = []

        plt.xlim(-window, 0)
        plt.ylim(0, top)
        step = window / 5
        ticks = [-window + i * step for i in range(6)]
        labels = [f"{round(-t)}s" for t in ticks[:-1]] + ["now"]
        plt.xticks(ticks, labels)
        plt.yfrequency(3)
