#!/usr/bin/env bash
# Runs the whole test suite. Tests start their own redis-server (plain and TLS) on free ports and
# drive the dashboard in headless Chromium, so the only things to provide are those two binaries:
# Debian's redis-server and chromium packages are installed here when missing.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
if [ "${#missing[@]}" -gt 0 ]; then
  echo "${missing[*]} not found; installing Debian's ${missing[*]} package(s)" >&2
  if [ "$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# The SDK tests (tests/api/messages/sdk.rs) make a Python venv; Debian's python3 needs
# python3-venv for that (it brings ensurepip).
if ! python3 -c 'import ensurepip, venv' >/dev/null 2>&1; then
  echo "python3 cannot make a venv; installing Debian's python3-venv package" >&2
  if [ "$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq python3-venv >/dev/null
fi

# Unit, black-box API and doc tests. The benches (wrk, valgrind, minutes of load) are not tests:
# they are compiled here so they cannot rot, and run by scripts/bench.sh.
cargo build --benches --quiet
cargo test --lib --bins --tests "$@"
