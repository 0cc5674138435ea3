//! nginx's control endpoint (Lua data plane): where it listens (a unix socket, or a loopback
//! port, never anything else), and the two calls the templater makes — `PUT /state` with the
//! whole document, answered with the version nginx now holds, `GET /state` to read back
//! what it holds, and `GET /traffic` for the traffic counters ([`crate::traffic`]).

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::state_doc::{ServiceState, StateDoc};
use crate::traffic::TrafficDoc;

/// Where the control endpoint listens by default (on the run volume shared with nginx).
pub const DEFAULT_CONTROL_SOCKET: &str = "/run/swarmgate/control.sock";
/// Longest one call may take: a push is a few kilobytes to a local nginx.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// The control endpoint's address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ControlAddr {
    Unix(PathBuf),
    Loopback(SocketAddr),
}

impl ControlAddr {
    /// An absolute path (a unix socket) or a loopback `IP:PORT`; anything else is refused so
    /// that the endpoint can never be put on a public listener.
    pub fn parse(raw: &str) -> Result<ControlAddr, String> {
        let raw = raw.trim();
        let raw = raw.strip_prefix("unix:").unwrap_or(raw);
        if raw.starts_with('/') {
            if raw
                .chars()
                .any(|c| c.is_control() || c.is_whitespace() || "$;{}\"'\\".contains(c))
            {
                return Err(format!(
                    "{raw:?}: a socket path must be plain (no spaces, quotes, `$`, `;` or braces)"
                ));
            }
            return Ok(ControlAddr::Unix(PathBuf::from(raw)));
        }
        match raw.parse::<SocketAddr>() {
            Ok(a) if a.ip().is_loopback() && a.port() != 0 => Ok(ControlAddr::Loopback(a)),
            Ok(a) => Err(format!(
                "{a}: the control endpoint listens on loopback (127.0.0.1:PORT, [::1]:PORT) or a unix socket only"
            )),
            Err(_) => Err(format!(
                "{raw:?}: expected an absolute unix socket path or a loopback IP:PORT"
            )),
        }
    }
}

impl fmt::Display for ControlAddr {
    /// As the dataplane template prints it: the socket path, or `IP:PORT`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ControlAddr::Unix(p) => write!(f, "{}", p.display()),
            ControlAddr::Loopback(a) => write!(f, "{a}"),
        }
    }
}

/// What a call to the control endpoint came to.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// nginx did not answer (down, restarting, socket missing): retryable.
    #[error("nginx's control endpoint {addr} does not answer: {reason}")]
    Unreachable { addr: String, reason: String },
    /// nginx refused the document (400): the previous state stays; not retryable as is.
    #[error("nginx refused the state: {0}")]
    Refused(String),
    /// nginx holds a higher version than the one pushed (409).
    #[error("nginx holds version {held}, newer than the one pushed")]
    Stale { held: u64 },
    /// Any other answer (413, 5xx, a body that is not the contract's): retryable.
    #[error("nginx's control endpoint answered {0}")]
    Unexpected(String),
}

impl ControlError {
    pub fn retryable(&self) -> bool {
        !matches!(self, ControlError::Refused(_))
    }
}

/// A client of the control endpoint.
#[derive(Clone, Debug)]
pub struct Control {
    http: reqwest::Client,
    addr: ControlAddr,
    base: String,
}

#[derive(Deserialize)]
struct Answer {
    version: Option<u64>,
    error: Option<String>,
}

impl Control {
    pub fn new(addr: ControlAddr) -> Result<Control, String> {
        // A new connection per call: a reload retires the worker an idle connection would be
        // kept to, and a push must not race its closing.
        let mut builder = reqwest::Client::builder()
            .timeout(CALL_TIMEOUT)
            .no_proxy()
            .pool_max_idle_per_host(0);
        let base = match &addr {
            ControlAddr::Unix(path) => {
                builder = builder.unix_socket(path.as_path());
                "http://nginx".to_string()
            }
            ControlAddr::Loopback(a) => format!("http://{a}"),
        };
        let http = builder
            .build()
            .map_err(|e| format!("control client: {e}"))?;
        Ok(Control { http, addr, base })
    }

