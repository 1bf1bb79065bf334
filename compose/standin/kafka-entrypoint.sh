#!/bin/bash
# Stand-in for the official apache/kafka image's entrypoint: tansu (a Kafka-protocol broker)
# configured from the same environment. The listener named by KAFKA_INTER_BROKER_LISTENER_NAME
# (INTERNAL) is tansu's own; the EXTERNAL one is served by `tansu proxy`, which advertises the
# EXTERNAL address, as Kafka's second listener would. Data: sqlite in KAFKA_LOG_DIRS.
set -euo pipefail
# listener NAME LIST: the host:port of listener NAME in a Kafka listener list.
listener() {
  local item
  IFS=, read -ra items <<<"$2"
  for item in "${items[@]}"; do
    [[ ${item%%://*} == "$1" ]] && { echo "${item#*://}"; return; }
  done
  echo "stand-in kafka: no $1 listener in '$2'" >&2
  exit 64
}
internal=${KAFKA_INTER_BROKER_LISTENER_NAME:?}
bind=$(listener "$internal" "${KAFKA_LISTENERS:?}")
advertised=$(listener "$internal" "${KAFKA_ADVERTISED_LISTENERS:?}")
data=${KAFKA_LOG_DIRS:-/var/lib/kafka/data}
mkdir -p "$data"
cd "$data"
if [[ ${KAFKA_ADVERTISED_LISTENERS} == *EXTERNAL://* ]]; then
  ext_bind=$(listener EXTERNAL "$KAFKA_LISTENERS")
  ext_advertised=$(listener EXTERNAL "$KAFKA_ADVERTISED_LISTENERS")
  /opt/tansu/tansu proxy --listener-url "tcp://0.0.0.0:${ext_bind##*:}" \
    --advertised-listener-url "tcp://$ext_advertised" --origin-url "tcp://127.0.0.1:${bind##*:}" &
fi
# sqlite path relative to the working directory (tansu 0.6 prefixes the cwd to absolute ones).
exec /opt/tansu/tansu broker --listener-url "tcp://0.0.0.0:${bind##*:}" \
  --advertised-listener-url "tcp://$advertised" --storage-engine sqlite://tansu.db
