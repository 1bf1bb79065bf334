"""End-to-end check of the running local stack: orders in, processed_orders and order_stats out.

Run with `compose/local/stack smoke`, with either engine (it provides a venv with confluent-kafka,
whose bundled librdkafka talks to tansu; Debian's kcat cannot). Produces a few orders with ids and products
unique to this run, plus two records the job must drop (not JSON, no event_time), then
"flush" orders on every partition until the 5 s windows close, and checks the values that come
out. Exits non-zero on the first missing or wrong record.
"""

import argparse
import json
import sys
import time
import uuid
from datetime import datetime, timezone
from decimal import Decimal

from confluent_kafka import Consumer, Producer, TopicPartition

ORDERS = [  # (quantity, price, expected category)
    (1, Decimal("50.00"), "basic"),
    (3, Decimal("40.00"), "standard"),
    (2, Decimal("600.00"), "premium"),
    (5, Decimal("19.99"), "basic"),
]


def ts(t: datetime) -> str:
    return t.strftime("%Y-%m-%d %H:%M:%S.") + f"{t.microsecond // 1000:03d}"


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bootstrap", default="127.0.0.1:9092")
    # Spark's micro-batches take seconds each on 2 busy cores, and a window closes a batch later.
    ap.add_argument("--timeout", type=float, default=90)
    # Other topics: to try a job against its own topics beside the running pipeline.
    ap.add_argument("--topics", default="orders,processed_orders,order_stats",
                    help="the input, processed and stats topics, comma-separated")
    args = ap.parse_args()
    orders, processed_topic, stats_topic = args.topics.split(",")

    run = uuid.uuid4().hex[:8]
    product = f"smoke-{run}"
    common = {"bootstrap.servers": args.bootstrap}
    producer = Producer({**common, "enable.idempotence": False, "linger.ms": 5})
    consumer = Consumer({**common, "group.id": f"smoke-{run}", "enable.auto.commit": False})

    # Start reading the outputs at their current end, so only this run's records are scanned.
    start = []
    for topic in (processed_topic, stats_topic):
        meta = consumer.list_topics(topic, timeout=10).topics[topic]
        for p in meta.partitions:
            _, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
            start.append(TopicPartition(topic, p, high))
    consumer.assign(start)

    now = datetime.now(timezone.utc).replace(tzinfo=None)
    sent = {}
    for i, (qty, price, category) in enumerate(ORDERS):
        order = {"order_id": f"{product}-{i}", "customer_id": f"c{i}", "product": product,
                 "quantity": qty, "price": float(price), "event_time": ts(now)}
        producer.produce(orders, json.dumps(order).encode(), key=order["order_id"].encode())
        sent[order["order_id"]] = (qty, price, category)
    producer.produce(orders, b"this is not json", partition=0)
    producer.produce(orders, json.dumps({"order_id": f"{product}-no-time"}).encode(), partition=1)
    producer.flush(10)
    print(f"run {run}: produced {len(sent)} orders + 2 records to drop at {ts(now)}")

    partitions = consumer.list_topics(orders, timeout=10).topics[orders].partitions
    processed, stats, deadline, next_flush = {}, None, time.monotonic() + args.timeout, 0.0
    while time.monotonic() < deadline and (len(processed) < len(sent) or stats is None):
        if time.monotonic() >= next_flush:  # move every partition's watermark forward
            t = ts(datetime.now(timezone.utc).replace(tzinfo=None))
            for p in partitions:
                flush = {"order_id": f"{product}-flush-{t}-{p}", "customer_id": "smoke",
                         "product": f"{product}-flush", "quantity": 1, "price": 0.01, "event_time": t}
                producer.produce(orders, json.dumps(flush).encode(), partition=p)
            producer.flush(10)
            next_flush = time.monotonic() + 1
        msg = consumer.poll(0.5)
        if msg is None or msg.error():
            continue
        record = json.loads(msg.value())
        if msg.topic() == processed_topic and record["order_id"] in sent:
            processed[record["order_id"]] = record
        elif msg.topic() == processed_topic and record["order_id"] == f"{product}-no-time":
            return fail(f"a record without event_time came out: {record}")
        elif msg.topic() == stats_topic and record["product"] == product:
            stats = record

    if len(processed) < len(sent):
        return fail(f"only {len(processed)}/{len(sent)} orders in processed_orders after {args.timeout}s")
    for order_id, (qty, price, category) in sent.items():
        r = processed[order_id]
        value = Decimal(str(r["order_value"]))
        if value != qty * price or r["order_category"] != category or not r["processed_at"]:
            return fail(f"wrong processed order {r}, expected value {qty * price} ({category})")
    print(f"processed_orders: {len(processed)} orders with the right value and category")
    if stats is None:
        return fail(f"no order_stats window for {product} after {args.timeout}s")
    want = (len(sent), sum(q for q, _, _ in sent.values()), sum(q * p for q, p, _ in sent.values()))
    got = (stats["order_count"], stats["total_quantity"], Decimal(str(stats["revenue"])))
    if got != want:
        return fail(f"wrong order_stats {stats}, expected count/quantity/revenue {want}")
    print(f"order_stats: {stats}")
    consumer.close()
    return 0


def fail(message: str) -> int:
    print(f"FAIL: {message}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
