"""A DataTable that is refreshed from snapshots by diffing: changed cells only, rows by key."""

from __future__ import annotations

from collections.abc import Sequence

from rich.cells import cell_len
from rich.text import Text
from textual.widgets import DataTable
from textual.widgets._data_table import CellDoesNotExist, ColumnKey, RowDoesNotExist

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
                for (column, _), before, after in zip(self.COLUMNS, old, cells, strict=True):
                    if before != after:
                        # Measuring the columns again is only needed when the cell outgrows its column
                        # (an age or a count ticking every second mostly keeps its width).
                        width = after.cell_len if isinstance(after, Text) else cell_len(after)
                        wider = width > self.columns[ColumnKey(column)].content_width
                        self.update_cell(key, column, after, update_width=wider)
            self._shown[key] = cells

    def select_key(self, key: str) -> None:
        try:
            self.move_cursor(row=self.get_row_index(key))
        except RowDoesNotExist:
            pass
