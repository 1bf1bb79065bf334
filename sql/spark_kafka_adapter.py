"""Kafka for Spark without the official connector: the local stack's stand-in for
spark-sql-kafka-0-10, which no package registry reachable here ships.

A Spark 4 Python data source on confluent-kafka (its bundled librdkafka talks to tansu), named
`firedrill_kafka` and taking the official connector's option names, so sql/orders_spark.py
only swaps the format name:

  reader  kafka.bootstrap.servers, subscribe (one topic), kafka.group.id, kafka.fetch.max.wait.ms,
          startingOffsets (earliest | latest; the official connector's default, latest)
          columns: value (binary, as received: a malformed record is handed on, never raised),
          partition, offset
  writer  kafka.bootstrap.servers, topic, kafka.enable.idempotence; writes the `value` column

Reader: an offset is {topic: {partition: next offset}}, as the official connector's, and lives in
Spark's checkpoint. A new query starts at the group's committed offsets, else at startingOffsets.
Each micro-batch reads [start, end) of every partition, one Spark task per partition, where end
is the broker's high watermark when the batch was planned. Once Spark has committed a batch,
its end is also committed to the consumer group, so lag is visible from outside like Flink's
(which commits when a checkpoint completes). While the broker is unreachable the reader reports
no new data and skips group commits instead of failing the query; a read task that gets nothing
for 30 s fails, and Spark retries it (4 attempts).

Writer: produces every row and flushes before its task reports success, so a batch whose
tasks succeed is in Kafka; a failed task makes Spark rerun the batch: at-least-once.

Not here (the official connector has them): several topics or patterns, rate limits
(maxOffsetsPerTrigger), keys, headers, timestamps, security settings.
"""

import sys

# Used as ck.Name: sql/orders_spark.py pickles this module by value, and the C classes of
# confluent_kafka (module "cimpl") only unpickle when referenced through their package.
import confluent_kafka as ck
from pyspark.sql.datasource import (
    DataSource,
    DataSourceStreamReader,
    DataSourceStreamWriter,
    InputPartition,
    WriterCommitMessage,
)

TIMEOUT_S = 30


class KafkaDataSource(DataSource):
    @classmethod
    def name(cls):
        return "firedrill_kafka"

    def schema(self):
        return "value binary, partition int, offset long"

    def streamReader(self, schema):
        return KafkaStreamReader(self.options)

    def streamWriter(self, schema, overwrite):
        return KafkaStreamWriter(self.options)


class OffsetRange(InputPartition):
    def __init__(self, partition, start, end):
        self.partition, self.start, self.end = partition, start, end


def client_config(options, **extra):
    # log_level 2: librdkafka logs each failed reconnect (~30 lines/s per client while the broker
    # is down); the errors that matter reach this module as exceptions and are printed once.
    config = {"bootstrap.servers": options["kafka.bootstrap.servers"], "log_level": 2, **extra}
    if "kafka.fetch.max.wait.ms" in options:  # librdkafka's name for the Java client's setting
        config["fetch.wait.max.ms"] = int(options["kafka.fetch.max.wait.ms"])
    return config


