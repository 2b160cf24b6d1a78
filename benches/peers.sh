#!/usr/bin/env bash
# effnet against the Python pipelines it replaces, in the same run, on the full-size files of
# `just fixtures-full` and `just fixtures-full-tf` (`just bench-peers`). Whole processes, no
# shell, hyperfine median of RUNS (default 5; SLOW_RUNS, default 3, for the minute-long peers).
# Prints a table of medians and the ratio of each peer to effnet; peak RSS with /usr/bin/time.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v hyperfine >/dev/null || { echo "benches/peers.sh needs hyperfine (apt-get install hyperfine)" >&2; exit 2; }
full=target/fixtures-full
for f in torchvision-b7.pth keras-b7.h5; do
  [ -e "$full/$f" ] || { echo "missing $full/$f: run just fixtures-full fixtures-full-tf" >&2; exit 2; }
done
torch_py=${TORCH_PYTHON:-.venv-fixtures/bin/python}
tf_py=${TF_PYTHON:-.venv-tf/bin/python}
runs=${RUNS:-5}
slow=${SLOW_RUNS:-3}
cargo build --release --locked --quiet
bin=$PWD/target/release/effnet
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
pth=$full/torchvision-b7.pth
h5=$full/keras-b7.h5

bench() { # name runs command...
  local name=$1 n=$2; shift 2
  hyperfine -N --warmup 1 --runs "$n" --export-json "$out/$name.json" --command-name "$name" "$*" >/dev/null
}
bench effnet-f16 "$runs" "$bin convert $pth -o $out/b7.safetensors --dtype f16 --force -q"
bench cp "$runs" "cp $pth $out/copy.pth"
bench python-f16 "$runs" "$torch_py benches/peers.py torch-f16 $pth $out/peer.safetensors"
bench effnet-onnx-pth "$runs" "$bin convert $pth -o $out/b7.onnx --force -q"
bench torch-onnx "$slow" "$torch_py benches/peers.py torch-onnx $pth $out/peer.onnx"
bench effnet-onnx-h5 "$runs" "$bin convert $h5 -o $out/kb7.onnx --force -q"
bench tf2onnx "$slow" "$tf_py benches/peers.py tf2onnx $h5 $out/peer-keras.onnx"
bench effnet-cost "$runs" "$bin cost $pth"
bench effnet-audit "$runs" "$bin audit $pth"
bench effnet-cost-variant "$runs" "$bin cost --variant b7"
bench fvcore "$slow" "$torch_py benches/peers.py fvcore $pth -"
rss=$( { /usr/bin/time -f "%M" "$bin" convert "$pth" -o "$out/rss.safetensors" --dtype f16 --force -q >/dev/null; } 2>&1 | tail -1)
size=$(stat -c %s "$out/rss.safetensors")

python3 - "$out" "$rss" "$size" <<'PY'
import json, os, statistics, sys
out, rss_kb, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
def median(name):
    return statistics.median(json.load(open(os.path.join(out, name + ".json")))["results"][0]["times"])
rows = [
    ("B7 .pth → f16 safetensors", "effnet-f16", [("Python torch.load → half → save_file", "python-f16"), ("cp of the input", "cp")]),
    ("B7 .pth → ONNX", "effnet-onnx-pth", [("torch.onnx.export", "torch-onnx")]),
    ("Keras B7 .h5 → ONNX", "effnet-onnx-h5", [("tf2onnx.convert.from_keras", "tf2onnx")]),
    ("cost of a B7 .pth", "effnet-cost", [("fvcore FlopCountAnalysis", "fvcore")]),
    ("audit of a B7 .pth", "effnet-audit", []),
    ("cost --variant b7", "effnet-cost-variant", []),
]
print("| job | effnet (median) | peer | peer (median) | peer / effnet |")
print("|---|---|---|---|---|")
for job, ours, peers in rows:
    t = median(ours)
    if not peers:
        print(f"| {job} | {t*1000:.1f} ms | | | |")
    for label, name in peers:
        p = median(name)
        print(f"| {job} | {t*1000:.1f} ms | {label} | {p*1000:.1f} ms | {p/t:.1f}× |")
print(f"\npeak RSS of the B7 f16 conversion: {rss_kb/1024:.1f} MiB for a {size/2**20:.1f} MiB output ({rss_kb*1024/size:.2f}×)")
PY
