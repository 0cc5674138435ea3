use super::*;

/// A datagram as nginx sends it (`nohostname`, our tag) with `json` as the message.
pub(crate) fn datagram(json: &str) -> Vec<u8> {
    format!("<190>Dec  4 01:27:38 swarmgate: {json}").into_bytes()
}

/// A line of `upstream` answered by `addr` with `status`; the header and response times as given.
pub(crate) fn line(
    upstream: &str,
    addr: &str,
    status: u16,
    header: &str,
    response: &str,
) -> Vec<u8> {
    datagram(&format!(
        r#"{{"upstream":"{upstream}","addr":"{addr}","status":"{status}","header_time":"{header}","response_time":"{response}","request_time":"0.004"}}"#
    ))
}

/// A proxied request's line, parsed.
pub(crate) fn proxied(datagram: Vec<u8>) -> Request<'static> {
    parse(&datagram)
        .expect("parses")
        .expect("proxied")
        .into_owned()
}

#[test]
fn lines_as_nginx_sends_them_parse() {
    // Captured from nginx 1.22 with the shipped log_format.
    let r = proxied(line("sg_app", "127.0.0.1:8001", 200, "0.001", "0.002"));
    assert_eq!(r.upstream, "sg_app");
    assert_eq!(r.peer, Some("127.0.0.1:8001".parse().expect("addr")));
    assert_eq!((r.status, r.failed, r.seconds), (200, false, 0.002));

    // A retry: the last attempt answered (nginx separates attempts with ", ", redirects with " : ").
    let r = proxied(line(
        "sg_app",
        "127.0.0.1:8009, 127.0.0.1:8002",
        200,
        "-, 0.000",
        "0.001, 0.003",
    ));
    assert_eq!(r.peer, Some("127.0.0.1:8002".parse().expect("addr")));
    assert_eq!((r.failed, r.seconds), (false, 0.003));
    let r = proxied(line(
        "sg_app",
        "10.0.0.1:1 : [::1]:8003",
        200,
        "0.1 : 0.2",
        "- : 0.5",
    ));
    assert_eq!(r.peer, Some("[::1]:8003".parse().expect("addr")));
    assert_eq!(r.seconds, 0.5);
}

#[test]
fn nginx_answering_itself_is_failed_and_a_backend_500_is_not() {
    // `no live upstreams`: the address is the upstream's name, no header.
    let r = proxied(line("sg_app", "sg_app", 502, "-", "0.000"));
    assert_eq!((r.peer, r.status, r.failed), (None, 502, true));
    // Every attempt refused.
    let r = proxied(line("sg_app", "127.0.0.1:8009", 502, "-", "0.001"));
    assert!(r.failed);
    // The backend's own 500 and 502 had headers.
    for status in [500, 502] {
        let r = proxied(line("sg_app", "127.0.0.1:8001", status, "0.000", "0.000"));
        assert!(!r.failed, "{status}");
    }
    // A 4xx without a header is not failed (the Lua rule: 5xx only).
    let r = proxied(line("sg_app", "127.0.0.1:8001", 499, "-", "-"));
    assert!(!r.failed);
    assert_eq!(r.seconds, 0.004, "no upstream time: the request's own");
}

#[test]
fn a_request_never_sent_upstream_is_not_counted() {
    assert_eq!(parse(&line("", "", 413, "", "")), Ok(None));
}

#[test]
fn hostile_datagrams_are_dropped() {
    let huge = datagram(&format!(
        r#"{{"upstream":"sg_app","addr":"{}","status":"200","header_time":"0","response_time":"0","request_time":"0"}}"#,
        "1".repeat(MAX_LINE)
    ));
    assert_eq!(parse(&huge), Err(Dropped::TooLong));
    for bad in [
        b"".to_vec(),
        b"<190>Dec  4 01:27:38 swarmgate: hello".to_vec(),
        datagram("{not json"),
        datagram(r#"{"upstream":"sg_app"}"#),
        datagram(
            r#"{"upstream":1,"addr":"a","status":"200","header_time":"","response_time":"","request_time":""}"#,
        ),
        line("sg_app", "127.0.0.1:8001", 200, "0", "0")
            .into_iter()
            .chain(*b"} trailing")
            .collect(),
        vec![0xff, b'{', 0xfe],
        datagram(&"[".repeat(5000)),
        datagram(&"{\"a\":".repeat(3000)),
    ] {
        assert_eq!(parse(&bad), Err(Dropped::Malformed), "{bad:?}");
    }
    for status in ["abc", "99", "99999", "-1", ""] {
        let d = datagram(&format!(
            r#"{{"upstream":"sg_app","addr":"127.0.0.1:1","status":"{status}","header_time":"","response_time":"","request_time":""}}"#
        ));
        assert_eq!(parse(&d), Err(Dropped::Malformed), "status {status:?}");
    }
    // Times that are no times count as 0 s, never as a negative or infinite latency.
    for t in ["nan", "inf", "-5", "1e999", "x"] {
        let d = datagram(&format!(
            r#"{{"upstream":"sg_app","addr":"127.0.0.1:1","status":"200","header_time":"0","response_time":"{t}","request_time":"{t}"}}"#
        ));
        let r = proxied(d);
        assert_eq!(r.seconds, 0.0, "{t}");
    }
    // JSON escapes (nginx's escape=json) are read, and still have to name a live upstream.
    let r = proxied(line("sg_\\u0061pp", "127.0.0.1:8001", 200, "0", "0"));
    assert_eq!(r.upstream, "sg_app");
}
