"""A structural diff of two JSON values: what was added, removed or changed, and where.

Not a text diff of pretty-printed JSON: objects are compared key by key, arrays index by index,
and each difference carries its path (`result.content[0].text`), so a view can name the field
that changed and mark exactly its lines. `pretty_lines` prints a value the way views show it,
each line tagged with the path it belongs to, so the two meet. This module never imports Textual.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import orjson

Path = tuple[str | int, ...]
Op = Literal["added", "removed", "changed"]

_PLAIN_KEY = re.compile(r"[A-Za-z_$][A-Za-z0-9_$-]*\Z")


def format_path(path: Sequence[str | int]) -> str:
    """`result.content[0].text`; keys that are not plain names are quoted: `env["MY KEY"]`."""
    out: list[str] = []
    for part in path:
        if isinstance(part, int):
            out.append(f"[{part}]")
        elif _PLAIN_KEY.match(part):
            out.append(f".{part}" if out else part)
        else:
            out.append(f"[{orjson.dumps(part).decode()}]")
    return "".join(out) or "(the whole value)"


@dataclass(frozen=True, slots=True)
class Change:
    op: Op
    path: Path
    old: Any = None
    new: Any = None

    @property
    def where(self) -> str:
        return format_path(self.path)

    def describe(self, width: int = 60) -> str:
        """One line for a person: `result.content[0].text: "a" → "b"`."""
        if self.op == "added":
            return f"{self.where}: added {short(self.new, width)}"
        if self.op == "removed":
            return f"{self.where}: removed (was {short(self.old, width)})"
        return f"{self.where}: {short(self.old, width)} → {short(self.new, width)}"

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"op": self.op, "path": self.where}
        if self.op != "added":
            d["old"] = self.old
        if self.op != "removed":
            d["new"] = self.new
        return d


def short(value: Any, width: int = 60) -> str:
    """Compact JSON of a value, cut to `width` characters."""
    try:
        text = orjson.dumps(value).decode()
    except TypeError:
        text = repr(value)
    return text if len(text) <= width else text[: max(width - 1, 1)] + "…"


def _same_scalar(a: Any, b: Any) -> bool:
    # JSON has one number type (1 and 1.0 are the same number), but true is not 1.
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b
    return type(a) is type(b) and bool(a == b)


def diff(old: Any, new: Any, path: Path = ()) -> list[Change]:
    """Every difference between two JSON values, in document order (old's, then what new adds)."""
    return list(_diff(old, new, path))


def _diff(old: Any, new: Any, path: Path) -> Iterator[Change]:
    if isinstance(old, dict) and isinstance(new, dict):
        for key, value in old.items():
            if key not in new:
                yield Change("removed", (*path, key), old=value)
            else:
                yield from _diff(value, new[key], (*path, key))
        for key, value in new.items():
            if key not in old:
                yield Change("added", (*path, key), new=value)
        return
    if isinstance(old, list) and isinstance(new, list):
        for i in range(min(len(old), len(new))):
            yield from _diff(old[i], new[i], (*path, i))
        for i in range(len(new), len(old)):
            yield Change("removed", (*path, i), old=old[i])
        for i in range(len(old), len(new)):
            yield Change("added", (*path, i), new=new[i])
        return
    if isinstance(old, dict | list) or isinstance(new, dict | list):
        if old != new:
            yield Change("changed", path, old=old, new=new)
        return
    if not _same_scalar(old, new):
        yield Change("changed", path, old=old, new=new)


def summary(changes: Sequence[Change], limit: int = 3) -> str:
    """`2 differences: result.content[0].text, result.isError` (for a title or a toast)."""
    if not changes:
        return "no differences"
    names = ", ".join(c.where for c in changes[:limit])
    more = f" and {len(changes) - limit} more" if len(changes) > limit else ""
    noun = "difference" if len(changes) == 1 else "differences"
    return f"{len(changes)} {noun}: {names}{more}"


# ---------------------------------------------------------------------- pretty printing with paths


@dataclass(frozen=True, slots=True)
class Line:
    """One line of pretty-printed JSON and the path of the value it shows (or opens or closes)."""

    path: Path
    text: str


def pretty_lines(value: Any, indent: int = 2) -> list[Line]:
    """Pretty-print like `json.dumps(indent=2)`, each line tagged with its value's path."""
    out: list[Line] = []
    _pretty(value, (), 0, "", "", out, indent)
    return out


def _scalar(value: Any) -> str:
    try:
        return orjson.dumps(value).decode()
    except TypeError:
        return orjson.dumps(str(value)).decode()


def _pretty(value: Any, path: Path, depth: int, prefix: str, comma: str, out: list[Line], indent: int) -> None:
    pad = " " * (indent * depth)
    if isinstance(value, dict) and value:
        out.append(Line(path, f"{pad}{prefix}{{"))
        items = list(value.items())
        for n, (key, item) in enumerate(items):
            sep = "," if n < len(items) - 1 else ""
            _pretty(item, (*path, key), depth + 1, f"{_scalar(str(key))}: ", sep, out, indent)
        out.append(Line(path, f"{pad}}}{comma}"))
    elif isinstance(value, list) and value:
        out.append(Line(path, f"{pad}{prefix}["))
        for n, item in enumerate(value):
            sep = "," if n < len(value) - 1 else ""
            _pretty(item, (*path, n), depth + 1, "", sep, out, indent)
        out.append(Line(path, f"{pad}]{comma}"))
    elif isinstance(value, dict):
        out.append(Line(path, f"{pad}{prefix}{{}}{comma}"))
    elif isinstance(value, list):
        out.append(Line(path, f"{pad}{prefix}[]{comma}"))
    else:
        out.append(Line(path, f"{pad}{prefix}{_scalar(value)}{comma}"))


def line_marks(lines: Sequence[Line], changes: Sequence[Change], side: Literal["old", "new"]) -> list[Op | None]:
    """For each line of one side, how it differs from the other side (None: it does not)."""
    hidden: Op = "added" if side == "old" else "removed"  # the other side's lines show those
    by_path: dict[Path, Op] = {c.path: c.op for c in changes if c.op != hidden}
    marks: list[Op | None] = []
    for line in lines:
        mark: Op | None = None
        # A line belongs to a change when the change's path is a prefix of the line's path.
        for n in range(len(line.path) + 1):
            mark = by_path.get(line.path[:n])
            if mark is not None:
                break
        marks.append(mark)
    return marks
