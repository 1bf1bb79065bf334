#!/bin/bash
# Stand-in for the official Flink image's /docker-entrypoint.sh (the part this repo's compose
# file uses): `jobmanager ARGS` and `taskmanager ARGS` run in the foreground with every
# `key: value` line of FLINK_PROPERTIES as a dynamic property (-D key=value) before ARGS;
# anything else is executed as given (e.g. `flink run ...`). Runs as root: the stand-in has
# no users, the official image drops to user flink.
set -euo pipefail
props=()
while IFS= read -r line; do
  line=${line%%#*}
  [[ $line =~ ^[[:space:]]*([^:[:space:]]+)[[:space:]]*:[[:space:]]*(.*[^[:space:]])[[:space:]]*$ ]] || continue
  props+=(-D "${BASH_REMATCH[1]}=${BASH_REMATCH[2]}")
done <<<"${FLINK_PROPERTIES:-}"
case ${1:-} in
  jobmanager) shift; exec "$FLINK_HOME/bin/jobmanager.sh" start-foreground "${props[@]}" "$@" ;;
  taskmanager) shift; exec "$FLINK_HOME/bin/taskmanager.sh" start-foreground "${props[@]}" "$@" ;;
  *) exec "$@" ;;
esac
