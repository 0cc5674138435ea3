//! How to reach Consul: the address in every spelling users bring (registrator URIs, Consul's
//! `CONSUL_HTTP_ADDR`, unix sockets), the token, TLS files, timeouts and the answer size cap.

use std::path::PathBuf;
use std::time::Duration;

use reqwest::Url;

use crate::error::{Error, Result};

/// The address Consul's own tools use when none is given.
pub const DEFAULT_CONSUL_ADDR: &str = "127.0.0.1:8500";
/// The largest answer read from Consul; a bigger one is refused, not buffered.
pub const DEFAULT_MAX_ANSWER_BYTES: usize = 64 << 20;

/// Where Consul listens: an HTTP(S) base URL, possibly reached over a unix socket.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Address {
    /// Base URL, `http://host:port/` or `https://host:port/` (`http://localhost/` on a socket).
    pub url: Url,
    /// Consul's HTTP API on a unix socket (`addresses.http = "unix://…"`).
    pub unix_socket: Option<PathBuf>,
}

impl std::fmt::Display for Address {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.unix_socket {
            Some(path) => write!(f, "unix://{}", path.display()),
            None => write!(f, "{}", self.url),
        }
    }
}

/// Everything the client needs to know to talk to one Consul agent.
#[derive(Clone, Debug)]
pub struct ConsulConfig {
    pub address: Address,
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
    /// Answers larger than this are refused.
    pub max_answer_bytes: usize,
}

impl ConsulConfig {
    /// A plain-HTTP configuration for `url`, with no token and no TLS.
    pub fn new(url: Url) -> Self {
        Self::at(Address {
            url,
            unix_socket: None,
        })
    }

    /// A configuration for `address`, with no token and no TLS.
    pub fn at(address: Address) -> Self {
        ConsulConfig {
            address,
            token: None,
            ca_cert: None,
            client_cert: None,
            client_key: None,
            request_timeout: Duration::from_secs(10),
            max_answer_bytes: DEFAULT_MAX_ANSWER_BYTES,
        }
    }
}

/// Parses where Consul is, in any of the spellings users bring:
/// - registrator's `consul://host:port`, `consul-tls://host:port`, `consul-unix:///path`, and
///   `consul:http://host:port` / `consul:https://host:port` (Terraform and Nomad files);
/// - Consul's `http://…`, `https://…`, `unix:///path` and bare `host:port`.
///
/// `tls` makes a scheme-less address https (`CONSUL_HTTP_SSL=true`, or a CA file given).
/// A URI without a host (`consul://`) means `fallback`.
pub fn parse_address(raw: &str, tls: bool, fallback: &str) -> Result<Address> {
    let raw = raw.trim();
    let bad = |why: &str| Error::Config(format!("consul address {raw:?}: {why}"));
    let raw_inner = raw.strip_prefix("consul:").filter(|r| r.contains("://"));
    let spelled = raw_inner.unwrap_or(raw);
    let (scheme, rest) = match spelled.split_once("://") {
        Some(("consul-unix" | "unix", path)) => {
            return unix_address(path).ok_or_else(|| bad("expected an absolute socket path"))
        }
        Some(("consul", rest)) => (if tls { "https" } else { "http" }, rest),
        Some(("http", rest)) => ("http", rest),
        Some(("consul-tls" | "https", rest)) => ("https", rest),
        Some((other, _)) => return Err(bad(&format!("unknown scheme {other:?}"))),
        None => (if tls { "https" } else { "http" }, spelled),
    };
    let host_port = rest.trim_end_matches('/');
    if host_port.is_empty() {
        if fallback.trim().is_empty() || fallback == raw {
            return Err(bad("missing host"));
        }
        return parse_address(fallback, tls, "");
    }
    if host_port.contains('/') {
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
    Ok(Address {
        url,
        unix_socket: None,
    })
}

fn unix_address(path: &str) -> Option<Address> {
    if !path.starts_with('/') || path.len() < 2 {
        return None;
    }
    Some(Address {
        url: Url::parse("http://localhost/").expect("a constant url"),
        unix_socket: Some(PathBuf::from(path)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(raw: &str, tls: bool) -> String {
        parse_address(raw, tls, DEFAULT_CONSUL_ADDR)
            .expect(raw)
            .to_string()
    }

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
            ("consul:http://c:8500", false, "http://c:8500/"),
            ("consul:https://c:8501", false, "https://c:8501/"),
            ("consul://", false, "http://127.0.0.1:8500/"),
            (
                "consul-unix:///run/consul.sock",
                false,
                "unix:///run/consul.sock",
            ),
            ("unix:///run/consul.sock", false, "unix:///run/consul.sock"),
        ];
        for (raw, tls, want) in cases {
            assert_eq!(url(raw, tls), want, "{raw}");
        }
    }

    #[test]
    fn a_hostless_uri_takes_the_fallback() {
        let a = parse_address("consul://", false, "10.1.2.3:8600").expect("fallback");
        assert_eq!(a.url.as_str(), "http://10.1.2.3:8600/");
    }

    #[test]
    fn rejects_nonsense_naming_it() {
        for raw in [
            "etcd://x:1",
            "consul://host:port/path",
            "http://:80",
            "consul-unix://relative.sock",
        ] {
            let err = parse_address(raw, false, DEFAULT_CONSUL_ADDR)
                .expect_err(raw)
                .to_string();
            assert!(err.contains(raw.trim()), "{err}");
        }
        assert!(parse_address("consul://", false, "").is_err());
    }
}
