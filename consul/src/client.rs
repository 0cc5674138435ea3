//! The HTTP transport: one pooled reqwest client per process, token header, TLS, and the
//! request helpers every typed call goes through.

use std::time::Duration;

use reqwest::{Method, RequestBuilder, Response, Url};
use serde::de::DeserializeOwned;

use crate::blocking::{QueryMeta, QueryOptions};
use crate::config::ConsulConfig;
use crate::error::{Error, Result};

/// Idle connections kept per host: far below Consul's default `http_max_conns_per_client` (200),
/// so that many watches share a handful of connections instead of opening one each.
const MAX_IDLE_PER_HOST: usize = 32;

/// A cheap-to-clone handle on one Consul agent. Both binaries use this and nothing else.
#[derive(Clone, Debug)]
pub struct Client {
    http: reqwest::Client,
    base: Url,
    /// Where Consul is, for messages (`unix:///…` on a socket).
    target: String,
    token: Option<String>,
    request_timeout: Duration,
    max_answer_bytes: usize,
}

impl Client {
    /// Builds the client, loading TLS files named in `config`.
    pub fn new(config: &ConsulConfig) -> Result<Self> {
        let mut builder = reqwest::Client::builder()
            .pool_max_idle_per_host(MAX_IDLE_PER_HOST)
            .pool_idle_timeout(Duration::from_secs(90))
            .connect_timeout(Duration::from_secs(5))
            .tcp_nodelay(true)
            .use_rustls_tls();
        if let Some(socket) = &config.address.unix_socket {
            builder = builder.unix_socket(socket.as_path());
        }
        if let Some(path) = &config.ca_cert {
            let pem = read_file(path, "CA certificate")?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem)
                .map_err(|e| Error::Config(format!("CA certificate {}: {e}", path.display())))?;
            for cert in certs {
                builder = builder.add_root_certificate(cert);
            }
        }
        match (&config.client_cert, &config.client_key) {
            (Some(cert), Some(key)) => {
                let mut pem = read_file(cert, "client certificate")?;
                pem.push(b'\n');
                pem.extend(read_file(key, "client key")?);
                let identity = reqwest::Identity::from_pem(&pem).map_err(|e| {
                    Error::Config(format!("client certificate {}: {e}", cert.display()))
                })?;
                builder = builder.identity(identity);
            }
            (None, None) => {}
            _ => {
                return Err(Error::Config(
                    "a client certificate needs both CONSUL_CLIENT_CERT and CONSUL_CLIENT_KEY"
                        .into(),
                ))
            }
        }
        let http = builder
            .build()
            .map_err(|e| Error::Config(format!("http client: {e}")))?;
        Ok(Client {
            http,
            base: config.address.url.clone(),
            target: config.address.to_string(),
            token: config.token.clone().filter(|t| !t.is_empty()),
            request_timeout: config.request_timeout,
            max_answer_bytes: config.max_answer_bytes,
        })
    }

    /// Where the agent is (`http://h:p/`, `unix:///path`), for messages.
    pub fn address(&self) -> &str {
        &self.target
    }

    pub(crate) fn request(&self, method: Method, path: &str) -> RequestBuilder {
        let url = self
            .base
            .join(path.trim_start_matches('/'))
            .expect("api paths are relative");
        let mut req = self.http.request(method, url).timeout(self.request_timeout);
        if let Some(token) = &self.token {
            req = req.header("X-Consul-Token", token);
        }
        req
    }

    /// Sends `req`, mapping transport failures and non-2xx answers to [`Error`].
    pub(crate) async fn send(
        &self,
        method: &'static str,
        path: &str,
        req: RequestBuilder,
    ) -> Result<Response> {
        self.send_inner(method, path, req, false).await
    }

    /// Like [`Client::send`], but a 404 is answered as a response (KV reads of a missing key
    /// still carry the index a blocking loop needs).
    pub(crate) async fn send_inner(
        &self,
        method: &'static str,
        path: &str,
        req: RequestBuilder,
        allow_not_found: bool,
    ) -> Result<Response> {
        let resp = req.send().await.map_err(|source| Error::Transport {
            url: format!("{}{}", self.target, path.trim_start_matches('/')),
            source,
        })?;
        let status = resp.status();
        if status.is_success() || (allow_not_found && status == reqwest::StatusCode::NOT_FOUND) {
            return Ok(resp);
        }
        let body = self.body(path, resp).await.unwrap_or_default();
        let body = String::from_utf8_lossy(&body);
        Err(Error::Status {
            method,
            path: path.to_string(),
            status,
            body: body.trim().chars().take(300).collect(),
        })
    }

    /// Reads the whole body, refusing one over the answer cap before it is buffered.
    pub(crate) async fn body(&self, path: &str, mut resp: Response) -> Result<Vec<u8>> {
        let cap = self.max_answer_bytes;
        let too_large = || Error::TooLarge {
            path: path.to_string(),
            limit: cap,
        };
        if resp.content_length().is_some_and(|n| n > cap as u64) {
            return Err(too_large());
        }
        let mut bytes = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(|source| Error::Transport {
            url: path.to_string(),
            source,
        })? {
            if bytes.len() + chunk.len() > cap {
                return Err(too_large());
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok(bytes)
    }

    /// Reads and decodes a JSON body.
    pub(crate) async fn decode<T: DeserializeOwned>(
        &self,
        path: &str,
        resp: Response,
    ) -> Result<T> {
        let bytes = self.body(path, resp).await?;
        serde_json::from_slice(&bytes).map_err(|source| Error::Decode {
            path: path.to_string(),
            source,
        })
    }

    /// GET returning JSON.
    pub(crate) async fn get_json<T: DeserializeOwned>(&self, path: &str) -> Result<T> {
        let resp = self
            .send("GET", path, self.request(Method::GET, path))
            .await?;
        self.decode(path, resp).await
    }

    /// A GET carrying `opts`: `index`/`wait`, consistency, filter, and a timeout that outlasts
    /// the wait.
    pub(crate) fn query_request(&self, path: &str, opts: &QueryOptions) -> RequestBuilder {
        let mut req = self.request(Method::GET, path).query(&opts.params());
        if let Some(wait) = opts.wait.filter(|_| opts.index > 0) {
            // Consul adds up to wait/16 of jitter; leave room for it and for the answer.
            req = req.timeout(self.request_timeout + wait + wait / 16);
        }
        req
    }

    /// A GET that may block, answering the decoded body and the index headers.
    pub(crate) async fn query<T: DeserializeOwned>(
        &self,
        path: &str,
        opts: &QueryOptions,
    ) -> Result<(T, QueryMeta)> {
        let resp = self
            .send("GET", path, self.query_request(path, opts))
            .await?;
        let meta = QueryMeta::from_headers(resp.headers());
        Ok((self.decode(path, resp).await?, meta))
    }

    /// PUT with an optional JSON body, answering the raw response.
    pub(crate) async fn put(&self, path: &str, body: Option<Vec<u8>>) -> Result<Response> {
        let mut req = self.request(Method::PUT, path);
        if let Some(body) = body {
            req = req.body(body);
        }
        self.send("PUT", path, req).await
    }

    /// DELETE, answering the raw response.
    pub(crate) async fn delete(&self, path: &str) -> Result<Response> {
        self.send("DELETE", path, self.request(Method::DELETE, path))
            .await
    }
}

fn read_file(path: &std::path::Path, what: &str) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| Error::Config(format!("{what} {}: {e}", path.display())))
}

