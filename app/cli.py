"""Entry point: `mcp-router-tui` (TUI) and `mcp-router-tui --no-ui` (headless)."""

from __future__ import annotations

import sys

from app.settings import parse_args


def main(argv: list[str] | None = None) -> int:
    settings = parse_args(argv)
    from app.runtime import run  # --no-ui imports no Textual: the TUI is imported only to run it

    return run(settings)


if __name__ == "__main__":
    sys.exit(main())
