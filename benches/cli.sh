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

# File commands over the full-size files, when `just fixtures-full fixtures-full-tf` wrote them.
full=target/fixtures-full
if [ -e "$full/torchvision-b7.pth" ] && [ -e "$full/keras-b7.h5" ]; then
  out=$(mktemp -d)
  trap 'rm -rf "$out"' EXIT
  hyperfine --warmup 2 --runs 10 -N "$@" \
    --command-name "inspect torchvision-b7.pth" "$bin inspect $full/torchvision-b7.pth" \
    --command-name "cost torchvision-b7.pth" "$bin cost $full/torchvision-b7.pth" \
    --command-name "audit torchvision-b7.pth" "$bin audit $full/torchvision-b7.pth" \
    --command-name "inspect keras-b7.h5" "$bin inspect $full/keras-b7.h5" \
    --command-name "inspect keras-b7-ckpt (TF2 checkpoint)" "$bin inspect $full/keras-b7-ckpt" \
    --command-name "inspect tf-official-b7 (TF1 checkpoint)" "$bin inspect $full/tf-official-b7" \
    --command-name "convert torchvision-b7.pth → f16 safetensors" "$bin convert $full/torchvision-b7.pth -o $out/b7.safetensors --dtype f16 --force -q" \
    --command-name "convert keras-b7.h5 → ONNX" "$bin convert $full/keras-b7.h5 -o $out/b7.onnx --force -q"
else
  echo "(file commands skipped: run just fixtures-full fixtures-full-tf)"
fi
