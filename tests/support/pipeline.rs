//! The pipeline check both engines must pass: 2,000 orders produced with plain rdkafka go
//! through the running job (Flink's `sql/orders.sql` or Spark's `sql/orders_spark.py`) and
//! come out right: every order once in `processed_orders` with its value and category, and
//! the 5-second windows of `order_stats` adding up per product.

use std::{
    collections::{HashMap, HashSet},
    time::Duration,
};

use super::{eventually, kafka};

const ORDERS: usize = 2_000;
/// (product suffix, unit price in cents): quantities 1..=3 of these hit every category.
const PRODUCTS: &[(&str, i64)] = &[
    ("tv", 45_000),
    ("book", 1_999),
    ("pen", 250),
    ("desk", 120_000),
    ("lamp", 6_050),
];

fn category(cents: i64) -> &'static str {
    if cents > 100_000 {
        "premium"
    } else if cents > 10_000 {
        "standard"
    } else {
        "basic"
    }
}

fn cents(v: &serde_json::Value) -> i64 {
    (v.as_f64().expect("a number") * 100.0).round() as i64
}

/// Produces the orders and checks both outputs; the job must be running.
pub async fn orders_come_out_computed_and_windows_add_up() {
    let nonce = format!(
        "itest{:x}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis()
    );
    let processed = kafka::reader_at_end("processed_orders");
    let stats = kafka::reader_at_end("order_stats");
    let producer = kafka::producer();

    // Expected per order and per product.
    let mut expected: HashMap<String, (i64, &str)> = HashMap::new();
    let mut per_product: HashMap<String, (i64, i64)> = HashMap::new();
    let now = chrono::Utc::now();
    let mut sends = Vec::with_capacity(ORDERS);
    for i in 0..ORDERS {
        let (suffix, price) = PRODUCTS[i % PRODUCTS.len()];
        let quantity = (i % 3) as i64 + 1;
        let product = format!("{nonce}-{suffix}");
        let id = format!("{nonce}-{i}");
        let value = quantity * price;
        expected.insert(id.clone(), (value, category(value)));
        let e = per_product.entry(product.clone()).or_default();
        e.0 += 1;
        e.1 += value;
        let event_time =
            (now + chrono::Duration::milliseconds(i as i64)).format("%Y-%m-%d %H:%M:%S%.3f");
        let json = format!(
            r#"{{"order_id":"{id}","customer_id":"c{i}","product":"{product}","quantity":{quantity},"price":{}.{:02},"event_time":"{event_time}"}}"#,
            price / 100,
            price % 100
        );
        let producer = producer.clone();
        sends.push(tokio::spawn(async move {
            kafka::send(&producer, "orders", &id, &json).await
        }));
    }
    for send in sends {
        send.await.unwrap();
    }

    // Event time only advances with new orders: keep a trickle of filler orders going so
    // the last 5-second windows close (watermark = max event time - 5 s).
    let filler = {
        let producer = producer.clone();
        let nonce = nonce.clone();
        tokio::spawn(async move {
            for i in 0.. {
                let t = chrono::Utc::now().format("%Y-%m-%d %H:%M:%S%.3f");
                let json = format!(
                    r#"{{"order_id":"{nonce}-filler-{i}","customer_id":"c","product":"{nonce}-filler","quantity":1,"price":1.00,"event_time":"{t}"}}"#
                );
                kafka::send(&producer, "orders", &format!("filler-{i}"), &json).await;
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        })
    };

    // Every order arrives in processed_orders, computed right.
    let mut seen = HashSet::new();
    let mut wrong = Vec::new();
    let processed = std::sync::Mutex::new(processed);
    eventually(
        "all 2,000 orders in processed_orders",
        Duration::from_secs(120),
        || {
            let batch = kafka::poll_json(&processed.lock().unwrap(), Duration::from_millis(500));
            for record in batch {
                let Some(id) = record["order_id"]
                    .as_str()
                    .filter(|id| expected.contains_key(*id))
                else {
                    continue;
                };
                let (value, cat) = expected[id];
                if cents(&record["order_value"]) != value || record["order_category"] != cat {
                    wrong.push(record.clone());
                }
                assert!(
                    record["processed_at"]
                        .as_str()
                        .and_then(firedrill::order::parse_timestamp)
                        .is_some(),
                    "processed_at is not a timestamp: {record}"
                );
                seen.insert(id.to_string());
            }
            std::future::ready((seen.len() == ORDERS).then_some(()))
        },
    )
    .await;
    assert!(
        wrong.is_empty(),
        "{} records computed wrong, e.g. {}",
        wrong.len(),
        wrong[0]
    );

    // The windows add up to the same count and revenue per product.
    let mut windows: HashMap<String, (i64, i64)> = HashMap::new();
    let stats = std::sync::Mutex::new(stats);
    eventually(
        "order_stats windows adding up to every order",
        Duration::from_secs(90),
        || {
            for w in kafka::poll_json(&stats.lock().unwrap(), Duration::from_millis(500)) {
                let Some(product) = w["product"]
                    .as_str()
                    .filter(|p| per_product.contains_key(*p))
                else {
                    continue;
                };
                let e = windows.entry(product.to_string()).or_default();
                e.0 += w["order_count"].as_i64().expect("order_count");
                e.1 += cents(&w["revenue"]);
            }
            std::future::ready((windows == per_product).then_some(()))
        },
    )
    .await;
    filler.abort();
    let total: i64 = windows.values().map(|(n, _)| n).sum();
    assert_eq!(total, ORDERS as i64);
}
