//! TLS on the client port: `--cert-file`, `--key-file`, `--trusted-ca-file`,
//! `--client-cert-auth`, `--auto-tls` and the client certificate's CN as the user, with CAs
//! and certificates the tests make (rcgen).
//!
//! Each member listens on its plain client URL (where the harness checks readiness) and on an
//! https one. The etcdctl checks are differential: the same commands against etcd 3.5.1 and
//! oxcd with etcdctl 3.5 and 3.4, outputs compared, refusals included (no client certificate,
//! one from another CA, a server certificate from an untrusted CA, plain text on the https
//! port). The etcd-client crate checks run against `OXCD_E2E_TARGET` (oxcd by default).

use std::path::{Path, PathBuf};
use std::time::Duration;

use etcd_client::{Certificate, Client, ConnectOptions, Identity, TlsOptions};
use oxcd_e2e::certs::{CertFiles, Pki};
use oxcd_e2e::ports::free_port;
use oxcd_e2e::{CtlVersion, Differential, Etcdctl, Kind, Member, MemberConfig, Session};

/// The test PKI: the trusted CA with a server and three client certificates, and a second CA
/// nobody trusts with its own client and server certificates.
struct Certs {
    _dir: tempfile::TempDir,
    ca: PathBuf,
    other_ca: PathBuf,
    server: CertFiles,
    root: CertFiles,
    alice: CertFiles,
    stranger: CertFiles,
    other_server: CertFiles,
}

fn make_certs() -> Certs {
    let dir = tempfile::tempdir().expect("temp dir");
    let pki = Pki::create(&dir.path().join("pki")).expect("CA");
    let other = Pki::create(&dir.path().join("other")).expect("second CA");
    Certs {
        ca: pki.ca_cert(),
        other_ca: other.ca_cert(),
        server: pki.serving("server", &["127.0.0.1", "localhost"]).expect("server cert"),
        root: pki.client("root", "root", None).expect("root cert"),
        alice: pki.client("alice", "alice", None).expect("alice cert"),
        stranger: other.client("stranger", "root", None).expect("foreign cert"),
        other_server: other.serving("server", &["127.0.0.1", "localhost"]).expect("cert"),
        _dir: dir,
    }
}

/// The member flags serving `server` and trusting `ca` for client certificates.
fn server_flags(server: &CertFiles, ca: &Path) -> Vec<String> {
    vec![
        format!("--cert-file={}", server.cert.display()),
        format!("--key-file={}", server.key.display()),
        format!("--trusted-ca-file={}", ca.display()),
    ]
}

/// Adds an https client URL on a free port and `flags` to a member's config.
fn with_https(mut cfg: MemberConfig, flags: &[String]) -> MemberConfig {
    cfg = cfg.listen_also(format!("https://127.0.0.1:{}", free_port()));
    for f in flags {
        cfg = cfg.arg(f.clone());
    }
    cfg
}

/// The session's https URL, masked in outputs.
fn https_url(s: &mut Session) -> String {
    let url = s.member().extra_client_urls()[0].clone();
    s.normalizer().literal(url.clone(), "<HTTPS>");
    s.normalizer().literal(url.trim_start_matches("https://").to_string(), "<HTTPS-ADDR>");
    url
}

/// etcdctl of the session's version against `url`, trusting `ca`, presenting `cert`.
fn tls_ctl(s: &Session, url: &str, ca: &Path, cert: Option<&CertFiles>) -> Etcdctl {
    let mut c = Etcdctl::new(s.version(), [url.to_string()])
        .global_arg("--dial-timeout=2s")
        .global_arg("--command-timeout=4s")
        .global_arg(format!("--cacert={}", ca.display()));
    if let Some(cert) = cert {
        c = c
            .global_arg(format!("--cert={}", cert.cert.display()))
            .global_arg(format!("--key={}", cert.key.display()));
    }
    c
}

