#!/bin/bash
# Stand-in for Apache Kafka's bin/kafka-topics.sh, the two uses this repo's compose file makes
# of it: `--list` (healthcheck) and `--create --if-not-exists --topic T --partitions N`,
# translated to tansu's `topic` commands.
set -euo pipefail
server= topic= partitions=1 create=false list=false
while (($#)); do
  case $1 in
    --bootstrap-server) server=$2; shift 2 ;;
    --topic) topic=$2; shift 2 ;;
    --partitions) partitions=$2; shift 2 ;;
    --replication-factor) shift 2 ;;
    --create) create=true; shift ;;
    --list) list=true; shift ;;
    --if-not-exists) shift ;;
    *) echo "stand-in kafka-topics.sh: unsupported argument $1" >&2; exit 64 ;;
  esac
done
if $list; then
  exec /opt/tansu/tansu topic list --broker "tcp://$server"
fi
$create || { echo "stand-in kafka-topics.sh: only --list and --create are supported" >&2; exit 64; }
if out=$(/opt/tansu/tansu topic create --broker "tcp://$server" --partitions "$partitions" "$topic" 2>&1); then
  echo "Created topic $topic."
elif grep -qiE 'already.?exists' <<<"$out"; then
  echo "Topic $topic already exists."
else
  printf '%s\n' "$out" >&2
  exit 1
fi
