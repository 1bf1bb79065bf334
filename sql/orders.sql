-- The order pipeline, one file for every way of running it (local stack, docker-compose).
-- Run by compose/local/flink/runner/Runner.java, which replaces ${NAME:-default} from the
-- environment before Flink sees the text:
--   KAFKA_BOOTSTRAP                broker list                     (local: tansu on 127.0.0.1:9092)
--   SINK_DELIVERY_GUARANTEE        at-least-once | exactly-once    (local: at-least-once, see below)
--   SINK_TRANSACTIONAL_ID_PREFIX   prefix of the sinks' transactional ids (used by exactly-once)
--   KAFKA_PRODUCER_IDEMPOTENCE     true | false; exactly-once needs true
-- tansu (local broker) never filters aborted transactions and its sqlite build panics when
-- idempotent producers reconnect, so locally the sinks run at-least-once without idempotence;
-- exactly-once is only meaningful against Apache Kafka.

SET 'pipeline.name' = 'firedrill-orders';
SET 'execution.checkpointing.interval' = '10 s';
SET 'execution.checkpointing.mode' = 'EXACTLY_ONCE';
SET 'table.local-time-zone' = 'UTC';

CREATE TABLE orders (
    order_id    STRING,
    customer_id STRING,
    product     STRING,
    quantity    INT,
    price       DECIMAL(10, 2),
    -- "yyyy-MM-dd HH:mm:ss.SSS", UTC
    event_time  TIMESTAMP(3),
    WATERMARK FOR event_time AS event_time - INTERVAL '5' SECOND
) WITH (
    'connector' = 'kafka',
    'topic' = 'orders',
    'properties.bootstrap.servers' = '${KAFKA_BOOTSTRAP:-127.0.0.1:9092}',
    'properties.group.id' = 'flink-order-processor',
    -- Resume from the group's committed offsets (committed when a checkpoint completes);
    -- a new group starts at the beginning.
    'scan.startup.mode' = 'group-offsets',
    'properties.auto.offset.reset' = 'earliest',
    -- How long the broker may hold a fetch that finds nothing new (the Kafka client's default
    -- is 500 ms). Apache Kafka answers as soon as records arrive; tansu, the local stack's
    -- broker, holds every fetch this long, so the local stack sets 20 ms (compose/local/stack).
    'properties.fetch.max.wait.ms' = '${KAFKA_FETCH_MAX_WAIT_MS:-500}',
    'format' = 'json',
    'json.timestamp-format.standard' = 'SQL',
    -- Unparseable records and fields become NULL instead of failing the job.
    'json.ignore-parse-errors' = 'true',
    'json.fail-on-missing-field' = 'false'
);

-- Records without an id or an event time cannot be accounted for, and a NULL rowtime makes
-- the window operator throw (a poison pill restarting the job forever): drop them here.
CREATE TEMPORARY VIEW valid_orders AS
SELECT * FROM orders WHERE order_id IS NOT NULL AND event_time IS NOT NULL;

CREATE TABLE processed_orders (
    order_id       STRING,
    customer_id    STRING,
    product        STRING,
    quantity       INT,
    price          DECIMAL(10, 2),
    order_value    DECIMAL(12, 2),
    order_category STRING,
    event_time     TIMESTAMP(3),
    processed_at   TIMESTAMP(3)
) WITH (
    'connector' = 'kafka',
    'topic' = 'processed_orders',
    'properties.bootstrap.servers' = '${KAFKA_BOOTSTRAP:-127.0.0.1:9092}',
    'properties.enable.idempotence' = '${KAFKA_PRODUCER_IDEMPOTENCE:-false}',
    'sink.delivery-guarantee' = '${SINK_DELIVERY_GUARANTEE:-at-least-once}',
    'sink.transactional-id-prefix' = '${SINK_TRANSACTIONAL_ID_PREFIX:-firedrill}-processed-orders',
    'format' = 'json',
    'json.timestamp-format.standard' = 'SQL',
    'json.encode.decimal-as-plain-number' = 'true'
);

CREATE TABLE order_stats (
    window_start   TIMESTAMP(3),
    window_end     TIMESTAMP(3),
    product        STRING,
    order_count    BIGINT,
    total_quantity BIGINT,
    revenue        DECIMAL(14, 2)
) WITH (
    'connector' = 'kafka',
    'topic' = 'order_stats',
    'properties.bootstrap.servers' = '${KAFKA_BOOTSTRAP:-127.0.0.1:9092}',
    'properties.enable.idempotence' = '${KAFKA_PRODUCER_IDEMPOTENCE:-false}',
    'sink.delivery-guarantee' = '${SINK_DELIVERY_GUARANTEE:-at-least-once}',
    'sink.transactional-id-prefix' = '${SINK_TRANSACTIONAL_ID_PREFIX:-firedrill}-order-stats',
    'format' = 'json',
    'json.timestamp-format.standard' = 'SQL',
    'json.encode.decimal-as-plain-number' = 'true'
);

EXECUTE STATEMENT SET
BEGIN

INSERT INTO processed_orders
SELECT
    order_id,
    customer_id,
    product,
    quantity,
    price,
    CAST(quantity * price AS DECIMAL(12, 2)) AS order_value,
    CASE
        WHEN quantity * price > 1000 THEN 'premium'
        WHEN quantity * price > 100 THEN 'standard'
        ELSE 'basic'
    END AS order_category,
    event_time,
    -- processing time; TIMESTAMP(3) in the session time zone, UTC
    LOCALTIMESTAMP AS processed_at
FROM valid_orders;

INSERT INTO order_stats
SELECT
    window_start,
    window_end,
    product,
    COUNT(*) AS order_count,
    SUM(CAST(quantity AS BIGINT)) AS total_quantity,
    CAST(SUM(quantity * price) AS DECIMAL(14, 2)) AS revenue
FROM TABLE(TUMBLE(TABLE valid_orders, DESCRIPTOR(event_time), INTERVAL '5' SECOND))
GROUP BY window_start, window_end, product;

END;
