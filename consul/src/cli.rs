//! The Consul flags both binaries take, with Consul's own environment variables, as one clap
//! struct they flatten; and the step from those flags to a checked [`ConsulConfig`].

use std::path::PathBuf;

use clap::{ArgAction, Args};

use crate::config::{parse_address, ConsulConfig, DEFAULT_CONSUL_ADDR};
use crate::error::{Error, Result};

/// Where Consul is and how to authenticate, as Consul's CLI reads them.
#[derive(Clone, Debug, Default, Args)]
pub struct ConsulArgs {
    /// Consul address: http(s)://HOST:PORT, consul://HOST:PORT, unix:///PATH or HOST:PORT [default: 127.0.0.1:8500].
    #[arg(
        long = "consul",
        alias = "consul-http-addr",
        global = true,
        env = "CONSUL_HTTP_ADDR",
        value_name = "ADDR"
    )]
    pub http_addr: Option<String>,
    /// Use https with a scheme-less HOST:PORT address.
    #[arg(long = "consul-http-ssl", global = true, env = "CONSUL_HTTP_SSL", hide = true,
          default_value_t = false, action = ArgAction::Set, require_equals = true,
          num_args = 0..=1, default_missing_value = "true")]
    pub http_ssl: bool,
    /// Consul ACL token.
    #[arg(long, global = true, env = "CONSUL_HTTP_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// File holding the Consul ACL token (used when no token is given).
    #[arg(long = "token-file", global = true, env = "CONSUL_HTTP_TOKEN_FILE")]
    pub token_file: Option<PathBuf>,
    /// CA certificate (PEM) for Consul over TLS; a scheme-less address then means https.
    #[arg(long = "ca-cert", global = true, env = "CONSUL_CACERT")]
    pub ca_cert: Option<PathBuf>,
    /// Client certificate (PEM) for Consul over TLS.
    #[arg(long = "client-cert", global = true, env = "CONSUL_CLIENT_CERT")]
    pub client_cert: Option<PathBuf>,
    /// Client key (PEM) for Consul over TLS.
    #[arg(long = "client-key", global = true, env = "CONSUL_CLIENT_KEY")]
    pub client_key: Option<PathBuf>,
}

impl ConsulArgs {
    /// The checked configuration. `uri` (the registrator's positional URI) wins over the
    /// address flag; a URI without a host falls back to it.
    pub fn config(&self, uri: Option<&str>) -> Result<ConsulConfig> {
        let fallback = self.http_addr.as_deref().unwrap_or(DEFAULT_CONSUL_ADDR);
        let raw = uri.unwrap_or(fallback);
        let tls = self.http_ssl || (self.ca_cert.is_some() && !raw.contains("://"));
        let mut config = ConsulConfig::at(parse_address(raw, tls, fallback)?);
        config.token = match (&self.token, &self.token_file) {
            (Some(token), _) => Some(token.clone()),
            (None, Some(path)) => Some(
                std::fs::read_to_string(path)
                    .map_err(|e| Error::Config(format!("token file {}: {e}", path.display())))?
                    .trim()
                    .to_string(),
            ),
            (None, None) => None,
        };
        config.ca_cert = self.ca_cert.clone();
        config.client_cert = self.client_cert.clone();
        config.client_key = self.client_key.clone();
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        consul: ConsulArgs,
        uri: Option<String>,
    }

    fn config(args: &[&str]) -> ConsulConfig {
        let cli =
            Cli::try_parse_from(std::iter::once("x").chain(args.iter().copied())).expect("parses");
        cli.consul.config(cli.uri.as_deref()).expect("valid")
    }

    #[test]
    fn a_ca_file_makes_a_scheme_less_address_https() {
        let c = config(&["--consul", "c:8500", "--ca-cert", "/ca.pem"]);
        assert_eq!(c.address.url.as_str(), "https://c:8500/");
        let c = config(&["--consul", "http://c:8500", "--ca-cert", "/ca.pem"]);
        assert_eq!(
            c.address.url.as_str(),
            "http://c:8500/",
            "an explicit scheme stays"
        );
    }

    #[test]
    fn the_uri_wins_and_a_hostless_one_falls_back() {
        let c = config(&["--consul", "a:1", "consul://b:2"]);
        assert_eq!(c.address.url.as_str(), "http://b:2/");
        let c = config(&["--consul", "a:1", "consul://"]);
        assert_eq!(c.address.url.as_str(), "http://a:1/");
        let c = config(&[]);
        assert_eq!(c.address.url.as_str(), "http://127.0.0.1:8500/");
    }
}
