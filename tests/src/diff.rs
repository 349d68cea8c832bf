//! Differential testing: the same etcdctl scenario against real etcd and oxcd.
//!
//! A scenario is a function over a [`Session`]. [`Differential::run`] runs it
//! once against a fresh reference server (etcd 3.5.1) and once against a
//! fresh subject server (oxcd, i.e. `$OXCD_BIN`), for each etcdctl version
//! (3.5.1 and 3.4.23), both servers in parallel. Every recorded step — the
//! command, its exit status, its stdout and its stderr, each passed through
//! a [`Normalizer`] — must be equal; otherwise the test fails with a
//! side-by-side report of the differing steps and the subject's log tail.
//!
//! A scenario that panics against the reference server is a broken test and
//! fails as such; one that panics against the subject is reported as a
//! difference ("scenario aborted").
//!
//! Env `OXCD_E2E_VERBOSE=1` prints the normalized reference transcripts.

use std::fmt::Write as _;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::bins;
use crate::etcdctl::{run_command, CtlOutput, CtlVersion, Etcdctl, Spawned};
use crate::normalize::Normalizer;
use crate::server::{Cluster, Kind, Member, MemberConfig};

/// One recorded, normalized observation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Step {
    /// The command (normalized) or a description of the observation.
    pub what: String,
    /// Exit status (`0`, `1`, `timeout`, ...) or `-` for observations.
    pub exit: String,
    /// Normalized stdout.
    pub stdout: String,
    /// Normalized stderr (see [`Normalizer::stderr`]).
    pub stderr: String,
}

/// What a scenario works with: its server(s), an etcdctl of the version
/// under test and the transcript being recorded.
pub struct Session {
    kind: Kind,
    version: CtlVersion,
    cluster: Cluster,
    ctl: Etcdctl,
    norm: Normalizer,
    steps: Vec<Step>,
    scratch: tempfile::TempDir,
    deadline: Instant,
}

/// Time budget of one scenario run: once spent, the next command aborts
/// the run (reported as a difference), so a hanging server cannot stall the
/// suite for each of dozens of commands.
pub const SCENARIO_BUDGET: Duration = Duration::from_secs(150);

impl Session {
    /// Wraps already started members (see [`Differential`] for the usual way).
    pub fn new(kind: Kind, version: CtlVersion, cluster: Cluster) -> Session {
        let scratch =
            tempfile::Builder::new().prefix("oxcd-e2e-scratch-").tempdir().expect("temp dir");
        let mut norm = Normalizer::new();
        norm.literal(scratch.path().display().to_string(), "<TMP>");
        for (i, m) in cluster.members.iter().enumerate() {
            let i = i + 1;
            norm.literal(m.client_url(), format!("<CLIENT{i}>"));
            norm.literal(m.client_addr(), format!("<CLIENT{i}-ADDR>"));
            norm.literal(m.peer_url(), format!("<PEER{i}>"));
            norm.literal(
                m.peer_url().replace("https://", "").replace("http://", ""),
                format!("<PEER{i}-ADDR>"),
            );
        }
        let ctl = cluster.ctl(version);
        Session {
            kind,
            version,
            cluster,
            ctl,
            norm,
            steps: Vec::new(),
            scratch,
            deadline: Instant::now() + SCENARIO_BUDGET,
        }
    }

    /// The server implementation of this run.
    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// The etcdctl version of this run.
    pub fn version(&self) -> CtlVersion {
        self.version
    }

    /// The first (or only) member.
    pub fn member(&self) -> &Member {
        &self.cluster.members[0]
    }

    /// The first (or only) member, mutable (kill9/restart).
    pub fn member_mut(&mut self) -> &mut Member {
        &mut self.cluster.members[0]
    }

    /// All members.
    pub fn cluster(&mut self) -> &mut Cluster {
        &mut self.cluster
    }

    /// A scratch directory (shown as `<TMP>` in outputs).
    pub fn tmp(&self) -> &Path {
        self.scratch.path()
    }

    /// A path in the scratch directory, as a string.
    pub fn tmp_file(&self, name: &str) -> String {
        self.scratch.path().join(name).display().to_string()
    }

