"""Widgets of the terminal UI: backends and sessions tables, the trace view, the header."""
