"""Load effnet's Keras exports into Keras and compare them with the source framework's own
output on the same input (the `<model>-io.safetensors` the fixture generators wrote).

For every fixture holding the reference model's weights (Keras `.h5`/`.keras`/`.weights.h5`,
TF checkpoints and SavedModels, timm-tf and the TF release checkpoint), effnet writes:

- a Keras 3 `.keras`, loaded with `keras.saving.load_model` (no custom objects), whose layers
  must be named, typed and ordered as `keras.applications` builds the same network;
- a Keras 3 `.weights.h5`, loaded with `load_weights` into
  `keras.applications`' EfficientNet built with the fixture's width, depth and classes;
- a tf-keras full-model `.h5`, loaded the same way and with `load_model` (Keras 3 reads
  tf-keras' layout with the code tf-keras uses; with `--tf-keras` also into tf_keras itself).

Each is written in f32 and f16 and must compute the source's output: max|diff| / max|ref|
≤ 1e-4 (f16 weights: 2e-2).
Keras sources take their 0–255 input as stored; PyTorch and TF-release sources take it with
ImageNet's mean/std undone, which effnet is told with --input-mean/--input-std. Sources Keras
cannot express without a change (symmetric padding, a dropped shortcut, ReLU) must be refused
with the flag that allows it, and Fused-MBConv/Lite families refused with the reason.

Usage: python check_keras.py EFFNET_BINARY [--tf-keras] FIXTURE_DIR [FIXTURE_DIR …]
Prints one line per check and closes with "keras: N passed, N failed".
"""

import json
import os
import struct
import subprocess
import sys
import tempfile
import zipfile

os.environ.setdefault("KERAS_BACKEND", "jax")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

import numpy as np  # noqa: E402
import keras  # noqa: E402
from keras.src.applications import efficientnet_v2  # noqa: E402
from keras.src.applications.efficientnet import EfficientNet  # noqa: E402

DTYPES = {"F32": np.float32, "F16": np.float16, "F64": np.float64, "I64": np.int64}
IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], np.float32)
MEAN_STD_FLAGS = ["--input-mean", "0.485,0.456,0.406", "--input-std", "0.229,0.224,0.225"]


def read_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    out = {}
    for name, info in header.items():
        if name == "__metadata__" or info["dtype"] not in DTYPES:
            continue
        begin, end = info["data_offsets"]
        out[name] = np.frombuffer(data[8 + n + begin : 8 + n + end], dtype=DTYPES[info["dtype"]]).reshape(info["shape"])
    return out


def v2_rows(case):
    """The EfficientNetV2 base of a V2 fixture (`efficientnetv2-b0`, `efficientnetv2-s`), or None."""
    family = case.get("family", "")
    if not family.startswith("efficientnetv2"):
        return None
    return "efficientnetv2-b0" if family == "efficientnetv2-base" else family


def application(case, activation, module="keras", preprocessing=True):
    """keras.applications' EfficientNet (V2 for V2 fixtures) of the fixture's width, depth,
    classes and size."""
    r = case.get("resolution", 64)
    rows = v2_rows(case)
    if rows is not None:
        arguments = case["arguments"]
        width = arguments.get("width_coefficient", arguments.get("channel_multiplier"))
        depth = arguments.get("depth_coefficient", arguments.get("depth_multiplier"))
        # The model's name picks V2's preprocessing: `-b…` ImageNet's, else x/128 − 1.
        name = "efficientnetv2-tiny-b0" if rows == "efficientnetv2-b0" else "efficientnetv2-tiny-s"
        if module == "tf_keras":
            from tf_keras.src.applications import efficientnet_v2 as module_v2
            key = "model_name"
        else:
            module_v2, key = efficientnet_v2, "name"
        return module_v2.EfficientNetV2(
            width_coefficient=width, depth_coefficient=depth, default_size=r,
            blocks_args=module_v2.DEFAULT_BLOCKS_ARGS[rows], weights=None, input_shape=(r, r, 3),
            classes=case.get("num_classes", arguments.get("num_classes", arguments.get("classes"))),
            classifier_activation=activation, include_preprocessing=preprocessing, **{key: name})
    kwargs = dict(width_coefficient=case["width"], depth_coefficient=case["depth"], default_size=r,
                  weights=None, input_shape=(r, r, 3), classes=case["num_classes"],
                  classifier_activation=activation)
    if module == "tf_keras":
        from tf_keras.src.applications.efficientnet import EfficientNet as TfKerasEfficientNet
        return TfKerasEfficientNet(model_name="efficientnet", **kwargs)
    return EfficientNet(name="efficientnet", **kwargs)


def effnet(binary, *args):
    return subprocess.run([binary, *args], capture_output=True, text=True)


