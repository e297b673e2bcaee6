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

PYTHON=${PYTHON:-python3}
VENV=.venv
STAMP=$VENV/.installed

bootstrap() {
    "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || {
        echo "run.sh: Python >= 3.11 is required ($PYTHON is $("$PYTHON" --version 2>&1))" >&2
        exit 1
    }
    local want
    want=$(sha256sum pyproject.toml | cut -d' ' -f1)
    if [ -x "$VENV/bin/python" ] && [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ]; then
        return
    fi
    echo "run.sh: setting up $VENV (first run or dependencies changed)..." >&2
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
