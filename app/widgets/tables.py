"""A DataTable that is refreshed from snapshots by diffing: changed cells only, rows by key."""

from __future__ import annotations

from collections.abc import Sequence

from rich.cells import cell_len
from rich.text import Text
from textual.widgets import DataTable
from textual.widgets._data_table import CellDoesNotExist, ColumnKey, RowDoesNotExist, RowKey

Cell = str | Text


class SnapshotTable(DataTable[Cell]):
    """Rows keyed by name; `show_rows` adds, updates and removes rows to match the given ones."""

    COLUMNS: Sequence[tuple[str, str]] = ()  # (key, label)

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=False)
        self._shown: dict[str, tuple[Cell, ...]] = {}

    def on_mount(self) -> None:
        for key, label in self.COLUMNS:
            self.add_column(label, key=key)

    @property
    def selected_key(self) -> str | None:
        if not self.row_count:
            return None
        try:
            key = self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value
        except (CellDoesNotExist, RowDoesNotExist):
            return None
        return key

    def show_rows(self, rows: list[tuple[str, tuple[Cell, ...]]]) -> None:
        wanted = {key for key, _ in rows}
        for key in [k for k in self._shown if k not in wanted]:
            self.remove_row(key)
            del self._shown[key]
        for key, cells in rows:
            old = self._shown.get(key)
            if old is None:
                self.add_row(*cells, key=key)
            elif old != cells:
                self._update_row(key, old, cells)
            self._shown[key] = cells

    def _update_row(self, key: str, old: tuple[Cell, ...], cells: tuple[Cell, ...]) -> None:
        """Put a row's changed cells in, and have only that row drawn again.

        `DataTable.update_cell` counts an update for the whole table, and every cache of its renders
        is keyed by that count: an age or a message count ticking every second would draw every cell
        of both tables again, which under heavy traffic was a third of the TUI's drawing time and
        its longest frames. Here the table's data takes the new cells and only this row's renders
        are forgotten (the table's own caches, as textual 8.2.8 keys them: pinned in pyproject).
        A row with a cell that outgrows its column goes through `update_cell`, which measures the
        columns again (and forgets every render, as it must: the columns move).
        """
        changes = [
            (column, after)
            for (column, _), before, after in zip(self.COLUMNS, old, cells, strict=True)
            if before != after
        ]
        wider = {
            column
            for column, after in changes
            if (after.cell_len if isinstance(after, Text) else cell_len(after))
            > self.columns[ColumnKey(column)].content_width
        }
        if wider:
            for column, after in changes:
                self.update_cell(key, column, after, update_width=column in wider)
            return
        row_key = RowKey(key)
        data = self._data[row_key]
        changed = {ColumnKey(column) for column, _ in changes}
        for column, after in changes:
            data[ColumnKey(column)] = after
        index = self._row_locations.get(row_key)
        for cell_key in [k for k in self._cell_render_cache.keys() if k[0] == row_key and k[1] in changed]:
            self._cell_render_cache.discard(cell_key)
        for row_render_key in [k for k in self._row_render_cache.keys() if k[0] == row_key]:
            self._row_render_cache.discard(row_render_key)
        for renderable_key in [k for k in self._row_renderable_cache.keys() if k[1] == index]:
            self._row_renderable_cache.discard(renderable_key)
        self._line_cache.clear()  # lines are put together from the rows' renders: cheap to redo
        if index is not None:
            self.refresh_row(index)

    def select_key(self, key: str) -> None:
        try:
            self.move_cursor(row=self.get_row_index(key))
        except RowDoesNotExist:
            pass
