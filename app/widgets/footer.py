"""The key footer, composed again only when the keys it shows change."""

from __future__ import annotations

from typing import Any

from textual.screen import Screen
from textual.widgets import Footer


class SteadyFooter(Footer):
    """Textual's `Footer`, minus the work it does for nothing.

    `Footer` composes its keys again (every key widget removed and mounted anew, then a layout of
    the screen: 10-50 ms with the trace running) at every update of the screen's bindings, and a
    change of focus sends two, the second with the same keys to show. Under traffic that stall
    holds every call the router is carrying. This one composes again only when what it would show
    differs.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._shown: tuple[object, ...] | None = None

    def _keys(self, screen: Screen[Any]) -> tuple[object, ...]:
        """What `compose` reads of the bindings: every shown key and its state, and the palette's."""
        palette = screen.active_bindings.get(self.app.COMMAND_PALETTE_BINDING)
        return (
            tuple(
                (binding.key, binding.description, binding.action, binding.group, enabled, tooltip)
                for (_, binding, enabled, tooltip) in screen.active_bindings.values()
                if binding.show
            ),
            None if palette is None else palette[1:],
        )

    def bindings_changed(self, screen: Screen[Any]) -> None:
        keys = self._keys(screen)
        if keys == self._shown:
            return
        super().bindings_changed(screen)
        if screen.app.app_focus and self.is_attached and screen is self.screen:  # it did compose again
            self._shown = keys