    pub fn addr(&self) -> &ControlAddr {
        &self.addr
    }

    fn unreachable(&self, e: reqwest::Error) -> ControlError {
        ControlError::Unreachable {
            addr: self.addr.to_string(),
            reason: e.to_string(),
        }
    }

    /// Pushes `doc`; answers the version nginx holds now.
    pub async fn put(&self, doc: &StateDoc) -> Result<u64, ControlError> {
        let resp = self
            .http
            .put(format!("{}/state", self.base))
            .header("content-type", "application/json")
            .body(doc.to_json())
            .send()
            .await
            .map_err(|e| self.unreachable(e))?;
        let status = resp.status().as_u16();
        let body = resp.bytes().await.map_err(|e| self.unreachable(e))?;
        let answer: Option<Answer> = serde_json::from_slice(&body).ok();
        let text = || String::from_utf8_lossy(&body).trim().to_string();
        match (status, answer) {
            (
                200,
                Some(Answer {
                    version: Some(v), ..
                }),
            ) => Ok(v),
            (400, a) => Err(ControlError::Refused(
                a.and_then(|a| a.error).unwrap_or_else(text),
            )),
            (
                409,
                Some(Answer {
                    version: Some(held),
                    ..
                }),
            ) => Err(ControlError::Stale { held }),
            _ => Err(ControlError::Unexpected(format!("{status}: {}", text()))),
        }
    }

    /// The document nginx holds; `None` before its first one.
    pub async fn get(&self) -> Result<Option<StateDoc>, ControlError> {
        let held: Held = self.get_json("/state", "state").await?;
        Ok(held.version.map(|version| StateDoc {
            version,
            services: held.services,
        }))
    }

    /// nginx's traffic counters since it started.
    pub async fn get_traffic(&self) -> Result<TrafficDoc, ControlError> {
        self.get_json("/traffic", "traffic").await
    }

    /// GET `path` on the control endpoint: a 200 with a JSON body that is a `what`.
    async fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        what: &str,
    ) -> Result<T, ControlError> {
        let resp = self
            .http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .map_err(|e| self.unreachable(e))?;
        let status = resp.status().as_u16();
        let body = resp.bytes().await.map_err(|e| self.unreachable(e))?;
        if status != 200 {
            return Err(ControlError::Unexpected(format!(
                "{status}: {}",
                String::from_utf8_lossy(&body).trim()
            )));
        }
        serde_json::from_slice(&body).map_err(|e| {
            ControlError::Unexpected(format!("200 with a body that is no {what}: {e}"))
        })
    }
}

/// `GET /state`'s answer: `{"version":null,"services":{}}` before the first document.
#[derive(Deserialize)]
struct Held {
    version: Option<u64>,
    #[serde(default)]
    services: BTreeMap<String, ServiceState>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_unix_sockets_and_loopback_are_accepted() {
        assert_eq!(
            ControlAddr::parse("/run/swarmgate/control.sock"),
            Ok(ControlAddr::Unix("/run/swarmgate/control.sock".into()))
        );
        assert_eq!(
            ControlAddr::parse("unix:/tmp/c.sock"),
            Ok(ControlAddr::Unix("/tmp/c.sock".into()))
        );
        assert!(matches!(
            ControlAddr::parse("127.0.0.1:9000"),
            Ok(ControlAddr::Loopback(_))
        ));
        assert!(matches!(
            ControlAddr::parse("[::1]:9000"),
            Ok(ControlAddr::Loopback(_))
        ));
        for bad in [
            "0.0.0.0:9000",
            "10.0.0.5:9000",
            "127.0.0.1:0",
            "localhost:9000",
            "relative/path.sock",
            "/tmp/a b.sock",
            "/tmp/x;y",
            "",
        ] {
            assert!(ControlAddr::parse(bad).is_err(), "{bad:?} accepted");
        }
    }
}
