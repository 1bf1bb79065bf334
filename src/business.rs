//! Business gauges: what the pipeline's failures cost, in dollars, derived from the audit's
//! totals (real order values, never an average times a count).
//!
//! Owns only the mapping from [`Totals`] to metrics; the accounting itself is the ledger's.

use prometheus::{Gauge, GaugeVec, IntCounter, IntGauge, Opts, Registry};

use crate::{audit::ledger::Totals, metrics::register};

/// Business metrics; `export` is called by the audit after every tick.
pub struct Metrics {
    at_risk: Gauge,
    delayed: prometheus::Counter,
    lost: GaugeVec,
    in_flight: IntGauge,
    sla_breaches: IntCounter,
    exported: Totals,
}

fn dollars(cents: u64) -> f64 {
    cents as f64 / 100.0
}

impl Metrics {
    /// Registers the `firedrill_business_*` family.
    pub fn register(registry: &Registry) -> Self {
        Metrics {
            at_risk: register(
                registry,
                Gauge::new(
                    "firedrill_business_revenue_at_risk_dollars",
                    "Sum of the values of acked orders not yet processed.",
                )
                .expect("valid metric"),
            ),
            delayed: register(
                registry,
                prometheus::Counter::new(
                    "firedrill_business_revenue_delayed_dollars_total",
                    "Value of orders processed after the SLA.",
                )
                .expect("valid metric"),
            ),
            lost: register(
                registry,
                GaugeVec::new(
                    Opts::new(
                        "firedrill_business_revenue_lost_dollars",
                        "Value of orders lost, by where: failed_at_door (never reached the broker), in_pipeline (acked, never processed).",
                    ),
                    &["where"],
                )
                .expect("valid metric"),
            ),
            in_flight: register(
                registry,
                IntGauge::new(
                    "firedrill_business_orders_in_flight",
                    "Acked orders not yet processed and not yet counted lost.",
                )
                .expect("valid metric"),
            ),
            sla_breaches: register(
                registry,
                IntCounter::new(
                    "firedrill_business_sla_breaches_total",
                    "Orders that were not processed within the SLA.",
                )
                .expect("valid metric"),
            ),
            exported: Totals::default(),
        }
    }

    /// Sets the gauges from `totals` and advances the counters by what changed since the
    /// last export (the ledger's cumulative totals only grow).
    pub fn export(&mut self, totals: &Totals) {
        self.at_risk.set(dollars(totals.at_risk_cents));
        self.lost
            .with_label_values(&["failed_at_door"])
            .set(dollars(totals.failed_cents));
        self.lost
            .with_label_values(&["in_pipeline"])
            .set(dollars(totals.lost_cents));
        self.in_flight
            .set((totals.in_flight + totals.missing) as i64);
        self.delayed.inc_by(dollars(
            totals
                .delayed_cents
                .saturating_sub(self.exported.delayed_cents),
        ));
        self.sla_breaches.inc_by(
            totals
                .sla_breaches
                .saturating_sub(self.exported.sla_breaches),
        );
        self.exported = totals.clone();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dollars_come_from_real_cents_and_counters_only_grow() {
        let registry = crate::metrics::registry();
        let mut metrics = Metrics::register(&registry);
        let mut totals = Totals {
            at_risk_cents: 259_800,
            delayed_cents: 1_200,
            failed_cents: 3_900,
            lost_cents: 0,
            in_flight: 2,
            missing: 1,
            sla_breaches: 1,
            ..Totals::default()
        };
        metrics.export(&totals);
        totals.delayed_cents = 2_400;
        totals.sla_breaches = 3;
        metrics.export(&totals);
        let text = String::from_utf8(crate::metrics::encode(&registry)).unwrap();
        assert!(
            text.contains("firedrill_business_revenue_at_risk_dollars 2598\n"),
            "{text}"
        );
        assert!(text.contains("firedrill_business_revenue_delayed_dollars_total 24\n"));
        assert!(
            text.contains("firedrill_business_revenue_lost_dollars{where=\"failed_at_door\"} 39\n")
        );
        assert!(text.contains("firedrill_business_orders_in_flight 3\n"));
        assert!(text.contains("firedrill_business_sla_breaches_total 3\n"));
    }
}
