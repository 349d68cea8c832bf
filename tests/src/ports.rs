//! Free loopback ports for servers started by the tests.
//!
//! Tests run in parallel threads (and possibly parallel processes under
//! nextest), so a port is taken from the kernel by binding `127.0.0.1:0`,
//! remembered in a process-wide set so that no two members of this process
//! ever get the same one, and released. The remaining cross-process race is
//! handled by [`crate::server`], which retries a start that failed with
//! "address already in use" on new ports.

use std::collections::HashSet;
use std::net::TcpListener;
use std::sync::Mutex;

static HANDED_OUT: Mutex<Option<HashSet<u16>>> = Mutex::new(None);

/// A currently free TCP port on 127.0.0.1 never returned before by this process.
pub fn free_port() -> u16 {
    let mut guard = HANDED_OUT.lock().unwrap_or_else(|e| e.into_inner());
    let set = guard.get_or_insert_with(HashSet::new);
    for _ in 0..1000 {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let port = l.local_addr().expect("local_addr").port();
        // Stay clear of the well-known etcd ports a system etcd might use.
        if (2379..=2380).contains(&port) {
            continue;
        }
        if set.insert(port) {
            return port;
        }
    }
    panic!("could not find a free port on 127.0.0.1");
}
