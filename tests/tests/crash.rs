//! Crash-durability test: concurrent writers, `kill -9` of the server in the
//! middle of the load, restart on the same data dir, then every
//! acknowledged put must be there with the revision it was acknowledged
//! with, and revisions must never be reused.
//!
//! Target: oxcd by default, `OXCD_E2E_TARGET=etcd` for etcd 3.5.1.
//! Bounded: at most `WRITERS * PUTS_PER_WRITER` puts per round, two rounds,
//! each round killed after `KILL_AFTER_ACKS` acknowledgements or 20 s.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use etcd_client::GetOptions;
use oxcd_e2e::client::{bounded, connect, start_target};

const WRITERS: usize = 4;
const PUTS_PER_WRITER: usize = 2_000;
const KILL_AFTER_ACKS: usize = 300;

/// key → (value, acknowledged revision)
type Acked = Arc<Mutex<BTreeMap<String, (String, i64)>>>;

/// Runs `WRITERS` writers until the server dies or they are done; returns
/// once `KILL_AFTER_ACKS` new puts were acknowledged (or 20 s passed).
async fn load_and_wait(url: &str, round: usize, acked: &Acked) -> Vec<tokio::task::JoinHandle<()>> {
    let start = acked.lock().unwrap().len();
    let mut tasks = Vec::new();
    for w in 0..WRITERS {
        let mut c = connect(url).await;
        let acked = acked.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..PUTS_PER_WRITER {
                let key = format!("crash/r{round}/w{w}/{i:05}");
                let value = format!("value-{round}-{w}-{i}");
                match c.put(key.clone(), value.clone(), None).await {
                    Ok(r) => {
                        let rev = r.header().expect("put header").revision();
                        acked.lock().unwrap().insert(key, (value, rev));
                    }
                    Err(_) => return, // server killed
                }
            }
        }));
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while acked.lock().unwrap().len() - start < KILL_AFTER_ACKS
        && tokio::time::Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    tasks
}