    /// The etcdctl of this run (all members as endpoints).
    pub fn etcdctl(&self) -> &Etcdctl {
        &self.ctl
    }

    /// The masks in use; e.g. `s.normalizer().mask_revisions(true)`.
    pub fn normalizer(&mut self) -> &mut Normalizer {
        &mut self.norm
    }

    /// The recorded steps so far.
    pub fn steps(&self) -> &[Step] {
        &self.steps
    }

    fn budget(&self, args: &[&str]) {
        if Instant::now() > self.deadline {
            panic!(
                "scenario time budget ({SCENARIO_BUDGET:?}) spent before `{}`",
                describe("etcdctl", args, None)
            );
        }
    }

    /// Runs `etcdctl args...` and records it.
    pub fn ctl(&mut self, args: &[&str]) -> CtlOutput {
        self.budget(args);
        let out = self.ctl.run(args);
        self.record_output(&describe("etcdctl", args, None), &out);
        out
    }

    /// Runs `etcdctl args...` with `stdin` and records it.
    pub fn ctl_input(&mut self, args: &[&str], stdin: &str) -> CtlOutput {
        self.budget(args);
        let out = self.ctl.run_input(args, stdin);
        self.record_output(&describe("etcdctl", args, Some(stdin)), &out);
        out
    }

    /// Runs `etcdctl args...` with a specific etcdctl, and records it.
    pub fn ctl_with(&mut self, ctl: &Etcdctl, args: &[&str]) -> CtlOutput {
        self.budget(args);
        let out = ctl.run(args);
        let name = format!("etcdctl({})", ctl.version().label());
        self.record_output(&describe(&name, args, None), &out);
        out
    }

    /// Runs `etcdctl args...` without recording it (setup). A failing setup
    /// command is recorded (as `setup: etcdctl ...`), so that it shows up as
    /// a difference.
    pub fn setup(&mut self, args: &[&str]) -> CtlOutput {
        self.budget(args);
        let out = self.ctl.run(args);
        if !out.success() {
            // Recorded so that the difference shows up in the report.
            self.record_output(&describe("setup: etcdctl", args, None), &out);
        }
        out
    }

    /// Runs etcdutl 3.5.1 (offline tool, no endpoints) and records it.
    pub fn etcdutl(&mut self, args: &[&str]) -> CtlOutput {
        let bin = bins::etcdutl35();
        let mut cmd = std::process::Command::new(&bin);
        cmd.args(args);
        let out = run_command(
            cmd,
            format!("{} {}", bin.display(), args.join(" ")),
            None,
            Duration::from_secs(30),
        );
        self.record_output(&describe("etcdutl", args, None), &out);
        out
    }

    /// Starts a long-running etcdctl command (not recorded; record what it
    /// printed with [`Session::record_lines`]).
    pub fn spawn(&mut self, args: &[&str]) -> Spawned {
        self.budget(args);
        self.ctl.spawn(args)
    }

    /// Waits until a spawned etcdctl (watch, lock, ...) is connected to the
    /// first member and its request had time to reach the server. Records a
    /// step only if it did not connect.
    pub fn wait_connected(&mut self, sp: &mut Spawned) {
        let port = self.member().client_port();
        if !sp.wait_connected(port, Duration::from_secs(15), Duration::from_millis(600)) {
            let err = sp.stderr();
            let err = self.norm.stderr(&err);
            self.record("spawned etcdctl never connected", &err);
        }
    }

    /// Records a command's output under `what`.
    pub fn record_output(&mut self, what: &str, out: &CtlOutput) {
        let what = self.norm.line(what);
        let stdout = self.norm.text(&out.stdout);
        let stderr = self.norm.stderr(&out.stderr);
        self.steps.push(Step { what, exit: out.status_text(), stdout, stderr });
    }

    /// Records an observation (normalized like stdout).
    pub fn record(&mut self, what: &str, text: &str) {
        let stdout = self.norm.text(text);
        self.steps.push(Step {
            what: what.to_string(),
            exit: "-".into(),
            stdout,
            stderr: String::new(),
        });
    }

    /// Records lines read from a spawned command.
    pub fn record_lines(&mut self, what: &str, lines: &[String]) {
        self.record(what, &lines.join("\n"));
    }

