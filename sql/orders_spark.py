"""The order pipeline of sql/orders.sql on Spark Structured Streaming, one file for every way of
running it. Same records in, same JSON out (field names, order, number and timestamp formats).

Environment:
  KAFKA_BOOTSTRAP             broker list                                 (127.0.0.1:9092)
  ORDERS_TOPIC, PROCESSED_TOPIC, STATS_TOPIC                              (orders, processed_orders, order_stats)
  CONSUMER_GROUP              group of the processed_orders query; the order_stats query reads
                              as CONSUMER_GROUP-stats                     (spark-order-processor)
  CHECKPOINT_DIR              one checkpoint per query below it; a restarted driver resumes there
  TRIGGER_INTERVAL            micro-batch interval                        (1 second)
  KAFKA_IO                    connector: Spark's spark-sql-kafka-0-10 (spark-submit --packages
                              org.apache.spark:spark-sql-kafka-0-10_2.13:4.0.1), which commits no
                              group offsets: progress lives in the checkpoint only;
                              adapter: sql/spark_kafka_adapter.py, the local stack's stand-in
                              (beside this file; it travels to the executors pickled), which
                              also commits each batch's end to the group
  GROUP_COMMITS               who commits each finished batch's end offsets to the query's group,
                              so that lag is visible from outside as Flink's is: `listener`
                              (a progress listener in the driver, with confluent-kafka; the
                              connector's default) or `source` (the adapter itself; its default)
  KAFKA_FETCH_MAX_WAIT_MS     how long the broker may hold an empty fetch (500; tansu: 20)
  STARTING_OFFSETS            a new query without committed group offsets starts at the
                              earliest or latest offset of `orders` (latest, Spark's default:
                              on a stack that ran Flink the topic holds its whole history)
  KAFKA_PRODUCER_IDEMPOTENCE  true | false (false: tansu's sqlite engine, see sql/orders.sql)
  READY_FILE                  if set, the application id is written to this file once both queries
                              have started reading (a new query's starting offsets are resolved
                              then: orders produced before it are not read, with `latest`)
  PROGRESS_LOG                if set, every query progress event is appended to this file as one
                              JSON line (Spark's REST API does not serve streaming progress)

Two queries, each reading the topic with its own checkpoint (Flink's statement set shares one
source): Spark gives a query one sink. Both sinks are at-least-once, like the local Flink job: a batch rerun after a failure writes
its records again. processed_at is the micro-batch's processing time (current_timestamp() is
fixed per batch), not each row's as in Flink. The watermark is Spark's: 5 s behind the largest
event time seen on any partition (Flink's follows the slowest partition), advanced between
batches; a window is appended once the watermark passes its end.
"""

import json
import os
import sys

from pyspark import cloudpickle
from pyspark.sql import SparkSession
from pyspark.sql.streaming import StreamingQueryListener

env = os.environ.get
BOOTSTRAP = env("KAFKA_BOOTSTRAP", "127.0.0.1:9092")
ORDERS_TOPIC = env("ORDERS_TOPIC", "orders")
PROCESSED_TOPIC = env("PROCESSED_TOPIC", "processed_orders")
STATS_TOPIC = env("STATS_TOPIC", "order_stats")
GROUP = env("CONSUMER_GROUP", "spark-order-processor")
CHECKPOINT_DIR = env("CHECKPOINT_DIR", "/tmp/firedrill-spark/checkpoints")
TRIGGER_INTERVAL = env("TRIGGER_INTERVAL", "1 second")
KAFKA_IO = env("KAFKA_IO", "connector")
STARTING_OFFSETS = env("STARTING_OFFSETS", "latest")
PROGRESS_LOG = env("PROGRESS_LOG")
READY_FILE = env("READY_FILE")
GROUP_COMMITS = env("GROUP_COMMITS", {"connector": "listener", "adapter": "source"}[KAFKA_IO])

