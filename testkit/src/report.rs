//! The fault suite's report: each scenario test records what it checked, its result and its
//! figure (time to converge, requests lost). Lines go to stderr always, and are appended as
//! tab-separated rows to the file named by `SWARMGATE_REPORT` when it is set, from which
//! `scripts/fault-report` builds README's table.

use std::io::Write;

/// Records one scenario row.
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
