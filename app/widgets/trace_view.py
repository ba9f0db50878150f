"""The live trace: a ScrollView on Textual's Line API over `TraceModel.visible`.

One line per message, rendered on demand and cached as a Strip (keyed by the row's seq and
version, so a request that gets its answer is drawn again). Nothing here is per message but the
cache entry: the screen appends rows in batches and calls `rows_added()` once per batch.
"""

from __future__ import annotations

import time
from bisect import bisect_left
from collections.abc import Callable
from typing import ClassVar

from rich.segment import Segment
from rich.style import Style
from textual import events
from textual.binding import Binding, BindingType
from textual.cache import LRUCache
from textual.geometry import Region, Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip
from textual.widget import Widget

from app.trace_model import DIRECTION_SHORT, TraceModel, TraceRow

_second: list[object] = [None, ""]


def clock_text(ts: float) -> str:
    sec = int(ts)
    if _second[0] != sec:  # strftime once a second, not once a line
        _second[0], _second[1] = sec, time.strftime("%H:%M:%S", time.localtime(sec))
    return f"{_second[1]}.{int(ts * 1000) % 1000:03d}"


def _fit(text: str, width: int) -> str:
    if len(text) > width:
        return text[: max(0, width - 1)] + "…"
    return text.ljust(width)


# (title, width) per column; the backend column goes first when the panel is narrow.
Columns = tuple[tuple[str, int], ...]
WIDE: Columns = (
    ("time", 12),
    ("dir", 3),
    ("session", 8),
    ("backend", 10),
    ("method", 28),
    ("id", 8),
    ("status", 12),
    ("ms", 9),
)
NARROW: Columns = (("time", 12), ("dir", 3), ("session", 8), ("method", 22), ("id", 6), ("status", 12), ("ms", 8))


def fit_columns(width: int) -> Columns:
    """The columns for a panel this wide: the method column takes what the others leave."""
    base = WIDE if width >= 100 else NARROW
    fixed = sum(w + 1 for name, w in base if name != "method")
    method = max(16, min(60, width - fixed - 1))
    return tuple((name, method if name == "method" else w) for name, w in base)