FORMAT = {"connector": "kafka", "adapter": "firedrill_kafka"}[KAFKA_IO]
ORDER_SCHEMA = ("order_id STRING, customer_id STRING, product STRING, quantity INT, "
                "price DECIMAL(10, 2), event_time TIMESTAMP")
PARSE_OPTIONS = "map('timestampFormat', 'yyyy-MM-dd HH:mm:ss[.SSS]')"
# Flink writes nulls, not absent fields.
JSON_OPTIONS = "map('ignoreNullFields', 'false')"


def flink_time(column):
    """Flink's 'json.timestamp-format.standard' = 'SQL' (session time zone UTC): milliseconds
    without trailing zeros, no fraction at all on a whole second ("10:32:10", "10:32:10.12")."""
    return f"regexp_replace(date_format({column}, 'yyyy-MM-dd HH:mm:ss.SSS'), '[.]?0+$', '')"


class ProgressLog(StreamingQueryListener):
    """Spark's own account of each micro-batch (rows, rates, durations, watermark, offsets)."""

    def __init__(self, path):
        self.path = path

    def onQueryStarted(self, event):
        pass

    def onQueryProgress(self, event):
        with open(self.path, "a") as f:
            f.write(event.progress.json + "\n")

    def onQueryIdle(self, event):
        pass

    def onQueryTerminated(self, event):
        pass


class GroupCommits(StreamingQueryListener):
    """GROUP_COMMITS=listener: each committed batch's end offsets, as Spark's progress gives them
    ({topic: {partition: next offset}}, the connector's and the adapter's form), committed to
    the query's consumer group. The official connector keeps its offsets in the checkpoint only;
    this is what makes its lag visible to firedrill's lag monitor, as Flink's is."""

    def __init__(self, groups):
        import confluent_kafka  # only this way of committing needs it

        self.ck = confluent_kafka
        self.groups = groups  # query name -> group
        self.consumers = {}

    def onQueryStarted(self, event):
        pass

    def onQueryProgress(self, event):
        group = self.groups.get(event.progress.name)
        offsets = [self.ck.TopicPartition(topic, int(partition), int(offset))
                   for source in event.progress.sources
                   for topic, partitions in json.loads(source.endOffset or "{}").items()
                   for partition, offset in partitions.items()]
        if group is None or not offsets:
            return
        try:
            if group not in self.consumers:
                self.consumers[group] = self.ck.Consumer({
                    "bootstrap.servers": BOOTSTRAP, "group.id": group, "enable.auto.commit": False})
            self.consumers[group].commit(offsets=offsets, asynchronous=False)
        except self.ck.KafkaException as error:
            # Broker unreachable: the next batch's commit covers this one.
            print(f"group commit of {group} skipped: {error}", file=sys.stderr)

    def onQueryIdle(self, event):
        pass

    def onQueryTerminated(self, event):
        pass

def orders(spark, group):
    raw = (spark.readStream.format(FORMAT)
           .option("kafka.bootstrap.servers", BOOTSTRAP)
           .option("subscribe", ORDERS_TOPIC)
           # The adapter starts at and commits to the group it is given; the listener commits
           # for the connector (which would only name its consumers after it).
           .options(**({"kafka.group.id": group} if GROUP_COMMITS == "source" else {}))
           # A new query with no committed group offsets: where to start.
           .option("startingOffsets", STARTING_OFFSETS)
           .option("kafka.fetch.max.wait.ms", env("KAFKA_FETCH_MAX_WAIT_MS", "500"))
           .load())
    # Unparseable records and fields become NULL (never fail the query); records without an id
    # or an event time cannot be accounted for: drop them, as the Flink job does.
    return (raw.selectExpr(f"from_json(CAST(value AS STRING), '{ORDER_SCHEMA}', {PARSE_OPTIONS}) AS o")
            .where("o.order_id IS NOT NULL AND o.event_time IS NOT NULL")
            .select("o.*"))


