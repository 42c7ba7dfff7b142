#!/usr/bin/env bash
# Fuzzes request decoding and handling (fuzz/fuzz_targets/request.rs) for a bounded time.
# Usage: scripts/fuzz.sh [SECONDS]   (default 60). Needs cargo-fuzz (installed if missing).
# The stable toolchain is used with RUSTC_BOOTSTRAP=1 for the sanitizer flags cargo-fuzz passes.
# -timeout=30: the largest legitimate request (CreatePartitions to 10,000) takes about 3 s under
# AddressSanitizer on an idle machine of 2 cores, 12 s while builds run beside it.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-60}"
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
export RUSTC_BOOTSTRAP=1
mkdir -p fuzz/corpus/request
if [ -z "$(ls -A fuzz/seeds 2>/dev/null)" ]; then
  cargo build --release --bin vltava
  python3 fuzz/make_seeds.py target/release/vltava
fi
cargo fuzz run --fuzz-dir fuzz request fuzz/corpus/request fuzz/seeds -- \
  -max_total_time="$seconds" -rss_limit_mb=4096 -max_len=1048576 -timeout=30
# The data directories the fuzzed brokers left (vltava-fuzz-<pid>), but not a running one's.
for d in /dev/shm/vltava-fuzz-* "${TMPDIR:-/tmp}"/vltava-fuzz-*; do
  [ -d "$d" ] || continue
  kill -0 "${d##*-}" 2>/dev/null || rm -rf "$d"
done
echo "fuzz: no crash in ${seconds}s"