class TraceView(ScrollView, can_focus=True):
    """The trace panel's list of messages."""

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "trace--header",
        "trace--time",
        "trace--request",
        "trace--response",
        "trace--notification",
        "trace--server",
        "trace--router",
        "trace--ok",
        "trace--error",
        "trace--pending",
        "trace--held",
        "trace--cancelled",
        "trace--mark",
        "trace--cursor",
        "trace--dim",
    }

    DEFAULT_CSS = """
    TraceView { background: $surface; scrollbar-size-vertical: 1; }
    TraceView > .trace--header { text-style: bold; color: $text-muted; }
    TraceView > .trace--time { color: $text-muted; }
    TraceView > .trace--request { color: $text; }
    TraceView > .trace--response { color: $text; }
    TraceView > .trace--notification { color: $text-muted; text-style: italic; }
    TraceView > .trace--server { color: $accent; text-style: bold; }
    TraceView > .trace--router { color: $secondary; }
    TraceView > .trace--ok { color: $success; }
    TraceView > .trace--error { color: $error; text-style: bold; }
    TraceView > .trace--pending { color: $warning; }
    TraceView > .trace--held { color: $warning; text-style: bold reverse; }
    TraceView > .trace--cancelled { color: $text-muted; text-style: strike; }
    TraceView > .trace--mark { color: $primary; text-style: bold; background: $primary 15%; }
    TraceView > .trace--cursor { background: $accent 30%; }
    TraceView > .trace--dim { color: $text-muted; }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up", "cursor(-1)", "Up", show=False),
        Binding("down", "cursor(1)", "Down", show=False),
        Binding("pageup", "cursor(-20)", "Page up", show=False),
        Binding("pagedown", "cursor(20)", "Page down", show=False),
        Binding("home", "first", "First", show=False),
        Binding("end", "follow", "Follow", show=False),
        Binding("enter", "open", "Detail", show=False),
    ]

    follow: reactive[bool] = reactive(True)
    new_while_away: reactive[int] = reactive(0)

    class ColumnsChanged(Message):
        """The panel's width changed the columns: the header line above must follow."""

    class Open(Message):
        """The user asked for a row's full message."""

        def __init__(self, row: TraceRow) -> None:
            super().__init__()
            self.row = row

    def __init__(self, model: TraceModel, *, clock: Callable[[float], str] = clock_text, id: str | None = None) -> None:
        super().__init__(id=id)
        self.model = model
        self.clock = clock
        self.cursor: TraceRow | None = None
        self._cache: LRUCache[tuple[int, int, int, bool], Strip] = LRUCache(2000)
        self._columns: Columns = WIDE
        self._styles: dict[str, Style] = {}
        self._scrolling = False
        # What each line of the panel shows (as its cache key), so a batch repaints only the lines
        # that changed rather than the whole panel.
        self._drawn: dict[int, tuple[int, int, int, bool]] = {}
        self._screen_lines: LRUCache[
            tuple[tuple[int, int, int, bool], int, tuple[int, int], tuple[int, ...]], Strip
        ] = LRUCache(1000)

    # ------------------------------------------------------------------ feeding
    def rows_changed(self, added: int, dropped_front: int = 0) -> None:
        """The model's visible rows changed: resize, keep the view where it was or follow the end."""
        self._set_virtual_size(Size(self._line_width(), len(self.model.visible)))
        before = round(self.scroll_y)
        if self.follow:
            self._scroll(self.max_scroll_y)
        else:
            self.new_while_away += added
            if dropped_front:
                # Rows fell off the top: shift so the lines under the user's eyes stay put.
                self._scroll(max(0, self.scroll_y - dropped_front))
        if round(self.scroll_y) == before:
            # Scrolling repaints the whole panel by itself; otherwise only the lines that now show
            # another row or another version of theirs (new rows, answered requests) are drawn.
            self._refresh_changed_lines()

    def _refresh_changed_lines(self) -> None:
        visible = self.model.visible
        top = round(self.scroll_y)
        width = self.size.width
        drawn = self._drawn
        start = -1
        for y in range(self.scrollable_content_region.height + 1):
            index = top + y
            if index < len(visible):
                row = visible[index]
                key = (row.seq, row.version, width, row is self.cursor)
            else:
                key = (-1, 0, width, False)
            stale = drawn.get(y) != key
            if stale and start < 0:
                start = y
            elif not stale and start >= 0:
                self.refresh_lines(top + start, y - start)
                start = -1
        if start >= 0:
            self.refresh_lines(top + start, self.scrollable_content_region.height + 1 - start)

    def _set_virtual_size(self, new: Size) -> None:
        """Grow the scrollable height without a layout of the whole screen when that changes
        nothing else: a layout per batch would repaint every widget several times a second."""
        old = self.virtual_size
        if new == old:
            return
        room = self.scrollable_content_region.height
        if self.size.height and new.width == old.width and (old.height > room) == (new.height > room):
            self.set_reactive(ScrollView.virtual_size, new)
            self._scroll_update(new)
        else:
            self.virtual_size = new

    def reset(self) -> None:
        """The whole visible list changed (filter, clear): redraw from scratch, back at the end."""
        self._cache.clear()
        self._screen_lines.clear()
        self.cursor = None
        self.follow = True
        self.new_while_away = 0
        self.rows_changed(0)

    def invalidate(self) -> None:
        self._cache.clear()
        self._screen_lines.clear()
        self.refresh()

    def _line_width(self) -> int:
        return sum(w + 1 for _, w in self._columns)

    def on_resize(self, event: events.Resize) -> None:
        # One column is kept for the vertical scrollbar, so lines fit whether or not it shows.
        columns = fit_columns(event.size.width - 1)
        if columns != self._columns:
            self._columns = columns
            self._cache.clear()
            self._screen_lines.clear()
            self.post_message(self.ColumnsChanged())
        self.rows_changed(0)
        if self.follow:
            self.call_after_refresh(self._to_end)

    def _to_end(self) -> None:
        if self.follow:
            self._scroll(self.max_scroll_y)

    # ------------------------------------------------------------------ scrolling and cursor
    def _scroll(self, y: float) -> None:
        """Scroll on the view's own account (following, keeping the cursor in sight)."""
        self._scrolling = True
        try:
            self.scroll_to(y=y, animate=False, immediate=True)
        finally:
            self._scrolling = False

    def watch_scroll_y(self, old: float, new: float) -> None:
        super().watch_scroll_y(old, new)
        if self._scrolling:
            return
        # The user scrolled (wheel, scrollbar): up stops following, back to the end resumes it.
        # (A shrinking trace clamps scroll_y down to the new end: that is not the user's doing.)
        if new < old and new < self.max_scroll_y and self.follow:
            self.follow = False
        elif not self.follow and self.cursor is None and new >= self.max_scroll_y and new > old:
            self.follow = True

    def on_mouse_scroll_up(self, event: events.MouseScrollUp) -> None:
        if self.max_scroll_y > 0:
            self.follow = False

    def watch_follow(self, follow: bool) -> None:
        if follow:
            self.new_while_away = 0

    def _index_of(self, row: TraceRow | None) -> int | None:
        if row is None:
            return None
        visible = self.model.visible
        i = bisect_left(visible, row.seq, key=lambda r: r.seq)
        if i < len(visible) and visible[i] is row:
            return i
        return None

    def action_cursor(self, delta: int) -> None:
        visible = self.model.visible
        if not visible:
            return
        index = self._index_of(self.cursor)
        if index is None:
            index = len(visible) if delta < 0 else int(self.scroll_y) - 1
        index = max(0, min(len(visible) - 1, index + delta))
        self.cursor = visible[index]
        self.follow = False
        self._show(index)
        self.refresh()

    def _show(self, index: int) -> None:
        height = self.scrollable_content_region.height
        if index < self.scroll_y:
            self._scroll(index)
        elif index >= self.scroll_y + height:
            self._scroll(index - height + 1)

    def action_first(self) -> None:
        if self.model.visible:
            self.cursor = self.model.visible[0]
            self.follow = False
            self._scroll(0)
            self.refresh()

    def action_follow(self) -> None:
        self.cursor = None
        self.follow = True
        self.new_while_away = 0
        self._scroll(self.max_scroll_y)
        self.refresh()

    def action_open(self) -> None:
        row = self.cursor or (self.model.visible[-1] if self.model.visible else None)
        if row is not None and row.kind != "mark":
            self.post_message(self.Open(row))

    def on_click(self, event: events.Click) -> None:
        index = int(self.scroll_y) + event.y
        if 0 <= index < len(self.model.visible):
            row = self.model.visible[index]
            if row is self.cursor and event.chain >= 2:
                self.action_open()
            self.cursor = row
            self.follow = False
            self.refresh()

    # ------------------------------------------------------------------ rendering
    def render_lines(self, crop: Region) -> list[Strip]:
        """The panel's lines as the screen draws them, kept per row: following a busy trace
        scrolls every line each batch, and a row that only moved up is not styled again."""
        scroll_x = round(self.scroll_x)
        top = round(self.scroll_y)
        width = self.size.width
        visible = self.model.visible
        filters = tuple(id(f) for f in self.get_line_filters())
        span = crop.column_span
        lines: list[Strip | None] = []
        missing: list[int] = []
        for y in crop.line_range:
            index = top + y
            if index < len(visible):
                row = visible[index]
                key = (row.seq, row.version, width, row is self.cursor)
            else:
                key = (-1, 0, width, False)
            self._drawn[y] = key
            strip = self._screen_lines.get((key, scroll_x, span, filters))
            if strip is None:
                missing.append(y)
            lines.append(strip)
        # Lines not drawn before go through Textual's usual path (CSS, filters), in runs.
        start = 0
        while start < len(missing):
            end = start
            while end + 1 < len(missing) and missing[end + 1] == missing[end] + 1:
                end += 1
            first, count = missing[start], end - start + 1
            strips = super().render_lines(Region(crop.x, first, crop.width, count))
            for y, strip in zip(range(first, first + count), strips, strict=True):
                lines[y - crop.y] = strip
                self._screen_lines[(self._drawn[y], scroll_x, span, filters)] = strip
            start = end + 1
        return [strip for strip in lines if strip is not None]

    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y = self.scroll_offset
        index = y + scroll_y
        width = self.size.width
        visible = self.model.visible
        if index >= len(visible):
            self._drawn[y] = (-1, 0, width, False)
            return self._blank(width)
        row = visible[index]
        selected = row is self.cursor
        key = (row.seq, row.version, width, selected)
        self._drawn[y] = key
        strip = self._cache.get(key)
        if strip is None:
            strip = self._render_row(row, width, selected)
            self._cache[key] = strip
        return strip if scroll_x == 0 and strip.cell_length == width else strip.crop(scroll_x, scroll_x + width)

    def _blank(self, width: int) -> Strip:
        key = (-1, 0, width, False)
        strip = self._cache.get(key)
        if strip is None:
            strip = self._cache[key] = Strip.blank(width, self.rich_style)
        return strip

    def _style(self, name: str) -> Style:
        # Looked up for every cell of every new line: cached until the styles change (theme, CSS).
        style = self._styles.get(name)
        if style is None:
            style = self._styles[name] = self.get_component_rich_style(f"trace--{name}")
        return style

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._styles = {}
        self._cache.clear()
        self._screen_lines.clear()

    def _render_row(self, row: TraceRow, width: int, selected: bool) -> Strip:
        """One Strip of exactly the line's width (each Strip costs: no crop, extend or restyle after)."""
        base = self.rich_style
        if selected:
            base = base + self._style("cursor")
        length = max(width, self._line_width())
        if row.kind == "mark":
            text = f"{self.clock(row.ts)} ─── {row.text} "
            return Strip([Segment(_fit(text, length), base + self._style("mark"))], length)
        segments = self._segments(row, base)
        used = self._line_width()
        if length > used:
            segments.append(Segment(" " * (length - used), base))
        return Strip(segments, length)

    def _segments(self, row: TraceRow, base: Style) -> list[Segment]:
        if row.kind.startswith("server-"):
            kind_style = self._style("server")
        elif row.kind == "notification":
            kind_style = self._style("notification")
        elif row.direction.startswith("router"):
            kind_style = self._style("router")
        else:
            kind_style = self._style(row.kind if row.kind in ("request", "response") else "request")
        status = row.status
        status_style = self._style(
            "error"
            if status.startswith("error")
            else status
            if status in ("ok", "pending", "held", "cancelled")
            else "dim"
        )
        method = row.method or ("(answer)" if row.kind.endswith("response") else "")
        if row.subject:
            method = f"{method} {row.subject}"
        if row.kind == "notification":
            method = f"· {method}"
        elif row.kind == "server-request":
            method = f"⇐ {method}"
        elif row.kind.endswith("response"):
            method = f"↳ {method}"
        if row.marked:
            method = f"★ {method}"
        latency = f"{row.latency_ms:.1f}" if row.latency_ms is not None else ""
        values = {
            "time": (self.clock(row.ts), self._style("time")),
            "dir": (DIRECTION_SHORT.get(row.direction, row.direction), kind_style),
            "session": (row.session[:8], self._style("dim")),
            "backend": (row.backend, base),
            "method": (method, kind_style),
            "id": ("" if row.msg_id is None else str(row.msg_id), self._style("dim")),
            "status": (status, status_style),
            "ms": (latency.rjust(9), base),
        }
        segments: list[Segment] = []
        for name, w in self._columns:
            text, style = values[name]
            cell = _fit(text, w) if name != "ms" else text[-w:].rjust(w)
            # The gap travels with its cell: half the segments to style and filter on every frame.
            segments.append(Segment(cell + " ", base + style))
        return segments

    def header_text(self) -> str:
        parts = []
        for name, w in self._columns:
            parts.append(name.rjust(w) if name == "ms" else _fit(name, w))
        return " ".join(parts)


