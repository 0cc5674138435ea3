//! Consul checks from `SERVICE_CHECK_*` labels (registrator's rules), and the TTL check that
//! mirrors a Docker `HEALTHCHECK`.

use swarmgate_consul::{CheckDefinition, CheckStatus};

use crate::labels::{check_duration, check_text, LabelError, ServiceLabels};

/// Interval of script, HTTP, TCP and gRPC checks when `SERVICE_CHECK_INTERVAL` is not set.
pub const DEFAULT_CHECK_INTERVAL: &str = "10s";
/// TTL of the Docker-health mirror check; the registrator refreshes it well within this.
pub const DOCKER_HEALTH_TTL_SECS: u64 = 60;

/// The check id of the Docker-health mirror of `service_id`.
pub fn docker_health_check_id(service_id: &str) -> String {
    format!("swarmgate-docker-health:{service_id}")
}

/// The TTL check that follows Docker's health, starting at `status`.
pub fn docker_health_check(service_id: &str, status: CheckStatus) -> CheckDefinition {
    CheckDefinition {
        check_id: docker_health_check_id(service_id),
        name: "Docker health".into(),
        ttl: Some(format!("{DOCKER_HEALTH_TTL_SECS}s")),
        status: Some(status.as_str().into()),
        notes: "mirrors the container's Docker HEALTHCHECK".into(),
        ..CheckDefinition::default()
    }
}

/// Where a label-defined check looks: the service's address, and the container it runs in.
pub struct CheckTarget<'a> {
    pub ip: &'a str,
    pub service_port: u16,
    pub container_id: &'a str,
}

/// Builds the label-defined check for a service at `ip:port`, if any `SERVICE_CHECK_*` asks for
/// one, in gliderlabs' order: HTTP, HTTPS, CMD, SCRIPT, TTL, TCP, gRPC.
pub fn label_check(
    labels: &ServiceLabels,
    port: u16,
    target: &CheckTarget<'_>,
) -> Result<Option<CheckDefinition>, LabelError> {
    let (ip, service_port) = (target.ip, target.service_port);
    let get = |key: &str| labels.get(port, key);
    let host = if ip.contains(':') {
        format!("[{ip}]")
    } else {
        ip.to_string()
    };
    let mut check = CheckDefinition::default();
    let mut needs_interval = true;
    if let Some(path) = get("CHECK_HTTP").or_else(|| get("CHECK_HTTPS")) {
        check_path(&path.label, &path.value)?;
        let scheme = if path.label.ends_with("HTTPS") {
            "https"
        } else {
            "http"
        };
        check.http = Some(format!("{scheme}://{host}:{service_port}{}", path.value));
        check.tls_skip_verify = get("CHECK_TLS_SKIP_VERIFY").is_some_and(|v| truthy(&v.value));
        let method_key = if scheme == "https" {
            "CHECK_HTTPS_METHOD"
        } else {
            "CHECK_HTTP_METHOD"
        };
        if let Some(method) = get(method_key) {
            check_method(&method.label, &method.value)?;
            check.method = Some(method.value.to_ascii_uppercase());
        }
    } else if let Some(cmd) = get("CHECK_CMD") {
        // gliderlabs runs the command inside the container; swarmgate in its shell form.
        check_text(&cmd.label, &cmd.value)?;
        check.args = [
            "docker",
            "exec",
            target.container_id,
            "/bin/sh",
            "-c",
            &cmd.value,
        ]
        .map(String::from)
        .to_vec();
    } else if let Some(script) = get("CHECK_SCRIPT") {
        check_text(&script.label, &script.value)?;
        let cmd = script
            .value
            .replace("$SERVICE_IP", ip)
            .replace("$SERVICE_PORT", &service_port.to_string());
        check.args = vec!["/bin/sh".into(), "-c".into(), cmd];
    } else if let Some(ttl) = get("CHECK_TTL") {
        check_duration(&ttl.label, &ttl.value)?;
        check.ttl = Some(ttl.value.clone());
        needs_interval = false;
    } else if get("CHECK_TCP").is_some() {
        check.tcp = Some(format!("{host}:{service_port}"));
    } else if let Some(grpc) = get("CHECK_GRPC") {
        check_text(&grpc.label, &grpc.value)?;
        let target = format!("{host}:{service_port}");
        check.grpc = Some(if truthy(&grpc.value) || grpc.value.is_empty() {
            target
        } else {
            format!("{target}/{}", grpc.value)
        });
        check.grpc_use_tls = get("CHECK_GRPC_USE_TLS").is_some_and(|v| truthy(&v.value));
    } else {
        return Ok(None);
    }
    if needs_interval {
        check.interval = Some(duration_or(
            labels,
            port,
            "CHECK_INTERVAL",
            DEFAULT_CHECK_INTERVAL,
        )?);
        if let Some(t) = get("CHECK_TIMEOUT") {
            check_duration(&t.label, &t.value)?;
            check.timeout = Some(t.value.clone());
        }
    }
    if let Some(after) = get("CHECK_DEREGISTER_AFTER") {
        check_duration(&after.label, &after.value)?;
        check.deregister_critical_service_after = Some(after.value.clone());
    }
    if let Some(status) = get("CHECK_INITIAL_STATUS") {
        if !matches!(status.value.as_str(), "passing" | "warning" | "critical") {
            return Err(LabelError::new(
                &status.label,
                "must be passing, warning or critical",
            ));
        }
        check.status = Some(status.value.clone());
    }
    Ok(Some(check))
}

