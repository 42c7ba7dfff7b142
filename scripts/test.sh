#!/usr/bin/env bash
# README's test command, and all that CI runs: installs what the suite needs (scripts/setup.sh:
# Debian packages, the Python venv in .venv, npm packages, Maven and Go dependencies), then cargo fmt
# and clippy, a fuzz smoke run, the Rust unit and in-process tests, and the real-client suites
# against the release binary: the Java client's (tests/jvm, Maven Surefire), franz-go's (tests/go,
# go test) and the pytest suite (tests/clients: librdkafka, kafka-python, aiokafka, KafkaJS, kcat,
# Kafka's own tools). Every suite runs even when one before it failed; the exit code is the first
# failure's.
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
# shellcheck source=scripts/go-env.sh
. scripts/go-env.sh
vltava_go_env
rc=0
set +e
(cd tests/jvm && mvn -B -ntp test)
r=$?; [ "$rc" -ne 0 ] || rc=$r
if [ -f tests/go/go.mod ]; then
  (cd tests/go && go test -count=1 -timeout 15m ./...)
  r=$?; [ "$rc" -ne 0 ] || rc=$r
fi
.venv/bin/python -m pytest tests/clients -q -p no:cacheprovider
r=$?
if [ "$r" -eq 5 ]; then
  echo "pytest collected no tests" >&2
  r=1
fi
[ "$rc" -ne 0 ] || rc=$r
set -e
exit "$rc"