/// Without a trusted CA any client that trusts the server's CA gets in; one trusting another
/// CA refuses the server, and plain text on the https port gets nothing.
#[test]
fn https_client_url_matches_etcd() {
    let certs = make_certs();
    let flags = server_flags(&certs.server, &certs.ca)[..2].to_vec();
    Differential::new("https_client_url").config(move |c| with_https(c, &flags)).run(|s| {
        let url = https_url(s);
        let ok = tls_ctl(s, &url, &certs.ca, None);
        s.ctl_with(&ok, &["put", "k", "v"]);
        s.ctl_with(&ok, &["get", "k"]);
        s.ctl_with(&ok, &["endpoint", "health"]);
        let with_cert = tls_ctl(s, &url, &certs.ca, Some(&certs.alice));
        s.ctl_with(&with_cert, &["get", "k", "--print-value-only"]);
        let wrong_ca = tls_ctl(s, &url, &certs.other_ca, None);
        s.ctl_with(&wrong_ca, &["get", "k"]);
        let plain = Etcdctl::new(s.version(), [url.replace("https://", "http://")])
            .global_arg("--dial-timeout=2s")
            .global_arg("--command-timeout=4s");
        s.ctl_with(&plain, &["get", "k"]);
    });
}

/// With `--client-cert-auth` a client needs a certificate from the trusted CA: none, or one
/// from another CA, is refused in the handshake; the plain URL still serves.
#[test]
fn client_cert_auth_matches_etcd() {
    let certs = make_certs();
    let mut flags = server_flags(&certs.server, &certs.ca);
    flags.push("--client-cert-auth".into());
    Differential::new("client_cert_auth").config(move |c| with_https(c, &flags)).run(|s| {
        let url = https_url(s);
        let good = tls_ctl(s, &url, &certs.ca, Some(&certs.alice));
        s.ctl_with(&good, &["put", "k", "v"]);
        s.ctl_with(&good, &["get", "k"]);
        let none = tls_ctl(s, &url, &certs.ca, None);
        s.ctl_with(&none, &["get", "k"]);
        let foreign = tls_ctl(s, &url, &certs.ca, Some(&certs.stranger));
        s.ctl_with(&foreign, &["get", "k"]);
        s.ctl(&["get", "k", "--print-value-only"]);
    });
}

/// A trusted CA file alone (no `--client-cert-auth`) already requires client certificates,
/// as in etcd; their CN is not a user then.
#[test]
fn trusted_ca_alone_requires_client_certificates_as_etcd() {
    let certs = make_certs();
    let flags = server_flags(&certs.server, &certs.ca);
    Differential::new("trusted_ca_alone").config(move |c| with_https(c, &flags)).run(|s| {
        let url = https_url(s);
        s.setup(&["role", "add", "root"]);
        s.setup(&["user", "add", "root", "--new-user-password=123"]);
        s.setup(&["user", "grant-role", "root", "root"]);
        s.setup(&["auth", "enable"]);
        let none = tls_ctl(s, &url, &certs.ca, None);
        s.ctl_with(&none, &["get", "k"]);
        let root = tls_ctl(s, &url, &certs.ca, Some(&certs.root));
        s.ctl_with(&root, &["get", "k"]);
        s.ctl_with(&root.clone().global_arg("--user=root:123"), &["put", "k", "v"]);
    });
}

/// With `--client-cert-auth` and auth enabled, the certificate's common name is the user of
/// requests without a token; `--user` still takes precedence; the plain URL has no user.
#[test]
fn client_certificate_common_name_is_the_user_as_in_etcd() {
    let certs = make_certs();
    let mut flags = server_flags(&certs.server, &certs.ca);
    flags.push("--client-cert-auth=true".into());
    Differential::new("client_cert_cn_user").config(move |c| with_https(c, &flags)).run(|s| {
        let url = https_url(s);
        for args in [
            &["role", "add", "root"][..],
            &["user", "add", "root", "--new-user-password=123"],
            &["user", "grant-role", "root", "root"],
            &["role", "add", "ar"],
            &["role", "grant-permission", "ar", "readwrite", "a"],
            &["user", "add", "alice", "--new-user-password=pw"],
            &["user", "grant-role", "alice", "ar"],
            &["auth", "enable"],
        ] {
            s.setup(args);
        }
        let root = tls_ctl(s, &url, &certs.ca, Some(&certs.root));
        let alice = tls_ctl(s, &url, &certs.ca, Some(&certs.alice));
        s.ctl_with(&root, &["put", "b", "by-root"]);
        s.ctl_with(&alice, &["put", "a", "by-alice"]);
        s.ctl_with(&alice, &["get", "b"]);
        s.ctl_with(&alice, &["user", "list"]);
        s.ctl_with(&root, &["user", "list"]);
        s.ctl_with(&root, &["auth", "status"]);
        let alice_as_root = alice.clone().global_arg("--user=root:123");
        s.ctl_with(&alice_as_root, &["get", "b", "--print-value-only"]);
        let alice_bad_password = alice.clone().global_arg("--user=root:nope");
        s.ctl_with(&alice_bad_password, &["get", "b"]);
        s.ctl(&["get", "a"]);
        let mut watch = alice.clone();
        watch = watch.global_arg("--command-timeout=2s");
        s.ctl_with(&watch, &["watch", "b"]);
        s.ctl_with(&root, &["auth", "disable"]);
    });
}

