"""The panels' tables (SnapshotTable): a changed cell is drawn again, and only that cell."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from rich.text import Text
from textual.app import App, ComposeResult
from textual.pilot import Pilot
from textual.renderables.styled import Styled

from app.widgets.tables import Cell, SnapshotTable


class Table(SnapshotTable):
    COLUMNS = (("name", "name"), ("age", "age"), ("msgs", "msgs"))


class TableApp(App[None]):
    def compose(self) -> ComposeResult:
        yield Table(id="t")


def rows(a_age: str, a_msgs: str, b_age: str = "9s") -> list[tuple[str, tuple[Cell, ...]]]:
    return [
        ("a", (Text("alpha", style="bold"), a_age, a_msgs)),
        ("b", (Text("beta", style="bold"), b_age, "7")),
    ]


def lines(table: Table) -> list[str]:
    return [table.render_line(y).text.rstrip() for y in range(3)]


@contextlib.asynccontextmanager
async def shown_table() -> AsyncIterator[tuple[Table, Pilot[Any]]]:
    """The table in an app, showing `rows("1s", "10")`."""
    app = TableApp()
    async with app.run_test(size=(60, 8)) as pilot:
        table = app.query_one(Table)
        table.show_rows(rows("1s", "10"))
        await pilot.pause()
        yield table, pilot


async def test_a_changed_cell_is_shown_and_the_rest_is_not_drawn_again() -> None:
    async with shown_table() as (table, pilot):
        first = lines(table)
        assert first[1].split() == ["alpha", "1s", "10"] and first[2].split() == ["beta", "9s", "7"]

        # The once-a-second update: an age and a count move in one row.
        drawn: list[Any] = []
        console = table.app.console
        render_lines = console.render_lines

        def counting(renderable: Any, *args: Any, **kwargs: Any) -> Any:
            if isinstance(renderable, Styled):  # a cell (its text inside is drawn by a nested call)
                drawn.append(renderable)
            return render_lines(renderable, *args, **kwargs)

        console.render_lines = counting  # type: ignore[method-assign]
        try:
            table.show_rows(rows("2s", "11"))
            await pilot.pause()
            after = lines(table)
        finally:
            console.render_lines = render_lines  # type: ignore[method-assign]
        assert after[1].split() == ["alpha", "2s", "11"]
        assert after[2] == first[2] and after[0] == first[0]
        # Two cells changed: two cells drawn (DataTable's own update_cell draws all nine again,
        # the header's too).
        assert len(drawn) == 2, drawn
        assert table.get_row("a")[1:] == ["2s", "11"]


async def test_a_cell_that_outgrows_its_column_widens_it() -> None:
    async with shown_table() as (table, pilot):
        table.show_rows(rows("1h 02m 03s", "10", b_age="10s"))
        await pilot.pause()
        shown = lines(table)
        assert shown[1].split() == ["alpha", "1h", "02m", "03s", "10"]
        assert shown[2].split() == ["beta", "10s", "7"]
        # The columns after it moved over, in the header too.
        assert shown[0].index("msgs") == shown[1].index("10", shown[1].index("03s"))
