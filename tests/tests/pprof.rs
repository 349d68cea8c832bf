//! `--enable-pprof`: a CPU profile under `/debug/pprof/profile?seconds=N` that Go's own
//! `go tool pprof` reads (gzipped pprof protobuf), the index at `/debug/pprof/`, and 404s
//! without the flag, as etcd 3.5.1 answers.

use std::process::Command;
use std::time::Duration;

use oxcd_e2e::http::{get, get_bytes};
use oxcd_e2e::{CtlVersion, Kind, Member, MemberConfig};

#[test]
fn without_the_flag_the_paths_are_not_found_as_in_etcd() {
    for kind in [Kind::Etcd35, Kind::Oxcd] {
        let member = Member::start_with(MemberConfig::new(kind));
        let addr = member.client_addr();
        for path in ["/debug/pprof/", "/debug/pprof/profile?seconds=1"] {
            let code = get(&addr, path).map(|(code, _)| code);
            assert_eq!(code, Some(404), "{kind}: {path}");
        }
    }
}

#[test]
fn go_tool_pprof_reads_the_cpu_profile() {
    let member = Member::start_with(MemberConfig::new(Kind::Oxcd).arg("--enable-pprof"));
    let addr = member.client_addr();
    let index = get(&addr, "/debug/pprof/").expect("an answer on /debug/pprof/");
    assert_eq!(index.0, 200);
    assert!(index.1.contains("profile"), "index: {}", index.1);
    // Work for the profiler to see while it samples.
    let ctl = member.ctl(CtlVersion::V35);
    let busy = std::thread::spawn(move || {
        for i in 0..30 {
            ctl.run(&["put", &format!("k{i}"), "v"]).assert_success();
        }
    });
    let (code, body) = get_bytes(&addr, "/debug/pprof/profile?seconds=2", Duration::from_secs(60))
        .expect("an answer on /debug/pprof/profile");
    busy.join().expect("the puts");
    assert_eq!(code, 200, "{}", String::from_utf8_lossy(&body));
    assert_eq!(body.get(..2), Some(&[0x1f, 0x8b][..]), "a gzip stream");
    let file = std::env::temp_dir().join(format!("oxcd-pprof-{}.pb.gz", std::process::id()));
    std::fs::write(&file, &body).expect("write the profile");
    // `-raw` decodes every sample, location and function: it fails on a malformed profile.
    let out = Command::new("go")
        .args(["tool", "pprof", "-raw"])
        .arg(&file)
        .output()
        .expect("go tool pprof (Go is on the machine image)");
    let _ = std::fs::remove_file(&file);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "go tool pprof: {}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("PeriodType: cpu nanoseconds"), "{text}");
    assert!(text.contains("Samples:"), "{text}");
}
