"""Test helpers: fixture/router processes (procs) and SDK clients (clients)."""
