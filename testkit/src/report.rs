//! The fault suite's report: each scenario test opens a [`Row`] (scenario, what it checks) and
//! calls [`Row::pass`] with its figure (time to converge, requests lost) once every assertion
//! held; a row dropped without passing — the test panicked — records `fail`. Lines go to
//! stderr always, and are appended as tab-separated rows to the file named by
//! `SWARMGATE_REPORT` when it is set, from which `scripts/fault-report` builds README's table.

use std::io::Write;

/// One scenario's row, recorded when it is passed or dropped.
#[derive(Debug)]
pub struct Row {
    scenario: String,
    checked: String,
    figure: Option<String>,
}

impl Row {
    /// Opens the row of `scenario`, which checks `checked`.
    pub fn start(scenario: &str, checked: &str) -> Row {
        Row {
            scenario: scenario.into(),
            checked: checked.into(),
            figure: None,
        }
    }

    /// Every check held: records `pass` with `figure` ("—" when there is none).
    pub fn pass(mut self, figure: &str) {
        self.figure = Some(figure.into());
    }
}

impl Drop for Row {
    fn drop(&mut self) {
        let (result, figure) = match &self.figure {
            Some(f) if !std::thread::panicking() => ("pass", f.as_str()),
            _ => ("fail", "—"),
        };
        record(&self.scenario, &self.checked, result, figure);
    }
}

/// Records one scenario row as seen; prefer [`Row`], which records what the test saw.
pub fn record(scenario: &str, checked: &str, result: &str, figure: &str) {
    let clean = |s: &str| s.replace(['\t', '\n', '|'], " ");
    let row = format!(
        "{}\t{}\t{}\t{}",
        clean(scenario),
        clean(checked),
        clean(result),
        clean(figure)
    );
    eprintln!("report: {row}");
    if let Ok(path) = std::env::var("SWARMGATE_REPORT") {
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
        {
            let _ = writeln!(f, "{row}");
        }
    }
}

/// Seconds with one decimal, for figures.
pub fn secs(d: std::time::Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}
