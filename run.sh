#!/usr/bin/env bash
# Bootstrap a local .venv (when missing or when pyproject.toml changed), then:
#   ./run.sh [RUN ARGS]      the main job: the whole pipeline against the venue simulator
#                            (hft run; --duration S, --venue HOST:PORTS or a profile name
#                            such as binance-testnet, --config FILE ...)
#   ./run.sh test [ARGS]     the whole test suite (pytest ARGS)
#   ./run.sh replay FILE...  hft run --replay FILE... (whole pipeline, paper venue;
#                            --seed N, --intents-out FILE, --summary-json FILE)
#   ./run.sh COMMAND ARGS    any other hft subcommand (bench, sim, monitor, ctl, demo, ...)
set -euo pipefail
cd "$(dirname "$0")"

VENV=.venv
STAMP=$VENV/.installed
IS312='import sys; sys.exit(sys.version_info < (3, 12))'

# A CPython >= 3.12: $PYTHON if set, else the first candidate that runs and is new enough
# (run, not just found: a pyenv shim such as python3.12 is on PATH even when it cannot run).
find_python() {
    if [ -n "${PYTHON:-}" ]; then
        "$PYTHON" -c "$IS312" 2>/dev/null && return
        local v
        v=$("$PYTHON" --version 2>/dev/null) || v="it does not run"
        echo "run.sh: PYTHON=$PYTHON must be a Python >= 3.12 ($v)" >&2
        exit 1
    fi
    local c pyenv=${PYENV_ROOT:-$HOME/.pyenv}
    for c in python3.12 python3.13 python3 "$pyenv"/versions/3.1[2-9]*/bin/python3; do
        if "$c" -c "$IS312" 2>/dev/null; then PYTHON=$c; return; fi
    done
    echo "run.sh: no Python >= 3.12 found (tried python3.12, python3.13, python3, pyenv's)." >&2
    echo "  Install one: 'apt install python3.12 python3.12-venv' or 'pyenv install 3.12'," >&2
    echo "  or point PYTHON=/path/to/python3.12 at one." >&2
    exit 1
}

bootstrap() {
    if [ -x "$VENV/bin/python" ] && ! "$VENV/bin/python" -c "$IS312" 2>/dev/null; then
        echo "run.sh: $VENV was made with an older Python; recreating it" >&2
        rm -rf "$VENV"
    fi
    local want
    want=$(sha256sum pyproject.toml | cut -d' ' -f1)
    if [ -x "$VENV/bin/python" ] && [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ]; then
        return
    fi
    find_python
    echo "run.sh: setting up $VENV with $PYTHON (first run or dependencies changed)..." >&2
    [ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
    "$VENV/bin/python" -m pip install --quiet --upgrade pip >&2
    "$VENV/bin/python" -m pip install --quiet -e ".[dev]" >&2
    echo "$want" > "$STAMP"
}

bootstrap
export PATH="$PWD/$VENV/bin:$PATH"

case "${1:-}" in
    "" | -*)
        # warn (never refuse) when the host is not tuned for low latency
        python -c 'from tuning.check import warn_if_untuned; warn_if_untuned()' || true
        exec hft run "$@" ;;
    test)
        shift
        exec python -m pytest "$@" ;;
    replay)
        shift
        exec hft run --replay "$@" ;;
    *)
        exec hft "$@" ;;
esac
