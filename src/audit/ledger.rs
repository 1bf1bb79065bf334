//! TEMPORARY placeholder until the real ledger lands (not committed).
pub use crate::order::Category;
use std::collections::HashMap;
pub struct LedgerConfig {
    pub sla_ms: u64,
    pub lost_after_ms: u64,
}
pub struct Seen {
    pub value_cents: u64,
    pub category: Option<Category>,
}
#[derive(Debug)]
pub enum Outcome {
    Processed {
        late: bool,
        ack_to_seen_ms: Option<u64>,
    },
    Duplicate,
    Unexpected,
    Invalid {
        value_ok: bool,
        category_ok: bool,
    },
}
#[derive(Debug, Clone, Default)]
pub struct Totals {
    pub sent: u64,
    pub acked: u64,
    pub failed: u64,
    pub processed: u64,
    pub duplicates: u64,
    pub unexpected: u64,
    pub invalid: u64,
    pub late: u64,
    pub in_flight: u64,
    pub missing: u64,
    pub lost: u64,
    pub at_risk_cents: u64,
    pub delayed_cents: u64,
    pub failed_cents: u64,
    pub lost_cents: u64,
    pub sla_breaches: u64,
}
pub struct Ledger {
    _c: LedgerConfig,
    m: HashMap<u64, (u64, u32)>,
    t: Totals,
}
impl Ledger {
    pub fn new(c: LedgerConfig) -> Ledger {
        Ledger {
            _c: c,
            m: HashMap::new(),
            t: Totals::default(),
        }
    }
    pub fn sent(&mut self, seq: u64, v: u64) {
        self.m.insert(seq, (v, 0));
        self.t.sent += 1;
    }
    pub fn acked(&mut self, _seq: u64, _now: u64) {
        self.t.acked += 1;
    }
    pub fn failed(&mut self, _seq: u64) {
        self.t.failed += 1;
    }
    pub fn seen(&mut self, seq: u64, _s: Seen, _now: u64) -> Outcome {
        match self.m.get_mut(&seq) {
            None => {
                self.t.unexpected += 1;
                Outcome::Unexpected
            }
            Some(e) => {
                e.1 += 1;
                if e.1 == 1 {
                    self.t.processed += 1;
                    Outcome::Processed {
                        late: false,
                        ack_to_seen_ms: None,
                    }
                } else {
                    self.t.duplicates += 1;
                    Outcome::Duplicate
                }
            }
        }
    }
    pub fn foreign(&mut self) -> Outcome {
        self.t.unexpected += 1;
        Outcome::Unexpected
    }
    pub fn tick(&mut self, _now: u64) {}
    pub fn totals(&self) -> Totals {
        self.t.clone()
    }
    pub fn tracked(&self) -> usize {
        self.m.len()
    }
    pub fn approx_bytes(&self) -> usize {
        self.m.capacity() * 24
    }
}
