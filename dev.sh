#!/usr/bin/env bash
# One entry point for a fresh machine (Python >= 3.11, pip, npm):
#   ./dev.sh run  [ROUTER ARGS]   install what the router needs and run it (default: the terminal UI with the demo backend)
#   ./dev.sh test [PYTEST ARGS]   install everything the tests need and run the suite (also .venv-sdk1:
#                                 the MCP Python SDK 1.x, a client tests/test_other_clients.py runs)
#   ./dev.sh bench [run|floor] [ARGS]   the benchmarks (bench/README.md); floor also installs nginx as the native reference
set -euo pipefail
cd "$(dirname "$0")"
VENV="${VENV:-.venv}"
PY="${PYTHON:-python3}"

ensure_venv() {
    local extras="$1" stamp
    [ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
    stamp="$VENV/.installed-$extras-$(sha1sum pyproject.toml | cut -c1-12)"
    if [ ! -e "$stamp" ]; then
        "$VENV/bin/python" -m pip install -q --upgrade pip
        if [ "$extras" = "test" ]; then
            "$VENV/bin/python" -m pip install -q -e ".[test]"
        else
            "$VENV/bin/python" -m pip install -q -e .
        fi
        touch "$stamp"
    fi
}

# The MCP Python SDK 1.x, the client most agents run, in a venv of its own (the suite's has 2.x):
# tests/clients/sdk1_client.py runs on it. Only the SDK, so it costs seconds, once.
SDK1_VENV=.venv-sdk1
SDK1_SPEC='mcp==1.30.0'

ensure_sdk1() {
    local stamp="$SDK1_VENV/.installed-$(echo "$SDK1_SPEC" | sha1sum | cut -c1-12)"
    [ -x "$SDK1_VENV/bin/python" ] || "$PY" -m venv "$SDK1_VENV"
    if [ ! -e "$stamp" ]; then
        "$SDK1_VENV/bin/python" -m pip install -q "$SDK1_SPEC"
        touch "$stamp"
    fi
}

ensure_conformance() {
    ensure_npm tests/conformance
    ensure_npm tests/inspector   # the MCP Inspector's CLI and mcp-remote (test_inspector.py, test_other_clients.py)
}

ensure_npm() {
    local dir="$1"
    local stamp="$dir/node_modules/.installed-$(sha1sum "$dir/package-lock.json" | cut -c1-12)"
    if [ ! -e "$stamp" ]; then
        npm ci --prefix "$dir" --no-audit --no-fund --loglevel=error
        touch "$stamp"
    fi
}

ensure_nginx() {
    command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] && return 0
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        apt-get update -qq && apt-get install -y -qq nginx-light >/dev/null
    else
        echo "nginx is not installed (apt-get install nginx-light): floor.py will skip the native column" >&2
    fi
}

cmd="${1:-run}"
shift || true
case "$cmd" in
    run)
        ensure_venv run
        if [ "$#" -eq 0 ]; then set -- --demo; fi
        exec "$VENV/bin/mcp-router-tui" "$@"
        ;;
    test)
        ensure_venv test
        ensure_sdk1
        ensure_conformance
        # Two workers, a file each: most tests wait on real processes and sockets, not the CPU, and
        # a file's module-level fixtures (the conformance baseline) are set up once. -n 0 runs serially.
        exec "$VENV/bin/pytest" -n 2 --dist loadfile "$@"
        ;;
    bench)
        ensure_venv test
        which="${1:-run}"
        shift || true
        case "$which" in
            run) exec "$VENV/bin/python" bench/run.py "$@" ;;
            floor) ensure_nginx; exec "$VENV/bin/python" bench/floor.py "$@" ;;
            *) echo "usage: ./dev.sh bench [run|floor] [ARGS]" >&2; exit 2 ;;
        esac
        ;;
    *)
        echo "usage: ./dev.sh run [ROUTER ARGS] | ./dev.sh test [PYTEST ARGS] | ./dev.sh bench [run|floor] [ARGS]" >&2
        exit 2
        ;;
esac
