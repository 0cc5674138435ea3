//! `SERVICE_*` labels and environment variables: collecting them (labels win over env), splitting
//! port-specific keys (`SERVICE_80_NAME`) from container-wide ones, and validating values.

use std::collections::BTreeMap;

use swarmgate_consul::{duration, rules};

/// Longest meta key (Consul's limit).
pub const MAX_META_KEY_LEN: usize = 128;

/// A label that cannot be used, naming the label and saying why.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("label {label}: {reason}")]
pub struct LabelError {
    pub label: String,
    pub reason: String,
}

impl LabelError {
    pub fn new(label: impl Into<String>, reason: impl Into<String>) -> Self {
        LabelError {
            label: label.into(),
            reason: reason.into(),
        }
    }
}

/// One value with the label it came from, for error messages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Labelled {
    pub label: String,
    pub value: String,
}

/// The `SERVICE_*` settings of one container. Keys are upper-case suffixes: `NAME`, `CHECK_HTTP`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServiceLabels {
    global: BTreeMap<String, Labelled>,
    per_port: BTreeMap<u16, BTreeMap<String, Labelled>>,
    /// Keys that could not be understood at all (e.g. `SERVICE_99999_NAME`).
    pub errors: Vec<LabelError>,
}

impl ServiceLabels {
    /// Collects `SERVICE_*` from env (`KEY=VALUE` strings) and labels; labels win.
    pub fn collect<'a>(
        env: impl IntoIterator<Item = &'a str>,
        labels: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Self {
        let mut out = ServiceLabels::default();
        let env_pairs = env.into_iter().filter_map(|kv| kv.split_once('='));
        for (key, value) in env_pairs.chain(labels) {
            out.insert(key, value);
        }
        out
    }

    fn insert(&mut self, key: &str, value: &str) {
        let Some(rest) = key.strip_prefix("SERVICE_") else {
            return;
        };
        let labelled = Labelled {
            label: key.to_string(),
            value: value.to_string(),
        };
        match split_port(rest) {
            Ok(Some((port, suffix))) => {
                self.per_port
                    .entry(port)
                    .or_default()
                    .insert(suffix.to_ascii_uppercase(), labelled);
            }
            Ok(None) => {
                self.global.insert(rest.to_ascii_uppercase(), labelled);
            }
            Err(reason) => self.errors.push(LabelError::new(key, reason)),
        }
    }

    /// The setting for `port` (port-specific first, then container-wide).
    pub fn get(&self, port: u16, key: &str) -> Option<&Labelled> {
        self.per_port
            .get(&port)
            .and_then(|m| m.get(key))
            .or_else(|| self.global.get(key))
    }

    /// True when the setting for `port` comes from a port-specific key.
    pub fn is_port_specific(&self, port: u16, key: &str) -> bool {
        self.per_port
            .get(&port)
            .is_some_and(|m| m.contains_key(key))
    }

    /// Every setting that applies to `port`, port-specific ones overriding container-wide ones.
    pub fn all_for(&self, port: u16) -> BTreeMap<&str, &Labelled> {
        let mut all: BTreeMap<&str, &Labelled> =
            self.global.iter().map(|(k, v)| (k.as_str(), v)).collect();
        if let Some(specific) = self.per_port.get(&port) {
            all.extend(specific.iter().map(|(k, v)| (k.as_str(), v)));
        }
        all
    }
}

/// `80_NAME` → port 80, `NAME`; `NAME` → none; `99999_NAME` or `-1_NAME` → error.
fn split_port(rest: &str) -> Result<Option<(u16, &str)>, String> {
    let Some((head, suffix)) = rest.split_once('_') else {
        return Ok(None);
    };
    let looks_numeric = head.starts_with(|c: char| c.is_ascii_digit() || c == '-' || c == '+');
    if !looks_numeric {
        return Ok(None);
    }
    match head.parse::<u16>() {
        Ok(port) if port > 0 && !suffix.is_empty() => Ok(Some((port, suffix))),
        _ => Err(format!("{head:?} is not a port number (1-65535)")),
    }
}

/// A service name (the shared rule: starts with a letter or digit, `[A-Za-z0-9._/-]`).
pub fn check_name(label: &str, value: &str) -> Result<(), LabelError> {
    rules::service_name(value).map_err(|e| LabelError::new(label, e.to_string()))
}