    /// Records what a spawned watcher printed: the `n` lines it should print (waiting up to
    /// 15 s), then anything more within 500 ms (an extra event is a difference), and its
    /// stderr if any.
    pub fn watched(&mut self, sp: &mut Spawned, n: usize) {
        let mut lines = sp.lines(n, Duration::from_secs(15));
        lines.extend(sp.drain(Duration::from_millis(500), Duration::from_secs(2)));
        let what = format!("output of {}", describe("etcdctl", &sp.args(), None));
        self.record_lines(&what, &lines);
        let err = sp.stderr();
        if !err.trim().is_empty() {
            let e = self.norm.stderr(&err);
            self.record("watcher stderr", &e);
        }
    }

    /// Records a yes/no fact (e.g. "the second locker is still blocked").
    pub fn check(&mut self, what: &str, fact: bool) {
        self.record(what, if fact { "true" } else { "false" });
    }
}

/// A readable command line, e.g. `etcdctl put "a b" c <<< "stdin"`.
pub fn describe(prog: &str, args: &[&str], stdin: Option<&str>) -> String {
    let mut s = prog.to_string();
    for a in args {
        s.push(' ');
        if a.is_empty() || a.contains(char::is_whitespace) || a.contains('"') {
            let _ = write!(s, "{a:?}");
        } else {
            s.push_str(a);
        }
    }
    if let Some(i) = stdin {
        let _ = write!(s, " <<< {i:?}");
    }
    s
}

/// The lease ID (hex) from `lease grant` output (`lease 694d… granted with
/// TTL(60s)`), or `"0"` if the output has none (so a failing subject
/// continues, and the difference is reported).
pub fn lease_id(out: &CtlOutput) -> String {
    out.stdout
        .split_whitespace()
        .skip_while(|w| *w != "lease")
        .nth(1)
        .filter(|w| w.chars().all(|c| c.is_ascii_hexdigit()))
        .map(str::to_string)
        .unwrap_or_else(|| "0".into())
}

struct Transcript {
    kind: Kind,
    binary: PathBuf,
    steps: Vec<Step>,
    aborted: Option<String>,
    log_tail: String,
}

type Tweak = Arc<dyn Fn(MemberConfig) -> MemberConfig + Send + Sync>;

/// A differential test: settings plus [`Differential::run`].
pub struct Differential {
    name: String,
    versions: Vec<CtlVersion>,
    mask_revisions: bool,
    members: usize,
    reference: Kind,
    subject: Kind,
    tweak: Option<Tweak>,
}

/// Runs `scenario` differentially with the default settings (etcd 3.5.1 vs
/// oxcd, etcdctl 3.5 and 3.4, one member, revisions compared).
pub fn differential(name: &str, scenario: impl Fn(&mut Session) + Sync) {
    Differential::new(name).run(scenario)
}

impl Differential {
    /// Default settings, see [`differential`].
    pub fn new(name: &str) -> Self {
        Differential {
            name: name.to_string(),
            versions: CtlVersion::ALL.to_vec(),
            mask_revisions: false,
            members: 1,
            reference: Kind::Etcd35,
            subject: Kind::Oxcd,
            tweak: None,
        }
    }

    /// Masks revisions in outputs (only for timing-dependent scenarios).
    pub fn mask_revisions(mut self) -> Self {
        self.mask_revisions = true;
        self
    }

    /// Compares against this server (etcd 3.5.1 by default; etcd 3.4.23 for the v2 API).
    pub fn reference(mut self, kind: Kind) -> Self {
        self.reference = kind;
        self
    }

    /// Runs with these etcdctl versions only.
    pub fn versions(mut self, v: &[CtlVersion]) -> Self {
        self.versions = v.to_vec();
        self
    }

    /// Runs against `n`-member clusters.
    pub fn members(mut self, n: usize) -> Self {
        self.members = n;
        self
    }

    /// Adjusts each member's config (extra flags, env), on both sides.
    pub fn config(
        mut self,
        f: impl Fn(MemberConfig) -> MemberConfig + Send + Sync + 'static,
    ) -> Self {
        self.tweak = Some(Arc::new(f));
        self
    }

