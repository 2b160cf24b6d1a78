#!/usr/bin/env bash
# Every conversion against `cp` of its input (issue #22's table): for each input file or
# folder given (default: a full-size B7 in every container effnet reads: `just fixtures-full
# fixtures-full-tf bench-inputs`), effnet converts to each of TARGETS (default: every format it
# writes: f16 safetensors, ONNX, Keras 3 .keras and .weights.h5, tf-keras .h5), whole
# process, median of RUNS (default 3) wall times next to the
# median of `cp -r` of the input in the same run, and the peak RSS (/usr/bin/time) against the
# output's size. Prints a Markdown table. timm files (`timm-*`, `timm-tf*`) are read with
# --source-naming timm / timm-tf; a symmetric PyTorch model is written to Keras with
# --allow-padding-change (the time is the same; the numbers would not be).
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${RUNS:-3}
inputs=("$@")
if [ ${#inputs[@]} -eq 0 ]; then
  for f in target/fixtures-full/torchvision-b7.pth target/fixtures-full/timm-tf-b7.pth \
           target/bench-b7/timm-tf-b7-legacy.pth target/fixtures-full/timm-b7.safetensors \
           target/fixtures-full/keras-b7.h5 target/fixtures-full/keras3-b7.keras \
           target/fixtures-full/keras3-b7.weights.h5 target/fixtures-full/keras-b7-ckpt \
           target/bench-b7/b7-savedmodel target/bench-b7/timm-tf-b7.onnx; do
    [ -e "$f" ] && inputs+=("$f")
  done
fi
[ ${#inputs[@]} -gt 0 ] || { echo "no input: give files or run just fixtures-full" >&2; exit 2; }
cargo build --release --locked --quiet
bin=$PWD/target/release/effnet
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
# wall seconds of `"$@"`, RUNS times, median
timed() {
  for _ in $(seq "$runs"); do
    /usr/bin/time -f "%e" "$@" 2>&1 >/dev/null | tail -1
  done | median
}
peak_kb() { /usr/bin/time -f "%M" "$@" 2>&1 >/dev/null | tail -1; }

echo "| input | output | effnet (s) | cp (s) | time vs cp | peak RSS (MB) | output (MB) | RSS vs output |"
echo "|---|---|---:|---:|---:|---:|---:|---:|"
for input in "${inputs[@]}"; do
  name=$(basename "$input")
  for target in ${TARGETS:-f16.safetensors onnx keras weights.h5 h5}; do
    o="$out/out.$target"
    args=(convert "$input" -o "$o" --force -q)
    [ "$target" = f16.safetensors ] && args+=(--dtype f16)
    case "$name" in
      *.onnx) ;;
      timm-tf*) args+=(--source-naming timm-tf) ;;
      timm-*) args+=(--source-naming timm) ;;
    esac
    case "$target:$name" in
      *h5:*.pth|keras:*.pth|*h5:*.safetensors|keras:*.safetensors)
        case "$name" in *timm-tf*) ;; *) args+=(--allow-padding-change) ;; esac ;;
    esac
    rm -f "$o"
    if ! err=$("$bin" "${args[@]}" 2>&1 >/dev/null); then
      echo "| $name | $target | refused: ${err//$'\n'/ } | | | | | |"
      continue
    fi
    cp_s=$(timed cp -r "$input" "$out/copy")
    rm -rf "$out/copy"
    t=$(timed "$bin" "${args[@]}")
    kb=$(peak_kb "$bin" "${args[@]}")
    size=$(stat -c %s "$o")
    awk -v n="$name" -v tg="$target" -v t="$t" -v c="$cp_s" -v kb="$kb" -v s="$size" 'BEGIN {
      printf "| %s | %s | %.2f | %.2f | %.1f× | %.0f | %.0f | %.2f× |\n",
        n, tg, t, c, (c > 0 ? t / c : 0), kb / 1024, s / 1048576, kb * 1024 / s }'
  done
done
