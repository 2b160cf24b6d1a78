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
