#!/usr/bin/env bash
# Runs every benchmark and writes BENCHMARKS.md: each figure, the command that produced it, the
# machine and the date. Everything runs on 127.0.0.1 against private redis-servers it starts.
#
#   scripts/bench.sh              # all benches (~15 min on 2 cores)
#   scripts/bench.sh --profiles   # also rebuild under each release-profile setting (~30 min more)
#
# Needs: redis-server, wrk and valgrind (Debian packages, installed here if missing), and
# cargo-lambda for the arm64 size (`pip install cargo-lambda`, which brings zig; skipped if absent).
set -euo pipefail
cd "$(dirname "$0")/.."

PROFILES=0
ASSEMBLE_ONLY=0
case "${1:-}" in
  --profiles) PROFILES=1 ;;
  # Rewrite BENCHMARKS.md from the results already in target/bench-results (after re-running
  # one bench by hand with BENCH_RESULTS_DIR and GATEWAY_BIN set as below).
  --assemble) ASSEMBLE_ONLY=1 ;;
esac

missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v wrk >/dev/null 2>&1 || missing+=(wrk)
command -v valgrind >/dev/null 2>&1 || missing+=(valgrind)
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing Debian packages: ${missing[*]}" >&2
  if [ "$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

RESULTS="$PWD/target/bench-results"
export BENCH_RESULTS_DIR="$RESULTS"
if [ "$ASSEMBLE_ONLY" = 0 ]; then
rm -rf "$RESULTS"
mkdir -p "$RESULTS"

mb() { awk -v b="$1" 'BEGIN { printf "%.2f", b / 1048576 }'; }

echo "== release build" >&2
cargo build --release --locked
RELEASE_BYTES=$(stat -c %s target/release/ai-gateway)
{
  echo "## Binary size"
  echo
  echo "| build | command | bytes | MB |"
  echo "|---|---|---:|---:|"
  echo "| release, x86_64 | \`cargo build --release\` | $RELEASE_BYTES | $(mb "$RELEASE_BYTES") |"
  if command -v cargo-lambda >/dev/null 2>&1; then
    echo "== cargo lambda build --release --arm64" >&2
    # Its own target directory: the cross build neither waits on nor evicts the host build.
    if CARGO_TARGET_DIR="$PWD/target/lambda-arm64" cargo lambda build --release --arm64 >&2; then
      LAMBDA_BYTES=$(stat -c %s target/lambda-arm64/lambda/ai-gateway/bootstrap)
      echo "| Lambda, aarch64 (bootstrap) | \`cargo lambda build --release --arm64\` | $LAMBDA_BYTES | $(mb "$LAMBDA_BYTES") |"
    else
      echo "| Lambda, aarch64 | \`cargo lambda build --release --arm64\` | failed | |"
    fi
  else
    echo "| Lambda, aarch64 | not measured: \`pip install cargo-lambda\` first | | |"
  fi
  echo
  echo "Budget: ≤ 8 MB. Profile (Cargo.toml): \`lto = true\`, \`codegen-units = 1\`, \`strip = true\`, \`opt-level = 3\`;"
  echo "\`panic\` stays \`unwind\`: lambda_runtime turns a panicking invocation into an error response and"
  echo "keeps the instance, and tokio keeps the local server up when one connection's task panics."
  echo "Note: \`cargo lambda build --release\` adds \`panic = \"abort\"\` and \`-C target-cpu=neoverse-n1\` by itself,"
  echo "so the Lambda binary is built with abort whatever Cargo.toml says."
} > "$RESULTS/05-size.md"
cat "$RESULTS/05-size.md"

# The process-level benches run this copy of the shipped binary (`cargo bench` builds its own,
# with the dev-dependencies' features, and puts it at the same path).
cp target/release/ai-gateway "$RESULTS/ai-gateway"
export GATEWAY_BIN="$RESULTS/ai-gateway"
for bench in gateway instructions http_load cold_start; do
  echo "== cargo bench --bench $bench" >&2
  cargo bench --locked --bench "$bench"
done

if [ "$PROFILES" = 1 ]; then
  # Each variant is a full build in its own target directory, its settings given through
  # cargo's CARGO_PROFILE_RELEASE_* variables so Cargo.toml stays as shipped. Symbols are kept
  # (the unstripped binaries are the ones to profile); `strip` on a copy gives strip's share.
  {
    echo "## What each release-profile setting buys"
    echo
    echo "Command: \`scripts/bench.sh --profiles\`. Each row adds one setting to the row above"
    echo "(all \`opt-level = 3\`); \`strip = true\` is measured on every row by stripping a copy."
    echo "Cold start: local-server median of 20 runs, stripped binary"
    echo "(\`COLD_START_RUNS=20 GATEWAY_BIN=… cargo bench --bench cold_start\`); instructions per"
    echo "request from \`INSTR_REQUESTS=1000 GATEWAY_BIN=… cargo bench --bench instructions\`."
    echo
    echo "| profile | MB unstripped | MB stripped | cold start to first hit, ms | instructions per Redis hit | per Redis miss |"
    echo "|---|---:|---:|---:|---:|---:|"
  } > "$RESULTS/50-profiles.md"
  variant() {
    local slug=$1 name=$2; shift 2
    local dir="target/profile-$slug"
    echo "== profile variant: $name" >&2
    env CARGO_PROFILE_RELEASE_STRIP=false "$@" cargo build --release --locked --target-dir "$dir" >&2
    local bin="$dir/release/ai-gateway"
    strip -o "$bin.stripped" "$bin"
    local sub="$RESULTS/profile-$slug"
    mkdir -p "$sub"
    BENCH_RESULTS_DIR="$sub" COLD_START_RUNS=20 GATEWAY_BIN="$PWD/$bin.stripped" cargo bench --locked --bench cold_start >&2
    BENCH_RESULTS_DIR="$sub" INSTR_REQUESTS=1000 GATEWAY_BIN="$PWD/$bin.stripped" cargo bench --locked --bench instructions >&2
    local cold hit miss
    cold=$(grep '^| local server |' "$sub/30-cold-start.md" | awk -F'|' '{gsub(/ /,"",$5); print $5}')
    hit=$(grep '^| redis | hit' "$sub/15-instructions.md" | awk -F'|' '{gsub(/ /,"",$4); print $4}')
    miss=$(grep '^| redis | miss' "$sub/15-instructions.md" | awk -F'|' '{gsub(/ /,"",$4); print $4}')
    echo "| $name | $(mb "$(stat -c %s "$bin")") | $(mb "$(stat -c %s "$bin.stripped")") | $cold | $hit | $miss |" >> "$RESULTS/50-profiles.md"
  }
  variant 1-defaults "cargo defaults (lto off, codegen-units 16, unwind)" \
    CARGO_PROFILE_RELEASE_LTO=false CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16 CARGO_PROFILE_RELEASE_PANIC=unwind
  variant 2-lto "+ lto = true (fat)" \
    CARGO_PROFILE_RELEASE_LTO=true CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16 CARGO_PROFILE_RELEASE_PANIC=unwind
  variant 3-cgu1 "+ codegen-units = 1" \
    CARGO_PROFILE_RELEASE_LTO=true CARGO_PROFILE_RELEASE_CODEGEN_UNITS=1 CARGO_PROFILE_RELEASE_PANIC=unwind
  variant 4-abort "+ panic = abort" \
    CARGO_PROFILE_RELEASE_LTO=true CARGO_PROFILE_RELEASE_CODEGEN_UNITS=1 CARGO_PROFILE_RELEASE_PANIC=abort
  cat "$RESULTS/50-profiles.md"
fi
fi

if [ ! -f "$RESULTS/50-profiles.md" ] && [ -f BENCHMARKS.md ] && grep -q '^## What each release-profile setting buys' BENCHMARKS.md; then
  # Keep the last profile comparison (it takes long to redo), marked with its own date.
  awk '/^## What each release-profile setting buys/{p=1} /^## /&&!/release-profile/{p=0} p' BENCHMARKS.md \
    > "$RESULTS/50-profiles.md"
fi

{
  echo "# Benchmarks"
  echo
  echo "Written by \`scripts/bench.sh\`; do not edit by hand. Figures are measurements on the machine"
  echo "below, not assertions: no test fails on them."
  echo
  echo "## How to run"
  echo
  echo '```sh'
  echo 'apt-get install -y redis-server wrk valgrind   # done by the script when missing'
  echo 'pip install cargo-lambda                       # optional: the arm64 Lambda size (brings zig)'
  echo 'scripts/bench.sh                               # every bench, then writes BENCHMARKS.md'
  echo 'scripts/bench.sh --profiles                    # also rebuilds under each release-profile setting'
  echo 'cargo bench --bench gateway                    # one part only: gateway | instructions | http_load | cold_start'
  echo '```'
  echo
  echo "## Machine and date"
  echo
  echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo "- commit: $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- src Cargo.toml benches || echo ' (with uncommitted changes)')"
  echo "- CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), nproc = $(nproc)"
  echo "- memory: $(free -h | awk '/^Mem:/{print $2}')"
  echo "- kernel: $(uname -sr); $(rustc --version); redis-server $(redis-server --version | awk '{print $3}' | cut -d= -f2); $(wrk -v 2>&1 | head -n1 | awk '{print $1, $2}')"
  echo "- the cores are shared with other work (other engineers' builds): wall-clock figures are"
  echo "  noisy, each is the median of repeated runs with its spread; compare code by instructions."
  echo
  for f in "$RESULTS"/[0-9]*.md; do
    cat "$f"
    echo
  done
} > BENCHMARKS.md
echo "wrote BENCHMARKS.md" >&2
