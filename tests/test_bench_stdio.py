"""bench/stdio.py runs end to end: a table per era with every column it promises, and no process
of its own left behind (it is not part of the suite's timing; this only checks that it works)."""

from __future__ import annotations

import re
import subprocess
import sys

from tests.support.procs import REPO_ROOT, pid_alive


def test_stdio_bench_prints_both_eras_and_stops_what_it_started() -> None:
    run = subprocess.run(
        [sys.executable, str(REPO_ROOT / "bench" / "stdio.py"), "--calls", "3", "--mcp-proxy", sys.executable],
        capture_output=True,
        text=True,
        timeout=110,
        cwd=REPO_ROOT,
        check=False,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    tables = run.stdout.split("### ")[1:]
    assert [t.split(":")[0] for t in tables] == ["modern era (2026-07-28)", "handshake era (2025-11-25)"]
    for table in tables:
        rows = {
            line.split("|")[1].strip(): line
            for line in table.splitlines()
            if line.startswith("| ") and "---" not in line
        }
        assert {"direct stdio", "python bridge", "router"} <= set(rows), table
        # Each hop's added µs and CPU per call are numbers.
        assert re.search(r"\| [+-]\d+ \| \d+ \|$", rows["router"]), rows["router"]
    assert "load average at end" in run.stdout
    # The Python interpreter is no mcp-proxy: its column is skipped with a note, not a failure.
    assert "mcp-proxy did not start" in run.stderr or "cannot serve" in run.stderr, run.stderr[-2000:]
    pids = [int(p) for p in re.findall(r"is pid (\d+)", run.stderr)]
    assert len(pids) == 2  # the bridge and the router
    assert not [p for p in pids if pid_alive(p)]
