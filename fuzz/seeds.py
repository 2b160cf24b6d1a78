"""Hand-made seeds for the structure-aware targets (`just fuzz-seeds` runs this)."""
import os
import random

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")


def put(target, name, data):
    os.makedirs(os.path.join(ROOT, target), exist_ok=True)
    with open(os.path.join(ROOT, target, name), "wb") as f:
        f.write(data)


# pickle_nested: [flags] then (op, arg) pairs; op 24 repeats the next op (arg+1)*1000 times.
put("pickle_nested", "nested-tuples", bytes([1, 0, 1, 24, 149, 12, 0]))
put("pickle_nested", "self-list", bytes([0, 2, 0, 14, 0, 24, 99, 15, 0, 24, 99, 8, 0]))
put("pickle_nested", "wide-dict", bytes([1, 3, 0, 4, 0, 24, 99, 1, 7, 11, 0]))
put("pickle_nested", "tensors", bytes([5, 3, 0, 1, 1, 23, 6, 9, 0, 1, 2, 23, 7, 9, 0, 1, 3, 23, 31, 9, 0]))
put("pickle_nested", "modules", bytes([1, 3, 0, 1, 1, 22, 0, 9, 0]))
put("pickle_nested", "deep-marks", bytes([0, 24, 20, 4, 0]))
put("pickle_nested", "deep-lists", bytes([1, 2, 0, 24, 199, 2, 0, 24, 199, 8, 0]))

# zip: byte 0 picks torch (0), keras (1) or raw (2).
tensor = [1, 0, 0, 4, 0, 1, 4, 1]  # one tensor: key 0, float, numel 4, offset 0, rank 1, (4,), (1,)
storages = [0, 16] + [1] * 5 * 1  # storage 0: 16 bytes stored; 1..5 absent
put("zip", "torch-one-tensor", bytes([0] + tensor + [2] + [0, 16, 1, 1, 1, 1, 1] + [0, 0, 0, 0]))
put("zip", "torch-deflated", bytes([0] + tensor + [3] + [2, 16, 1, 1, 1, 1, 1] + [0, 0, 0, 0]))
put("zip", "torch-many-entries", bytes([0] + tensor + [2] + [0, 16, 1, 1, 1, 1, 1] + [3, 0x10, 0x27, 0, 0, 0]))
put("zip", "torch-bad-crc", bytes([0] + tensor + [2] + [0, 16, 1, 1, 1, 1, 1] + [0, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0]))
put("zip", "torch-overlap", bytes([0] + tensor + [2] + [0, 16, 1, 1, 1, 1, 1] + [0, 1, 1, 1, 1, 40, 0, 0, 0, 0, 0]))
put("zip", "keras-fixture", bytes([1, 0, 0, 0, 0]))
put("zip", "keras-deflated", bytes([1, 0x84, 0, 0, 0]))
put("zip", "keras-dotdot", bytes([1, 0, 4, 0, 0, 0, 0]))
put("zip", "keras-many", bytes([1, 0x42, 0x20, 0x00, 3, 0x10, 0x27, 0, 0, 0]))
random.seed(15)
for i in range(4):
    put("zip", f"random-{i}", bytes(random.randrange(256) for _ in range(64)))

# state_file: @F, @O, @B are the folder, a sibling folder and their parent.
for i, path in enumerate(
    [
        "ckpt", "../outside/ckpt", "@O/ckpt", "@F/ckpt", "@B/top", "sub/inner",
        "@F/../outside/other", "..\\/outside/ckpt", "./ckpt", "@B/folderx/ckpt", "/", "",
    ]
):
    put("state_file", f"state-{i}", f'model_checkpoint_path: "{path}"\nall_model_checkpoint_paths: "{path}"\n'.encode())

# output: plants, path components, inputs and force, write action.
for i in range(16):
    put("output", f"random-{i}", bytes(random.randrange(256) for _ in range(24)))
put("output", "out-onnx", bytes([0, 1, 2, 0, 0x01, 0]))
put("output", "over-input", bytes([0, 2, 0, 9, 0x41, 0]))
