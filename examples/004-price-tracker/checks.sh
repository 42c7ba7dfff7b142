#!/usr/bin/env bash
# The Keeper team's "useful CLI commands" (kafka-topics, kafka-console-consumer,
# kafka-consumer-groups, GetOffsetShell), done with the `vltava` CLI against Vltava or any
# Kafka-compatible cluster. Read-only: it creates, changes and commits nothing.
#
#   KAFKA_BOOTSTRAP_SERVERS=localhost:9092 ./checks.sh
#
# VLTAVA_BIN: the vltava binary (default: `vltava` on PATH). Every check runs; the exit status is
# non-zero if any failed (e.g. before the first event, when the topics and groups do not exist).
set -uo pipefail

VLTAVA="${VLTAVA_BIN:-vltava}"
export VLTAVA_BOOTSTRAP="${KAFKA_BOOTSTRAP_SERVERS:-${VLTAVA_BOOTSTRAP:-localhost:9092}}"
PRICES="${KAFKA_TOPIC_PRICES:-price-updates}"
DEALS="${KAFKA_TOPIC_DEALS:-deal-updates}"
GROUP="${KAFKA_CONSUMER_GROUP:-keeper-consumer-group}"

failed=0
check() {
  local title="$1"; shift
  printf '\n== %s\n' "$title"
  "$@" || { failed=$((failed + 1)); echo "!! failed: $*" >&2; }
}

check "Topics (kafka-topics --list)" \
  "$VLTAVA" topics list

check "Topic details: partitions, leader, offsets (kafka-topics --describe --topic $PRICES)" \
  "$VLTAVA" topics describe "$PRICES"

check "First 5 price updates (kafka-console-consumer --from-beginning --max-messages 5)" \
  "$VLTAVA" consume "$PRICES" --from-beginning --max-messages 5 \
  --format '{partition}/{offset} key={key} {value}'

check "Consumer groups (kafka-consumer-groups --list)" \
  "$VLTAVA" groups list

check "Group $GROUP with lag (kafka-consumer-groups --describe --group $GROUP)" \
  "$VLTAVA" groups describe "$GROUP"

check "Group $GROUP-deals with lag" \
  "$VLTAVA" groups describe "$GROUP-deals"

check "Message counts per partition (GetOffsetShell)" \
  "$VLTAVA" offsets "$PRICES" "$DEALS"

if [ "$failed" -ne 0 ]; then
  echo "$failed check(s) failed" >&2
  exit 1
fi
