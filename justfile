# Developer tasks. CI runs .ci/run.

default: test

# The test command CI runs.
test:
    cargo test --workspace --locked

# Everything CI checks.
ci:
    bash .ci/run

lint:
    cargo fmt --all -- --check
    cargo clippy --workspace --all-targets --locked -- -D warnings

# Refresh the CLI output snapshots after an intended change (review the diff!).
snapshots:
    INSTA_UPDATE=always cargo test --workspace --locked

# Whole-command timings with hyperfine.
bench:
    benches/cli.sh

# In-process timings (criterion) of the pieces; full-size parts need `just fixtures-full fixtures-full-tf`.
bench-pieces:
    cargo bench --locked --bench pipeline

# `effnet run` against onnxruntime (CPU EP) on effnet's ONNX export, B0 224 and B7 600, same
# run, ratios printed (random-weight full-size models written by effnet; the .ci venv).
bench-exec:
    benches/exec.sh

# effnet against the Python pipelines it replaces, same run, ratios printed (needs the full-size
# fixtures; installs the peers into the fixture venvs).
bench-peers: fixtures-env fixtures-env-tf
    {{venv}}/bin/pip install -q -r benches/requirements-torch.txt
    {{venv-tf}}/bin/pip install -q -r benches/requirements-tf.txt
    benches/peers.sh

# A full-size B7 in every container `just fixtures-full fixtures-full-tf` leaves out (legacy
# `.pth`, torch.onnx export, SavedModel) into target/bench-b7/, for the two below.
bench-inputs: fixtures-env fixtures-env-tf
    {{venv}}/bin/pip install -q -r fixtures/generate/requirements-onnx.txt
    {{venv}}/bin/python benches/inputs.py torch
    {{venv-tf}}/bin/python benches/inputs.py tf

# Every conversion of a full-size B7 (every container into every format) against `cp` of its
# input, with peak RSS against the output's size (issue 22's table).
bench-conversions:
    benches/conversions.sh

# `inspect`, `cost` and `audit` of full-size files, whole process (issue 22's 50 ms target).
bench-reports:
    cargo build --release --locked --quiet
    python3 benches/reports.py

# The Python environment of the fixture generators (pinned versions).
venv := ".venv-fixtures"

fixtures-env:
    test -x {{venv}}/bin/python || python3 -m venv {{venv}}
    {{venv}}/bin/pip install -q -r fixtures/generate/requirements.txt

venv-tf := ".venv-tf"

fixtures-env-tf:
    test -x {{venv-tf}}/bin/python || python3 -m venv {{venv-tf}}
    {{venv-tf}}/bin/pip install -q -r fixtures/generate/requirements-tf.txt

# Regenerate the committed fixtures with the real frameworks.
fixtures: fixtures-env fixtures-env-tf
    {{venv-tf}}/bin/python fixtures/generate/keras_fixtures.py fixtures/keras
    {{venv-tf}}/bin/python fixtures/generate/tf_fixtures.py fixtures/tf fixtures/keras
    test -x .venv-keras33/bin/python || python3 -m venv .venv-keras33
    .venv-keras33/bin/pip install -q -r fixtures/generate/requirements-keras33.txt
    .venv-keras33/bin/python fixtures/generate/keras33_fixtures.py fixtures/tf
    {{venv}}/bin/python fixtures/generate/torch_fixtures.py fixtures/torch
    {{venv}}/bin/pip install -q -r fixtures/generate/requirements-onnx.txt
    {{venv}}/bin/python fixtures/generate/onnx_fixtures.py fixtures/torch fixtures/onnx
    {{venv}}/bin/python fixtures/generate/hostile_fixtures.py fixtures/hostile
    {{venv}}/bin/python fixtures/generate/audit_fixtures.py fixtures/audit
    {{venv-tf}}/bin/python fixtures/generate/hostile_tf_fixtures.py fixtures/hostile fixtures/tf fixtures/keras
    {{venv-tf}}/bin/python fixtures/generate/keras_deviation_fixtures.py fixtures/keras
    python3 fixtures/generate/lite_shape_fixture.py fixtures/torch
    {{venv}}/bin/pip install -q -r fixtures/generate/requirements-families.txt
    {{venv}}/bin/python fixtures/generate/family_fixtures.py fixtures/families
    {{venv-tf}}/bin/python fixtures/generate/keras_family_fixtures.py fixtures/families

# Full-size B0–B7 files for the opt-in tier (not committed).
fixtures-full: fixtures-env
    {{venv}}/bin/python fixtures/generate/full_fixtures.py target/fixtures-full

