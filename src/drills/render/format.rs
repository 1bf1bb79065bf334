//! Values as people read them: counts, money, durations, rates, percentages and times, and
//! user text escaped for Markdown and for HTML. Shared by the renderers and `compare`.

use chrono::{DateTime, SecondsFormat};

use crate::drills::{
    figures::Unit,
    report::{Report, Verdict},
};

pub(super) fn na() -> String {
    "n/a".to_owned()
}

/// `$1,234.56`; `-$3.00`; `n/a` when not finite.
pub(crate) fn money(dollars: f64) -> String {
    if !dollars.is_finite() {
        return na();
    }
    let cents = (dollars.abs() * 100.0).round() as u64;
    let sign = if dollars < 0.0 && cents > 0 { "-" } else { "" };
    format!("{sign}${}.{:02}", count(cents / 100), cents % 100)
}

/// `4,500`.
pub(crate) fn count(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

pub(super) fn signed_count(n: i64) -> String {
    if n < 0 {
        format!("-{}", count(n.unsigned_abs()))
    } else {
        count(n as u64)
    }
}

/// `0.35 s`, `22.0 s`, `150.0 s (2m 30s)`; `n/a` when missing or not finite.
pub(crate) fn secs(s: Option<f64>) -> String {
    match s {
        Some(s) if s.is_finite() && s.abs() < 10.0 => format!("{s:.2} s"),
        Some(s) if s.is_finite() && s >= 60.0 => {
            let whole = std::time::Duration::from_secs(s.round() as u64);
            format!("{s:.1} s ({})", humantime::format_duration(whole))
        }
        Some(s) if s.is_finite() => format!("{s:.1} s"),
        _ => na(),
    }
}

pub(super) fn rate(per_s: f64) -> String {
    if per_s.is_finite() {
        format!("{per_s:.1} orders/s")
    } else {
        na()
    }
}

/// `93.8 %`.
pub(crate) fn pct(p: f64) -> String {
    if p.is_finite() {
        format!("{p:.1} %")
    } else {
        na()
    }
}

pub(super) fn utc(ms: i64) -> String {
    DateTime::from_timestamp_millis(ms)
        .map_or_else(na, |t| t.to_rfc3339_opts(SecondsFormat::AutoSi, true))
}

pub(super) fn offset(r: &Report, at_ms: i64) -> String {
    format!("{:+.1} s", r.offset_s(at_ms))
}

/// A figure's value in its unit: `22.0 s`, `$85.00`, `6.2 %`, `4,500`, `PASS`; `n/a` when
/// missing.
pub(crate) fn figure(value: Option<f64>, unit: Unit) -> String {
    let Some(v) = value else {
        return na();
    };
    match unit {
        Unit::Seconds => secs(Some(v)),
        Unit::Dollars => money(v),
        Unit::Percent => pct(v),
        Unit::OrdersPerSecond => rate(v),
        Unit::Orders | Unit::Alerts if v >= 0.0 && v.fract() == 0.0 => count(v as u64),
        Unit::Orders => format!("{v:.1} orders"),
        Unit::Alerts => format!("{v:.1} alerts"),
        Unit::Pass if v == 1.0 => Verdict::Pass.as_str().to_owned(),
        Unit::Pass => Verdict::Fail.as_str().to_owned(),
    }
}

/// Escapes Markdown inline syntax and flattens newlines, so user text stays one table cell of
/// literal text.
pub(crate) fn md_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' | '`' | '*' | '_' | '[' | ']' | '<' | '>' | '|' | '~' => {
                out.push('\\');
                out.push(c);
            }
            '\r' | '\n' => out.push(' '),
            _ => out.push(c),
        }
    }
    out
}

/// Escapes text for HTML element content and attribute values.
pub(super) fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::{html, markdown};
    use super::*;
    use crate::drills::report::sample_for_docs;

    #[test]
    fn formatting() {
        assert_eq!(money(1234.564), "$1,234.56");
        assert_eq!(money(0.0), "$0.00");
        assert_eq!(money(-3.0), "-$3.00");
        assert_eq!(money(-0.001), "$0.00");
        assert_eq!(money(1_000_000.0), "$1,000,000.00");
        assert_eq!(money(f64::NAN), "n/a");
        assert_eq!(count(0), "0");
        assert_eq!(count(999), "999");
        assert_eq!(count(4500), "4,500");
        assert_eq!(count(12_345_678), "12,345,678");
        assert_eq!(secs(None), "n/a");
        assert_eq!(secs(Some(0.35)), "0.35 s");
        assert_eq!(secs(Some(22.0)), "22.0 s");
        assert_eq!(secs(Some(150.0)), "150.0 s (2m 30s)");
        assert_eq!(utc(1_767_261_600_000), "2026-01-01T10:00:00Z");
        assert_eq!(utc(1_767_261_600_250), "2026-01-01T10:00:00.250Z");
        assert_eq!(figure(None, Unit::Seconds), "n/a");
        assert_eq!(figure(Some(22.0), Unit::Seconds), "22.0 s");
        assert_eq!(figure(Some(85.0), Unit::Dollars), "$85.00");
        assert_eq!(figure(Some(6.24), Unit::Percent), "6.2 %");
        assert_eq!(figure(Some(50.0), Unit::OrdersPerSecond), "50.0 orders/s");
        assert_eq!(figure(Some(4500.0), Unit::Orders), "4,500");
        assert_eq!(figure(Some(2.5), Unit::Alerts), "2.5 alerts");
        assert_eq!(figure(Some(1.0), Unit::Pass), "PASS");
        assert_eq!(figure(Some(0.0), Unit::Pass), "FAIL");
    }

    #[test]
    fn user_text_is_escaped() {
        let mut r = sample_for_docs();
        r.label = Some("<script>alert('x')</script> | *bold*\nnext".into());
        r.alerts[0].name = "A&B\"".into();
        let page = html(&r);
        assert!(!page.contains("<script>"));
        assert!(page.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;"));
        assert!(page.contains("A&amp;B&quot;"));
        let md = markdown(&r);
        assert!(md.contains(r"\<script\>alert('x')\</script\> \| \*bold\* next"));
    }
}
