#!/bin/bash
# The driver of sql/orders_spark.py in client mode (Spark runs a Python application's driver
# in client mode only on a standalone cluster), in the foreground: the spark-driver service
# of compose/spark.yml. Each start resumes both queries from their checkpoints
# (CHECKPOINT_DIR, a volume), so a driver drill's revert (the container started again) is the
# resubmission. The Kafka connector comes from SPARK_PACKAGES (--packages); empty with
# KAFKA_IO=adapter (compose/standin: no Maven here).
set -euo pipefail
args=(
  --master "${SPARK_MASTER_URL:-spark://spark-master:7077}"
  --deploy-mode client
  --name firedrill-orders
  --conf spark.driver.host="${SPARK_DRIVER_HOST:-spark-driver}"
  --conf spark.driver.bindAddress=0.0.0.0
  --conf spark.driver.memory=512m
  --conf spark.executor.memory=512m
  --conf spark.executor.cores=1
  --conf spark.cores.max=2
  --conf spark.ui.port=4040
  --conf spark.port.maxRetries=0
)
if [[ -n ${SPARK_PACKAGES:-} ]]; then
  args+=(--packages "$SPARK_PACKAGES" --conf spark.jars.ivy="${SPARK_IVY_DIR:-/var/lib/spark/ivy}")
fi
cd "$(dirname "$0")"
exec "${SPARK_HOME:-/opt/spark}/bin/spark-submit" "${args[@]}" orders_spark.py