class TraceColumns(Widget):
    """The trace's column titles, and on the right the row counts (which change with every batch,
    so they are one cheap line rather than the panel's border)."""

    DEFAULT_CSS = """
    TraceColumns { height: 1; color: $text-muted; text-style: bold; background: $surface; }
    """

    _NOT_BOLD = Style(bold=False)

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.titles = ""
        self.counts = ""

    def show(self, titles: str, counts: str) -> None:
        # Called with every batch: a repaint of this one line only when its text changed, drawn
        # from a Strip of three segments (no Rich Text to lay out ten times a second).
        if titles != self.titles or counts != self.counts:
            self.titles, self.counts = titles, counts
            self.refresh()

    def render_line(self, y: int) -> Strip:
        width = self.size.width
        base = self.rich_style  # the Line API draws no CSS colour by itself
        if y:
            return Strip.blank(width, base)
        gap = width - len(self.titles) - len(self.counts) - 1
        if gap < 1:  # no room for the counts: the titles alone (the counts are never cut in half)
            return Strip([Segment(self.titles, base)]).crop(0, width)
        segments = [
            Segment(self.titles, base),
            Segment(" " * gap, base),
            Segment(self.counts, base + self._NOT_BOLD),
            Segment(" ", base),
        ]
        return Strip(segments, width)