async fn verify(url: &str, acked: &Acked) -> i64 {
    let mut c = connect(url).await;
    let acked = acked.lock().unwrap().clone();
    let r =
        c.get("crash/", Some(GetOptions::new().with_prefix())).await.expect("range after restart");
    let present: BTreeMap<String, (String, i64, i64)> = r
        .kvs()
        .iter()
        .map(|kv| {
            (
                String::from_utf8_lossy(kv.key()).to_string(),
                (
                    String::from_utf8_lossy(kv.value()).to_string(),
                    kv.mod_revision(),
                    kv.create_revision(),
                ),
            )
        })
        .collect();
    let mut missing = Vec::new();
    for (k, (v, rev)) in &acked {
        match present.get(k) {
            None => missing.push(format!("{k} (acked at rev {rev}) is missing")),
            Some((pv, prev, _)) if pv != v || prev != rev => {
                missing.push(format!("{k}: acked value {v} at rev {rev}, found {pv} at rev {prev}"))
            }
            Some(_) => {}
        }
    }
    assert!(
        missing.is_empty(),
        "{} of {} acknowledged puts lost or changed after kill -9, e.g.:\n{}",
        missing.len(),
        acked.len(),
        missing.iter().take(20).cloned().collect::<Vec<_>>().join("\n")
    );
    // Every key was written once: all revisions (acknowledged or not)
    // must be distinct, and create == mod.
    let mut revs = HashSet::new();
    for (k, (_, m, cr)) in &present {
        assert_eq!(m, cr, "{k} written once but create {cr} != mod {m}");
        assert!(revs.insert(*m), "revision {m} used twice (key {k})");
    }
    let max_present = present.values().map(|p| p.1).max().unwrap_or(0);
    let header_rev = r.header().expect("header").revision();
    assert!(
        header_rev >= max_present,
        "store revision {header_rev} is below a stored key's revision {max_present}"
    );
    // A new write must get a fresh revision.
    let p = c.put("crash/after", "x", None).await.expect("put after restart");
    let new_rev = p.header().expect("header").revision();
    assert!(
        new_rev > max_present && new_rev > header_rev,
        "revision reused: new put got {new_rev}, max existing {max_present}, header {header_rev}"
    );
    c.delete("crash/after", None).await.expect("cleanup");
    new_rev
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill9_mid_load_keeps_acknowledged_puts() {
    let mut m = tokio::task::spawn_blocking(start_target).await.expect("start");
    let url = m.client_url();
    let acked: Acked = Arc::new(Mutex::new(BTreeMap::new()));
    bounded("crash test", async {
        let mut last_rev = 0;
        for round in 0..2 {
            let tasks = load_and_wait(&url, round, &acked).await;
            let n = acked.lock().unwrap().len();
            tokio::task::block_in_place(|| m.kill9());
            for t in tasks {
                let _ = tokio::time::timeout(Duration::from_secs(15), t).await;
            }
            let n_final = acked.lock().unwrap().len();
            eprintln!("round {round}: killed after {n} acks ({n_final} in total)");
            assert!(n_final > 0, "no put was acknowledged before the kill");
            tokio::task::block_in_place(|| m.try_restart())
                .unwrap_or_else(|e| panic!("restart after kill -9 failed: {e}"));
            let new_rev = verify(&url, &acked).await;
            assert!(new_rev > last_rev, "revision went backwards across restarts");
            last_rev = new_rev;
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_restart_keeps_everything() {
    let mut m = tokio::task::spawn_blocking(start_target).await.expect("start");
    let url = m.client_url();
    bounded("graceful restart", async {
        let mut c = connect(&url).await;
        for i in 0..50 {
            c.put(format!("g/{i:02}"), format!("{i}"), None).await.unwrap();
        }
        c.delete("g/07", None).await.unwrap();
        let lease = c.lease_grant(600, None).await.unwrap().id();
        c.put("g/leased", "x", Some(etcd_client::PutOptions::new().with_lease(lease)))
            .await
            .unwrap();
        let before = c.get("g/", Some(GetOptions::new().with_prefix())).await.unwrap();
        drop(c);
        tokio::task::block_in_place(|| m.restart());
        let mut c = connect(&url).await;
        let after = c.get("g/", Some(GetOptions::new().with_prefix())).await.unwrap();
        let view = |r: &etcd_client::GetResponse| {
            r.kvs()
                .iter()
                .map(|kv| (kv.key().to_vec(), kv.value().to_vec(), kv.mod_revision(), kv.lease()))
                .collect::<Vec<_>>()
        };
        assert_eq!(view(&before), view(&after));
        assert_eq!(before.header().unwrap().revision(), after.header().unwrap().revision());
        let ttl = c.lease_time_to_live(lease, None).await.unwrap();
        assert_eq!(ttl.granted_ttl(), 600, "lease survives restart");
        // Old revisions survive too.
        // g/NN was written at revision NN + 2.
        let r = c.get("g/07", Some(GetOptions::new().with_revision(9))).await.unwrap();
        assert_eq!(r.kvs()[0].value(), b"7");
    })
    .await;
}

/// Mounts a small tmpfs at a path and unmounts it when dropped (also when the test panics).
struct SmallDisk(std::path::PathBuf);

impl SmallDisk {
    /// `None` when this machine does not let the test mount (not root, no tmpfs).
    fn mount(at: &std::path::Path, size_mib: u32) -> Option<SmallDisk> {
        std::fs::create_dir_all(at).ok()?;
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size_mib}m"), "tmpfs"])
            .arg(at)
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| SmallDisk(at.to_path_buf()))
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// A member whose disk fills up cannot write its raft log: openraft's core stops with a
/// storage error. The process must then exit non-zero saying why, as etcd's does (it panics
/// on the failed WAL write), instead of listening on and answering "server stopped".
/// The data dir sits on a 48 MiB tmpfs; skipped where the test may not mount one.
#[test]
fn full_disk_stops_the_member_with_an_error() {
    use oxcd_e2e::server::{Kind, Member, MemberConfig};
    let kind = Kind::from_env();
    let mut member = Member::create(MemberConfig::new(kind));
    let Some(_disk) = SmallDisk::mount(&member.data_dir(), 48) else {
        eprintln!("skipped: cannot mount a tmpfs here (needs root)");
        return;
    };
    member.launch().unwrap_or_else(|e| panic!("start on the small disk: {e}"));
    let url = member.client_url();
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    let failed = rt.block_on(bounded("full_disk", async {
        let mut c = connect(&url).await;
        let value = "x".repeat(512 * 1024);
        // 200 × 512 KiB is twice the disk: a put fails long before the last one.
        for i in 0..200 {
            if let Err(e) = c.put(format!("fill/{i:03}"), value.as_str(), None).await {
                return Some(format!("put {i}: {e}"));
            }
        }
        None
    }));
    eprintln!("first failed put: {failed:?}");
    let status = member.wait_exit(Duration::from_secs(30));
    let log = member.log_tail(30);
    let status = status.unwrap_or_else(|| panic!("member still running on a full disk:\n{log}"));
    assert!(!status.success(), "member exited successfully on a full disk:\n{log}");
    if kind == Kind::Oxcd {
        assert!(log.contains("raft stopped on a fatal error"), "exit does not say why:\n{log}");
    }
}