def to_kafka(df, topic, name):
    return (df.writeStream.format(FORMAT)
            .queryName(name)
            .option("kafka.bootstrap.servers", BOOTSTRAP)
            .option("kafka.enable.idempotence", env("KAFKA_PRODUCER_IDEMPOTENCE", "false"))
            .option("topic", topic)
            .option("checkpointLocation", f"{CHECKPOINT_DIR}/{name}")
            .outputMode("append")
            .trigger(processingTime=TRIGGER_INTERVAL)
            .start())


def main():
    spark = (SparkSession.builder.appName("firedrill-orders")
             .config("spark.sql.session.timeZone", "UTC")
             # One task per Kafka partition is plenty; the default 200 would cost seconds a batch.
             .config("spark.sql.shuffle.partitions", "2")
             # Each query's rates, latency and watermark as driver metrics (/metrics/json/ on the UI).
             .config("spark.sql.streaming.metricsEnabled", "true")
             .getOrCreate())
    if KAFKA_IO == "adapter":
        import spark_kafka_adapter  # beside this file, so on the driver's path

        # Shipped inside the pickled data source: Spark's Python workers that plan the stream
        # do not get --py-files on their path.
        cloudpickle.register_pickle_by_value(spark_kafka_adapter)
        spark.dataSource.register(spark_kafka_adapter.KafkaDataSource)
    if PROGRESS_LOG:
        spark.streams.addListener(ProgressLog(PROGRESS_LOG))
    if GROUP_COMMITS == "listener":
        spark.streams.addListener(GroupCommits({
            "processed_orders": GROUP, "order_stats": f"{GROUP}-stats"}))

    orders(spark, GROUP).createOrReplaceTempView("valid_orders")
    # try_cast: Spark 4 runs ANSI SQL, where an overflowing CAST fails the query; Flink's gives NULL.
    processed = spark.sql(f"""
        SELECT to_json(named_struct(
            'order_id', order_id,
            'customer_id', customer_id,
            'product', product,
            'quantity', quantity,
            'price', price,
            'order_value', try_cast(quantity * price AS DECIMAL(12, 2)),
            'order_category', CASE
                WHEN quantity * price > 1000 THEN 'premium'
                WHEN quantity * price > 100 THEN 'standard'
                ELSE 'basic'
            END,
            'event_time', {flink_time('event_time')},
            'processed_at', {flink_time('current_timestamp()')}), {JSON_OPTIONS}) AS value
        FROM valid_orders""")

    orders(spark, f"{GROUP}-stats").withWatermark("event_time", "5 seconds").createOrReplaceTempView("stats_orders")
    stats = spark.sql(f"""
        SELECT to_json(named_struct(
            'window_start', {flink_time('window.start')},
            'window_end', {flink_time('window.end')},
            'product', product,
            'order_count', COUNT(*),
            'total_quantity', SUM(CAST(quantity AS BIGINT)),
            'revenue', try_cast(SUM(quantity * price) AS DECIMAL(14, 2))), {JSON_OPTIONS}) AS value
        FROM stats_orders
        GROUP BY window(event_time, '5 seconds'), product""")

    first = to_kafka(processed, PROCESSED_TOPIC, "processed_orders")
    # The second query starts once the first has run a batch or found nothing to read: started
    # together, both failed in 1 of 5 driver starts (java.io.OptionalDataException deserializing
    # their first tasks, at every retry), apparently the shared Python data source serialized
    # while the other query was setting it up.
    while (first.lastProgress is None and first.status["message"] != "Waiting for data to arrive"
           and not first.awaitTermination(0.5)):
        pass
    second = to_kafka(stats, STATS_TOPIC, "order_stats")
    if READY_FILE:
        while (second.lastProgress is None and second.status["message"] != "Waiting for data to arrive"
               and not second.awaitTermination(0.5)):
            pass
        with open(READY_FILE + ".partial", "w") as f:
            f.write(spark.sparkContext.applicationId + "\n")
        os.replace(READY_FILE + ".partial", READY_FILE)
    spark.streams.awaitAnyTermination()


if __name__ == "__main__":
    main()
