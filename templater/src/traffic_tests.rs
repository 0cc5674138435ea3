use super::*;

/// Counts with `requests`, `errors` of them 5xx, every request in bucket `bucket`.
fn counts(requests: u64, errors: u64, bucket: usize) -> Counts {
    let mut buckets = vec![0; LATENCY_BUCKETS.len()];
    buckets[bucket] = requests;
    Counts {
        requests,
        c2xx: requests - errors,
        c5xx: errors,
        buckets,
        sum_seconds: requests as f64 * 0.001,
        ..Counts::default()
    }
}

fn doc(epoch: f64, pairs: &[(&str, &str, Counts)]) -> TrafficDoc {
    let mut d = TrafficDoc {
        epoch,
        ..TrafficDoc::default()
    };
    for (s, c, n) in pairs {
        d.services
            .entry(s.to_string())
            .or_default()
            .insert(c.to_string(), n.clone());
    }
    d
}

fn live(names: &[&str]) -> LiveIndex {
    names.iter().map(|n| (n.to_string(), 1)).collect()
}

fn pair(s: &str, c: &str) -> Pair {
    (s.into(), c.into())
}

#[test]
fn the_answer_of_nginx_parses() {
    let body = r#"{"epoch":1.5,"services":{"app":{"blue":{"requests":3,"2xx":2,"3xx":0,"4xx":0,
        "5xx":1,"failed":1,"buckets":[1,2,0,0,0,0,0,0,0,0,0,0,0,0],"sum_seconds":0.004}}}}"#;
    let d: TrafficDoc = serde_json::from_str(body).expect("parses");
    let c = &d.services["app"]["blue"];
    assert_eq!((c.requests, c.c2xx, c.c5xx, c.failed), (3, 2, 1, 1));
    assert_eq!(c.buckets[1], 2);
    let empty: TrafficDoc = serde_json::from_str(r#"{"epoch":2,"services":{}}"#).expect("parses");
    assert!(empty.services.is_empty());
}

#[test]
fn totals_mirror_nginx_and_survive_its_restart() {
    let t = Traffic::default();
    let now = Instant::now();
    let l = live(&["app"]);
    t.observe(doc(1.0, &[("app", "blue", counts(10, 1, 0))]), &l, now);
    t.observe(doc(1.0, &[("app", "blue", counts(25, 2, 0))]), &l, now);
    assert_eq!(t.totals()[0].1.requests, 25, "mirrored");
    // nginx restarted (new epoch) and counted 30 since (more than before): all added.
    t.observe(doc(2.0, &[("app", "blue", counts(30, 2, 0))]), &l, now);
    assert_eq!(t.totals()[0].1.requests, 55);
    // A counter going down is a restart too (same epoch reported).
    t.observe(doc(2.0, &[("app", "blue", counts(1, 0, 0))]), &l, now);
    let total = &t.totals()[0].1;
    assert_eq!((total.requests, total.c5xx), (56, 4));
}

#[test]
fn services_gone_lose_their_figures() {
    let t = Traffic::default();
    let now = Instant::now();
    let d = doc(
        1.0,
        &[
            ("app", "blue", counts(1, 0, 0)),
            ("old", "", counts(1, 0, 0)),
        ],
    );
    t.observe(d.clone(), &live(&["app", "old"]), now);
    assert_eq!(t.totals().len(), 2);
    t.observe(d, &live(&["app"]), now);
    let pairs: Vec<Pair> = t.totals().into_iter().map(|(p, _)| p).collect();
    assert_eq!(pairs, [pair("app", "blue")]);
    assert_eq!(t.figures().len(), 1);
}