/// A service id (a name with `:` too; never only dots). Nor may any `/`-separated part be
/// only dots: Consul's HTTP router cleans `a/../b` out of the deregistration path, so such a
/// service could never be removed.
pub fn check_id(label: &str, value: &str) -> Result<(), LabelError> {
    rules::service_id(value).map_err(|e| LabelError::new(label, e.to_string()))?;
    if value.split('/').any(|part| part.chars().all(|c| c == '.')) {
        return Err(LabelError::new(
            label,
            format!("{value:?} has an empty, . or .. part between slashes"),
        ));
    }
    Ok(())
}

/// A free-text value (tag, meta value, check parameter): no control characters, bounded size.
pub fn check_text(label: &str, value: &str) -> Result<(), LabelError> {
    rules::text(value).map_err(|e| LabelError::new(label, e.to_string()))
}

/// A Go-style duration as Consul takes it: `10s`, `1m30s`, `500ms`.
pub fn check_duration(label: &str, value: &str) -> Result<(), LabelError> {
    duration::parse(value)
        .map(drop)
        .map_err(|e| LabelError::new(label, e.to_string()))
}

/// Splits a comma list, trimming and dropping empties.
pub fn split_list(value: &str) -> impl Iterator<Item = &str> {
    value.split(',').map(str::trim).filter(|s| !s.is_empty())
}

/// Splits a tag list as gliderlabs does: on unescaped commas only (`\,` is a literal comma);
/// trimmed, empties dropped.
pub fn split_tags(value: &str) -> Vec<String> {
    let mut tags = Vec::new();
    let mut current = String::new();
    let mut chars = value.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&',') => {
                current.push(',');
                chars.next();
            }
            ',' => tags.push(std::mem::take(&mut current)),
            c => current.push(c),
        }
    }
    tags.push(current);
    tags.into_iter()
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> ServiceLabels {
        ServiceLabels::collect([], pairs.iter().copied())
    }

    #[test]
    fn labels_win_over_env() {
        let l = ServiceLabels::collect(
            ["SERVICE_NAME=from-env", "SERVICE_TAGS=a", "PATH=/bin"],
            [("SERVICE_NAME", "from-label")],
        );
        assert_eq!(
            l.get(80, "NAME").map(|v| v.value.as_str()),
            Some("from-label")
        );
        assert_eq!(l.get(80, "TAGS").map(|v| v.value.as_str()), Some("a"));
        assert!(l.get(80, "PATH").is_none());
    }

    #[test]
    fn port_specific_overrides_global() {
        let l = labels(&[
            ("SERVICE_NAME", "web"),
            ("SERVICE_443_NAME", "web-tls"),
            ("SERVICE_443_CHECK_TCP", "true"),
        ]);
        assert_eq!(l.get(80, "NAME").map(|v| v.value.as_str()), Some("web"));
        assert_eq!(
            l.get(443, "NAME").map(|v| v.value.as_str()),
            Some("web-tls")
        );
        assert!(l.is_port_specific(443, "NAME"));
        assert!(!l.is_port_specific(80, "NAME"));
        assert_eq!(
            l.get(443, "CHECK_TCP").map(|v| v.value.as_str()),
            Some("true")
        );
        assert!(l.get(80, "CHECK_TCP").is_none());
    }

    #[test]
    fn bad_port_keys_are_errors_naming_the_label() {
        let l = labels(&[
            ("SERVICE_99999_NAME", "x"),
            ("SERVICE_-1_NAME", "y"),
            ("SERVICE_0_NAME", "z"),
        ]);
        let named: Vec<_> = l.errors.iter().map(|e| e.label.as_str()).collect();
        assert_eq!(
            named,
            ["SERVICE_99999_NAME", "SERVICE_-1_NAME", "SERVICE_0_NAME"]
        );
    }

    #[test]
    fn rule_breaks_name_the_label() {
        for (check, value) in [
            (
                check_name as fn(&str, &str) -> Result<(), LabelError>,
                "web;",
            ),
            (check_name, ".app"),
            (check_id, ".."),
            (check_id, "a/../../rootkey"),
            (check_id, "a//b"),
            (check_text, "a\nb"),
            (check_duration, "10"),
        ] {
            let err = check("SERVICE_X", value).expect_err(value);
            assert_eq!(err.label, "SERVICE_X", "{value}");
        }
        assert!(check_name("L", "service1/v1").is_ok());
    }

    #[test]
    fn tags_split_on_unescaped_commas_only() {
        assert_eq!(split_tags(r"a,b\,c, d,,"), ["a", "b,c", "d"]);
        assert_eq!(split_tags(r"x\y"), [r"x\y"]);
        assert!(split_tags("").is_empty());
    }

    #[test]
    fn lists_split_and_trim() {
        assert_eq!(split_list(" a, b,,c ").collect::<Vec<_>>(), ["a", "b", "c"]);
    }
}