/// Percent-encodes one path segment (service ids hold `:`; KV keys keep their `/`).
pub(crate) fn encode_segment(raw: &str, keep_slash: bool) -> String {
    let mut out = String::with_capacity(raw.len());
    for b in raw.bytes() {
        let keep = b.is_ascii_alphanumeric()
            || matches!(b, b'-' | b'_' | b'.' | b'~')
            || (keep_slash && b == b'/');
        if keep {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_ids_and_keys() {
        assert_eq!(encode_segment("host:web:80", false), "host%3Aweb%3A80");
        assert_eq!(
            encode_segment("services/web/a b", true),
            "services/web/a%20b"
        );
        assert_eq!(encode_segment("../x", false), "..%2Fx");
    }

    /// An endless chunked answer is refused at the cap instead of filling memory.
    #[tokio::test]
    async fn answers_over_the_cap_are_refused() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        tokio::spawn(async move {
            let (mut conn, _) = listener.accept().await.expect("accept");
            let mut head = [0u8; 1024];
            let _ = conn.read(&mut head).await;
            let _ = conn
                .write_all(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
                .await;
            let chunk = format!("10000\r\n{}\r\n", "x".repeat(0x10000));
            while conn.write_all(chunk.as_bytes()).await.is_ok() {}
        });
        let mut config =
            ConsulConfig::new(format!("http://127.0.0.1:{port}/").parse().expect("url"));
        config.max_answer_bytes = 1 << 20;
        let client = Client::new(&config).expect("client");
        let err = client
            .catalog_nodes(&QueryOptions::default())
            .await
            .expect_err("too large");
        assert!(matches!(err, Error::TooLarge { .. }), "{err}");
    }
}
