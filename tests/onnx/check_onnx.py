"""Run effnet's ONNX exports in onnxruntime and compare them with the source framework's own
output on the same input (the `<model>-io.safetensors` the fixture generator wrote with torch).

For every PyTorch fixture holding the reference model's weights (every container, scheme and
dtype), effnet converts it to ONNX twice: explicit pads at 64×64, and a dynamic input size
(`auto_pad=SAME_UPPER` for TF "same" models). Each must pass onnx.checker and reproduce the
reference output: max|diff| / max|ref| ≤ 1e-4 (2e-2 when the fixture's weights are f16/bf16).

Keras and TensorFlow-checkpoint fixtures are checked the same way (their ONNX keeps Keras'
preprocessing and softmax; the official release's graph takes normalized input and gives
logits), and once more through a timm-tf safetensors file: TF → timm-tf → ONNX, with Keras'
preprocessing applied outside and softmax on the logits, must still match the source.

ONNX import (issue 19): the f32 exports of every `-tiny` model (explicit pads, dynamic size
with SAME_UPPER, folded BatchNorm, NHWC input) and the torch.onnx fixtures of `fixtures/onnx/`
are read back by effnet and written again, as safetensors in the matching scheme then ONNX, and
as ONNX directly; both must reproduce the source framework's output within 1e-4.

Usage: python check_onnx.py EFFNET_BINARY FIXTURE_DIR [FIXTURE_DIR …]
Prints one line per check and closes with "N passed, N failed".
"""

import json
import os
import re
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


def softmax(x):
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def round_trip(effnet, tmp, onnx_path, scheme, io, label, size=64):
    """An ONNX model read by effnet and written back: safetensors in the matching scheme, then
    ONNX again (size × size); the result, and a direct ONNX re-export, run in onnxruntime against
    the source framework's output. Returns a list of (ok, line)."""
    results = []
    st = os.path.join(tmp, f"{label}.safetensors")
    back = os.path.join(tmp, f"{label}-back.onnx")
    again = os.path.join(tmp, f"{label}-again.onnx")
    target = "timm-tf" if scheme in ("keras", "tf-official") else scheme
    runs = [
        [effnet, "convert", onnx_path, "-o", st, "--naming", target],
        [effnet, "convert", st, "-o", back, "--resolution", str(size)],
        [effnet, "convert", onnx_path, "-o", again, "--resolution", str(size)],
    ]
    for cmd in runs:
        run = subprocess.run(cmd, capture_output=True, text=True)
        if run.returncode != 0:
            return [(False, f"FAIL {label} round trip: {' '.join(cmd[1:3])} exited {run.returncode}: {run.stderr.strip()}")]
    ref = io["output"].astype(np.float32)
    for path, what in ((back, f"→ {target} safetensors → ONNX"), (again, "→ ONNX again")):
        try:
            onnx.checker.check_model(onnx.load(path), full_check=True)
            session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
            x = io["input"].astype(np.float32)
            if scheme == "keras" and path == back:
                results.append((True, f"ok   {label} {what}: skipped (Keras preprocessing is not part of a state_dict)"))
                continue
            (y,) = session.run(None, {"input": x})
        except Exception as e:  # noqa: BLE001 - report any runtime failure
            results.append((False, f"FAIL {label} {what}: {e}"))
            continue
        err = float(np.abs(y - ref).max() / np.abs(ref).max())
        ok = y.shape == ref.shape and err <= 1e-4
        results.append((ok, f"{'ok  ' if ok else 'FAIL'} {label} {what}: max|diff|/max|ref| = {err:.2e} (≤ 1e-04)"))
    return results


