"""The live trace: a ScrollView on Textual's Line API over `TraceModel.visible`.

One line per message, rendered on demand and cached as a Strip (keyed by the row's seq and
version, so a request that gets its answer is drawn again). Nothing here is per message but the
cache entry: the screen appends rows in batches and calls `rows_added()` once per batch.
"""

from __future__ import annotations

import time
from bisect import bisect_left
from collections.abc import Callable
from math import ceil
from typing import ClassVar

from rich.segment import Segment
from rich.style import Style
from textual import events
from textual.binding import Binding, BindingType
from textual.cache import FIFOCache, LRUCache
from textual.color import Color
from textual.filter import ANSIToTruecolor, DimFilter, LineFilter, Monochrome, NoColor
from textual.geometry import Region, Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.scrollbar import ScrollBar, ScrollBarRender
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
_CELL_INDEX = {name: i for i, (name, _) in enumerate(WIDE)}
LineKey = tuple[int, int, bool]  # a row's seq and version, and whether the cursor is on it
_BLANK: LineKey = (-1, 0, False)  # below the last row
# What the kept lines were drawn for: width, horizontal scroll, the panel's style, its background
# (for the filters), the app's line filters.
View = tuple[int, int, Style, Color, tuple[LineFilter, ...]]
NARROW: Columns = (("time", 12), ("dir", 3), ("session", 8), ("method", 22), ("id", 6), ("status", 12), ("ms", 8))


COUNTS_ROOM = len("10000/10000 rows") + 1
"""Kept free on the right of the column line for its row counts (`TraceColumns`)."""


def fit_columns(width: int) -> Columns:
    """The columns for a panel this wide: the method column takes what the others leave, less
    room for the row counts while it can spare it (else, in a narrow panel, the counts go)."""
    base = WIDE if width >= 100 else NARROW
    fixed = sum(w + 1 for name, w in base if name != "method")
    room = width - fixed - 1
    if room - COUNTS_ROOM >= 22:
        room -= COUNTS_ROOM
    method = max(16, min(60, room))
    return tuple((name, method if name == "method" else w) for name, w in base)


# Textual's line filters that change each segment's style by the style alone (not by its text or
# place): the trace applies them to its few styles instead of to every segment of every line.
_STYLE_FILTERS = (ANSIToTruecolor, DimFilter, Monochrome, NoColor)


class _Line(Strip):
    """A Strip whose caches are made when first used.

    Textual's Strip makes seven caches for each line it is given; the trace makes a line per new
    row, ten times a second under load, and most of its lines are only ever drawn whole.
    """

    __slots__ = ()

    def __init__(self, segments: list[Segment], cell_length: int) -> None:
        self._segments = segments
        self._cell_length = cell_length
        self._render_cache = None
        self._link_ids = None
        self._cell_count = None

    def __getattr__(self, name: str) -> object:
        size = _CACHE_SIZES.get(name)
        if size is None:
            raise AttributeError(name)
        cache: FIFOCache[object, object] = FIFOCache(size)
        setattr(self, name, cache)
        return cache


# Strip's caches, by their sizes there (textual 8.2.8, pinned in pyproject.toml).
_CACHE_SIZES = {
    "_divide_cache": 4,
    "_crop_cache": 16,
    "_style_cache": 16,
    "_filter_cache": 4,
    "_line_length_cache": 4,
    "_crop_extend_cache": 4,
    "_offsets_cache": 4,
}


def _style_only(filters: tuple[LineFilter, ...]) -> bool:
    return all(type(f) in _STYLE_FILTERS for f in filters)


