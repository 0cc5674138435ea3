//! Deploy settings in Consul KV (keys in [`crate::keys`]): `active` (a colour), `canary`
//! (0–100), `previous` (for rollback) and `promotion` (a running `templater promote`) per
//! service. Parsing validates every value and keeps the last good one when a new one is bad.

use std::collections::BTreeMap;

use swarmgate_consul::{rules, KvPair};

use crate::keys::{Field, Keys};

/// One service's deploy settings.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DeploySettings {
    pub active: Option<String>,
    pub canary: u8,
    pub previous: Option<String>,
    /// A `promotion` record is present: `templater promote` is walking the service, so the
    /// edges publish its traffic every second (the record itself is the CLI's).
    pub promoting: bool,
    /// The highest ModifyIndex of `active` and `canary`: what an install acknowledges.
    pub index: u64,
}

/// Every service's settings.
pub type Settings = BTreeMap<String, DeploySettings>;

/// A KV value that cannot be used, naming the key.
#[derive(Clone, Debug, PartialEq, Eq, Hash, thiserror::Error)]
#[error("kv {key}: {reason}")]
pub struct SettingError {
    pub key: String,
    pub reason: String,
}

/// A canary percentage: an integer from 0 to 100.
pub fn parse_canary(raw: &str) -> Result<u8, String> {
    let trimmed = raw.trim();
    match trimmed.parse::<u8>() {
        Ok(p) if p <= 100 => Ok(p),
        _ => Err(format!(
            "{trimmed:?} is not a whole percentage from 0 to 100"
        )),
    }
}

/// A colour from `colors`.
pub fn parse_color(raw: &str, colors: &[String]) -> Result<String, String> {
    let c = raw.trim();
    if colors.iter().any(|k| k == c) {
        Ok(c.to_string())
    } else {
        Err(format!(
            "{c:?} is not one of the colours {}",
            colors.join(", ")
        ))
    }
}

/// Parses every settings key among `pairs`. A bad value keeps `previous`'s value for that
/// field (or the default) and is reported.
pub fn parse(
    pairs: &[KvPair],
    keys: &Keys,
    colors: &[String],
    previous: &Settings,
) -> (Settings, Vec<SettingError>) {
    let mut out = Settings::new();
    let mut errors = Vec::new();
    for pair in pairs {
        let Some((service, field)) = keys.parse_setting(&pair.key) else {
            continue;
        };
        let bad = |reason: String| SettingError {
            key: pair.key.clone(),
            reason,
        };
        if let Err(e) = rules::service_name(&service) {
            errors.push(bad(format!("service name {e}")));
            continue;
        }
        let old = previous.get(&service);
        let entry = out.entry(service.clone()).or_default();
        let text = String::from_utf8_lossy(&pair.value);
        match field {
            Field::Active => {
                entry.index = entry.index.max(pair.modify_index);
                match parse_color(&text, colors) {
                    Ok(c) => entry.active = Some(c),
                    Err(e) => {
                        errors.push(bad(e + "; keeping the last good value"));
                        entry.active = old.and_then(|o| o.active.clone());
                    }
                }
            }
            Field::Canary => {
                entry.index = entry.index.max(pair.modify_index);
                match parse_canary(&text) {
                    Ok(p) => entry.canary = p,
                    Err(e) => {
                        errors.push(bad(e + "; keeping the last good value"));
                        entry.canary = old.map_or(0, |o| o.canary);
                    }
                }
            }
            Field::Previous => match parse_color(&text, colors) {
                Ok(c) => entry.previous = Some(c),
                Err(e) => {
                    errors.push(bad(e + "; rollback has no previous colour"));
                    entry.previous = None;
                }
            },
            Field::Promotion => entry.promoting = !pair.value.is_empty(),
        }
    }
    (out, errors)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(key: &str, value: &str, index: u64) -> KvPair {
        KvPair {
            key: key.into(),
            value: value.as_bytes().to_vec(),
            modify_index: index,
            session: None,
        }
    }

    fn keys() -> Keys {
        Keys::new("deploy").expect("prefix")
    }

    fn colors() -> Vec<String> {
        vec!["blue".into(), "green".into()]
    }

    #[test]
    fn parses_active_canary_previous_and_ignores_the_rest() {
        let pairs = [
            pair("deploy/web/active", "green", 7),
            pair("deploy/web/canary", " 10 ", 9),
            pair("deploy/web/previous", "blue", 3),
            pair("deploy/web/installed/edge1", "{}", 11),
            pair("deploy/_templater/edge1", "{}", 12),
        ];
        let (s, errors) = parse(&pairs, &keys(), &colors(), &Settings::new());
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(
            s["web"],
            DeploySettings {
                active: Some("green".into()),
                canary: 10,
                previous: Some("blue".into()),
                promoting: false,
                index: 9
            }
        );
        assert_eq!(s.len(), 1);
    }

    #[test]
    fn bad_values_keep_the_last_good_and_name_the_key() {
        let good = parse(
            &[
                pair("deploy/web/active", "green", 1),
                pair("deploy/web/canary", "10", 1),
            ],
            &keys(),
            &colors(),
            &Settings::new(),
        )
        .0;
        for (canary, active) in [
            ("101", "red"),
            ("ten", "green;"),
            ("-1", ""),
            ("1.5", "blue\nred"),
        ] {
            let (s, errors) = parse(
                &[
                    pair("deploy/web/active", active, 2),
                    pair("deploy/web/canary", canary, 2),
                ],
                &keys(),
                &colors(),
                &good,
            );
            assert_eq!(s["web"].active.as_deref(), Some("green"), "{active:?}");
            assert_eq!(s["web"].canary, 10, "{canary:?}");
            assert_eq!(errors.len(), 2);
            assert!(errors[0].to_string().contains("deploy/web/active"));
        }
    }

    #[test]
    fn hostile_service_names_in_keys_are_rejected() {
        let (s, errors) = parse(
            &[
                pair("deploy/we}b/active", "blue", 1),
                pair("deploy/.x/active", "blue", 1),
            ],
            &keys(),
            &colors(),
            &Settings::new(),
        );
        assert!(s.is_empty());
        assert_eq!(errors.len(), 2);
    }

    #[test]
    fn canary_values() {
        assert_eq!(parse_canary("0"), Ok(0));
        assert_eq!(parse_canary("100"), Ok(100));
        for bad in ["101", "ten", "-5", "", "50%", "1e2"] {
            assert!(parse_canary(bad).is_err(), "{bad}");
        }
    }
}
