//! Medians, p90 and the table the benchmarks print.

use std::time::Duration;

/// A named series of samples in milliseconds.
#[derive(Debug, Default, Clone)]
pub struct Series {
    pub samples: Vec<f64>,
}

impl Series {
    pub fn push(&mut self, d: Duration) {
        self.samples.push(d.as_secs_f64() * 1000.0);
    }

    pub fn push_ms(&mut self, ms: f64) {
        self.samples.push(ms);
    }

    fn quantile(&self, q: f64) -> f64 {
        let mut s = self.samples.clone();
        if s.is_empty() {
            return f64::NAN;
        }
        s.sort_by(|a, b| a.total_cmp(b));
        let idx = ((s.len() - 1) as f64 * q).round() as usize;
        s[idx]
    }

    pub fn p50(&self) -> f64 {
        self.quantile(0.5)
    }

    pub fn p90(&self) -> f64 {
        self.quantile(0.9)
    }
}

/// One row: a figure, its unit, its target, and optionally the floor it is compared with.
pub struct Row {
    pub name: String,
    pub p50: f64,
    pub p90: f64,
    pub unit: &'static str,
    pub target: String,
    pub floor: Option<(String, f64)>,
}

impl Row {
    pub fn timing(name: &str, s: &Series, target: &str, floor: Option<(&str, &Series)>) -> Self {
        Row {
            name: format!("{name} (n={})", s.samples.len()),
            p50: s.p50(),
            p90: s.p90(),
            unit: "ms",
            target: target.into(),
            floor: floor.map(|(n, f)| (n.to_string(), f.p50())),
        }
    }

    pub fn single(name: &str, value: f64, unit: &'static str, target: &str) -> Self {
        Row {
            name: name.into(),
            p50: value,
            p90: value,
            unit,
            target: target.into(),
            floor: None,
        }
    }
}

/// Prints every group's rows as one Markdown table, the group (daemon) in the first column.
pub fn print_table(groups: &[(&str, Vec<Row>)]) {
    println!();
    println!("| daemon | figure | p50 | p90 | target | floor (p50, same run) | ratio to floor |");
    println!("| --- | --- | --- | --- | --- | --- | --- |");
    for (group, rows) in groups {
        for r in rows {
            let (floor, ratio) = match &r.floor {
                Some((name, f)) => (
                    format!("{name}: {f:.2} {}", r.unit),
                    format!("{:.2}×", r.p50 / f),
                ),
                None => ("—".into(), "—".into()),
            };
            println!(
                "| {group} | {} | {:.2} {u} | {:.2} {u} | {} | {floor} | {ratio} |",
                r.name,
                r.p50,
                r.p90,
                r.target,
                u = r.unit
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles() {
        let mut s = Series::default();
        for v in 1..=10 {
            s.push_ms(v as f64);
        }
        assert_eq!(s.p50(), 6.0);
        assert_eq!(s.p90(), 9.0);
    }
}
