#!/usr/bin/env bash
# The test command: installs what the tests need (idempotent), then lint, types, schema, tests.
set -euo pipefail
cd "$(dirname "$0")/.."

# System parts the tests use for real: bubblewrap (the sandbox of levels high and critical),
# chromium (renders the HTML run report headless), git (the third-party git MCP server).
missing=""
command -v bwrap >/dev/null 2>&1 || missing="$missing bubblewrap"
command -v chromium >/dev/null 2>&1 || missing="$missing chromium"
command -v git >/dev/null 2>&1 || missing="$missing git"
if [ -n "$missing" ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "installing:$missing"
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi

if [ ! -x .venv/bin/python ]; then python3 -m venv .venv; fi
.venv/bin/python -m pip install -q --upgrade pip >/dev/null
.venv/bin/python -m pip install -q -e '.[dev,ray]'

# Third-party MCP servers live in their own venv: they may pin another mcp version.
if [ ! -x .venv-mcp-tools/bin/mcp-server-time ]; then
  python3 -m venv .venv-mcp-tools
  .venv-mcp-tools/bin/python -m pip install -q mcp-server-time mcp-server-git
fi
export PLAIT_TEST_MCP_BIN="$PWD/.venv-mcp-tools/bin"

.venv/bin/ruff check engine runners tests bench
.venv/bin/mypy
.venv/bin/python -m runners.cli.main schema | diff -u schemas/workflow.schema.json - \
  || { echo "schemas/workflow.schema.json is stale: run 'plait schema > schemas/workflow.schema.json'"; exit 1; }
# two workers (CI has 2 cores), a test file's tests in one of them: the suite's many
# subprocess and server tests then take half the wall time
.venv/bin/python -m pytest -q -n 2 --dist loadfile "$@"
