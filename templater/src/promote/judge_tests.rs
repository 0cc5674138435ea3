use super::*;
use swarmgate_runtime::metrics::LATENCY_BUCKETS;

fn limits() -> Limits {
    Limits {
        max_error_rate: 1.0,
        max_p99: None,
        min_requests: 100,
        max_error_rate_increase: 0.5,
        max_p99_increase: 1.5,
    }
}

/// `requests` requests, `errors` of them 5xx, all in the bucket bounded by `latency`.
fn counts(requests: u64, errors: u64, latency: f64) -> Counts {
    let mut buckets = vec![0; LATENCY_BUCKETS.len()];
    let i = LATENCY_BUCKETS
        .iter()
        .position(|b| latency <= *b)
        .expect("a bucket");
    buckets[i] = requests;
    Counts {
        requests,
        c2xx: requests - errors,
        c5xx: errors,
        buckets,
        ..Counts::default()
    }
}

/// green (the canary) and blue (the baseline).
fn pair<'a>(c: &'a Counts, b: &'a Counts) -> (Observed<'a>, Observed<'a>) {
    (
        Observed {
            color: "green",
            counts: c,
        },
        Observed {
            color: "blue",
            counts: b,
        },
    )
}

fn judge_of(l: &Limits, c: &Counts, b: &Counts) -> Verdict {
    let (c, b) = pair(c, b);
    judge(l, &c, &b)
}

fn breach_of(l: &Limits, c: &Counts, b: &Counts) -> Option<String> {
    let (c, b) = pair(c, b);
    certain_breach(l, &c, &b)
}

#[test]
fn a_canary_within_its_limits_passes() {
    let v = judge_of(&limits(), &counts(312, 3, 0.01), &counts(2808, 3, 0.01));
    assert!(matches!(v, Verdict::Pass(_)), "{v:?}");
}

#[test]
fn a_canary_over_the_error_limit_fails_naming_the_figure_and_the_baseline() {
    let v = judge_of(&limits(), &counts(312, 13, 0.01), &counts(2808, 3, 0.01));
    assert_eq!(
        v,
        Verdict::Fail("green: 5xx 4.2% > 1% over 312 requests (blue: 0.1% over 2,808)".into())
    );
}

#[test]
fn too_few_requests_is_no_verdict_even_when_all_failed() {
    let v = judge_of(&limits(), &counts(99, 0, 0.01), &counts(2808, 0, 0.01));
    assert!(matches!(v, Verdict::TooFew(_)), "{v:?}");
    let v = judge_of(&limits(), &counts(0, 0, 0.01), &counts(0, 0, 0.01));
    assert!(matches!(v, Verdict::TooFew(_)), "{v:?}");
}

#[test]
fn a_baseline_failing_alike_holds_the_step() {
    // Both at ~20%: a shared cause.
    let v = judge_of(&limits(), &counts(300, 60, 0.01), &counts(2700, 540, 0.01));
    assert!(matches!(v, Verdict::Hold(_)), "{v:?}");
    // The canary worse than the baseline by more than the increase: its own fault.
    let v = judge_of(&limits(), &counts(300, 63, 0.01), &counts(2700, 540, 0.01));
    assert!(matches!(v, Verdict::Fail(_)), "{v:?}");
}

#[test]
fn a_baseline_with_too_few_requests_cannot_excuse() {
    // The 100% step: the baseline gets nothing.
    let v = judge_of(&limits(), &counts(300, 60, 0.01), &counts(0, 0, 0.01));
    assert!(matches!(v, Verdict::Fail(_)), "{v:?}");
    let v = judge_of(&limits(), &counts(300, 60, 0.01), &counts(50, 10, 0.01));
    assert!(matches!(v, Verdict::Fail(_)), "{v:?}");
}

#[test]
fn p99_over_its_limit_fails_unless_the_baseline_is_as_slow() {
    let l = Limits {
        max_p99: Some(0.25),
        ..limits()
    };
    let v = judge_of(&l, &counts(300, 0, 0.5), &counts(2700, 0, 0.01));
    match v {
        Verdict::Fail(m) => assert!(m.contains("p99 500ms > 250ms"), "{m}"),
        other => panic!("{other:?}"),
    }
    let v = judge_of(&l, &counts(300, 0, 0.5), &counts(2700, 0, 0.5));
    assert!(matches!(v, Verdict::Hold(_)), "{v:?}");
    let v = judge_of(&l, &counts(300, 0, 0.1), &counts(2700, 0, 0.01));
    assert!(matches!(v, Verdict::Pass(_)), "{v:?}");
}

#[test]
fn a_breach_is_certain_only_when_more_requests_cannot_undo_it() {
    let l = limits();
    // 1 error in 5 requests: 1 over 100 would be 1%, not over the limit.
    assert_eq!(
        breach_of(&l, &counts(5, 1, 0.01), &counts(50, 0, 0.01)),
        None
    );
    // 2 errors: at least 2% whatever comes next.
    assert!(breach_of(&l, &counts(5, 2, 0.01), &counts(50, 0, 0.01)).is_some());
    // Past min_requests, the rate seen so far.
    assert!(breach_of(&l, &counts(1000, 11, 0.01), &counts(5000, 0, 0.01)).is_some());
    assert_eq!(
        breach_of(&l, &counts(1000, 10, 0.01), &counts(5000, 0, 0.01)),
        None
    );
    // A baseline failing alike excuses it.
    assert_eq!(
        breach_of(&l, &counts(1000, 200, 0.01), &counts(5000, 1000, 0.01)),
        None
    );
}

#[test]
fn numbers_read_well() {
    assert_eq!(thousands(0), "0");
    assert_eq!(thousands(2808), "2,808");
    assert_eq!(thousands(1234567), "1,234,567");
    assert_eq!(percent(4.166), "4.2%");
    assert_eq!(percent(100.0), "100%");
    assert_eq!(millis(0.5), "500ms");
    assert_eq!(millis(2.5), "2.5s");
}
