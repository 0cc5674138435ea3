//! Arbitrary KV keys and values under the deploy prefix through the templater's settings parser:
//! never a panic; whatever is accepted is a known colour and a canary of 0-100.
#![no_main]

use libfuzzer_sys::fuzz_target;
use swarmgate_consul::KvPair;
use templater::keys::Keys;
use templater::settings::{parse, parse_canary, Settings};

fuzz_target!(|data: &[u8]| {
    let colors = vec!["blue".to_string(), "green".to_string()];
    // Records separated by 0xff: the key is everything before the first 0x00, the value the rest.
    let pairs: Vec<KvPair> = data
        .split(|b| *b == 0xff)
        .enumerate()
        .map(|(i, rec)| {
            let (key, value) = match rec.iter().position(|b| *b == 0) {
                Some(at) => (&rec[..at], &rec[at + 1..]),
                None => (rec, &[][..]),
            };
            KvPair {
                key: format!("deploy/{}", String::from_utf8_lossy(key)),
                value: value.to_vec(),
                modify_index: i as u64,
                session: None,
            }
        })
        .collect();
    let keys = Keys::new("deploy").expect("prefix");
    let (settings, _errors) = parse(&pairs, &keys, &colors, &Settings::new());
    for (name, s) in &settings {
        assert!(swarmgate_consul::rules::service_name(name).is_ok(), "{name:?}");
        assert!(s.canary <= 100);
        if let Some(active) = &s.active {
            assert!(colors.contains(active), "{active:?}");
        }
    }
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(p) = parse_canary(text) {
            assert!(p <= 100);
        }
    }
});
