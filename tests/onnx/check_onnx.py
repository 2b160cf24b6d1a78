"""Run effnet's ONNX exports in onnxruntime and compare them with the source framework's own
output on the same input (the `<model>-io.safetensors` the fixture generator wrote with torch).

For every PyTorch fixture holding the reference model's weights (every container, scheme and
dtype), effnet converts it to ONNX twice: explicit pads at 64×64, and a dynamic input size
(`auto_pad=SAME_UPPER` for TF "same" models). Each must pass onnx.checker and reproduce the
reference output: max|diff| / max|ref| ≤ 1e-4 (2e-2 when the fixture's weights are f16/bf16).

Usage: python check_onnx.py EFFNET_BINARY FIXTURE_DIR
Prints one line per check and closes with "N passed, N failed".
"""

import json
import os
import struct
import subprocess
import sys
import tempfile

import numpy as np
import onnx
import onnxruntime as ort

DTYPES = {"F32": np.float32, "F16": np.float16, "F64": np.float64, "I64": np.int64, "BF16": None}


def read_safetensors(path):
    """A tiny safetensors reader (numpy only)."""
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        begin, end = info["data_offsets"]
        out[name] = np.frombuffer(data[8 + n + begin : 8 + n + end], dtype=DTYPES[info["dtype"]]).reshape(info["shape"])
    return out


def main(effnet, fixtures):
    passed = failed = 0
    with tempfile.TemporaryDirectory() as tmp:
        for case_file in sorted(os.listdir(fixtures)):
            if not case_file.endswith(".json"):
                continue
            case = json.load(open(os.path.join(fixtures, case_file)))
            name = case["case"]
            if name.endswith(("-train-ema", "-f16-overflow")):
                continue  # other weights than the reference model
            io = read_safetensors(os.path.join(fixtures, f"{case['naming']}-tiny-io.safetensors"))
            dtypes = {t["dtype"] for t in case["tensors"].values()}
            tol = 2e-2 if dtypes & {"f16", "bf16"} else 1e-4
            variants = [("64x64", ["--resolution", "64"], tol), ("dynamic", ["--dynamic-size"], tol)]
            if name.endswith("-tiny"):
                variants += [
                    ("fold-bn", ["--resolution", "64", "--fold-bn"], tol),
                    ("nhwc", ["--resolution", "64", "--input-layout", "nhwc"], tol),
                    ("f16", ["--resolution", "64", "--dtype", "f16"], 2e-2),
                ]
            for label, extra, tol in variants:
                out = os.path.join(tmp, f"{name}-{label}.onnx")
                cmd = [effnet, "convert", os.path.join(fixtures, case["file"]), "-o", out,
                       "--source-naming", case["naming"]] + extra
                if case.get("key") and case["key"].endswith("_ema"):
                    cmd += ["--key", case["key"]]
                run = subprocess.run(cmd, capture_output=True, text=True)
                if run.returncode != 0:
                    failed += 1
                    print(f"FAIL {name} {label}: effnet exited {run.returncode}: {run.stderr.strip()}")
                    continue
                try:
                    onnx.checker.check_model(onnx.load(out), full_check=True)
                    session = ort.InferenceSession(out, providers=["CPUExecutionProvider"])
                    x = io["input"].astype(np.float32)
                    if label == "nhwc":
                        x = x.transpose(0, 2, 3, 1).copy()
                    (y,) = session.run(None, {"input": x})
                except Exception as e:  # noqa: BLE001 - report any runtime failure
                    failed += 1
                    print(f"FAIL {name} {label}: {e}")
                    continue
                ref = io["output"].astype(np.float32)
                err = float(np.abs(y - ref).max() / np.abs(ref).max())
                ok = y.shape == ref.shape and err <= tol
                passed += ok
                failed += not ok
                print(f"{'ok  ' if ok else 'FAIL'} {name} {label}: max|diff|/max|ref| = {err:.2e} (≤ {tol:g})")
    print(f"onnx: {passed} passed, {failed} failed")
    return failed


if __name__ == "__main__":
    sys.exit(1 if main(sys.argv[1], sys.argv[2]) else 0)
