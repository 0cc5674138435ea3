//! `templater promote`'s flags, parsed and checked into [`Plan`] before anything is written.

use std::time::Duration;

use clap::Args;
use swarmgate_consul::duration;

use super::judge::Limits;

#[derive(Debug, Args)]
pub struct PromoteArgs {
    pub service: String,
    /// The colour to promote [default: the colour that is not active].
    pub color: Option<String>,
    /// Percent of traffic on COLOR at each step, increasing, ending at most at 100; after
    /// the last one passes COLOR is made active with canary 0.
    #[arg(long, default_value = "10,25,50,100", value_name = "PERCENTS")]
    pub steps: String,
    /// How long each step is held before it is judged (Go duration: 30s, 2m).
    #[arg(long, default_value = "30s")]
    pub interval: String,
    /// Largest share of COLOR's requests answered 5xx or failed, in percent.
    #[arg(long = "max-error-rate", default_value_t = 1.0, value_name = "PERCENT")]
    pub max_error_rate: f64,
    /// Largest p99 latency of COLOR's requests (e.g. 500ms); not judged when absent.
    #[arg(long = "max-p99", value_name = "DURATION")]
    pub max_p99: Option<String>,
    /// Fewer requests to COLOR in a step's window is no verdict: the step waits for more.
    #[arg(long = "min-requests", default_value_t = 100)]
    pub min_requests: u64,
    /// Longest a step waits for the edges, for traffic or for a failing baseline before it
    /// fails as inconclusive (exit 7).
    #[arg(long = "max-wait", default_value = "10m", value_name = "DURATION")]
    pub max_wait: String,
    /// How many points COLOR's error rate may exceed the active colour's and still count as
    /// failing alike (the step holds instead of failing).
    #[arg(
        long = "max-error-rate-increase",
        default_value_t = 0.5,
        value_name = "POINTS"
    )]
    pub max_error_rate_increase: f64,
    /// How many times the active colour's p99 COLOR's may be and still count as alike.
    #[arg(
        long = "max-p99-increase",
        default_value_t = 1.5,
        value_name = "FACTOR"
    )]
    pub max_p99_increase: f64,
    /// Acceptance command, run (sh -c) before the first traffic step; a non-zero exit rolls
    /// back (exit 6). Its environment names SWARMGATE_SERVICE, SWARMGATE_COLOR, SWARMGATE_STEP,
    /// SWARMGATE_EDGE and SWARMGATE_PREVIEW_HEADER.
    #[arg(long, value_name = "CMD")]
    pub check: Option<String>,
    /// Also run --check after every step passes.
    #[arg(long = "check-each", requires = "check")]
    pub check_each: bool,
    /// The edge address --check commands reach COLOR through (SWARMGATE_EDGE).
    #[arg(long, default_value = "http://127.0.0.1", value_name = "URL")]
    pub edge: String,
    /// The preview header the edges honour (SWARMGATE_PREVIEW_HEADER names it).
    #[arg(long = "preview-header", default_value = "X-Swarmgate-Color")]
    pub preview_header: String,
    #[command(flatten)]
    pub by: crate::config::By,
    /// One JSON event per line on stdout instead of text.
    #[arg(long)]
    pub json: bool,
}

/// The checked flags.
#[derive(Clone, Debug)]
pub struct Plan {
    pub steps: Vec<u8>,
    pub interval: Duration,
    pub max_wait: Duration,
    pub limits: Limits,
}

impl PromoteArgs {
    pub fn plan(&self) -> Result<Plan, String> {
        let steps = parse_steps(&self.steps)?;
        let go = |flag: &str, raw: &str| {
            duration::parse(raw.trim())
                .map_err(|_| format!("--{flag} {raw:?} is not a duration such as 30s, 500ms or 2m"))
        };
        let interval = go("interval", &self.interval)?;
        let max_wait = go("max-wait", &self.max_wait)?;
        if interval.is_zero() {
            return Err("--interval must be longer than 0s".into());
        }
        if max_wait < interval {
            return Err(format!(
                "--max-wait {} is shorter than --interval {}",
                self.max_wait, self.interval
            ));
        }
        let max_p99 = match &self.max_p99 {
            Some(raw) => Some(go("max-p99", raw)?.as_secs_f64()),
            None => None,
        };
        let percent = |flag: &str, v: f64| {
            if (0.0..=100.0).contains(&v) {
                Ok(v)
            } else {
                Err(format!("--{flag} {v} must be a percentage from 0 to 100"))
            }
        };
        if !(self.max_p99_increase >= 1.0 && self.max_p99_increase.is_finite()) {
            return Err(format!(
                "--max-p99-increase {} must be a factor of at least 1",
                self.max_p99_increase
            ));
        }
        Ok(Plan {
            steps,
            interval,
            max_wait,
            limits: Limits {
                max_error_rate: percent("max-error-rate", self.max_error_rate)?,
                max_p99,
                min_requests: self.min_requests,
                max_error_rate_increase: percent(
                    "max-error-rate-increase",
                    self.max_error_rate_increase,
                )?,
                max_p99_increase: self.max_p99_increase,
            },
        })
    }
}

/// `10,25,50,100`: whole percentages from 1 to 100, strictly increasing.
pub fn parse_steps(raw: &str) -> Result<Vec<u8>, String> {
    let mut steps: Vec<u8> = Vec::new();
    for part in raw.split(',') {
        let step =
            crate::settings::parse_canary(part).map_err(|e| format!("--steps {raw:?}: {e}"))?;
        if step == 0 {
            return Err(format!("--steps {raw:?}: a step of 0% sends COLOR nothing"));
        }
        if steps.last().is_some_and(|last| *last >= step) {
            return Err(format!("--steps {raw:?} must increase"));
        }
        steps.push(step);
    }
    Ok(steps)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_are_increasing_percentages() {
        assert_eq!(parse_steps("10,25,50,100"), Ok(vec![10, 25, 50, 100]));
        assert_eq!(parse_steps(" 5 , 100"), Ok(vec![5, 100]));
        assert!(parse_steps("50,25").is_err());
        assert!(parse_steps("0,50").is_err());
        assert!(parse_steps("10,101").is_err());
        assert!(parse_steps("10,,20").is_err());
        assert!(parse_steps("ten").is_err());
    }
}
