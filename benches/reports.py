"""`inspect`, `cost` and `audit` of full-size files, whole process, best of RUNS (default 5)
wall times each (issue 22's ≤ 50 ms target). No dependency beyond Python 3.

Usage: python3 benches/reports.py [PATH …]   (default: target/bench-b7/* and the opt-in
families tier's V2-S files); builds nothing: run `cargo build --release` first.
"""

import os
import subprocess
import sys
import time

BIN = "target/release/effnet"
RUNS = int(os.environ.get("RUNS", "5"))
DEFAULT = [
    "target/bench-b7/timm-tf-b7.pth",
    "target/bench-b7/b7.h5",
    "target/bench-b7/b7.keras",
    "target/bench-b7/b7-ckpt",
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
            for _ in range(RUNS):
                start = time.perf_counter()
                subprocess.run([BIN, command, path, "-q"], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
                best = min(best, time.perf_counter() - start)
            cells.append(f"{best * 1000:.0f} ms")
        print(f"| {os.path.basename(path)} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
