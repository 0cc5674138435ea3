//! The judging maths of a promotion step, pure: the colour being promoted (the canary) is
//! judged on its own requests over the step's window, beside the active colour (the baseline)
//! over the same window.
//!
//! - Fewer than `min_requests` canary requests is no verdict ([`Verdict::TooFew`]).
//! - A figure over its limit fails the step, unless the baseline is as bad: with enough
//!   baseline requests to compare, an error rate within `max_error_rate_increase` points of
//!   the baseline's (a p99 within `max_p99_increase` times the baseline's) holds the step
//!   instead ([`Verdict::Hold`]): a shared cause, not the canary's fault.
//! - [`certain_breach`] fails a step before its window ends, as soon as the errors already
//!   seen exceed the limit even if every request still needed to reach `min_requests` passed.

use crate::traffic::{quantile, Counts};

/// The limits a step is judged by.
#[derive(Clone, Debug, PartialEq)]
pub struct Limits {
    /// Percent of 5xx (connection failures included).
    pub max_error_rate: f64,
    /// Seconds.
    pub max_p99: Option<f64>,
    pub min_requests: u64,
    /// Percentage points over the baseline's error rate that still count as "alike".
    pub max_error_rate_increase: f64,
    /// Times the baseline's p99 that still counts as "alike".
    pub max_p99_increase: f64,
}

/// A colour's requests over a window.
#[derive(Clone, Copy, Debug)]
pub struct Observed<'a> {
    pub color: &'a str,
    pub counts: &'a Counts,
}

impl Observed<'_> {
    fn requests(&self) -> u64 {
        self.counts.requests
    }

    fn errors(&self) -> u64 {
        self.counts.c5xx.min(self.counts.requests)
    }

    fn error_rate(&self) -> f64 {
        match self.requests() {
            0 => 0.0,
            n => self.errors() as f64 * 100.0 / n as f64,
        }
    }

    fn p99(&self) -> Option<f64> {
        quantile(self.counts, 0.99)
    }
}

/// A step's outcome over its window.
#[derive(Clone, Debug, PartialEq)]
pub enum Verdict {
    Pass(String),
    Fail(String),
    /// Over a limit, but so is the baseline.
    Hold(String),
    TooFew(String),
}

/// Whether the baseline has enough requests to be compared with.
fn comparable(l: &Limits, baseline: &Observed) -> bool {
    baseline.requests() >= l.min_requests.max(1)
}

/// `green: 5xx 4.2% > 1% over 312 requests (blue: 0.1% over 2,808)`.
fn error_line(l: &Limits, c: &Observed, b: &Observed, op: &str) -> String {
    format!(
        "{}: 5xx {} {op} {}% over {} requests ({})",
        c.color,
        percent(c.error_rate()),
        trim(l.max_error_rate),
        thousands(c.requests()),
        baseline_errors(b),
    )
}

fn baseline_errors(b: &Observed) -> String {
    match b.requests() {
        0 => format!("{}: no requests", b.color),
        n => format!(
            "{}: {} over {}",
            b.color,
            percent(b.error_rate()),
            thousands(n)
        ),
    }
}

fn p99_line(max: f64, c: &Observed, b: &Observed, op: &str) -> String {
    let base = match (b.requests(), b.p99()) {
        (n, Some(p)) if n > 0 => format!("{}: {} over {}", b.color, millis(p), thousands(n)),
        _ => format!("{}: no requests", b.color),
    };
    format!(
        "{}: p99 {} {op} {} over {} requests ({base})",
        c.color,
        c.p99().map_or_else(|| "-".to_string(), millis),
        millis(max),
        thousands(c.requests()),
    )
}

/// The verdict at the end of a step's window.
pub fn judge(l: &Limits, canary: &Observed, baseline: &Observed) -> Verdict {
    if canary.requests() < l.min_requests {
        return Verdict::TooFew(format!(
            "{}: {} requests < --min-requests {}",
            canary.color,
            thousands(canary.requests()),
            thousands(l.min_requests)
        ));
    }
    let mut fails = Vec::new();
    let mut holds = Vec::new();
    if canary.error_rate() > l.max_error_rate {
        let line = error_line(l, canary, baseline, ">");
        let alike = comparable(l, baseline)
            && canary.error_rate() - baseline.error_rate() <= l.max_error_rate_increase;
        if alike {
            holds.push(line);
        } else {
            fails.push(line);
        }
    }
    if let (Some(max), Some(p99)) = (l.max_p99, canary.p99()) {
        if p99 > max {
            let line = p99_line(max, canary, baseline, ">");
            let alike = comparable(l, baseline)
                && baseline
                    .p99()
                    .is_some_and(|b| p99 <= b * l.max_p99_increase);
            if alike {
                holds.push(line);
            } else {
                fails.push(line);
            }
        }
    }
    if !fails.is_empty() {
        return Verdict::Fail(fails.join("; "));
    }
    if !holds.is_empty() {
        return Verdict::Hold(format!(
            "{}: the baseline is as bad, not the canary's fault",
            holds.join("; ")
        ));
    }
    let mut pass = error_line(l, canary, baseline, "≤");
    if let Some(max) = l.max_p99 {
        pass.push_str("; ");
        pass.push_str(&p99_line(max, canary, baseline, "≤"));
    }
    Verdict::Pass(pass)
}

/// A failure that no further requests can undo: more errors than the limit allows over
/// `max(requests seen, min_requests)`, and not excused by an equally failing baseline.
pub fn certain_breach(l: &Limits, canary: &Observed, baseline: &Observed) -> Option<String> {
    let errors = canary.errors();
    if errors == 0 {
        return None;
    }
    let over = canary.requests().max(l.min_requests).max(1);
    let floor_rate = errors as f64 * 100.0 / over as f64;
    if floor_rate <= l.max_error_rate {
        return None;
    }
    let alike = comparable(l, baseline)
        && canary.error_rate() - baseline.error_rate() <= l.max_error_rate_increase;
    (!alike).then(|| error_line(l, canary, baseline, ">"))
}

/// `4.2%`, `0.1%`, `100%`.
fn percent(p: f64) -> String {
    format!("{}%", trim((p * 10.0).round() / 10.0))
}

/// A number without a trailing `.0`.
fn trim(v: f64) -> String {
    let s = format!("{v:.3}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    s.to_string()
}

/// `500ms`, `1.5s`.
fn millis(seconds: f64) -> String {
    if seconds < 1.0 {
        format!("{}ms", trim((seconds * 1000.0).round()))
    } else {
        format!("{}s", trim(seconds))
    }
}

/// `2,808`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
#[path = "judge_tests.rs"]
mod tests;
