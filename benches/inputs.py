"""Full-size B7 inputs in the containers `just fixtures-full fixtures-full-tf` does not write
(those write the zip `.pth`, safetensors, `.h5`, `.keras`, `.weights.h5` and checkpoints), so
that benches/conversions.sh and benches/reports.py cover every container effnet reads (random
weights; written by the frameworks themselves into target/bench-b7/):

  torch: timm `tf_efficientnet_b7` as a legacy (pre-1.6) `.pth`, and as an ONNX model exported
         by `torch.onnx.export` (TorchScript exporter, opset 17, 600×600).
  tf:    tf-keras `EfficientNetB7(weights=None)` as a SavedModel.

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
    torch.save(model.state_dict(), os.path.join(out, "timm-tf-b7-legacy.pth"),
               _use_new_zipfile_serialization=False)
    x = torch.rand(1, 3, 600, 600)
    torch.onnx.export(model, (x,), os.path.join(out, "timm-tf-b7.onnx"), opset_version=17,
                      input_names=["input"], output_names=["logits"], dynamo=False)


def tf_inputs(out):
    import tf_keras

    saved = os.path.join(out, "b7-savedmodel")
    shutil.rmtree(saved, ignore_errors=True)
    tf_keras.applications.EfficientNetB7(weights=None).save(saved, save_format="tf")


def main(which, out):
    os.makedirs(out, exist_ok=True)
    {"torch": torch_inputs, "tf": tf_inputs}[which](out)


if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] not in ("torch", "tf"):
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "..", "target", "bench-b7"))
