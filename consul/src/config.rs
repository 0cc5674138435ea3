//! How to reach Consul: address (from a registrator-style URI or `CONSUL_HTTP_ADDR`), token, and TLS files.

use std::path::PathBuf;
use std::time::Duration;

use reqwest::Url;

use crate::error::{Error, Result};

/// The address Consul's own tools use when none is given.
pub const DEFAULT_CONSUL_ADDR: &str = "127.0.0.1:8500";

/// Everything the client needs to know to talk to one Consul agent.
#[derive(Clone, Debug)]
pub struct ConsulConfig {
    /// Base URL, `http://host:port` or `https://host:port`.
    pub address: Url,
    /// ACL token sent as `X-Consul-Token`.
    pub token: Option<String>,
    /// PEM CA bundle that signs Consul's server certificate (`CONSUL_CACERT`).
    pub ca_cert: Option<PathBuf>,
    /// PEM client certificate (`CONSUL_CLIENT_CERT`), used with `client_key`.
    pub client_cert: Option<PathBuf>,
    /// PEM client key (`CONSUL_CLIENT_KEY`).
    pub client_key: Option<PathBuf>,
    /// Timeout of an ordinary request; blocking queries add their own wait to it.
    pub request_timeout: Duration,
}

impl ConsulConfig {
    /// A plain-HTTP configuration for `address`, with no token and no TLS.
    pub fn new(address: Url) -> Self {
        ConsulConfig {
            address,
            token: None,
            ca_cert: None,
            client_cert: None,
            client_key: None,
            request_timeout: Duration::from_secs(10),
        }
    }
}

/// Parses where Consul is, in any of the spellings users bring:
/// `consul://host:port`, `consul-tls://host:port` (registrator's), `http://…`, `https://…`
/// and `host:port` (`CONSUL_HTTP_ADDR`'s). `tls` forces https, as `CONSUL_HTTP_SSL=true` does.
pub fn parse_address(raw: &str, tls: bool) -> Result<Url> {
    let raw = raw.trim();
    let bad = |why: &str| Error::Config(format!("consul address {raw:?}: {why}"));
    let (scheme, rest) = match raw.split_once("://") {
        Some(("consul" | "http", rest)) => (if tls { "https" } else { "http" }, rest),
        Some(("consul-tls" | "https", rest)) => ("https", rest),
        Some((other, _)) => return Err(bad(&format!("unknown scheme {other:?}"))),
        None => (if tls { "https" } else { "http" }, raw),
    };
    let host_port = rest.trim_end_matches('/');
    if host_port.is_empty() || host_port.contains('/') {
        return Err(bad("expected host:port"));
    }
    let mut url =
        Url::parse(&format!("{scheme}://{host_port}/")).map_err(|e| bad(&e.to_string()))?;
    if url.host_str().is_none_or(str::is_empty) {
        return Err(bad("missing host"));
    }
    if url.port().is_none() {
        url.set_port(Some(if scheme == "https" { 8501 } else { 8500 }))
            .map_err(|_| bad("cannot set port"))?;
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_registrator_and_consul_spellings() {
        let cases = [
            ("consul://localhost:8500", false, "http://localhost:8500/"),
            (
                "consul-tls://c.example:8501",
                false,
                "https://c.example:8501/",
            ),
            ("127.0.0.1:9000", false, "http://127.0.0.1:9000/"),
            ("127.0.0.1:9000", true, "https://127.0.0.1:9000/"),
            ("https://c:1234/", false, "https://c:1234/"),
            ("consul://[::1]:8500", false, "http://[::1]:8500/"),
            ("consul://consul", false, "http://consul:8500/"),
        ];
        for (raw, tls, want) in cases {
            assert_eq!(parse_address(raw, tls).expect(raw).as_str(), want, "{raw}");
        }
    }

    #[test]
    fn rejects_nonsense_naming_it() {
        for raw in [
            "etcd://x:1",
            "consul://",
            "consul://host:port/path",
            "http://:80",
        ] {
            let err = parse_address(raw, false).expect_err(raw).to_string();
            assert!(err.contains(raw.trim()), "{err}");
        }
    }
}
