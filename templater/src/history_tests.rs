use super::*;
use std::collections::HashMap;

fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let map: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    move |k| map.get(k).cloned()
}

fn entry(detail: &str) -> Entry {
    Entry {
        at: 0,
        action: "flip".into(),
        from: Some("blue".into()),
        to: Some("green".into()),
        detail: detail.into(),
        by: "t".into(),
    }
}

#[test]
fn by_names_the_ci_run() {
    assert_eq!(
        by_from(env(&[("BUILD_NUMBER", "42"), ("JOB_NAME", "deploy-web")])),
        "build deploy-web #42"
    );
    assert_eq!(
        by_from(env(&[
            ("BUILD_NUMBER", "7"),
            ("TEAMCITY_PROJECT_NAME", "Web"),
            ("USER", "agent")
        ])),
        "build Web #7"
    );
    assert_eq!(by_from(env(&[("BUILD_NUMBER", "42")])), "build #42");
    assert_eq!(
        by_from(env(&[
            ("GITHUB_RUN_ID", "991"),
            ("GITHUB_WORKFLOW", "deploy"),
            ("GITHUB_ACTOR", "alice"),
            ("BUILD_NUMBER", "1"),
        ])),
        "github deploy #991 (alice)"
    );
    assert_eq!(
        by_from(env(&[
            ("CI_JOB_ID", "5"),
            ("CI_PROJECT_PATH", "acme/web"),
            ("GITLAB_USER_LOGIN", "bob")
        ])),
        "gitlab acme/web #5 (bob)"
    );
}

#[test]
fn by_falls_back_to_the_user_then_unknown() {
    assert_eq!(
        by_from(env(&[("USER", "carol"), ("LOGNAME", "x")])),
        "carol"
    );
    assert_eq!(by_from(env(&[("LOGNAME", "dave")])), "dave");
    assert_eq!(
        by_from(env(&[("BUILD_NUMBER", "  "), ("USER", "erin")])),
        "erin"
    );
    assert_eq!(by_from(env(&[])), "unknown");
}

#[test]
fn a_line_per_entry() {
    let mut e = entry("");
    e.at = 1_796_346_123; // 2026-12-04T01:02:03Z
    e.by = "build #42".into();
    assert_eq!(
        e.to_string(),
        "2026-12-04T01:02:03Z  flip  blue → green  by build #42"
    );
    e.action = "canary".into();
    e.from = None;
    e.detail = "10%".into();
    assert_eq!(
        e.to_string(),
        "2026-12-04T01:02:03Z  canary  - → green  by build #42  (10%)"
    );
}

#[test]
fn rfc3339_matches_known_dates() {
    assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
    assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
    assert_eq!(rfc3339(1_709_251_199), "2024-02-29T23:59:59Z");
    assert_eq!(rfc3339(4_102_444_800), "2100-01-01T00:00:00Z");
}

#[test]
fn the_bound_keeps_the_newest() {
    let mut entries: Vec<Entry> = (0..MAX_ENTRIES + 5)
        .map(|i| entry(&i.to_string()))
        .collect();
    let value = encode_bounded(&mut entries);
    assert_eq!(entries.len(), MAX_ENTRIES);
    assert_eq!(entries[0].detail, "5");
    let back: Vec<Entry> = serde_json::from_slice(&value).expect("json");
    assert_eq!(back, entries);
}

#[test]
fn the_value_stays_well_under_consuls_cap() {
    // Control characters escape to six bytes each: the worst case of a bounded detail.
    let huge = "\u{1}".repeat(MAX_DETAIL * 5);
    let mut entries: Vec<Entry> = (0..MAX_ENTRIES).map(|_| entry(&huge).bounded()).collect();
    assert!(entries[0].detail.chars().count() <= MAX_DETAIL + 1);
    let value = encode_bounded(&mut entries);
    assert!(value.len() <= MAX_BYTES, "{} bytes", value.len());
    assert!(!entries.is_empty());
}

#[test]
fn empty_or_corrupt_values() {
    assert_eq!(parse(b"").expect("empty"), Vec::new());
    assert!(parse(b"{not json").is_err());
    assert_eq!(parse_or_restart(b"[1,2", "web"), Vec::new());
    let one = serde_json::to_vec(&vec![entry("x")]).expect("json");
    assert_eq!(parse_or_restart(&one, "web"), vec![entry("x")]);
}

#[test]
fn truncate_cuts_on_characters() {
    assert_eq!(truncate("héllo", 2), "hé…");
    assert_eq!(truncate("hi", 2), "hi");
}