/// `--auto-tls` serves https with a self-signed certificate: a client that skips verification
/// gets in, one that verifies against a CA does not.
#[test]
fn auto_tls_matches_etcd() {
    let certs = make_certs();
    Differential::new("auto_tls").config(|c| with_https(c, &["--auto-tls".to_string()])).run(|s| {
        let url = https_url(s);
        let skip = Etcdctl::new(s.version(), [url.clone()])
            .global_arg("--dial-timeout=2s")
            .global_arg("--insecure-skip-tls-verify")
            .global_arg("--insecure-transport=false");
        s.ctl_with(&skip, &["put", "k", "v"]);
        s.ctl_with(&skip, &["get", "k"]);
        let verifying = tls_ctl(s, &url, &certs.ca, None);
        s.ctl_with(&verifying, &["get", "k"]);
    });
}

/// An https client URL without a certificate stops the member at start, as etcd.
#[test]
fn https_without_a_certificate_is_refused_at_start() {
    let cfg = with_https(MemberConfig::new(Kind::from_env()), &[]);
    let Err(err) = Member::try_start_with(cfg) else {
        panic!("a member started with an https URL and no certificate");
    };
    assert!(err.log_tail.contains("--cert-file"), "{err:?}");
}

/// A client certificate of the etcd-client crate (tonic/rustls).
fn client_tls(certs: &Certs, cert: &CertFiles) -> ConnectOptions {
    let read = |p: &Path| std::fs::read(p).expect("read cert file");
    let tls = TlsOptions::new()
        .ca_certificate(Certificate::from_pem(read(&certs.ca)))
        .identity(Identity::from_pem(read(&cert.cert), read(&cert.key)));
    ConnectOptions::new()
        .with_tls(tls)
        .with_connect_timeout(Duration::from_secs(3))
        .with_timeout(Duration::from_secs(10))
}

/// The etcd-client crate over TLS with a client certificate: KV works, and with auth on the
/// certificate's CN is the user (root may add users, alice is refused).
#[tokio::test(flavor = "multi_thread")]
async fn etcd_client_crate_with_client_certificates() {
    let certs = make_certs();
    let mut flags = server_flags(&certs.server, &certs.ca);
    flags.push("--client-cert-auth".into());
    let cfg = with_https(MemberConfig::new(Kind::from_env()), &flags);
    let member = tokio::task::spawn_blocking(move || Member::start_with(cfg)).await.unwrap();
    let url = member.extra_client_urls()[0].clone();
    let mut root = Client::connect([&url], Some(client_tls(&certs, &certs.root))).await.unwrap();
    root.put("k", "v", None).await.unwrap();
    let got = root.get("k", None).await.unwrap();
    assert_eq!(got.kvs()[0].value(), b"v");
    let mut plain = oxcd_e2e::client::connect(&member.client_url()).await;
    plain.role_add("root").await.unwrap();
    plain.user_add("root", "123", None).await.unwrap();
    plain.user_grant_role("root", "root").await.unwrap();
    plain.user_add("alice", "pw", None).await.unwrap();
    plain.auth_enable().await.unwrap();
    root.user_add("bob", "pw", None).await.unwrap();
    let users = root.user_list().await.unwrap();
    assert_eq!(users.users(), ["alice", "bob", "root"]);
    let mut alice = Client::connect([&url], Some(client_tls(&certs, &certs.alice))).await.unwrap();
    let denied = alice.get("k", None).await.unwrap_err().to_string();
    assert!(denied.contains("etcdserver: permission denied"), "{denied}");
    let empty = plain.get("k", None).await.unwrap_err().to_string();
    assert!(empty.contains("etcdserver: user name is empty"), "{empty}");
    // A client certificate from another CA never gets a connection.
    let stranger = client_tls(&certs, &certs.stranger);
    match Client::connect([&url], Some(stranger)).await {
        Err(_) => {}
        Ok(mut c) => {
            let err = c.get("k", None).await.expect_err("a foreign certificate was served");
            assert!(!err.to_string().contains("permission denied"), "{err}");
        }
    }
    drop(member);
    let _ = certs.other_server;
}

