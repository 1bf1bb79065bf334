//! The order model shared by the generator (which writes orders) and the audit (which reads
//! what Flink made of them): ids, the product catalogue, money in cents, the JSON wire
//! formats of `orders` and `processed_orders`, and Flink's timestamp format.
//!
//! Pure: no Kafka, no clocks (times are passed in as unix milliseconds).

use std::fmt;

use serde::Deserialize;

/// A product firedrill sells, with its list price.
#[derive(Debug, Clone, Copy)]
pub struct Product {
    /// Name written into `product`.
    pub name: &'static str,
    /// List price in cents.
    pub price_cents: u64,
}

/// The catalogue orders are drawn from: a spread of prices so that every category occurs.
pub const CATALOGUE: &[Product] = &[
    Product {
        name: "laptop",
        price_cents: 129_900,
    },
    Product {
        name: "phone",
        price_cents: 79_900,
    },
    Product {
        name: "camera",
        price_cents: 64_900,
    },
    Product {
        name: "tablet",
        price_cents: 49_900,
    },
    Product {
        name: "monitor",
        price_cents: 32_900,
    },
    Product {
        name: "watch",
        price_cents: 24_900,
    },
    Product {
        name: "headphones",
        price_cents: 19_900,
    },
    Product {
        name: "speaker",
        price_cents: 14_900,
    },
    Product {
        name: "keyboard",
        price_cents: 8_900,
    },
    Product {
        name: "mouse",
        price_cents: 3_900,
    },
    Product {
        name: "charger",
        price_cents: 2_500,
    },
    Product {
        name: "cable",
        price_cents: 1_200,
    },
];

/// `{run_id}-{seq}`: unique per run, and dense per run so the audit can track it compactly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OrderId<'a> {
    /// The generator run that produced the order.
    pub run_id: &'a str,
    /// 0, 1, 2, ... within the run.
    pub seq: u64,
}

impl<'a> OrderId<'a> {
    /// Splits `run-seq`; `None` when the id is not of firedrill's form.
    pub fn parse(id: &'a str) -> Option<OrderId<'a>> {
        let (run_id, seq) = id.rsplit_once('-')?;
        if run_id.is_empty() || seq.is_empty() || !seq.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        Some(OrderId {
            run_id,
            seq: seq.parse().ok()?,
        })
    }
}

impl fmt::Display for OrderId<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.run_id, self.seq)
    }
}

/// The order category the Flink job derives from the order value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Category {
    /// Value up to $100.
    Basic,
    /// Value above $100, up to $1000.
    Standard,
    /// Value above $1000.
    Premium,
}

impl Category {
    /// The category of an order worth `value_cents` (same thresholds as `sql/orders.sql`).
    pub fn of(value_cents: u64) -> Category {
        if value_cents > 100_000 {
            Category::Premium
        } else if value_cents > 10_000 {
            Category::Standard
        } else {
            Category::Basic
        }
    }

    /// The string Flink writes.
    pub fn as_str(self) -> &'static str {
        match self {
            Category::Basic => "basic",
            Category::Standard => "standard",
            Category::Premium => "premium",
        }
    }

    /// Parses what Flink wrote.
    pub fn parse(s: &str) -> Option<Category> {
        match s {
            "basic" => Some(Category::Basic),
            "standard" => Some(Category::Standard),
            "premium" => Some(Category::Premium),
            _ => None,
        }
    }
}

/// One order as the generator writes it into `orders`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Order {
    /// Generator run id (no `-` in it).
    pub run_id: String,
    /// Sequence number within the run.
    pub seq: u64,
    /// `cust-N`.
    pub customer: u32,
    /// Index into [`CATALOGUE`].
    pub product: usize,
    /// Units, at least 1.
    pub quantity: u32,
    /// Unit price in cents.
    pub price_cents: u64,
    /// When the order was placed, unix milliseconds.
    pub event_time_ms: i64,
}

impl Order {
    /// quantity x price, in cents: what the Flink job must compute as `order_value`.
    pub fn value_cents(&self) -> u64 {
        u64::from(self.quantity) * self.price_cents
    }

    /// The Kafka key: the order id, so that an order always lands in the same partition.
    pub fn key(&self) -> String {
        format!("{}-{}", self.run_id, self.seq)
    }

