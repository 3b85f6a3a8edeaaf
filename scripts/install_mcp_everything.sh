#!/usr/bin/env bash
# Install the reference MCP server (@modelcontextprotocol/server-everything) into a cache
# prefix and print the path of its entry point (dist/index.js) on stdout, e.g.:
#
#   export PARALOOM_MCP_EVERYTHING="$(scripts/install_mcp_everything.sh)"
#   pytest tests/tools -m node
#
# Prefix: $1, else $PARALOOM_MCP_PREFIX, else ${XDG_CACHE_HOME:-~/.cache}/paraloom/mcp-everything
# (the tests look there when PARALOOM_MCP_EVERYTHING is unset).
# Version: $PARALOOM_MCP_EVERYTHING_VERSION (default: the version the tests were written
# against; tool names differ between releases).
set -euo pipefail

PREFIX="${1:-${PARALOOM_MCP_PREFIX:-${XDG_CACHE_HOME:-$HOME/.cache}/paraloom/mcp-everything}}"
VERSION="${PARALOOM_MCP_EVERYTHING_VERSION:-2026.8.31}"
ENTRY="$PREFIX/node_modules/@modelcontextprotocol/server-everything/dist/index.js"

if ! command -v npm >/dev/null 2>&1; then
    echo "install_mcp_everything.sh: npm is not installed (needs Node.js >= 18)" >&2
    exit 1
fi

mkdir -p "$PREFIX"
npm install --prefix "$PREFIX" --no-audit --no-fund --loglevel=error \
    "@modelcontextprotocol/server-everything@${VERSION}" >&2

if [ ! -f "$ENTRY" ]; then
    echo "install_mcp_everything.sh: $ENTRY is missing after npm install" >&2
    exit 1
fi
echo "$ENTRY"