def main(effnet, fixture_dirs):
    passed = failed = 0
    with tempfile.TemporaryDirectory() as tmp:
      for fixtures in fixture_dirs:
        for case_file in sorted(os.listdir(fixtures)):
            if not case_file.endswith(".json"):
                continue
            case = json.load(open(os.path.join(fixtures, case_file)))
            name = case["case"]
            if "exporter" in case:
                # An ONNX file a framework exported (fixtures/onnx): read by effnet and written back.
                io = read_safetensors(os.path.join(fixtures, case["io"]))
                source = os.path.join(fixtures, case["file"])
                # Also as onnxruntime's offline optimizer leaves it (basic level: constants
                # folded, BatchNorm fused, standard opset).
                optimized = os.path.join(tmp, f"{name}-ort-basic.onnx")
                options = ort.SessionOptions()
                options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
                options.optimized_model_filepath = optimized
                ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])
                for path, label in ((source, name), (optimized, f"{name}-ort-basic")):
                    for ok, line in round_trip(effnet, tmp, path, case["naming"], io, label,
                                               case.get("resolution", 64)):
                        passed += ok
                        failed += not ok
                        print(line)
                continue
            if name.endswith(("-train-ema", "-f16-overflow")):
                continue  # other weights than the reference model
            io = read_safetensors(os.path.join(fixtures, case.get("io", f"{case['naming']}-tiny-io.safetensors")))
            dtypes = {t["dtype"] for t in case["tensors"].values()}
            tol = 2e-2 if dtypes & {"f16", "bf16"} else 1e-4
            variants = [("64x64", ["--resolution", "64"], tol), ("dynamic", ["--dynamic-size"], tol)]
            if name.endswith("-tiny"):
                variants += [
                    ("fold-bn", ["--resolution", "64", "--fold-bn"], tol),
                    ("nhwc", ["--resolution", "64", "--input-layout", "nhwc"], tol),
                    # ReLU6 saturates where f16 rounding moves a value across 6 or 0: Lite's
                    # tiny models (4 classes) land within 5e-2.
                    ("f16", ["--resolution", "64", "--dtype", "f16"],
                     5e-2 if case.get("family") == "efficientnet-lite" else 2e-2),
                ]
            # Where the probabilities saturate, the reference holds logits: compare those.
            logits = "logits" in io
            for label, extra, tol in variants:
                out = os.path.join(tmp, f"{name}-{label}.onnx")
                cmd = [effnet, "convert", os.path.join(fixtures, case["file"]), "-o", out,
                       "--source-naming", case["naming"]] + extra + (["--logits"] if logits else [])
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
                ref = io["logits" if logits else "output"].astype(np.float32)
                err = float(np.abs(y - ref).max() / np.abs(ref).max())
                ok = y.shape == ref.shape and err <= tol
                passed += ok
                failed += not ok
                print(f"{'ok  ' if ok else 'FAIL'} {name} {label}: max|diff|/max|ref| = {err:.2e} (≤ {tol:g})")
                # effnet's own export read back (issue 19): every flag variant of the f32 tiny
                # models, written back as safetensors and ONNX.
                if name.endswith("-tiny") and label in ("64x64", "dynamic", "fold-bn", "nhwc") and not logits:
                    # (an NHWC model is written back with the IR's NCHW input)
                    for ok, line in round_trip(effnet, tmp, out, case["naming"], io, f"{name}-{label}-import"):
                        passed += ok
                        failed += not ok
                        print(line)
            keras = case["naming"] == "keras" and case.get("kind") in ("full", "tf2-object", "saved-model",
                                                                     "keras3-export")
            activation = case.get("activation", "swish").split(" ")[0]
            if activation not in ("swish", "silu") and case.get("family") != "efficientnet-lite":
                # PyTorch schemes compute swish (ReLU6 in Lite's): effnet must refuse, not convert.
                run = subprocess.run([effnet, "convert", os.path.join(fixtures, case["file"]), "-o",
                                      os.path.join(tmp, f"{name}.safetensors")], capture_output=True, text=True)
                ok = run.returncode == 2 and "activation" in run.stderr
                passed += ok
                failed += not ok
                print(f"{'ok  ' if ok else 'FAIL'} {name} to timm-tf refused: exit {run.returncode}: {run.stderr.strip()}")
            elif keras or case["naming"] == "tf-official":
                # TF → timm-tf safetensors → ONNX: Keras' preprocessing applied outside as
                # effnet's note states it and softmax after; the official graph takes the
                # normalized input and gives logits either way.
                st = os.path.join(tmp, f"{name}-timm-tf.safetensors")
                out = os.path.join(tmp, f"{name}-timm-tf.onnx")
                runs = [
                    subprocess.run([effnet, "convert", os.path.join(fixtures, case["file"]), "-o", st],
                                   capture_output=True, text=True),
                    subprocess.run([effnet, "convert", st, "-o", out, "--resolution", "64"],
                                   capture_output=True, text=True),
                ]
                bad = [r for r in runs if r.returncode != 0]
                if bad:
                    failed += 1
                    print(f"FAIL {name} via timm-tf: {bad[0].stderr.strip()}")
                    continue
                weights = read_safetensors(st)
                session = ort.InferenceSession(out, providers=["CPUExecutionProvider"])
                x = io["input"].astype(np.float32)
                if keras:
                    m = re.search(r"x · ([\d.e-]+), then \(x − \[(.*?)\]\) / sqrt\(\[(.*?)\]\)", runs[0].stdout)
                    if not m:
                        failed += 1
                        print(f"FAIL {name} via timm-tf: no preprocessing note in {runs[0].stdout!r}")
                        continue
                    scale = float(m.group(1))
                    mean = np.array([float(v) for v in m.group(2).split(",")], np.float32).reshape(1, 3, 1, 1)
                    var = np.array([float(v) for v in m.group(3).split(",")], np.float32).reshape(1, 3, 1, 1)
                    x = (x * scale - mean) / np.sqrt(var)
                (y,) = session.run(None, {"input": x})
                if keras:
                    y = softmax(y)
                ref = io["output"]
                err = float(np.abs(y - ref).max() / np.abs(ref).max())
                ok = err <= 1e-4 and len(weights) > 0
                passed += ok
                failed += not ok
                print(f"{'ok  ' if ok else 'FAIL'} {name} via timm-tf safetensors: max|diff|/max|ref| = {err:.2e} (≤ 1e-04)")
    print(f"onnx: {passed} passed, {failed} failed")
    return failed


if __name__ == "__main__":
    sys.exit(1 if main(sys.argv[1], sys.argv[2:]) else 0)
