#!/usr/bin/env bash
# `effnet run` against onnxruntime's CPU execution provider running effnet's own ONNX export of
# the same model, side by side in one run (issue 16): B0 at 224×224 and B7 at 600×600, batch 1,
# whole processes (start, load, run, write the output), median of RUNS (default 5; 3 for B7),
# the two alternating so both see the same machine. Prints both medians, the ratio, the
# in-process inference times, peak RSS and the agreement of the two outputs.
#
# Models: full-size files with seeded random weights built from the spec by effnet itself
# (`cargo run --example random_model -p effnet-exec`), so no framework is needed; they are
# written once into target/bench-exec. onnxruntime comes from the .ci venv (made here as
# .ci/run makes it when missing), or ORT_PYTHON.
set -euo pipefail
cd "$(dirname "$0")/.."
py=${ORT_PYTHON:-.ci/venv/bin/python}
if [ ! -x "$py" ]; then
  python3 -m venv .ci/venv
  .ci/venv/bin/pip install --quiet --disable-pip-version-check -r tests/onnx/requirements.txt
fi
cargo build --release --locked --quiet --bin effnet
cargo build --release --locked --quiet -p effnet-exec --example random_model
bin=$PWD/target/release/effnet
dir=target/bench-exec
mkdir -p "$dir"
for spec in b0:224 b7:600; do
  v=${spec%%:*}
  r=${spec##*:}
  [ -e "$dir/$v.safetensors" ] || target/release/examples/random_model "$v" "$dir/$v.safetensors" >/dev/null
  [ -e "$dir/$v.onnx" ] || "$bin" convert "$dir/$v.safetensors" -o "$dir/$v.onnx" --resolution "$r" -q
done
exec "$py" benches/exec.py "$bin" "$dir" "${RUNS:-5}" "${SLOW_RUNS:-3}"