/// The flags of a member serving and dialing https peer URLs with `peer`, trusting `ca`, with
/// `--peer-client-cert-auth`.
fn peer_flags(peer: &CertFiles, ca: &Path) -> Vec<String> {
    vec![
        format!("--peer-cert-file={}", peer.cert.display()),
        format!("--peer-key-file={}", peer.key.display()),
        format!("--peer-trusted-ca-file={}", ca.display()),
        "--peer-client-cert-auth".to_string(),
    ]
}

/// A 3-member cluster whose members talk over https with client certificates, as etcd 3.5.1
/// does with the same flags: writes replicate, the member list shows the https peer URLs.
#[test]
fn peer_tls_cluster_matches_etcd() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::create(dir.path()).unwrap();
    let peer = pki.peer("peer", &["127.0.0.1", "localhost"]).unwrap();
    let flags = peer_flags(&peer, &pki.ca_cert());
    Differential::new("peer_tls_cluster")
        .members(3)
        .mask_revisions()
        .config(move |mut c| {
            c = c.peer_tls();
            for f in &flags {
                c = c.arg(f.clone());
            }
            c
        })
        .run(|s| {
            s.ctl(&["put", "k", "v"]);
            s.ctl(&["get", "k", "--consistency=l"]);
            // Members and health lines come in id and answer order: members compared sorted with
            // ids cut, health as the number of healthy members.
            let members = s.etcdctl().run(&["member", "list"]);
            let mut lines: Vec<String> = members
                .stdout
                .lines()
                .map(|l| l.split_once(", ").map_or(l, |(_, rest)| rest).to_string())
                .collect();
            lines.sort();
            s.record_lines("member list, sorted, ids cut", &lines);
            let health = s.etcdctl().run(&["endpoint", "health", "--cluster"]);
            let healthy = health.stdout.lines().filter(|l| l.contains("is healthy")).count();
            s.record("endpoint health --cluster: healthy members", &healthy.to_string());
        });
}

/// `--peer-auto-tls`: members make self-signed peer certificates and talk over https without
/// verifying each other, as etcd 3.5.1 does with the same flag.
#[test]
fn peer_auto_tls_cluster_matches_etcd() {
    Differential::new("peer_auto_tls_cluster")
        .members(3)
        .versions(&[oxcd_e2e::CtlVersion::V35])
        .mask_revisions()
        .config(|c| c.peer_tls().arg("--peer-auto-tls"))
        .run(|s| {
            s.ctl(&["put", "k", "v"]);
            s.ctl(&["get", "k", "--consistency=l", "--print-value-only"]);
            let health = s.etcdctl().run(&["endpoint", "health", "--cluster"]);
            let healthy = health.stdout.lines().filter(|l| l.contains("is healthy")).count();
            s.record("endpoint health --cluster: healthy members", &healthy.to_string());
        });
}

