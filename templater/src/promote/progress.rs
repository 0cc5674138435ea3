//! What `promote` tells its caller while it runs: a line per event on stderr (and, on a
//! terminal, a live line with the window's figures), or with `--json` one JSON object per
//! line on stdout for CI logs.

use std::io::{IsTerminal as _, Write as _};

use serde::Serialize;

use super::judge::thousands;
use crate::records::unix_now;
use crate::traffic::{quantile, Counts};

/// A colour's figures in an event.
#[derive(Clone, Debug, Serialize)]
pub struct Figures {
    pub color: String,
    pub requests: u64,
    pub errors: u64,
    pub error_rate: f64,
    pub p99_ms: Option<f64>,
}

impl Figures {
    pub fn of(color: &str, c: &Counts) -> Figures {
        let errors = c.c5xx.min(c.requests);
        Figures {
            color: color.to_string(),
            requests: c.requests,
            errors,
            error_rate: match c.requests {
                0 => 0.0,
                n => (errors as f64 * 1000.0 / n as f64).round() / 10.0,
            },
            p99_ms: quantile(c, 0.99).map(|s| s * 1000.0),
        }
    }

    fn text(&self) -> String {
        format!(
            "{} {} req {}% 5xx",
            self.color,
            thousands(self.requests),
            self.error_rate
        )
    }
}

/// One event of a promotion.
#[derive(Clone, Debug, Serialize)]
pub struct Event {
    /// `started`, `check`, `step`, `live`, `waiting`, `holding`, `passed`, `failed`,
    /// `inconclusive`, `aborted`, `promoted`, `rolled-back`.
    pub event: &'static str,
    pub service: String,
    pub color: String,
    pub from: String,
    /// 1-based; absent before the first step and at the end.
    pub step: Option<usize>,
    pub steps: usize,
    pub percent: Option<u8>,
    pub message: String,
    pub canary: Option<Figures>,
    pub baseline: Option<Figures>,
    pub at_unix: u64,
}

/// Where events go.
pub struct Progress {
    json: bool,
    terminal: bool,
    /// A live line is on the terminal (the next line must clear it).
    dirty: bool,
}

impl Progress {
    pub fn new(json: bool) -> Progress {
        Progress {
            json,
            terminal: !json && std::io::stderr().is_terminal(),
            dirty: false,
        }
    }

    pub fn json(&self) -> bool {
        self.json
    }

    /// Says `e` (errors writing are ignored: a CI log that went away must not stop a
    /// promotion midway).
    pub fn event(&mut self, mut e: Event) {
        e.at_unix = unix_now();
        if self.json {
            let line = serde_json::to_string(&e).expect("an event serialises");
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{line}").and_then(|()| out.flush());
            return;
        }
        let mut err = std::io::stderr().lock();
        if self.dirty {
            let _ = write!(err, "\r\x1b[2K");
            self.dirty = false;
        }
        let step = match (e.step, e.percent) {
            (Some(i), Some(p)) => format!("step {i}/{} {p}%: ", e.steps),
            _ => String::new(),
        };
        let _ = writeln!(
            err,
            "promote {}: {step}{} {}",
            e.service, e.event, e.message
        );
    }

    /// On a terminal, replaces the live line with the window's figures so far.
    pub fn live(&mut self, text: &str, canary: &Figures, baseline: &Figures) {
        if !self.terminal {
            return;
        }
        let mut err = std::io::stderr().lock();
        let _ = write!(
            err,
            "\r\x1b[2K  {text}: {} | {}",
            canary.text(),
            baseline.text()
        );
        let _ = err.flush();
        self.dirty = true;
    }
}
