"""A compositor that draws, for a partial update, only the widgets that update can show."""

from __future__ import annotations

from collections.abc import Iterable

from textual._compositor import Compositor
from textual.geometry import Region
from textual.strip import Strip


class LeanCompositor(Compositor):
    """Textual's `Compositor` (Textual 8.2.8, pinned), minus the widgets a partial update cannot show.

    For an update of part of the screen, Textual asks for the lines of every widget whose *clip*
    meets the updated area. The clip of a widget placed on the screen is the whole screen, so with
    the trace running (a new trace panel ten times a second) the header, the footer and its keys,
    the tables' row, the trace's column line and the filter were drawn in every frame too, only
    for their lines to be thrown away, and so were the panel and the screen behind the trace,
    whose lines the trace's hide. This asks only the widgets whose visible part (their region
    within their clip) meets the area, front to back, and stops at the first that covers it.
    What a frame shows is the same: a widget outside the area has no line in it, and a line
    behind another at the same place is never shown.
    """

    def _get_renders(self, crop: Region | None = None) -> Iterable[tuple[Region, Region, list[Strip]]]:
        if crop is None:
            yield from super()._get_renders(crop)
            return
        overlaps = crop.overlaps
        intersection = Region.intersection
        covers = Region.contains_region
        for widget, (region, clip) in self.visible_widgets.items():  # front to back
            visible = intersection(region, clip)
            if not overlaps(visible):
                continue
            if visible == region:
                yield region, clip, widget.render_lines(Region(0, 0, region.width, region.height))
            else:
                x, y, width, height = visible
                if width and height:
                    yield region, clip, widget.render_lines(Region(x - region.x, y - region.y, width, height))
            if covers(visible, crop):
                # Every cell of the area is this widget's (the first line drawn at a place is the
                # one shown): the panel and the screen behind it would be drawn for nothing.
                return
