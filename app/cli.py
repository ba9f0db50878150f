"""Entry point: `mcp-router-tui` (TUI) and `mcp-router-tui --no-ui` (headless)."""

from __future__ import annotations

import sys

from app.settings import parse_args


def main(argv: list[str] | None = None) -> int:
    settings = parse_args(argv)
    if settings.ui:
        print(
            "mcp-router-tui: the terminal UI is not built yet; run the router headless with --no-ui",
            file=sys.stderr,
        )
        return 2
    from app.runtime import run

    return run(settings)


if __name__ == "__main__":
    sys.exit(main())
