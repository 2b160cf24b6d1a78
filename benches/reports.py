"""`inspect`, `cost` and `audit` of full-size files, whole process, best of RUNS (default 5)
wall times each (issue 22's ≤ 50 ms target). No dependency beyond Python 3.

Usage: python3 benches/reports.py [PATH …]   (default: a full-size B7 in every container,
from `just fixtures-full fixtures-full-tf bench-inputs`, and the opt-in families tier's V2-S files);
builds nothing: run `cargo build --release` first (`just bench-reports` does).
"""

import os
import subprocess
import sys
import time

BIN = "target/release/effnet"
RUNS = int(os.environ.get("RUNS", "5"))
DEFAULT = [
    "target/fixtures-full/torchvision-b7.pth",
    "target/fixtures-full/timm-tf-b7.pth",
    "target/bench-b7/timm-tf-b7-legacy.pth",
    "target/fixtures-full/timm-b7.safetensors",
    "target/fixtures-full/keras-b7.h5",
    "target/fixtures-full/keras3-b7.keras",
    "target/fixtures-full/keras3-b7.weights.h5",
    "target/fixtures-full/keras-b7-ckpt",
    "target/fixtures-full/tf-official-b7",
    "target/bench-b7/b7-savedmodel",
    "target/bench-b7/timm-tf-b7.onnx",
    "target/fixtures-full/families/tfkeras-efficientnetv2-s-savedmodel",
    "target/fixtures-full/families/keras3-efficientnetv2-s-export",
    "target/fixtures-full/families/tfkeras-efficientnetv2-s.h5",
]


def main(paths):
    os.chdir(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    print("| file | inspect | cost | audit |")
    print("|---|---:|---:|---:|")
    for path in paths or [p for p in DEFAULT if os.path.exists(p)]:
        cells = []
        for command in ("inspect", "cost", "audit"):
            best = float("inf")
            code = 0
            for _ in range(RUNS):
                start = time.perf_counter()
                code = subprocess.run([BIN, command, path, "-q"], stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL).returncode
                best = min(best, time.perf_counter() - start)
            # audit exits 1 for a model that deviates; 2 is an error, not a report.
            cells.append(f"{best * 1000:.0f} ms" + (f" (exit {code})" if code > 1 else ""))
        print(f"| {os.path.basename(path)} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
