#!/usr/bin/env bash
# Whole-process timings of effnet commands with hyperfine (`just bench`).
# Usage: benches/cli.sh [extra hyperfine args]; needs hyperfine (Debian: apt-get install hyperfine).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v hyperfine >/dev/null || { echo "benches/cli.sh needs hyperfine (apt-get install hyperfine)" >&2; exit 2; }
cargo build --release --locked --quiet
bin=target/release/effnet
hyperfine --warmup 5 --runs 50 -N "$@" \
  --command-name "cost --variant b7 --by layer --format json" "$bin cost --variant b7 --by layer --format json" \
  --command-name "cost --variant b0" "$bin cost --variant b0" \
  --command-name "spec b7 --format json" "$bin spec b7 --format json"
