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
    {{venv}}/bin/python fixtures/generate/torch_fixtures.py fixtures/torch
    {{venv}}/bin/python fixtures/generate/hostile_fixtures.py fixtures/hostile
    {{venv}}/bin/python fixtures/generate/audit_fixtures.py fixtures/audit

# Full-size B0–B7 files for the opt-in tier (not committed).
fixtures-full: fixtures-env
    {{venv}}/bin/python fixtures/generate/full_fixtures.py target/fixtures-full

# The opt-in tier over target/fixtures-full.
test-full:
    cargo test --release --locked -p effnet-import --test full_size -- --ignored

# Load effnet's safetensors exports into torchvision/timm/EfficientNet-PyTorch (strict=True)
# and compare outputs with the source framework's (needs the fixture venv; not in CI).
check-torch: fixtures-env
    cargo build --release --locked
    {{venv}}/bin/python fixtures/generate/check_torch.py target/release/effnet fixtures/torch

# Seed the fuzz corpora from the fixtures (fuzz/README.md).
fuzz-seeds:
    mkdir -p fuzz/corpus/pickle fuzz/corpus/open
    cp fixtures/torch/*-tiny.pth fixtures/torch/*-tiny.safetensors fixtures/torch/*.pt fixtures/keras/*.h5 fixtures/keras/*.keras fuzz/corpus/open/
    python3 -c "import zipfile,glob,os;[open('fuzz/corpus/pickle/'+os.path.basename(f)+'.pkl','wb').write(zipfile.ZipFile(f).read([n for n in zipfile.ZipFile(f).namelist() if n.endswith('data.pkl')][0])) for f in glob.glob('fixtures/torch/*.pth')+glob.glob('fixtures/torch/*.pt') if zipfile.is_zipfile(f)]"