fn duration_or(
    labels: &ServiceLabels,
    port: u16,
    key: &str,
    default: &str,
) -> Result<String, LabelError> {
    match labels.get(port, key) {
        Some(v) => check_duration(&v.label, &v.value).map(|()| v.value.clone()),
        None => Ok(default.to_string()),
    }
}

fn check_method(label: &str, method: &str) -> Result<(), LabelError> {
    if method.is_empty() || !method.chars().all(|c| c.is_ascii_alphabetic()) {
        return Err(LabelError::new(
            label,
            format!("{method:?} is not an HTTP method"),
        ));
    }
    Ok(())
}

fn check_path(label: &str, path: &str) -> Result<(), LabelError> {
    check_text(label, path)?;
    if !path.starts_with('/') || path.contains(char::is_whitespace) {
        return Err(LabelError::new(
            label,
            format!("{path:?} must be a path starting with /"),
        ));
    }
    Ok(())
}

fn truthy(v: &str) -> bool {
    matches!(v.to_ascii_lowercase().as_str(), "true" | "1" | "yes" | "on")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(pairs: &[(&str, &str)]) -> Result<Option<CheckDefinition>, LabelError> {
        let labels = ServiceLabels::collect([], pairs.iter().copied());
        let target = CheckTarget {
            ip: "10.0.0.5",
            service_port: 32768,
            container_id: "c0ffee",
        };
        label_check(&labels, 80, &target)
    }

    #[test]
    fn http_method_and_cmd_checks() {
        let c = check(&[
            ("SERVICE_CHECK_HTTP", "/"),
            ("SERVICE_CHECK_HTTP_METHOD", "head"),
        ])
        .expect("ok")
        .expect("c");
        assert_eq!(c.method.as_deref(), Some("HEAD"));
        let c = check(&[("SERVICE_CHECK_CMD", "test -f /ok")])
            .expect("ok")
            .expect("c");
        assert_eq!(
            c.args,
            ["docker", "exec", "c0ffee", "/bin/sh", "-c", "test -f /ok"]
        );
        assert_eq!(c.interval.as_deref(), Some("10s"));
        assert!(check(&[
            ("SERVICE_CHECK_HTTP", "/"),
            ("SERVICE_CHECK_HTTP_METHOD", "GE T")
        ])
        .is_err());
    }

    #[test]
    fn http_check_uses_service_address_and_default_interval() {
        let c = check(&[
            ("SERVICE_CHECK_HTTP", "/health"),
            ("SERVICE_CHECK_TIMEOUT", "2s"),
        ])
        .expect("valid")
        .expect("a check");
        assert_eq!(c.http.as_deref(), Some("http://10.0.0.5:32768/health"));
        assert_eq!(c.interval.as_deref(), Some("10s"));
        assert_eq!(c.timeout.as_deref(), Some("2s"));
    }

    #[test]
    fn https_tcp_grpc_ttl_script() {
        let c = check(&[
            ("SERVICE_CHECK_HTTPS", "/"),
            ("SERVICE_CHECK_TLS_SKIP_VERIFY", "true"),
        ])
        .expect("ok")
        .expect("c");
        assert_eq!(c.http.as_deref(), Some("https://10.0.0.5:32768/"));
        assert!(c.tls_skip_verify);
        let c = check(&[
            ("SERVICE_CHECK_TCP", "true"),
            ("SERVICE_CHECK_INTERVAL", "5s"),
        ])
        .expect("ok")
        .expect("c");
        assert_eq!(c.tcp.as_deref(), Some("10.0.0.5:32768"));
        assert_eq!(c.interval.as_deref(), Some("5s"));
        let c = check(&[("SERVICE_CHECK_GRPC", "true")])
            .expect("ok")
            .expect("c");
        assert_eq!(c.grpc.as_deref(), Some("10.0.0.5:32768"));
        let c = check(&[("SERVICE_CHECK_TTL", "30s")])
            .expect("ok")
            .expect("c");
        assert_eq!((c.ttl.as_deref(), c.interval), (Some("30s"), None));
        let c = check(&[("SERVICE_CHECK_SCRIPT", "nc -z $SERVICE_IP $SERVICE_PORT")])
            .expect("ok")
            .expect("c");
        assert_eq!(c.args, ["/bin/sh", "-c", "nc -z 10.0.0.5 32768"]);
    }

    #[test]
    fn deregister_after_and_initial_status() {
        let c = check(&[
            ("SERVICE_CHECK_TCP", "1"),
            ("SERVICE_CHECK_DEREGISTER_AFTER", "90m"),
            ("SERVICE_CHECK_INITIAL_STATUS", "passing"),
        ])
        .expect("ok")
        .expect("c");
        assert_eq!(c.deregister_critical_service_after.as_deref(), Some("90m"));
        assert_eq!(c.status.as_deref(), Some("passing"));
    }

    #[test]
    fn bad_values_name_the_label() {
        for (key, value) in [
            ("SERVICE_CHECK_HTTP", "health"),
            ("SERVICE_CHECK_HTTP", "/a b"),
            ("SERVICE_CHECK_TTL", "thirty"),
            ("SERVICE_CHECK_INITIAL_STATUS", "ok"),
        ] {
            let mut pairs = vec![(key, value)];
            if key == "SERVICE_CHECK_INITIAL_STATUS" {
                pairs.push(("SERVICE_CHECK_TCP", "1"));
            }
            let err = check(&pairs).expect_err(value);
            assert_eq!(err.label, key);
        }
    }

    #[test]
    fn no_check_labels_no_check() {
        assert_eq!(check(&[("SERVICE_NAME", "x")]), Ok(None));
    }

    #[test]
    fn ipv6_hosts_are_bracketed() {
        let labels = ServiceLabels::collect([], [("SERVICE_CHECK_TCP", "1")]);
        let target = CheckTarget {
            ip: "fd00::5",
            service_port: 80,
            container_id: "c",
        };
        let c = label_check(&labels, 80, &target).expect("ok").expect("c");
        assert_eq!(c.tcp.as_deref(), Some("[fd00::5]:80"));
    }
}
