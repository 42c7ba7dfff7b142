#!/usr/bin/env bash
# README's test command, and all that CI runs: installs what the suite needs (scripts/setup.sh:
# Debian packages, the Python venv in .venv, npm packages), then cargo fmt and clippy, a fuzz smoke
# run, the Rust unit and in-process tests, and the real-client suite against the release binary.
# Run from anywhere.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --release -- -D warnings
# Fuzz smoke run (libFuzzer is chatty: keep its log, show the summary).
if ! bash scripts/fuzz.sh 30 > /tmp/vltava-fuzz.log 2>&1; then
  tail -n 60 /tmp/vltava-fuzz.log
  exit 1
fi
tail -n 2 /tmp/vltava-fuzz.log
cargo build --release --workspace
cargo test --release --workspace 2>&1 | tee /tmp/vltava-cargo-test.log
export VLTAVA_BIN="${VLTAVA_BIN:-$PWD/target/release/vltava}"
set +e
.venv/bin/python -m pytest tests/clients -q -p no:cacheprovider
rc=$?
set -e
if [ "$rc" -eq 5 ]; then
  echo "pytest collected no tests" >&2
  exit 1
fi
exit "$rc"
