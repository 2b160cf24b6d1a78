"""Full-size B7 inputs for the containers `just fixtures-full fixtures-full-tf` does not write,
so that benches/conversions.sh and benches/reports.py cover every container effnet reads
(random weights; written by the frameworks themselves into target/bench-b7/):

  torch: timm `tf_efficientnet_b7` as a zip `.pth`, a legacy (pre-1.6) `.pth`, and an ONNX
         model exported by `torch.onnx.export` (TorchScript exporter, opset 17).
  tf:    tf-keras `EfficientNetB7(weights=None)` as a `.h5`, a TF2 checkpoint and a SavedModel;
         Keras 3's as `.keras` and `.weights.h5`.

Usage: python benches/inputs.py torch|tf [OUT_DIR]   (torch: the fixtures venv; tf: the
TensorFlow one).
"""

import os
import shutil
import sys


def torch_inputs(out):
    import timm
    import torch

    torch.manual_seed(0)
    model = timm.create_model("tf_efficientnet_b7").eval()
    state = model.state_dict()
    torch.save(state, os.path.join(out, "timm-tf-b7.pth"))
    torch.save(state, os.path.join(out, "timm-tf-b7-legacy.pth"),
               _use_new_zipfile_serialization=False)
    x = torch.rand(1, 3, 600, 600)
    torch.onnx.export(model, (x,), os.path.join(out, "timm-tf-b7.onnx"), opset_version=17,
                      input_names=["input"], output_names=["logits"], dynamo=False)


def tf_inputs(out):
    import keras
    import tf_keras

    model = tf_keras.applications.EfficientNetB7(weights=None)
    model.save(os.path.join(out, "b7.h5"))
    ckpt = os.path.join(out, "b7-ckpt")
    shutil.rmtree(ckpt, ignore_errors=True)
    model.save_weights(os.path.join(ckpt, "ckpt"))
    saved = os.path.join(out, "b7-savedmodel")
    shutil.rmtree(saved, ignore_errors=True)
    model.save(saved, save_format="tf")
    k3 = keras.applications.EfficientNetB7(weights=None)
    k3.set_weights(model.get_weights())
    k3.save(os.path.join(out, "b7.keras"))
    k3.save_weights(os.path.join(out, "b7.weights.h5"))


def main(which, out):
    os.makedirs(out, exist_ok=True)
    {"torch": torch_inputs, "tf": tf_inputs}[which](out)


if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] not in ("torch", "tf"):
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "..", "target", "bench-b7"))