    /// The JSON value the SQL job's `orders` table reads, written without allocating per field.
    pub fn write_json(&self, out: &mut String) {
        use std::fmt::Write;
        out.clear();
        let _ = write!(
            out,
            r#"{{"order_id":"{}-{}","customer_id":"cust-{}","product":"{}","quantity":{},"price":{},"event_time":"{}"}}"#,
            self.run_id,
            self.seq,
            self.customer,
            CATALOGUE[self.product].name,
            self.quantity,
            Cents(self.price_cents),
            Timestamp(self.event_time_ms),
        );
    }
}

/// Cents printed as a decimal amount: `12345` -> `123.45`.
#[derive(Debug, Clone, Copy)]
pub struct Cents(pub u64);

impl fmt::Display for Cents {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:02}", self.0 / 100, self.0 % 100)
    }
}

/// A decimal amount read from JSON as cents, rejecting negatives, NaN and sub-cent values.
pub fn cents_from_decimal(amount: f64) -> Option<u64> {
    let cents = amount * 100.0;
    let rounded = cents.round();
    // DECIMAL(12,2) values are exact to the cent; anything else is not what Flink computed.
    if !amount.is_finite() || amount < 0.0 || (cents - rounded).abs() > 1e-6 * rounded.max(1.0) {
        return None;
    }
    Some(rounded as u64)
}

/// Unix milliseconds printed as Flink's SQL timestamp format, UTC: `2026-11-25 04:46:50.123`.
#[derive(Debug, Clone, Copy)]
pub struct Timestamp(pub i64);

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match chrono::DateTime::from_timestamp_millis(self.0) {
            Some(t) => write!(f, "{}", t.format("%Y-%m-%d %H:%M:%S%.3f")),
            None => write!(f, "invalid-time"),
        }
    }
}

/// Parses Flink's SQL timestamp format (UTC) back into unix milliseconds. Accepts a `T`
/// separator and fewer fractional digits too (ISO-8601 mode of the JSON format).
pub fn parse_timestamp(s: &str) -> Option<i64> {
    let s = s.trim_end_matches('Z');
    ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f"]
        .iter()
        .find_map(|fmt| chrono::NaiveDateTime::parse_from_str(s, fmt).ok())
        .map(|t| t.and_utc().timestamp_millis())
}

/// One record of `processed_orders`, as the audit reads it. Only the fields the audit checks
/// are kept; unknown fields are ignored (the job may add columns).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Processed {
    /// `run-seq`.
    pub order_id: String,
    /// Units.
    pub quantity: i64,
    /// Unit price as a decimal amount.
    pub price: f64,
    /// What Flink computed as quantity x price.
    pub order_value: f64,
    /// What Flink computed as the category.
    pub order_category: String,
    /// The order's event time.
    pub event_time: String,
    /// When Flink processed it.
    pub processed_at: String,
}