#[test]
fn the_window_gives_rate_errors_and_p99_of_its_last_minute() {
    let t = Traffic::default();
    let start = Instant::now();
    let l = live(&["app"]);
    // Before the window: 1,000 slow failures, which must not count.
    t.observe(
        doc(1.0, &[("app", "green", counts(1000, 1000, 13))]),
        &l,
        start,
    );
    assert_eq!(
        t.figures()[&pair("app", "green")],
        Figures::default(),
        "one sample"
    );
    let mut c = counts(1000, 1000, 13);
    for s in 1..=90u64 {
        // 10 requests a second, one error per second, all fast but one every 20 s at 250 ms.
        c.requests += 10;
        c.c2xx += 9;
        c.c5xx += 1;
        c.buckets[0] += 10;
        if s % 20 == 0 {
            c.buckets[0] -= 1;
            c.buckets[7] += 1;
        }
        let at = start + Duration::from_secs(s);
        t.observe(doc(1.0, &[("app", "green", c.clone())]), &l, at);
    }
    let f = &t.figures()[&pair("app", "green")];
    let rps = f.requests_per_second.expect("rate");
    assert!((rps - 10.0).abs() < 1e-9, "{f:?}");
    let errors = f.error_rate.expect("errors");
    assert!((errors - 10.0).abs() < 1e-9, "{f:?}");
    assert_eq!(f.p99_seconds, Some(0.001), "3 slow of 600: under 1%");

    // No traffic over the last minute: 0 req/s, no rate, no p99.
    for s in 91..=160u64 {
        let at = start + Duration::from_secs(s);
        t.observe(doc(1.0, &[("app", "green", c.clone())]), &l, at);
    }
    let f = &t.figures()[&pair("app", "green")];
    assert_eq!(
        (f.requests_per_second, f.error_rate, f.p99_seconds),
        (Some(0.0), None, None)
    );
}

#[test]
fn p99_is_the_bound_of_the_bucket_holding_it() {
    let mut d = counts(100, 0, 0);
    assert_eq!(quantile(&d, 0.99), Some(0.001));
    d.buckets[0] = 98;
    d.buckets[9] = 2; // 1 s
    assert_eq!(quantile(&d, 0.99), Some(1.0));
    assert_eq!(quantile(&d, 0.5), Some(0.001));
    d.buckets[9] = 0; // 2 slower than the last bound
    assert_eq!(quantile(&d, 0.99), Some(30.0));
    assert_eq!(quantile(&Counts::default(), 0.99), None);
}

#[test]
fn a_pair_new_since_the_last_reading_counts_in_the_window() {
    let t = Traffic::default();
    let start = Instant::now();
    let l = live(&["app"]);
    t.observe(doc(1.0, &[]), &l, start);
    // All of green's traffic came between two readings.
    let later = start + Duration::from_secs(2);
    t.observe(doc(1.0, &[("app", "green", counts(50, 5, 0))]), &l, later);
    let f = &t.figures()[&pair("app", "green")];
    assert_eq!(f.requests_per_second, Some(25.0), "{f:?}");
    assert_eq!(f.error_rate, Some(10.0), "{f:?}");
}

#[test]
fn at_the_first_reading_an_nginx_started_within_the_window_counts_from_its_start() {
    let unix = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs_f64();
    let t = Traffic::default();
    let l = live(&["app"]);
    t.observe(
        doc(unix - 4.0, &[("app", "blue", counts(40, 0, 0))]),
        &l,
        Instant::now(),
    );
    let rps = t.figures()[&pair("app", "blue")]
        .requests_per_second
        .expect("a rate");
    assert!((9.0..=11.0).contains(&rps), "{rps}");
}

#[test]
fn nginx_counts_in_the_buckets_of_the_metrics() {
    let lua = include_str!("../../templates/lua/swarmgate/traffic.lua");
    let line = lua
        .lines()
        .find(|l| l.starts_with("local BOUNDS = {"))
        .expect("BOUNDS in traffic.lua");
    let bounds: Vec<f64> = line
        .trim_start_matches("local BOUNDS = {")
        .trim_end_matches('}')
        .split(',')
        .map(|b| b.trim().parse().expect("a number"))
        .collect();
    assert_eq!(bounds, LATENCY_BUCKETS);
}

#[test]
fn service_totals_carry_the_index_live_before_the_reading() {
    let t = Traffic::default();
    let now = Instant::now();
    let mut index: LiveIndex = [("app".to_string(), 7), ("other".to_string(), 3)].into();
    t.observe(
        doc(
            1.0,
            &[
                ("app", "blue", counts(10, 1, 0)),
                ("app", "green", counts(4, 0, 0)),
                ("other", "blue", counts(1, 0, 0)),
            ],
        ),
        &index,
        now,
    );
    let totals = t.service_totals("app").expect("live");
    assert_eq!(totals.settings_index, 7);
    assert_eq!(totals.colors.keys().collect::<Vec<_>>(), ["blue", "green"]);
    assert_eq!(totals.colors["green"].requests, 4);
    index.insert("app".into(), 9);
    t.observe(doc(1.0, &[("app", "green", counts(6, 0, 0))]), &index, now);
    let totals = t.service_totals("app").expect("live");
    assert_eq!(totals.settings_index, 9);
    assert_eq!(totals.colors["green"].requests, 6);
    assert_eq!(t.service_totals("gone"), None);
}