/// Peer TLS with client certificates, on oxcd: a peer port refuses a client certificate from
/// another CA (and none at all); a member killed with -9 rejoins over TLS and catches up.
#[test]
fn peer_tls_refuses_strangers_and_a_member_rejoins() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::create(&dir.path().join("pki")).unwrap();
    let other = Pki::create(&dir.path().join("other")).unwrap();
    let peer = pki.peer("peer", &["127.0.0.1", "localhost"]).unwrap();
    let stranger = other.peer("peer", &["127.0.0.1", "localhost"]).unwrap();
    let flags = peer_flags(&peer, &pki.ca_cert());
    let mut cluster = oxcd_e2e::Cluster::try_start(Kind::from_env(), 3, move |mut c| {
        c = c.peer_tls();
        for f in &flags {
            c = c.arg(f.clone());
        }
        c
    })
    .unwrap_or_else(|e| panic!("{e}"));
    let peer_url = cluster.members[0].peer_url();
    let curl = |cert: Option<&CertFiles>| {
        let mut cmd = std::process::Command::new("curl");
        cmd.args(["-sS", "--max-time", "5", "-o", "/dev/null", "-w", "%{http_code}"])
            .arg("--cacert")
            .arg(pki.ca_cert());
        if let Some(c) = cert {
            cmd.arg("--cert").arg(&c.cert).arg("--key").arg(&c.key);
        }
        cmd.arg(format!("{peer_url}/")).output().expect("run curl")
    };
    let ok = curl(Some(&peer));
    assert!(ok.status.success(), "a member's own certificate was refused: {ok:?}");
    let foreign = curl(Some(&stranger));
    assert!(!foreign.status.success(), "a foreign client certificate was served: {foreign:?}");
    let none = curl(None);
    assert!(!none.status.success(), "no client certificate, yet served: {none:?}");

    let ctl = cluster.ctl(oxcd_e2e::CtlVersion::V35);
    ctl.run(&["put", "before", "1"]).assert_success();
    cluster.members[2].kill9();
    ctl.run(&["put", "during", "2"]).assert_success();
    cluster.members[2].restart();
    let third = cluster.members[2].ctl(oxcd_e2e::CtlVersion::V35);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let out = third.run(&["get", "during", "--consistency=s", "--print-value-only"]);
        if out.success() && out.stdout.trim() == "2" {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the restarted member never caught up: {out}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Replaces `to`'s files with `from`'s by rename, as a certificate renewal does.
fn replace_files(from: &CertFiles, to: &CertFiles) {
    for (src, dst) in [(&from.cert, &to.cert), (&from.key, &to.key)] {
        let tmp = dst.with_extension("new");
        std::fs::copy(src, &tmp).expect("copy certificate file");
        std::fs::rename(&tmp, dst).expect("rename certificate file");
    }
}

/// A renewed server certificate is served to new connections without a restart (etcd reads
/// its files again on new handshakes): a client trusting only the new CA gets in once the
/// files are replaced.
#[test]
fn a_renewed_certificate_is_served_without_a_restart() {
    let certs = make_certs();
    let live_dir = tempfile::tempdir().unwrap();
    let live = CertFiles {
        cert: live_dir.path().join("server.crt"),
        key: live_dir.path().join("server.key"),
    };
    replace_files(&certs.server, &live);
    let flags = server_flags(&live, &certs.ca)[..2].to_vec();
    let cfg = with_https(MemberConfig::new(Kind::from_env()), &flags);
    let member = Member::start_with(cfg);
    let url = member.extra_client_urls()[0].clone();
    let ctl = |ca: &Path| {
        Etcdctl::new(oxcd_e2e::CtlVersion::V35, [url.clone()])
            .global_arg("--dial-timeout=2s")
            .global_arg("--command-timeout=4s")
            .global_arg(format!("--cacert={}", ca.display()))
    };
    ctl(&certs.ca).run(&["put", "k", "v"]).assert_success();
    let before = ctl(&certs.other_ca).run(&["get", "k"]);
    assert!(!before.success(), "the new CA was trusted before the renewal: {before}");
    replace_files(&certs.other_server, &live);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let out = ctl(&certs.other_ca).run(&["get", "k", "--print-value-only"]);
        if out.success() {
            assert_eq!(out.stdout.trim(), "v");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the renewed certificate is never served: {out}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let old = ctl(&certs.ca).run(&["get", "k"]);
    assert!(!old.success(), "the replaced certificate is still served: {old}");
}

/// `--peer-cert-allowed-cn`: a peer certificate from the trusted CA with another common name
/// is refused on the peer port; a 3-member cluster whose certificates carry the allowed name
/// forms. Runs against `OXCD_E2E_TARGET` (also passes against etcd 3.5.1).
#[test]
fn peer_cert_allowed_cn_refuses_other_names() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::create(dir.path()).unwrap();
    let peer = pki.peer("member", &["127.0.0.1", "localhost"]).unwrap();
    let other = pki.peer("intruder", &["127.0.0.1", "localhost"]).unwrap();
    let mut flags = peer_flags(&peer, &pki.ca_cert());
    flags.push("--peer-cert-allowed-cn=member".into());
    let cluster = oxcd_e2e::Cluster::try_start(Kind::from_env(), 3, move |mut c| {
        c = c.peer_tls();
        for f in &flags {
            c = c.arg(f.clone());
        }
        c
    })
    .unwrap_or_else(|e| panic!("{e}"));
    cluster.ctl(oxcd_e2e::CtlVersion::V35).run(&["put", "k", "v"]).assert_success();
    let peer_url = cluster.members[0].peer_url();
    let curl = |cert: &CertFiles| {
        std::process::Command::new("curl")
            .args(["-sS", "--http1.1", "--max-time", "5", "-o", "/dev/null"])
            .arg("--cacert")
            .arg(pki.ca_cert())
            .arg("--cert")
            .arg(&cert.cert)
            .arg("--key")
            .arg(&cert.key)
            .arg(format!("{peer_url}/"))
            .output()
            .expect("run curl")
    };
    let allowed = curl(&peer);
    assert!(allowed.status.success(), "the allowed name was refused: {allowed:?}");
    let refused = curl(&other);
    assert!(!refused.status.success(), "a certificate with another CN was served: {refused:?}");
}

/// `--client-crl-file`: a client certificate the list revokes is refused, others are served,
/// and a list rewritten later applies to the next connection without a restart (etcd reads it
/// at every handshake) — with etcdctl, against etcd 3.5.1 and oxcd.
#[test]
fn client_crl_file_refuses_revoked_certificates_as_etcd() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::create(dir.path()).unwrap();
    let server = pki.serving("server", &["127.0.0.1", "localhost"]).unwrap();
    let alice = pki.client("alice", "alice", None).unwrap();
    let mallory = pki.client("mallory", "mallory", None).unwrap();
    let crl = pki.revocation_list("revoked", &[&mallory]).unwrap();
    let later = pki.revocation_list("later", &[&mallory, &alice]).unwrap();
    let mut flags = server_flags(&server, &pki.ca_cert());
    flags.push("--client-cert-auth".into());
    let run_dir = tempfile::tempdir().unwrap();
    let lists = run_dir.path().to_path_buf();
    let live_list = move |kind: Kind| lists.join(format!("{kind:?}.crl"));
    let live_for_config = live_list.clone();
    Differential::new("client_crl_file")
        .config(move |c| {
            // Each run gets its own copy of the list, rewritten mid-scenario.
            let live = live_for_config(c.kind);
            std::fs::copy(&crl, &live).unwrap();
            let mut flags = flags.clone();
            flags.push(format!("--client-crl-file={}", live.display()));
            with_https(c, &flags)
        })
        .run(|s| {
            let url = https_url(s);
            let live = live_list(s.member().kind());
            let good = tls_ctl(s, &url, &pki.ca_cert(), Some(&alice));
            s.ctl_with(&good, &["put", "k", "v"]);
            let revoked = tls_ctl(s, &url, &pki.ca_cert(), Some(&mallory));
            s.ctl_with(&revoked, &["get", "k"]);
            std::fs::copy(&later, &live).unwrap();
            s.ctl_with(&good, &["get", "k"]);
            s.ctl(&["get", "k", "--print-value-only"]);
        });
}

