#!/usr/bin/env bash
# Runs the whole test suite. Tests start their own redis-server (plain and TLS) on free ports,
# so the only thing to provide is the redis-server binary itself.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v redis-server >/dev/null 2>&1; then
  echo "redis-server not found; installing Debian's redis-server package" >&2
  if [ "$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq redis-server >/dev/null
fi

# The SDK tests (tests/api/messages/sdk.rs) make a Python venv; Debian's python3 needs
# python3-venv for that (it brings ensurepip).
if ! python3 -c 'import ensurepip, venv' >/dev/null 2>&1; then
  echo "python3 cannot make a venv; installing Debian's python3-venv package" >&2
  if [ "$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq python3-venv >/dev/null
fi

cargo test --all-targets "$@"
