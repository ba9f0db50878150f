"""Entry point: `mcp-router-tui` (TUI) and `mcp-router-tui --no-ui` (headless)."""

from __future__ import annotations

import sys

from app.settings import parse_args


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["paths"]:
        from app.control_cli import main as control_main

        return control_main(args, prog="mcp-router-tui")
    settings = parse_args(argv)
    from app.runtime import run  # --no-ui imports no Textual: the TUI is imported only to run it

    return run(settings)


if __name__ == "__main__":
    sys.exit(main())