/// Why a `processed_orders` record could not be read. Each kind is a metric label value.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// No value at all (a tombstone or an empty message).
    #[error("record has no value")]
    Empty,
    /// Not JSON of the expected shape.
    #[error("not a processed order: {0}")]
    Json(#[from] serde_json::Error),
    /// A money field is not an amount in cents.
    #[error("field {0} is not an amount in cents")]
    Money(&'static str),
    /// A timestamp field does not parse.
    #[error("field {0} is not a timestamp")]
    Time(&'static str),
}

impl RecordError {
    /// Bounded label value.
    pub fn kind(&self) -> &'static str {
        match self {
            RecordError::Empty => "empty",
            RecordError::Json(_) => "json",
            RecordError::Money(_) => "money",
            RecordError::Time(_) => "time",
        }
    }
}

/// A `processed_orders` record with money in cents and times in unix milliseconds.
#[derive(Debug, Clone, PartialEq)]
pub struct ProcessedOrder {
    /// `run-seq` as written.
    pub order_id: String,
    /// Units as written by Flink.
    pub quantity: i64,
    /// Unit price in cents.
    pub price_cents: u64,
    /// Flink's order value in cents.
    pub value_cents: u64,
    /// Flink's category; `None` when it is not one of the three.
    pub category: Option<Category>,
    /// Event time, unix ms.
    pub event_time_ms: i64,
    /// Processing time, unix ms.
    pub processed_at_ms: i64,
}

impl ProcessedOrder {
    /// Parses a record value.
    pub fn parse(value: Option<&[u8]>) -> Result<ProcessedOrder, RecordError> {
        let value = value.filter(|v| !v.is_empty()).ok_or(RecordError::Empty)?;
        let raw: Processed = serde_json::from_slice(value)?;
        Ok(ProcessedOrder {
            price_cents: cents_from_decimal(raw.price).ok_or(RecordError::Money("price"))?,
            value_cents: cents_from_decimal(raw.order_value)
                .ok_or(RecordError::Money("order_value"))?,
            category: Category::parse(&raw.order_category),
            event_time_ms: parse_timestamp(&raw.event_time)
                .ok_or(RecordError::Time("event_time"))?,
            processed_at_ms: parse_timestamp(&raw.processed_at)
                .ok_or(RecordError::Time("processed_at"))?,
            quantity: raw.quantity,
            order_id: raw.order_id,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_ids_round_trip_and_reject_foreign_ids() {
        let id = OrderId::parse("r1a2b-42").unwrap();
        assert_eq!((id.run_id, id.seq), ("r1a2b", 42));
        assert_eq!(id.to_string(), "r1a2b-42");
        for bad in ["", "42", "-1", "run-", "run-x1", "run-1.5", "uuid-like-ab"] {
            assert_eq!(OrderId::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn categories_follow_the_sql_thresholds() {
        assert_eq!(Category::of(100_001), Category::Premium);
        assert_eq!(Category::of(100_000), Category::Standard);
        assert_eq!(Category::of(10_001), Category::Standard);
        assert_eq!(Category::of(10_000), Category::Basic);
        for c in [Category::Basic, Category::Standard, Category::Premium] {
            assert_eq!(Category::parse(c.as_str()), Some(c));
        }
    }

    #[test]
    fn orders_serialize_as_the_sql_job_reads_them() {
        let order = Order {
            run_id: "rx".into(),
            seq: 7,
            customer: 3,
            product: 0,
            quantity: 2,
            price_cents: 129_900,
            event_time_ms: 1_764_045_010_123,
        };
        let mut json = String::new();
        order.write_json(&mut json);
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v["order_id"], "rx-7");
        assert_eq!(v["customer_id"], "cust-3");
        assert_eq!(v["product"], "laptop");
        assert_eq!(v["quantity"], 2);
        assert_eq!(v["price"].as_f64(), Some(1299.0));
        assert_eq!(v["event_time"], "2025-11-25 04:30:10.123");
        assert_eq!(order.value_cents(), 259_800);
    }

    #[test]
    fn money_is_read_exactly_or_rejected() {
        assert_eq!(cents_from_decimal(1299.0), Some(129_900));
        assert_eq!(cents_from_decimal(0.1 + 0.2), Some(30));
        assert_eq!(cents_from_decimal(12.345), None);
        assert_eq!(cents_from_decimal(-1.0), None);
        assert_eq!(cents_from_decimal(f64::NAN), None);
        assert_eq!(Cents(5).to_string(), "0.05");
    }

    #[test]
    fn timestamps_round_trip() {
        let ms = 1_764_045_010_123;
        assert_eq!(parse_timestamp(&Timestamp(ms).to_string()), Some(ms));
        assert_eq!(parse_timestamp("2025-11-25T04:30:10.1Z"), Some(ms - 23));
        assert_eq!(parse_timestamp("yesterday"), None);
        // Flink trims trailing zeros of the fraction, down to none at all.
        assert_eq!(parse_timestamp("2025-11-25 04:30:10.12"), Some(ms - 3));
        assert_eq!(parse_timestamp("2025-11-25 04:30:10"), Some(ms - 123));
    }

    #[test]
    fn processed_records_parse_or_say_why_not() {
        let good = br#"{"order_id":"r-1","customer_id":"c","product":"laptop","quantity":2,"price":1299.00,"order_value":2598.00,"order_category":"premium","event_time":"2025-11-25 04:30:10.123","processed_at":"2025-11-25 04:30:10.456","extra":1}"#;
        let p = ProcessedOrder::parse(Some(good)).unwrap();
        assert_eq!(p.value_cents, 259_800);
        assert_eq!(p.category, Some(Category::Premium));
        assert_eq!(p.processed_at_ms - p.event_time_ms, 333);
        assert_eq!(ProcessedOrder::parse(None).unwrap_err().kind(), "empty");
        assert_eq!(
            ProcessedOrder::parse(Some(b"{")).unwrap_err().kind(),
            "json"
        );
        let bad_time = String::from_utf8_lossy(good).replace("2025-11-25 04:30:10.456", "soon");
        assert_eq!(
            ProcessedOrder::parse(Some(bad_time.as_bytes()))
                .unwrap_err()
                .kind(),
            "time"
        );
    }
}
