//! One datagram of nginx's traffic log, read: `<PRI>TIMESTAMP TAG: {json}` where the JSON is
//! what `log_format swarmgate_traffic` (vhosts.conf.j2) prints, every value a string. Reading
//! follows swarmgate.traffic (traffic.lua): the attempt that answered is the last of each list
//! nginx prints per attempt; `failed` is status >= 500 with no response header from that
//! attempt; the latency is its response time, else the request's.

use std::borrow::Cow;
use std::net::SocketAddr;

use serde::Deserialize;

/// Longest datagram read (a line with dozens of retried peers is a few kilobytes).
pub const MAX_LINE: usize = 16 * 1024;

/// The line's fields, named as the log format names them.
#[derive(Deserialize)]
struct Line<'a> {
    #[serde(borrow)]
    upstream: Cow<'a, str>,
    #[serde(borrow)]
    addr: Cow<'a, str>,
    #[serde(borrow)]
    status: Cow<'a, str>,
    #[serde(borrow)]
    header_time: Cow<'a, str>,
    #[serde(borrow)]
    response_time: Cow<'a, str>,
    #[serde(borrow)]
    request_time: Cow<'a, str>,
}

/// One proxied request, read from its line.
#[derive(Clone, Debug, PartialEq)]
pub struct Request<'a> {
    /// The upstream the line names (`$proxy_host`), to be looked up in the live plan.
    pub upstream: Cow<'a, str>,
    /// The server that answered (the last `$upstream_addr`), when that is an address (not,
    /// e.g., the upstream's own name when nginx found no live server).
    pub peer: Option<SocketAddr>,
    pub status: u16,
    /// nginx answered itself: no response header from the last attempt.
    pub failed: bool,
    pub seconds: f64,
}

impl Request<'_> {
    pub fn into_owned(self) -> Request<'static> {
        Request {
            upstream: Cow::Owned(self.upstream.into_owned()),
            ..self
        }
    }
}

/// Why a datagram was not counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dropped {
    TooLong,
    Malformed,
    UnknownUpstream,
}

impl Dropped {
    pub fn as_str(self) -> &'static str {
        match self {
            Dropped::TooLong => "too_long",
            Dropped::Malformed => "malformed",
            Dropped::UnknownUpstream => "unknown_upstream",
        }
    }
}

/// The last value of a list nginx prints for a request's attempts (`"a, b : c"`): the attempt
/// that answered.
fn last(list: &str) -> Option<&str> {
    list.rsplit([' ', ',']).find(|t| !t.is_empty() && *t != ":")
}

/// A time nginx printed, when it is one.
fn seconds(v: Option<&str>) -> Option<f64> {
    v?.parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && *s >= 0.0)
}

/// Reads one datagram: the request, or `None` for a request nginx never sent upstream (the Lua
/// side does not count those either).
pub fn parse(datagram: &[u8]) -> Result<Option<Request<'_>>, Dropped> {
    if datagram.len() > MAX_LINE {
        return Err(Dropped::TooLong);
    }
    let text = std::str::from_utf8(datagram).map_err(|_| Dropped::Malformed)?;
    // The syslog header (priority, time, tag) holds no brace.
    let json = text
        .find('{')
        .map(|i| &text[i..])
        .ok_or(Dropped::Malformed)?;
    let line: Line = serde_json::from_str(json.trim_end()).map_err(|_| Dropped::Malformed)?;
    let Some(peer) = last(&line.addr) else {
        return Ok(None);
    };
    let status = line
        .status
        .parse::<u16>()
        .ok()
        .filter(|s| (100..1000).contains(s))
        .ok_or(Dropped::Malformed)?;
    Ok(Some(Request {
        peer: peer.parse::<SocketAddr>().ok(),
        status,
        failed: status >= 500 && last(&line.header_time) == Some("-"),
        seconds: seconds(last(&line.response_time))
            .or_else(|| seconds(Some(&line.request_time)))
            .unwrap_or(0.0),
        upstream: line.upstream,
    }))
}

#[cfg(test)]
#[path = "line_tests.rs"]
pub(super) mod tests;
