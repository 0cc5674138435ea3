//! What the daemon writes back to KV: its status record (`<prefix>/_templater/<name>/status`:
//! last install, last error) and per-service acknowledgements
//! (`<prefix>/_templater/<name>/installed/<service>`) that `flip --wait-live` waits for.

use serde::{Deserialize, Serialize};

use crate::settings::STATUS_DIR;

/// The daemon's status record.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DaemonStatus {
    pub name: String,
    pub last_install_unix: Option<u64>,
    pub last_error: Option<String>,
    pub last_error_unix: Option<u64>,
    pub services: usize,
    pub held: bool,
}

/// An acknowledgement: the settings at `index` are live in nginx.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ack {
    pub index: u64,
    pub active: Option<String>,
    pub canary: u8,
    pub at_unix: u64,
}

pub fn daemon_dir(prefix: &str, name: &str) -> String {
    format!("{}/{STATUS_DIR}/{name}/", prefix.trim_end_matches('/'))
}

pub fn status_key(prefix: &str, name: &str) -> String {
    format!("{}status", daemon_dir(prefix, name))
}

pub fn ack_key(prefix: &str, name: &str, service: &str) -> String {
    format!("{}installed/{service}", daemon_dir(prefix, name))
}

/// `(daemon name, service)` of an ack key, when `key` is one.
pub fn parse_ack_key<'a>(prefix: &str, key: &'a str) -> Option<(&'a str, &'a str)> {
    let rest = key.strip_prefix(&format!("{}/{STATUS_DIR}/", prefix.trim_end_matches('/')))?;
    let (name, rest) = rest.split_once('/')?;
    Some((name, rest.strip_prefix("installed/")?))
}

/// The daemon name of a status key, when `key` is one.
pub fn parse_status_key<'a>(prefix: &str, key: &'a str) -> Option<&'a str> {
    let rest = key.strip_prefix(&format!("{}/{STATUS_DIR}/", prefix.trim_end_matches('/')))?;
    rest.strip_suffix("/status").filter(|n| !n.contains('/'))
}

pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip() {
        let k = ack_key("deploy", "edge1", "web");
        assert_eq!(k, "deploy/_templater/edge1/installed/web");
        assert_eq!(parse_ack_key("deploy", &k), Some(("edge1", "web")));
        assert_eq!(
            parse_status_key("deploy", &status_key("deploy", "edge1")),
            Some("edge1")
        );
        assert_eq!(parse_ack_key("deploy", "deploy/web/active"), None);
    }
}