class KafkaStreamReader(DataSourceStreamReader):
    """initialOffset, latestOffset, partitions and commit run in one long-lived Python process
    beside the driver (which keeps the consumer); read runs in the executors."""

    def __init__(self, options):
        self.options = options
        self.topic = options["subscribe"]
        self.group = options.get("kafka.group.id")  # committed to only if given
        self.client_group = self.group or "firedrill-kafka-adapter"
        self._consumer = None
        self._latest = None

    @property
    def consumer(self):
        if self._consumer is None:
            self._consumer = ck.Consumer(client_config(self.options, **{
                "group.id": self.client_group, "enable.auto.commit": False}))
        return self._consumer

    def topic_partitions(self):
        meta = self.consumer.list_topics(self.topic, timeout=TIMEOUT_S).topics[self.topic]
        if meta.error is not None:
            raise ck.KafkaException(meta.error)
        return [ck.TopicPartition(self.topic, p) for p in sorted(meta.partitions)]

    def initialOffset(self):
        tps = self.topic_partitions()
        committed = self.consumer.committed(tps, timeout=TIMEOUT_S) if self.group else tps
        earliest = self.options.get("startingOffsets", "latest") == "earliest"
        offsets = {}
        for tp in committed:
            low, high = self.consumer.get_watermark_offsets(ck.TopicPartition(self.topic, tp.partition), timeout=TIMEOUT_S)
            offsets[str(tp.partition)] = tp.offset if tp.offset >= 0 else low if earliest else high
        return {self.topic: offsets}

    def latestOffset(self):
        try:
            self._latest = {self.topic: {
                str(tp.partition): self.consumer.get_watermark_offsets(tp, timeout=TIMEOUT_S, cached=False)[1]
                for tp in self.topic_partitions()
            }}
        except ck.KafkaException as error:
            # Broker unreachable: nothing new for now (Spark plans no batch) rather than a failed query.
            if self._latest is None:
                raise
            print(f"firedrill_kafka: {self.topic}: latest offsets unknown, no new batch: {error}", file=sys.stderr)
        return self._latest

    def partitions(self, start, end):
        # A partition added since `start` is read from its beginning.
        return [OffsetRange(int(p), start[self.topic].get(p, 0), e)
                for p, e in end[self.topic].items() if e > start[self.topic].get(p, 0)]

    def read(self, partition):
        consumer = ck.Consumer(client_config(self.options, **{
            "group.id": self.client_group, "enable.auto.commit": False,
            "enable.partition.eof": True}))
        try:
            consumer.assign([ck.TopicPartition(self.topic, partition.partition, partition.start)])
            position = partition.start
            while position < partition.end:
                msg = consumer.poll(TIMEOUT_S)
                if msg is None:
                    raise TimeoutError(f"{self.topic}/{partition.partition}: nothing at offset {position} "
                                       f"in {TIMEOUT_S}s (batch ends at {partition.end})")
                if msg.error() and msg.error().code() == ck.KafkaError._PARTITION_EOF:
                    break  # the rest of the range holds no records (e.g. transaction markers)
                if msg.error():
                    raise ck.KafkaException(msg.error())
                if msg.offset() >= partition.end:
                    break
                position = msg.offset() + 1
                yield (msg.value(), partition.partition, msg.offset())
        finally:
            consumer.close()

    def commit(self, end):
        if self.group:
            offsets = [ck.TopicPartition(self.topic, int(p), o) for p, o in end[self.topic].items()]
            try:
                self.consumer.commit(offsets=offsets, asynchronous=False)
            except ck.KafkaException as error:
                # Only the outside view of lag: the offsets are in Spark's checkpoint already, and
                # the next batch's commit covers these.
                print(f"firedrill_kafka: {self.group}: offsets not committed: {error}", file=sys.stderr)

    def stop(self):
        if self._consumer is not None:
            self._consumer.close()


class KafkaStreamWriter(DataSourceStreamWriter):
    def __init__(self, options):
        self.options = options
        self.topic = options["topic"]

    def write(self, iterator):
        idempotence = self.options.get("kafka.enable.idempotence", "false").lower() == "true"
        producer = ck.Producer(client_config(self.options, **{"enable.idempotence": idempotence, "linger.ms": 5}))
        errors = []

        def on_delivery(error, _msg):
            if error is not None:
                errors.append(error)

        for row in iterator:
            while True:
                try:
                    producer.produce(self.topic, row.value, on_delivery=on_delivery)
                    break
                except BufferError:  # local queue full: let deliveries drain it
                    producer.poll(0.1)
            producer.poll(0)
        if producer.flush(TIMEOUT_S) > 0:
            raise ck.KafkaException(f"{self.topic}: records still undelivered after {TIMEOUT_S}s")
        if errors:
            raise ck.KafkaException(errors[0])
        return WriterCommitMessage()
