//! The map of the registrator's KV keys: `<prefix>/<service-name>/<service-id>`. This module
//! alone normalises the prefix, formats a key and parses one back; nothing else builds a key.
//!
//! A name or id goes into its segment through the shared [`key_segment`] encoding, so no
//! segment is ever `.` or `..` and a `/` in a name never adds a level.

use std::fmt;

use swarmgate_consul::rules::{key_segment, parse_key_segment};

/// Where the records live; `None` in settings turns them off.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KvPrefix(String);

/// A `--kv-prefix` that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("--kv-prefix {0:?}: {1}")]
pub struct PrefixError(String, &'static str);

impl KvPrefix {
    /// Trims the slashes around `raw` once; empty means "no records" (`Ok(None)`). Refuses
    /// empty, `.` and `..` segments and control characters, which would put keys elsewhere.
    pub fn new(raw: &str) -> Result<Option<KvPrefix>, PrefixError> {
        let trimmed = raw.trim_matches('/');
        if trimmed.is_empty() {
            return Ok(None);
        }
        let bad = |why| Err(PrefixError(raw.to_string(), why));
        if trimmed.chars().any(char::is_control) {
            return bad("has control characters");
        }
        for segment in trimmed.split('/') {
            if segment.is_empty() {
                return bad("has an empty segment");
            }
            if segment.chars().all(|c| c == '.') {
                return bad("has a . or .. segment");
            }
        }
        Ok(Some(KvPrefix(trimmed.to_string())))
    }

    /// The prefix, without slashes around it.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `<prefix>/`, what a recursive listing of every record reads.
    pub fn dir(&self) -> String {
        format!("{}/", self.0)
    }

    /// The key of service `id` named `name`.
    pub fn key(&self, name: &str, id: &str) -> String {
        format!("{}/{}/{}", self.0, key_segment(name), key_segment(id))
    }

    /// `(name, id)` of a record key under this prefix, decoded; `None` for any other key.
    pub fn parse(&self, key: &str) -> Option<(String, String)> {
        let rest = key.strip_prefix(&self.0)?.strip_prefix('/')?;
        let (name, id) = rest.split_once('/')?;
        if id.contains('/') {
            return None;
        }
        Some((parse_key_segment(name)?, parse_key_segment(id)?))
    }
}

impl fmt::Display for KvPrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prefix(raw: &str) -> KvPrefix {
        KvPrefix::new(raw).expect("valid").expect("on")
    }

    #[test]
    fn the_prefix_is_trimmed_once_and_empty_turns_records_off() {
        assert_eq!(prefix("/services/").as_str(), "services");
        assert_eq!(prefix("a/b").dir(), "a/b/");
        assert_eq!(KvPrefix::new(""), Ok(None));
        assert_eq!(KvPrefix::new("/"), Ok(None));
        for bad in ["a//b", "../x", "a/./b", "a/..", "x\ny"] {
            assert!(KvPrefix::new(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn keys_round_trip_and_encode_what_cannot_stand_verbatim() {
        let p = prefix("services");
        assert_eq!(p.key("web", "n1:web_1:80"), "services/web/n1:web_1:80");
        assert_eq!(p.key("service1/v1", "x"), "services/service1%2Fv1/x");
        for (name, id) in [
            ("web", "n1:web_1:80:udp"),
            ("service1/v1", "a%b"),
            ("..", "rootkey"),
            (".", ".."),
            ("a b", "é"),
        ] {
            let key = p.key(name, id);
            assert_eq!(p.parse(&key), Some((name.into(), id.into())), "{key}");
        }
    }

    #[test]
    fn no_segment_is_ever_a_dot_segment() {
        let p = prefix("services");
        for (name, id) in [("..", "rootkey"), (".", "x"), ("web", ".."), ("web", ".")] {
            let key = p.key(name, id);
            assert!(
                key.split('/').all(|s| !s.chars().all(|c| c == '.')),
                "{key}"
            );
            assert!(key.starts_with("services/"), "{key}");
            assert_eq!(key.split('/').count(), 3, "{key}");
        }
    }

    #[test]
    fn parse_refuses_other_keys() {
        let p = prefix("services");
        for other in [
            "services",
            "services/web",
            "other/web/x",
            "servicesx/web/x",
            "services/a/b/c",
        ] {
            assert_eq!(p.parse(other), None, "{other}");
        }
    }
}
