//! This host's name, as both daemons default their node and edge names to it.

/// The kernel's host name, or `None` when it cannot be read or is empty.
pub fn host_name() -> Option<String> {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname").ok()?;
    Some(name.trim().to_string()).filter(|n| !n.is_empty())
}
