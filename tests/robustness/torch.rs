//! Hostile PyTorch and safetensors files.