def expect_refusal(binary, tmp, source, case, needle, extra=()):
    out = os.path.join(tmp, f"{case['case']}-refused.keras")
    run = effnet(binary, "convert", source, "-o", out, *extra)
    ok = run.returncode == 2 and needle in run.stderr and not os.path.exists(out)
    return ok, f"{'ok  ' if ok else 'FAIL'} {case['case']} → .keras refused (exit {run.returncode}): {run.stderr.strip()[:160]}"


def main(binary, fixture_dirs, tf_keras):
    passed = failed = 0

    def report(ok, line):
        nonlocal passed, failed
        passed += ok
        failed += not ok
        print(line, flush=True)

    with tempfile.TemporaryDirectory() as tmp:
        for fixtures in fixture_dirs:
            for case_file in sorted(os.listdir(fixtures)):
                if not case_file.endswith(".json"):
                    continue
                case = json.load(open(os.path.join(fixtures, case_file)))
                name = case.get("case")
                if not name or "file" not in case or "exporter" in case:
                    continue
                if name.endswith(("-train-ema", "-f16-overflow")):
                    continue
                if "width" not in case and v2_rows(case) is None:
                    continue
                source = os.path.join(fixtures, case["file"])
                naming = case["naming"]
                family = case.get("family", "efficientnet")
                v2 = v2_rows(case) is not None
                # What Keras cannot express without a change: refused, naming the flag.
                if family != "efficientnet" and not v2:
                    if name.endswith("-tiny") or naming == "keras":
                        report(*expect_refusal(binary, tmp, source, case, "cannot be written as",
                                               ["--source-naming", naming, "--resolution", "64"]))
                    continue
                if case.get("activation", "swish").split(" ")[0] not in ("swish", "silu"):
                    report(*expect_refusal(binary, tmp, source, case, "activation"))
                    continue
                if naming in ("torchvision", "timm"):
                    if name.endswith("-tiny"):
                        report(*expect_refusal(binary, tmp, source, case, "--allow-padding-change",
                                               ["--source-naming", naming]))
                    continue
                if naming == "lukemelas":
                    if name.endswith("-tiny"):
                        report(*expect_refusal(binary, tmp, source, case, "--allow-shortcut-change"))
                    continue
                if naming not in ("keras", "timm-tf", "tf-official") or "io" not in case:
                    continue
                if naming == "timm-tf" and not name.endswith("-tiny"):
                    continue
                if "width" not in case and not v2:
                    continue
                io = read_safetensors(os.path.join(fixtures, case["io"]))
                # A weights file of V2 goes into a model without preprocessing fed `prepared`
                # input: V2 weights files hold none, and the applications' built-in (x/128 − 1
                # for S/M/L) need not be the source's.
                if naming == "keras":
                    x, ref, activation, extra = io["input_nhwc"], io["output"], "softmax", []
                    prepared = None
                else:
                    # The framework's normalized input, back to 0–255 pixels.
                    pixels = (io["input"] * IMAGENET_STD.reshape(1, 3, 1, 1) + IMAGENET_MEAN.reshape(1, 3, 1, 1)) * 255
                    x, ref, activation = pixels.transpose(0, 2, 3, 1).copy(), io["output"], None
                    prepared = io["input"].transpose(0, 2, 3, 1).copy()
                    extra = ["--source-naming", naming] + MEAN_STD_FLAGS
                if case.get("key"):
                    extra += ["--key", case["key"]]
                # A model that does not record its size (weights only, custom width): stated.
                extra += ["--resolution", str(case.get("resolution", 64))]
                ref = ref.astype(np.float32)
                for label, suffix, flags, tol in (
                    ("keras", ".keras", [], 1e-4),
                    ("weights.h5", ".weights.h5", [], 1e-4),
                    ("weights.h5 f16", ".weights.h5", ["--dtype", "f16"], 2e-2),
                    ("tf-keras h5", ".h5", [], 1e-4),
                    ("keras f16", ".keras", ["--dtype", "f16"], 2e-2),
                    ("tf-keras h5 f16", ".h5", ["--dtype", "f16"], 2e-2),
                ):
                    out = os.path.join(tmp, f"{name}-{label.replace(' ', '-')}{suffix}")
                    run = effnet(binary, "convert", source, "-o", out, *extra, *flags)
                    if run.returncode != 0:
                        report(False, f"FAIL {name} {label}: effnet exited {run.returncode}: {run.stderr.strip()}")
                        continue
                    try:
                        if suffix == ".keras":
                            model = keras.saving.load_model(out)
                            # Keras numbers a session's unnamed layers (`rescaling_3`): a fresh one.
                            keras.utils.clear_session()
                            expected = application(case, activation)
                            got = [(l.name, type(l).__name__) for l in model.layers]
                            want = [(l.name, type(l).__name__) for l in expected.layers]
                            # (A V2-S applications model preprocesses x/128 − 1 with one layer;
                            # a PyTorch source's ImageNet normalization takes two.)
                            start = lambda layers: [n for n, _ in layers].index("stem_conv")
                            got, want = got[start(got):], want[start(want):]
                            if got != want:
                                diff = next((g, w) for g, w in zip(got + [None] * len(want), want + [None] * len(got)) if g != w)
                                raise AssertionError(f"layers differ from keras.applications': {diff}")
                            meta = json.loads(zipfile.ZipFile(out).read("metadata.json"))
                            if "effnet.input_preprocessing" not in meta.get("effnet", {}):
                                raise AssertionError("metadata.json does not record the preprocessing")
                            y = np.asarray(model(x, training=False), np.float32)
                        elif v2 and prepared is not None:
                            model = application(case, activation, preprocessing=False)
                            model.load_weights(out)
                            y = np.asarray(model(prepared, training=False), np.float32)
                        else:
                            model = application(case, activation)
                            model.load_weights(out)
                            y = np.asarray(model(x, training=False), np.float32)
                    except Exception as e:  # noqa: BLE001 - report any load or run failure
                        report(False, f"FAIL {name} {label}: {type(e).__name__}: {str(e)[:300]}")
                        continue
                    err = float(np.abs(y - ref).max() / np.abs(ref).max())
                    report(y.shape == ref.shape and err <= tol,
                           f"{'ok  ' if err <= tol else 'FAIL'} {name} {label}: max|diff|/max|ref| = {err:.2e} (≤ {tol:g})")
                    if suffix == ".h5":
                        # The full-model file: load_model, its preprocessing in its config.
                        try:
                            whole = keras.saving.load_model(out)
                            y = np.asarray(whole(x, training=False), np.float32)
                            err = float(np.abs(y - ref).max() / np.abs(ref).max())
                            report(err <= tol, f"{'ok  ' if err <= tol else 'FAIL'} {name} {label} load_model: {err:.2e} (≤ {tol:g})")
                        except Exception as e:  # noqa: BLE001
                            report(False, f"FAIL {name} {label} load_model: {type(e).__name__}: {str(e)[:300]}")
                    if suffix == ".h5" and tf_keras:
                        try:
                            import tf_keras as tfk
                            whole = tfk.models.load_model(out)
                            y = whole(x, training=False).numpy()
                            err = float(np.abs(y - ref).max() / np.abs(ref).max())
                            report(err <= tol, f"{'ok  ' if err <= tol else 'FAIL'} {name} {label} tf_keras load_model: {err:.2e} (≤ {tol:g})")
                        except Exception as e:  # noqa: BLE001
                            report(False, f"FAIL {name} {label} tf_keras load_model: {type(e).__name__}: {str(e)[:300]}")
                        try:
                            fed = prepared if v2 and prepared is not None else x
                            legacy = application(case, activation, "tf_keras", preprocessing=fed is x)
                            legacy.load_weights(out)
                            y = legacy(fed, training=False).numpy()
                            err = float(np.abs(y - ref).max() / np.abs(ref).max())
                            report(err <= tol, f"{'ok  ' if err <= tol else 'FAIL'} {name} {label} in tf_keras: {err:.2e} (≤ {tol:g})")
                        except Exception as e:  # noqa: BLE001
                            report(False, f"FAIL {name} {label} in tf_keras: {type(e).__name__}: {str(e)[:300]}")
                # Round trip: the written .keras read by effnet and written again as .weights.h5.
                first = os.path.join(tmp, f"{name}-keras.keras")
                if os.path.exists(first):
                    again = os.path.join(tmp, f"{name}-again.weights.h5")
                    # (A V2 weights file holds no preprocessing: read back, it gets the
                    # applications' own, which for a PyTorch V2-S source is not the source's.)
                    check = [] if v2 and prepared is not None else ["--check"]
                    run = effnet(binary, "convert", first, "-o", again, *check)
                    if run.returncode != 0:
                        report(False, f"FAIL {name} round trip: {run.stderr.strip()}")
                    else:
                        fed = prepared if v2 and prepared is not None else x
                        model = application(case, activation, preprocessing=fed is x)
                        model.load_weights(again)
                        y = np.asarray(model(fed, training=False), np.float32)
                        err = float(np.abs(y - ref).max() / np.abs(ref).max())
                        report(err <= 1e-4, f"{'ok  ' if err <= 1e-4 else 'FAIL'} {name} .keras → effnet → .weights.h5: {err:.2e} (≤ 1e-4)")
    print(f"keras: {passed} passed, {failed} failed")
    return failed


if __name__ == "__main__":
    args = sys.argv[1:]
    use_tf_keras = "--tf-keras" in args
    args = [a for a in args if a != "--tf-keras"]
    sys.exit(1 if main(args[0], args[1:], use_tf_keras) else 0)
