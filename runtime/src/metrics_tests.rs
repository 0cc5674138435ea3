//! Encoding in both formats, read back with strict parsers of each.

use super::*;
use openmetrics_parser::{openmetrics, prometheus};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ServiceColor {
    service: String,
    color: String,
}

fn sample() -> Exposition {
    let mut f = Families::default();
    f.counter("x_events", "Things seen").inc();
    f.text_only_gauge("x_events", "Old name of x_events_total")
        .set(1);
    f.gauge("x_level", "A level").set(-3);
    f.latency("x_step_duration_seconds", "One step")
        .observe(0.02);
    let per: Family<ServiceColor, FloatGauge> =
        f.add("x_share_percent", "Share", Family::default());
    per.get_or_create(&ServiceColor {
        service: "web \"a\"\\b".into(),
        color: "blue".into(),
    })
    .set(12.5);
    f.finish()
}

fn has_all(text: &str, parts: &[&str]) {
    for part in parts {
        assert!(text.contains(part), "{part:?} missing in:\n{text}");
    }
}

/// The families a parser found, sorted.
fn names<'a>(keys: impl Iterator<Item = &'a String>) -> Vec<&'a str> {
    let mut names: Vec<&str> = keys.map(String::as_str).collect();
    names.sort_unstable();
    names
}

const PROCESS: [&str; 6] = [
    "process_cpu_seconds",
    "process_max_fds",
    "process_open_fds",
    "process_resident_memory_bytes",
    "process_start_time_seconds",
    "process_virtual_memory_bytes",
];

#[test]
fn prometheus_text_names_counters_by_their_samples_and_parses() {
    let text = encode(&sample(), Format::Text);
    has_all(
        &text,
        &[
            "# HELP x_events_total Things seen.\n# TYPE x_events_total counter\nx_events_total 1\n",
            "# TYPE x_level gauge\nx_level -3\n",
            "x_step_duration_seconds_bucket{le=\"0.025\"} 1\n",
            "x_step_duration_seconds_bucket{le=\"+Inf\"} 1\n",
            r#"x_share_percent{service="web \"a\"\\b",color="blue"} 12.5"#,
            "# TYPE x_events gauge\nx_events 1\n",
        ],
    );
    assert!(!text.contains("# EOF"), "{text}");
    let parsed = prometheus::parse_prometheus(&text).expect("a valid 0.0.4 exposition");
    let mut want = vec!["x_events", "x_events_total", "x_level", "x_share_percent"];
    want.push("x_step_duration_seconds");
    want.extend(PROCESS.map(|p| {
        if p.contains("cpu") {
            "process_cpu_seconds_total"
        } else {
            p
        }
    }));
    want.sort_unstable();
    assert_eq!(names(parsed.families.keys()), want);
}

#[test]
fn openmetrics_ends_with_eof_and_parses() {
    let text = encode(&sample(), Format::OpenMetrics);
    has_all(&text, &["# TYPE x_events counter\nx_events_total 1\n"]);
    assert!(text.ends_with("# EOF\n"), "{text}");
    let parsed = openmetrics::parse_openmetrics(&text).expect("a valid OpenMetrics exposition");
    // The text-only alias stays out: its name is the counter's family here.
    let mut want = vec![
        "x_events",
        "x_level",
        "x_share_percent",
        "x_step_duration_seconds",
    ];
    want.extend(PROCESS);
    want.sort_unstable();
    assert_eq!(names(parsed.families.keys()), want);
}

#[test]
fn the_process_figures_are_there_and_plausible() {
    let text = encode(&Families::default().finish(), Format::Text);
    let value = |name: &str| -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")))
            .unwrap_or_else(|| panic!("{name} missing:\n{text}"))
            .parse()
            .expect("a number")
    };
    assert!(value("process_resident_memory_bytes") > 1e6);
    assert!(value("process_virtual_memory_bytes") >= value("process_resident_memory_bytes"));
    assert!(value("process_open_fds") >= 3.0);
    assert!(value("process_max_fds") >= value("process_open_fds"));
    assert!(value("process_cpu_seconds_total") > 0.0);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs_f64();
    let started = value("process_start_time_seconds");
    assert!(
        started <= now + 1.0 && started > now - 3600.0,
        "{started} vs {now}"
    );
    assert!(resident_bytes() as f64 > 1e6);
}

#[test]
fn openmetrics_only_when_asked_for() {
    use Format::*;
    for (accept, want) in [
        (None, Text),
        (Some("text/plain;version=0.0.4"), Text),
        (Some("*/*"), Text),
        (Some("application/openmetrics-text"), OpenMetrics),
        (
            Some("application/openmetrics-text;version=1.0.0;q=0.5,text/plain;version=0.0.4;q=0.4"),
            OpenMetrics,
        ),
        (
            Some("text/plain, Application/OpenMetrics-Text; version=0.0.1"),
            OpenMetrics,
        ),
        (Some("application/openmetrics-text;q=0,text/plain"), Text),
    ] {
        assert_eq!(Format::negotiate(accept), want, "{accept:?}");
    }
}
