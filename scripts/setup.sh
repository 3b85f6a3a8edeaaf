#!/usr/bin/env bash
# One set-up command for a fresh machine (Python >= 3.11, pip, gcc, node/npm):
#   bash scripts/setup.sh
# Creates .venv with paraloom (editable) and every extra the test suite exercises, and
# installs the reference MCP server used by the MCP tests (node/npm) into
# ~/.cache/paraloom/mcp-everything, where the tests find it.
# Installs Debian's PostgreSQL server binaries and Chromium (apt-get, when missing and run as
# root) for the Postgres run-store tests, which start a private server on 127.0.0.1, and the
# service page test, which renders the page in headless Chromium.
# PARALOOM_EXTRAS overrides the extras (default: dev,mcp,otlp,ray,phoenix,service,plot,postgres).
# PARALOOM_LOCAL_LLM=1 also installs a local model server (llama.cpp's llama-server, built
# from source: ~20-35 min on 2 cores the first time, cached) and a small model into
# ~/.cache/paraloom/local-llm, for the local_llm tests (scripts/install_local_llm.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
EXTRAS="${PARALOOM_EXTRAS:-dev,mcp,otlp,ray,phoenix,service,plot,postgres}"

# Debian packages the integration tests use: PostgreSQL's server (the Postgres store tests
# start a private one) and Chromium (the service page test renders it headless).
DEBS=""
if ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 && [ -z "${PARALOOM_PG_BIN:-}" ]; then
    DEBS="postgresql"
fi
if ! command -v chromium >/dev/null 2>&1 && ! command -v chromium-browser >/dev/null 2>&1; then
    DEBS="$DEBS chromium"
fi
if [ -n "$DEBS" ]; then
    if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
        echo "installing Debian packages for the integration tests:$DEBS"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -q >/dev/null
        # shellcheck disable=SC2086
        apt-get install -y -q --no-install-recommends $DEBS >/dev/null
    else
        echo "not root: missing$DEBS; the tests that need them will be skipped" >&2
    fi
fi

if [ ! -x .venv/bin/python ]; then
    "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e ".[${EXTRAS}]"

if command -v npm >/dev/null 2>&1; then
    mkdir -p .cache
    bash scripts/install_mcp_everything.sh > .cache/mcp-everything.path
    echo "reference MCP server: $(cat .cache/mcp-everything.path)"
else
    echo "npm not found: the MCP tests against the reference server will be skipped" >&2
fi
if [ "${PARALOOM_LOCAL_LLM:-0}" = "1" ]; then
    mkdir -p .cache
    PYTHON=.venv/bin/python bash scripts/install_local_llm.sh > .cache/local-llm.env
    echo "local model server: $(tr '\n' ' ' < .cache/local-llm.env)"
fi
echo "set-up done: activate with 'source .venv/bin/activate'"