# Full-size Keras/TensorFlow files for the opt-in tier (not committed).
fixtures-full-tf: fixtures-env-tf
    {{venv-tf}}/bin/python fixtures/generate/full_tf_fixtures.py target/fixtures-full

# Full-size EfficientNet-Lite and EfficientNetV2 files (not committed; `--big` for V2-L/XL by hand).
fixtures-full-families: fixtures-env fixtures-env-tf
    {{venv}}/bin/pip install -q -r fixtures/generate/requirements-families.txt
    {{venv}}/bin/python fixtures/generate/full_family_fixtures.py torch target/fixtures-full/families
    {{venv-tf}}/bin/python fixtures/generate/full_family_fixtures.py keras target/fixtures-full/families

# The opt-in tier over target/fixtures-full (families: `just fixtures-full-families`).
test-full:
    cargo test --release --locked -p effnet-import --test full_size -- --ignored
    cargo test --release --locked --test families -- --ignored

# Load effnet's safetensors exports into torchvision/timm/EfficientNet-PyTorch (strict=True)
# and compare outputs with the source framework's (needs the fixture venv; not in CI).
check-torch: fixtures-env
    cargo build --release --locked
    {{venv}}/bin/python fixtures/generate/check_torch.py target/release/effnet fixtures/torch
    {{venv}}/bin/python fixtures/generate/check_torch_families.py target/release/effnet fixtures/families

# Load effnet's Keras exports into Keras 3 (TensorFlow backend) and into tf-keras itself
# (needs the TF fixture venv; .ci/run checks Keras 3 on JAX without tf-keras).
check-keras-tf: fixtures-env-tf
    cargo build --locked
    KERAS_BACKEND=tensorflow {{venv-tf}}/bin/python tests/keras/check_keras.py target/debug/effnet --tf-keras fixtures/keras fixtures/tf fixtures/torch fixtures/families

# Seed the fuzz corpora from the fixtures (fuzz/README.md).
fuzz-seeds:
    mkdir -p fuzz/corpus/pickle fuzz/corpus/open fuzz/corpus/safetensors fuzz/corpus/hdf5 fuzz/corpus/tf_index fuzz/corpus/saved_model fuzz/corpus/keras_config fuzz/corpus/pickle_nested fuzz/corpus/zip fuzz/corpus/state_file fuzz/corpus/output
    cp fixtures/torch/*-tiny.pth fixtures/torch/*-tiny.safetensors fixtures/torch/*.pt fixtures/keras/*.h5 fixtures/keras/*.keras fuzz/corpus/open/
    cp fixtures/torch/*.safetensors fixtures/hostile/*.safetensors fuzz/corpus/safetensors/
    cp fixtures/keras/*.h5 fixtures/tf/*.h5 fixtures/hostile/*.h5 fuzz/corpus/hdf5/
    for f in fixtures/tf/*/*.index fixtures/hostile/*.index; do cp "$f" "fuzz/corpus/tf_index/$(echo "$f" | tr / _)"; done
    for f in fixtures/tf/*/saved_model.pb; do cp "$f" "fuzz/corpus/saved_model/$(echo "$f" | tr / _)"; done
    python3 -c "import zipfile;open('fuzz/corpus/keras_config/keras3-tiny.json','wb').write(zipfile.ZipFile('fixtures/keras/keras3-tiny.keras').read('config.json'))"
    python3 -c "import zipfile,glob,os;[open('fuzz/corpus/pickle/'+os.path.basename(f)+'.pkl','wb').write(zipfile.ZipFile(f).read([n for n in zipfile.ZipFile(f).namelist() if n.endswith('data.pkl')][0])) for f in glob.glob('fixtures/torch/*.pth')+glob.glob('fixtures/torch/*.pt') if zipfile.is_zipfile(f)]"
    for f in fixtures/hostile/*.pth fixtures/hostile/*.keras; do [ "$(stat -c %s "$f")" -lt 1048576 ] && (printf '\002'; cat "$f") > "fuzz/corpus/zip/raw-$(basename "$f")" || true; done
    mkdir -p fuzz/corpus/onnx && cp fixtures/onnx/*.onnx fuzz/corpus/onnx/
    python3 fuzz/seeds.py

# Run one fuzz target for SECONDS (cargo-fuzz; not in CI). Files go through /dev/shm.
fuzz target seconds="300":
    cd fuzz && RUSTC_BOOTSTRAP=1 TMPDIR=/dev/shm cargo fuzz run -a {{target}} corpus/{{target}} -- -max_total_time={{seconds}} -detect_leaks=0 -max_len=1048576 -rss_limit_mb=1024 -timeout=5