/// `--client-cert-allowed-hostname`: only client certificates valid for that name are served.
#[test]
fn client_cert_allowed_hostname_as_etcd() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::create(dir.path()).unwrap();
    let server = pki.serving("server", &["127.0.0.1", "localhost"]).unwrap();
    let allowed = pki.peer("allowed", &["client.example"]).unwrap();
    let other = pki.peer("other", &["elsewhere.example"]).unwrap();
    let mut flags = server_flags(&server, &pki.ca_cert());
    flags.push("--client-cert-auth".into());
    flags.push("--client-cert-allowed-hostname=client.example".into());
    Differential::new("client_cert_allowed_hostname").config(move |c| with_https(c, &flags)).run(
        |s| {
            let url = https_url(s);
            let ok = tls_ctl(s, &url, &pki.ca_cert(), Some(&allowed));
            s.ctl_with(&ok, &["put", "k", "v"]);
            let refused = tls_ctl(s, &url, &pki.ca_cert(), Some(&other));
            s.ctl_with(&refused, &["get", "k"]);
        },
    );
}

/// Whether curl, trusting `ca` and passing `extra` (TLS version and cipher options), gets
/// `/health` served over `url`.
fn served(url: &str, ca: &Path, extra: &[&str]) -> bool {
    std::process::Command::new("curl")
        .args(["-sS", "--max-time", "5", "-o", "/dev/null", "--cacert"])
        .arg(ca)
        .args(extra)
        .arg(format!("{url}/health"))
        .output()
        .expect("run curl")
        .status
        .success()
}

