"""Side-by-side timing of `effnet run` and onnxruntime (CPU EP) on effnet's ONNX export.

Usage: exec.py EFFNET DIR RUNS SLOW_RUNS  (see benches/exec.sh). Each measurement is a whole
process started without a shell: effnet reads the model and a .npy input and writes the output
.npy; the onnxruntime process (this interpreter, `exec.py ort …`) imports onnxruntime, builds
the session, reads the same .npy, runs it and writes its output. Runs alternate between the two.
"""

import json
import os
import statistics
import subprocess
import sys
import time

import numpy as np


def ort_main(model, x_path, y_path):
    t0 = time.perf_counter()
    import onnxruntime as ort

    session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    x = np.load(x_path)
    t1 = time.perf_counter()
    (y,) = session.run(None, {"input": x})
    t2 = time.perf_counter()
    np.save(y_path, y)
    print(json.dumps({"load_ms": (t1 - t0) * 1e3, "run_ms": (t2 - t1) * 1e3}))


def timed(cmd):
    """Wall time, peak RSS (KiB) and stdout of one process."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = proc.communicate()
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed: {err.decode()}")
    return wall, out


def peak_rss(cmd):
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    if status != 0:
        sys.exit(f"{' '.join(cmd)} failed")
    return usage.ru_maxrss / 1024.0


def main(effnet, folder, runs, slow_runs):
    rows = []
    for variant, res, n in (("b0", 224, runs), ("b7", 600, slow_runs)):
        st = os.path.join(folder, f"{variant}.safetensors")
        onnx = os.path.join(folder, f"{variant}.onnx")
        x_path = os.path.join(folder, f"{variant}-x.npy")
        rng = np.random.default_rng(0)
        pixels = rng.uniform(0, 255, size=(1, 3, res, res))
        mean = np.array([0.485, 0.456, 0.406]).reshape(1, 3, 1, 1)
        std = np.array([0.229, 0.224, 0.225]).reshape(1, 3, 1, 1)
        np.save(x_path, ((pixels / 255.0 - mean) / std).astype(np.float32))
        e_out = os.path.join(folder, f"{variant}-effnet.npy")
        o_out = os.path.join(folder, f"{variant}-ort.npy")
        e_cmd = [effnet, "run", st, "--input", x_path, "-o", e_out, "--force", "--format", "json", "-q"]
        o_cmd = [sys.executable, __file__, "ort", onnx, x_path, o_out]
        # One warm-up each (page cache, CPU frequency), then alternating timed runs.
        timed(e_cmd)
        timed(o_cmd)
        e_times, o_times, e_run, o_run = [], [], [], []
        for _ in range(n):
            wall, out = timed(e_cmd)
            e_times.append(wall)
            e_run.append(json.loads(out)["timing_ms"]["run"])
            wall, out = timed(o_cmd)
            o_times.append(wall)
            o_run.append(json.loads(out)["run_ms"])
        ye, yo = np.load(e_out), np.load(o_out)
        agree = float(np.abs(ye - yo).max() / np.abs(yo).max())
        rows.append({
            "model": f"{variant.upper()} {res}×{res}, batch 1",
            "effnet_ms": statistics.median(e_times) * 1e3,
            "ort_ms": statistics.median(o_times) * 1e3,
            "effnet_run_ms": statistics.median(e_run),
            "ort_run_ms": statistics.median(o_run),
            "effnet_rss_mib": peak_rss(e_cmd),
            "ort_rss_mib": peak_rss(o_cmd),
            "agreement": agree,
            "runs": n,
        })
    print(f"{'model':<24} {'effnet':>10} {'onnxruntime':>12} {'ratio':>7}   {'in-process effnet / ort':>24}   "
          f"{'peak RSS effnet / ort':>22}   max|Δ|/max|ort|")
    for r in rows:
        print(f"{r['model']:<24} {r['effnet_ms']:>8.0f} ms {r['ort_ms']:>9.0f} ms {r['effnet_ms'] / r['ort_ms']:>6.2f}×"
              f"   {r['effnet_run_ms']:>9.1f} / {r['ort_run_ms']:.1f} ms ({r['effnet_run_ms'] / r['ort_run_ms']:.2f}×)"
              f"   {r['effnet_rss_mib']:>8.0f} / {r['ort_rss_mib']:.0f} MiB   {r['agreement']:.1e}")
    print("ratio = effnet / onnxruntime, whole process, median; target ≤ 1.5×")
    return rows


if __name__ == "__main__":
    if sys.argv[1] == "ort":
        ort_main(*sys.argv[2:5])
    else:
        main(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
