//! Free loopback ports, so suites run in parallel without colliding.

use std::collections::HashSet;
use std::net::TcpListener;
use std::sync::Mutex;

static HANDED_OUT: Mutex<Option<HashSet<u16>>> = Mutex::new(None);

/// A port nothing listens on now and that this process has not handed out before.
pub fn free_port() -> u16 {
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("bind an ephemeral port")
            .port();
        let mut seen = HANDED_OUT.lock().expect("port registry");
        if seen.get_or_insert_with(HashSet::new).insert(port) {
            return port;
        }
    }
}