/// `--cipher-suites`: a TLS 1.2 client offering only a suite not named is refused, one
/// offering a named suite is served, and TLS 1.3 is refused (etcd 3.5.1 speaks TLS 1.2 alone
/// once suites are named); an unknown name stops the member at start with etcd's message.
#[test]
fn cipher_suites_restrict_tls12_as_etcd() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::create(dir.path()).unwrap();
    let server = pki.serving("server", &["127.0.0.1", "localhost"]).unwrap();
    let run = |kind: Kind| {
        let mut cfg = MemberConfig::new(kind);
        cfg = with_https(
            cfg,
            &[
                format!("--cert-file={}", server.cert.display()),
                format!("--key-file={}", server.key.display()),
                "--cipher-suites=TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256".into(),
            ],
        );
        let member = Member::start_with(cfg);
        let url = member.extra_client_urls()[0].clone();
        let curl = |extra: &[&str]| served(&url, &pki.ca_cert(), extra);
        vec![
            curl(&["--tls-max", "1.2", "--ciphers", "ECDHE-ECDSA-AES128-GCM-SHA256"]),
            curl(&["--tls-max", "1.2", "--ciphers", "ECDHE-ECDSA-AES256-GCM-SHA384"]),
            curl(&["--tlsv1.3"]),
        ]
    };
    let (reference, subject) = oxcd_e2e::against_both(Kind::Etcd35, run);
    assert_eq!(reference, vec![true, false, false]);
    assert_eq!(subject, reference);
    let refused = std::process::Command::new(oxcd_e2e::bins::oxcd())
        .arg("--cipher-suites=TLS_NOPE")
        .arg(format!("--data-dir={}", dir.path().join("data").display()))
        .output()
        .expect("run oxcd");
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains(r#"unexpected TLS cipher suite "TLS_NOPE""#), "{stderr}");
}

/// `--tls-min-version`/`--tls-max-version` (etcd 3.6): each setting serves the TLS versions
/// etcd 3.6.17 serves (TLS 1.2 and TLS 1.3 clients probed), and the values etcd refuses stop
/// oxcd at start with etcd's message.
#[test]
fn tls_versions_as_etcd_36() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::create(dir.path()).unwrap();
    let server = pki.serving("server", &["127.0.0.1", "localhost"]).unwrap();
    let suite = "--cipher-suites=TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256";
    let settings: [&[&str]; 3] = [
        &["--tls-min-version=TLS1.3"],
        &["--tls-max-version=TLS1.2"],
        &["--tls-max-version=TLS1.3", suite],
    ];
    let run = |kind: Kind| {
        let mut spoken = Vec::new();
        for extra in settings {
            let mut flags = vec![
                format!("--cert-file={}", server.cert.display()),
                format!("--key-file={}", server.key.display()),
            ];
            flags.extend(extra.iter().map(|f| f.to_string()));
            let member = Member::start_with(with_https(MemberConfig::new(kind), &flags));
            let url = member.extra_client_urls()[0].clone();
            let ca = pki.ca_cert();
            spoken.push([
                served(&url, &ca, &["--tls-max", "1.2"]),
                served(&url, &ca, &["--tlsv1.3"]),
            ]);
        }
        spoken
    };
    let (reference, subject) = oxcd_e2e::against_both(Kind::Etcd36, run);
    assert_eq!(reference, vec![[false, true], [true, false], [true, true]]);
    assert_eq!(subject, reference);

    let refusals: [(&[&str], &str); 3] = [
        (
            &["--tls-min-version=TLS1.1"],
            r#"unexpected TLS version \"TLS1.1\" (must be one of: TLS1.2, TLS1.3)"#,
        ),
        (
            &["--tls-min-version=TLS1.3", "--tls-max-version=TLS1.2"],
            "min version (TLS1.3) is greater than max version (TLS1.2)",
        ),
        (
            &["--tls-min-version=TLS1.3", suite],
            "cipher suites cannot be configured when only TLS1.3 is enabled",
        ),
    ];
    let etcd36 = oxcd_e2e::bins::etcd36_dir().join("etcd");
    for (i, (flags, message)) in refusals.into_iter().enumerate() {
        for (bin, expected) in [
            (&etcd36, message.to_string()),
            (&oxcd_e2e::bins::oxcd(), message.replace("\\\"", "\"")),
        ] {
            let out = std::process::Command::new(bin)
                .args(flags)
                .arg(format!("--data-dir={}", dir.path().join(format!("refused-{i}")).display()))
                .output()
                .expect("run the server");
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(!out.status.success(), "{bin:?} {flags:?} started");
            assert!(stderr.contains(&expected), "{bin:?} {flags:?}: {stderr}");
        }
    }
}

