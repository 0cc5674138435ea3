//! The line that heads every benchmark table: when and on what it was measured (date, CPU, cores,
//! memory, kernel, and the versions of Docker, Consul and nginx the figures depend on).

use std::process::Command;

/// `measured <date> on <cpu> · <n> cores · <mem> GiB · Linux <kernel> · Docker <v> · <consul> · <nginx>`.
pub fn describe() -> String {
    let cpu = read("/proc/cpuinfo")
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")
                .map(|v| v.trim_start_matches([' ', '\t', ':']).to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let mem_kib: f64 = read("/proc/meminfo")
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").parse().ok())
        .unwrap_or(0.0);
    let consul = testkit::tool("consul");
    format!(
        "measured {} on {cpu} · {} cores · {:.0} GiB · Linux {} · Docker {} · {} · {}",
        output("date", &["-u", "+%Y-%m-%d %H:%M UTC"]),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        mem_kib / 1024.0 / 1024.0,
        read("/proc/sys/kernel/osrelease").trim(),
        output("docker", &["version", "-f", "{{.Server.Version}}"]),
        output(consul.to_str().unwrap_or("consul"), &["version"])
            .lines()
            .next()
            .unwrap_or_default(),
        output("nginx", &["-v"]).replace("nginx version: ", ""),
    )
}

fn read(path: &str) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// A command's stdout, else its stderr (nginx -v prints there), trimmed; "?" when it fails.
fn output(cmd: &str, args: &[&str]) -> String {
    match Command::new(cmd).args(args).output() {
        Ok(o) if !o.stdout.is_empty() => String::from_utf8_lossy(&o.stdout).trim().to_string(),
        Ok(o) => String::from_utf8_lossy(&o.stderr).trim().to_string(),
        Err(_) => "?".into(),
    }
}
