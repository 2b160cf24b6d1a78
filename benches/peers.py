"""The Python pipelines effnet replaces, one job per subcommand, for `benches/peers.sh`.

Usage: python peers.py JOB INPUT OUTPUT
  torch-f16       torch.load → .half() → safetensors.torch.save_file
  torch-onnx      torchvision efficientnet_b7 + load_state_dict → torch.onnx.export (TorchScript exporter)
  fvcore          torchvision efficientnet_b7 → fvcore FlopCountAnalysis(...).total() at 600×600
  tf2onnx         tf-keras load_model(.h5) → tf2onnx.convert.from_keras
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")


def main(job, src, out):
    if job == "torch-f16":
        import torch
        from safetensors.torch import save_file
        state = torch.load(src, map_location="cpu", weights_only=True)
        save_file({k: (v.half() if v.is_floating_point() else v).contiguous() for k, v in state.items()}, out)
    elif job in ("torch-onnx", "fvcore"):
        import torch
        import torchvision
        model = torchvision.models.efficientnet_b7()
        model.load_state_dict(torch.load(src, map_location="cpu", weights_only=True))
        model.eval()
        x = torch.randn(1, 3, 600, 600)
        if job == "torch-onnx":
            torch.onnx.export(model, x, out, opset_version=17, dynamo=False)
        else:
            from fvcore.nn import FlopCountAnalysis
            flops = FlopCountAnalysis(model, x)
            flops.unsupported_ops_warnings(False)
            flops.uncalled_modules_warnings(False)
            print(flops.total())
    elif job == "tf2onnx":
        import tf_keras
        import tf2onnx
        import tensorflow as tf
        model = tf_keras.models.load_model(src, compile=False)
        spec = (tf.TensorSpec((None, 600, 600, 3), tf.float32, name="input"),)
        tf2onnx.convert.from_keras(model, input_signature=spec, opset=17, output_path=out)
    else:
        sys.exit(f"unknown job {job}")


if __name__ == "__main__":
    main(*sys.argv[1:4])