class KeptScrollBar(ScrollBar):
    """A scrollbar that draws itself again only when its thumb moved by a visible step.

    Following a busy trace changes the scroll position at every batch, and Textual draws the bar
    anew each time, through Rich: that cost as much as all the trace's new lines. While following,
    the thumb only shrinks towards its one-cell minimum, and then stays put.
    """

    def __init__(self, vertical: bool = True, name: str | None = None, *, thickness: int = 1) -> None:
        super().__init__(vertical, name, thickness=thickness)
        self._kept: tuple[tuple[object, ...], list[Strip]] | None = None

    def render_lines(self, crop: Region) -> list[Strip]:
        bar = self.render()
        if not isinstance(bar, ScrollBarRender):
            return super().render_lines(crop)
        # What ScrollBarRender.render_bar draws depends on: the thumb's ends in eighths of a cell.
        size = self.size.height if self.vertical else self.size.width
        thumb: tuple[int, int] | None = None
        if bar.window_size and size and bar.virtual_size and size != bar.virtual_size:
            thumb_size = max(1, bar.window_size / (bar.virtual_size / size))
            position = (size - thumb_size) * (bar.position / (bar.virtual_size - bar.window_size))
            start = int(position * 8)
            thumb = (start, start + ceil(thumb_size * 8))
        key = (crop, self.size, thumb, bar.thickness, bar.vertical, bar.style)
        if self._kept is not None and self._kept[0] == key:
            return self._kept[1]
        lines = super().render_lines(crop)
        self._kept = (key, lines)
        return lines


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
        self._columns: Columns = WIDE
        self._width = 0
        self._cells: tuple[tuple[int, int], ...] = ()
        self._set_columns(WIDE)
        self._styles: dict[str, Style] = {}
        self._scrolling = False
        # The lines as drawn, by (row seq, row version, under the cursor), for the view they were
        # drawn in (`_check_view`).
        self._lines: LRUCache[LineKey, Strip] = LRUCache(250)
        self._view: View | None = None
        # What each line of the panel shows (as its key), so a batch repaints only the lines
        # that changed rather than the whole panel.
        self._drawn: dict[int, LineKey] = {}

    @property
    def vertical_scrollbar(self) -> ScrollBar:
        # As Widget.vertical_scrollbar, with the bar that keeps its drawing.
        if self._vertical_scrollbar is None:
            bar = self._vertical_scrollbar = KeptScrollBar(
                vertical=True, name="vertical", thickness=self.scrollbar_size_vertical
            )
            bar.display = False
            self.app._start_widget(self, bar)
        return self._vertical_scrollbar

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
        drawn = self._drawn
        start = -1
        for y in range(self.scrollable_content_region.height + 1):
            index = top + y
            if index < len(visible):
                row = visible[index]
                key = (row.seq, row.version, row is self.cursor)
            else:
                key = _BLANK
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
        self._lines.clear()
        self.cursor = None
        self.follow = True
        self.new_while_away = 0
        self.rows_changed(0)

    def invalidate(self) -> None:
        self._lines.clear()
        self.refresh()

    def _line_width(self) -> int:
        return self._width

    def _set_columns(self, columns: Columns) -> None:
        self._columns = columns
        self._width = sum(w + 1 for _, w in columns)
        # Each column as the index of its value in `_render_row`, and its width.
        self._cells = tuple((_CELL_INDEX[name], w) for name, w in columns)

    def on_resize(self, event: events.Resize) -> None:
        # One column is kept for the vertical scrollbar, so lines fit whether or not it shows.
        columns = fit_columns(event.size.width - 1)
        if columns != self._columns:
            self._set_columns(columns)
            self._lines.clear()
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
        """The panel's lines as the screen shows them, each built once per row and kept.

        Following a busy trace moves every line up at every batch: a row that only moved is not
        drawn again. A new line is one Strip of styles combined in advance, through the app's line
        filters, cut to the panel. Textual's per-line styling (`StylesCache`) is not used: this
        widget has no border, padding, tint or opacity for it to add, and it cost more than the line.

        The lines end where the scrollbar begins (when it shows): the screen takes them whole then,
        instead of cutting every new line in two to drop a cell the bar covers anyway.
        """
        width = self.scrollable_content_region.width
        view = self._check_view(width)
        top = round(self.scroll_y)
        visible = self.model.visible
        count = len(visible)
        cursor = self.cursor
        cache = self._lines
        drawn = self._drawn
        lines: list[Strip] = []
        for y in crop.line_range:
            index = top + y
            row = visible[index] if index < count else None
            key = _BLANK if row is None else (row.seq, row.version, row is cursor)
            drawn[y] = key
            strip = cache.get(key)
            if strip is None:
                strip = cache[key] = self._screen_line(view, row, key[2])
            lines.append(strip)
        x1, x2 = crop.column_span
        if x1 or x2 < width:
            lines = [strip.crop(x1, min(x2, width)) for strip in lines]
        return lines

    def render_line(self, y: int) -> Strip:
        return self.render_lines(Region(0, y, self.scrollable_content_region.width, 1))[0]

    def _check_view(self, width: int) -> View:
        """Forget the kept lines when what they were drawn with changed: the panel's width or
        horizontal scroll, its colours (a theme, an ancestor's background), the app's line filters."""
        filters = tuple(self.get_line_filters())
        view = (width, round(self.scroll_x), self.rich_style, self.background_colors[1], filters)
        if view != self._view:
            self._view = view
            self._lines.clear()
            self._styles = {}
        return view

    def _screen_line(self, view: View, row: TraceRow | None, selected: bool) -> Strip:
        width, scroll_x, _, background, filters = view
        if row is None:
            segments = [Segment(" " * width, self._style(""))]
        else:
            segments, length = self._row_segments(row, width, selected)
            if scroll_x or length != width:
                segments = list(Strip(segments, length).crop(scroll_x, scroll_x + width))
        if not _style_only(filters):  # else `_style` applied them
            for line_filter in filters:
                segments = line_filter.apply(segments, background)
        return _Line(segments, width)

    def _style(self, name: str, selected: bool = False) -> Style:
        """The panel's style with a part's (and the cursor's) on top, through the app's line
        filters when they only map styles (Textual's all do): looked up for every cell of every
        new line, made once until the view changes. Filtering a line's segments cost more than
        drawing it."""
        key = f"{name}+" if selected else name
        style = self._styles.get(key)
        if style is None:
            view = self._view or self._check_view(self.scrollable_content_region.width)
            _, _, base, background, filters = view
            if selected:
                base = base + self.get_component_rich_style("trace--cursor")
            part = self.get_component_rich_style(f"trace--{name}") if name else Style()
            style = base + part
            if _style_only(filters):
                for line_filter in filters:
                    style = line_filter.apply([Segment(" ", style)], background)[0].style or style
            self._styles[key] = style
        return style

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._styles = {}
        self._lines.clear()
        self._view = None

    def _row_segments(self, row: TraceRow, width: int, selected: bool) -> tuple[list[Segment], int]:
        """The row's segments, at least the line's width of them, and their width."""
        used = self._line_width()
        length = max(width, used)
        style = self._style
        if row.kind == "mark":
            text = f"{self.clock(row.ts)} ─── {row.text} "
            return [Segment(_fit(text, length), style("mark", selected))], length
        kind = row.kind
        if kind.startswith("server-"):
            kind_style = "server"
        elif kind == "notification":
            kind_style = "notification"
        elif row.direction.startswith("router"):
            kind_style = "router"
        else:
            kind_style = kind if kind in ("request", "response") else "request"
        status = row.status
        if status.startswith("error"):
            status_style = "error"
        else:
            status_style = status if status in ("ok", "pending", "held", "cancelled") else "dim"
        method = row.method or ("(answer)" if kind.endswith("response") else "")
        if row.subject:
            method = f"{method} {row.subject}"
        if kind == "notification":
            method = f"· {method}"
        elif kind == "server-request":
            method = f"⇐ {method}"
        elif kind.endswith("response"):
            method = f"↳ {method}"
        if row.marked:
            method = f"★ {method}"
        # One value and style per column, in the order of `WIDE` (NARROW drops the backend).
        values = (
            (self.clock(row.ts), "time"),
            (DIRECTION_SHORT.get(row.direction, row.direction), kind_style),
            (row.session[:8], "dim"),
            (row.backend, ""),
            (method, kind_style),
            ("" if row.msg_id is None else str(row.msg_id), "dim"),
            (status, status_style),
            ("" if row.latency_ms is None else f"{row.latency_ms:.1f}", ""),
        )
        segments: list[Segment] = []
        append = segments.append
        for index, w in self._cells:
            text, part = values[index]
            if index == 7:  # the latency, right-aligned
                cell = text[-w:].rjust(w)
            elif len(text) > w:
                cell = text[: max(0, w - 1)] + "…"
            else:
                cell = text.ljust(w)
            # The gap travels with its cell: half the segments to style and filter on every frame.
            append(Segment(cell + " ", style(part, selected)))
        if length > used:
            append(Segment(" " * (length - used), style("", selected)))
        return segments, length

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
        counts = self.counts
        gap = width - len(self.titles) - len(counts) - 1
        if gap < 1:  # the rows alone: the dropped number is in the panel's border too
            counts = counts.partition(" · ")[0]
            gap = width - len(self.titles) - len(counts) - 1
        if gap < 1:  # no room for the counts: the titles alone (the counts are never cut in half)
            return Strip([Segment(self.titles, base)]).crop(0, width)
        segments = [
            Segment(self.titles, base),
            Segment(" " * gap, base),
            Segment(counts, base + self._NOT_BOLD),
            Segment(" ", base),
        ]
        return Strip(segments, width)