/// An https `--listen-metrics-urls` serves `/metrics` and `/health` with the client
/// certificate, as etcd does; plain http on it gets nothing.
#[test]
fn https_metrics_url_as_etcd() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::create(dir.path()).unwrap();
    let server = pki.serving("server", &["127.0.0.1", "localhost"]).unwrap();
    let run = |kind: Kind| {
        let metrics = format!("127.0.0.1:{}", free_port());
        let cfg = MemberConfig::new(kind)
            .arg(format!("--cert-file={}", server.cert.display()))
            .arg(format!("--key-file={}", server.key.display()))
            .arg(format!("--listen-metrics-urls=https://{metrics}"));
        let _member = Member::start_with(cfg);
        let get = |url: String| {
            let out = std::process::Command::new("curl")
                .args(["-sS", "--max-time", "5", "--cacert"])
                .arg(pki.ca_cert())
                .arg(url)
                .output()
                .expect("run curl");
            let body = String::from_utf8_lossy(&out.stdout).to_string();
            let healthy = body.contains(r#""health":"true""#);
            (out.status.success(), body.contains("etcd_server_has_leader 1"), healthy)
        };
        vec![
            get(format!("https://{metrics}/metrics")),
            get(format!("https://{metrics}/health")),
            get(format!("http://{metrics}/metrics")),
        ]
    };
    let (reference, subject) = oxcd_e2e::against_both(Kind::Etcd35, run);
    assert_eq!(reference[..2], [(true, true, false), (true, false, true)], "{reference:?}");
    assert_eq!(subject, reference);
}

/// With `--client-cert-auth` and auth enabled, a JSON gateway request over TLS whose client
/// certificate has a common name is refused with etcd's 400 (the gateway never takes the CN
/// as the user); before auth is enabled oxcd serves it.
#[test]
fn gateway_refuses_certificate_common_names_under_auth_as_etcd() {
    let certs = make_certs();
    let run = |kind: Kind| {
        let mut flags = server_flags(&certs.server, &certs.ca);
        flags.push("--client-cert-auth".into());
        let member = Member::start_with(with_https(MemberConfig::new(kind), &flags));
        let url = member.extra_client_urls()[0].clone();
        let gateway = || {
            let out = std::process::Command::new("curl")
                .args(["-sS", "--max-time", "5", "-w", "\n%{http_code}", "-X", "POST"])
                .args(["-d", r#"{"key":"Zm9v"}"#, "--cacert"])
                .arg(&certs.ca)
                .arg("--cert")
                .arg(&certs.alice.cert)
                .arg("--key")
                .arg(&certs.alice.key)
                .arg(format!("{url}/v3/kv/range"))
                .output()
                .expect("run curl");
            let text = String::from_utf8_lossy(&out.stdout).to_string();
            let curl_error = String::from_utf8_lossy(&out.stderr).to_string();
            // The header's ids differ between servers; the status and the refusal compare.
            match text.rsplit_once('\n') {
                Some((_, "000")) => format!("curl failed: {curl_error}"),
                Some((body, code)) if code != "200" => format!("{code} {body}"),
                Some((_, code)) => code.to_string(),
                None => text,
            }
        };
        let mut out = vec![gateway()];
        let ctl = Etcdctl::new(CtlVersion::V35, [url.clone()])
            .global_arg(format!("--cacert={}", certs.ca.display()))
            .global_arg(format!("--cert={}", certs.root.cert.display()))
            .global_arg(format!("--key={}", certs.root.key.display()));
        ctl.run(&["user", "add", "root", "--new-user-password=123"]).assert_success();
        ctl.run(&["user", "grant-role", "root", "root"]).assert_success();
        ctl.run(&["auth", "enable"]).assert_success();
        out.push(gateway());
        out
    };
    let (reference, subject) = oxcd_e2e::against_both(Kind::Etcd35, run);
    // Before auth: oxcd serves; etcd 3.5.1 answers 503 "tls: bad certificate" because its
    // gateway dials its own https listener without a client certificate (not copied).
    assert_eq!(subject[0], "200", "{subject:?}");
    assert_eq!(subject[1], reference[1]);
}
