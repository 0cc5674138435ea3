//! Container env and labels (`KEY=VALUE` lines; the first half env, the rest labels) through the
//! registrator's label parser and validators: never a panic; a value that passes validation
//! has no control character and fits Consul's limits.
#![no_main]

use libfuzzer_sys::fuzz_target;
use registrator::labels::{check_id, check_name, check_text, split_list, ServiceLabels};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let lines: Vec<&str> = text.lines().collect();
    let (env, labels) = lines.split_at(lines.len() / 2);
    let labels: Vec<(&str, &str)> = labels.iter().filter_map(|l| l.split_once('=')).collect();
    let parsed = ServiceLabels::collect(env.iter().copied(), labels.iter().copied());
    for port in [0u16, 1, 80, 443, 8080, 65535] {
        for (key, labelled) in parsed.all_for(port) {
            let value = labelled.value.as_str();
            if check_text(key, value).is_ok() {
                assert!(!value.chars().any(char::is_control));
                assert!(value.len() <= swarmgate_consul::rules::MAX_VALUE_LEN);
            }
            if check_name(key, value).is_ok() {
                assert!(value
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "._-/".contains(c)));
                assert!(value.starts_with(|c: char| c.is_ascii_alphanumeric()));
            }
            let _ = check_id(key, value);
            for item in split_list(value) {
                let _ = check_text(key, item);
            }
        }
    }
});