    /// Runs the scenario for every etcdctl version on both servers and
    /// panics with a side-by-side report if any normalized step differs.
    pub fn run(self, scenario: impl Fn(&mut Session) + Sync) {
        let mut failures = String::new();
        for &version in &self.versions {
            let (reference, subject) = std::thread::scope(|sc| {
                let r = sc.spawn(|| self.run_one(self.reference, version, &scenario));
                let s = sc.spawn(|| self.run_one(self.subject, version, &scenario));
                (join(r), join(s))
            });
            if let Some(msg) = &reference.aborted {
                panic!(
                    "differential `{}`: the scenario itself fails against the reference {} with {}: {msg}\n\
                     --- reference log tail ---\n{}",
                    self.name, reference.kind, version, reference.log_tail
                );
            }
            if std::env::var_os("OXCD_E2E_VERBOSE").is_some() {
                eprintln!(
                    "=== `{}` with {}: reference transcript\n{}",
                    self.name,
                    version,
                    render_steps(&reference.steps)
                );
            }
            if let Some(report) = compare(&self.name, version, &reference, &subject) {
                failures.push_str(&report);
            }
        }
        if !failures.is_empty() {
            panic!("{failures}");
        }
    }

    fn run_one(
        &self,
        kind: Kind,
        version: CtlVersion,
        scenario: &(impl Fn(&mut Session) + Sync),
    ) -> Transcript {
        let binary = kind.binary();
        let tweak = self.tweak.clone();
        let started = Cluster::try_start(kind, self.members, |c| match &tweak {
            Some(f) => f(c),
            None => c,
        });
        let cluster = match started {
            Ok(c) => c,
            Err(e) => {
                return Transcript {
                    kind,
                    binary,
                    steps: vec![Step {
                        what: "start server".into(),
                        exit: "failed".into(),
                        stdout: e.message.clone(),
                        stderr: String::new(),
                    }],
                    aborted: Some(format!("server did not start: {}", e.message)),
                    log_tail: e.log_tail,
                }
            }
        };
        let mut session = Session::new(kind, version, cluster);
        session.norm.mask_revisions(self.mask_revisions);
        let r = catch_unwind(AssertUnwindSafe(|| scenario(&mut session)));
        let aborted = r.err().map(|p| {
            p.downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "panic".into())
        });
        if let Some(msg) = &aborted {
            let stdout = session.norm.text(msg);
            session.steps.push(Step {
                what: "scenario aborted (panic)".into(),
                exit: "panic".into(),
                stdout,
                stderr: String::new(),
            });
        }
        let log_tail = session.member().log_tail(25);
        Transcript { kind, binary, steps: session.steps, aborted, log_tail }
    }
}

fn join(h: std::thread::ScopedJoinHandle<'_, Transcript>) -> Transcript {
    match h.join() {
        Ok(t) => t,
        Err(p) => std::panic::resume_unwind(p),
    }
}

fn render_steps(steps: &[Step]) -> String {
    let mut s = String::new();
    for (i, st) in steps.iter().enumerate() {
        let _ = writeln!(s, "[{}] {} (exit {})", i + 1, st.what, st.exit);
        for l in st.stdout.lines() {
            let _ = writeln!(s, "    {l}");
        }
        for l in st.stderr.lines() {
            let _ = writeln!(s, "  ! {l}");
        }
    }
    s
}

const COL: usize = 64;

