#!/usr/bin/env bash
# The whole test suite: Rust unit and in-process tests, then the real-client suite against the
# release binary. Run from anywhere; expects the clients installed (.ci/run installs them).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --workspace
cargo test --release --workspace 2>&1 | tee /tmp/vltava-cargo-test.log
export VLTAVA_BIN="${VLTAVA_BIN:-$PWD/target/release/vltava}"
set +e
python3 -m pytest tests/clients -q -p no:cacheprovider
rc=$?
set -e
if [ "$rc" -eq 5 ]; then
  echo "pytest collected no tests" >&2
  exit 1
fi
exit "$rc"