/// Aligns the two step lists on their `what` labels (longest common
/// subsequence), so that one extra or missing step in the subject shows as
/// exactly that instead of shifting every later step.
fn align(r: &[Step], s: &[Step]) -> Vec<(Option<usize>, Option<usize>)> {
    let (n, m) = (r.len(), s.len());
    let mut lcs = vec![vec![0u32; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            lcs[i][j] = if r[i].what == s[j].what {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut i, mut j) = (0, 0);
    let mut out = Vec::new();
    while i < n || j < m {
        if i < n && j < m && r[i].what == s[j].what {
            out.push((Some(i), Some(j)));
            i += 1;
            j += 1;
        } else if j < m && (i == n || lcs[i][j + 1] >= lcs[i + 1][j]) {
            out.push((None, Some(j)));
            j += 1;
        } else {
            out.push((Some(i), None));
            i += 1;
        }
    }
    out
}

fn compare(name: &str, version: CtlVersion, r: &Transcript, s: &Transcript) -> Option<String> {
    let empty = Step {
        what: String::new(),
        exit: String::new(),
        stdout: String::new(),
        stderr: String::new(),
    };
    let mut body = String::new();
    let mut differing = 0;
    let pairs = align(&r.steps, &s.steps);
    for (ri, si) in &pairs {
        let a = ri.map(|i| &r.steps[i]).unwrap_or(&empty);
        let b = si.map(|i| &s.steps[i]).unwrap_or(&empty);
        if ri.is_some() && si.is_some() && a == b {
            continue;
        }
        differing += 1;
        match (ri, si) {
            (Some(i), Some(_)) => {
                let _ = writeln!(body, "--- step {}: {}", i + 1, a.what);
            }
            (Some(i), None) => {
                let _ = writeln!(body, "--- step {}: {}   [only in reference]", i + 1, a.what);
            }
            (None, Some(j)) => {
                let _ =
                    writeln!(body, "--- subject step {}: {}   [only in subject]", j + 1, b.what);
            }
            (None, None) => unreachable!(),
        }
        body.push_str(&side_by_side("exit", &a.exit, &b.exit));
        body.push_str(&side_by_side("stdout", &a.stdout, &b.stdout));
        body.push_str(&side_by_side("stderr", &a.stderr, &b.stderr));
    }
    if differing == 0 {
        return None;
    }
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\n=== differential `{name}` with {version}: {differing} differences \
         ({} reference steps, {} subject steps)\n    \
         reference: {} ({})\n    subject:   {} ({})",
        r.steps.len(),
        s.steps.len(),
        r.kind,
        r.binary.display(),
        s.kind,
        s.binary.display()
    );
    let left = format!("[reference {}]", r.kind);
    let _ = writeln!(out, "    {left:<COL$}   [subject {}]", s.kind);
    out.push_str(&body);
    let _ = writeln!(out, "--- subject log tail ---\n{}", s.log_tail);
    Some(out)
}

/// Renders two texts side by side (`≠` marks differing lines).
pub fn side_by_side(label: &str, left: &str, right: &str) -> String {
    let mut out = String::new();
    if left == right {
        if !left.is_empty() {
            let _ = writeln!(out, "  {label}: (same)");
        }
        return out;
    }
    let _ = writeln!(out, "  {label}:");
    let l: Vec<&str> = left.lines().collect();
    let r: Vec<&str> = right.lines().collect();
    for i in 0..l.len().max(r.len()) {
        let a = l.get(i).copied().unwrap_or("");
        let b = r.get(i).copied().unwrap_or("");
        let mark = if l.get(i) == r.get(i) { '|' } else { '≠' };
        let ca = chunks(a);
        let cb = chunks(b);
        for j in 0..ca.len().max(cb.len()) {
            let x = ca.get(j).map(String::as_str).unwrap_or("");
            let y = cb.get(j).map(String::as_str).unwrap_or("");
            let m = if j == 0 { mark } else { ' ' };
            let _ = writeln!(out, "    {x:<COL$} {m} {y}");
        }
    }
    out
}

fn chunks(s: &str) -> Vec<String> {
    let chars: Vec<char> = s.chars().collect();
    if chars.is_empty() {
        return vec![String::new()];
    }
    chars.chunks(COL).map(|c| c.iter().collect()).collect()
}

/// Runs `scenario` against the reference etcd and oxcd at once (each on its own servers) and
/// returns (reference, oxcd), for tests that compare a result rather than a transcript.
pub fn against_both<T: Send>(reference: Kind, scenario: impl Fn(Kind) -> T + Sync) -> (T, T) {
    std::thread::scope(|s| {
        let r = s.spawn(|| scenario(reference));
        let o = s.spawn(|| scenario(Kind::Oxcd));
        let join = |h: std::thread::ScopedJoinHandle<'_, T>| {
            h.join().unwrap_or_else(|e| std::panic::resume_unwind(e))
        };
        (join(r), join(o))
    })
}
