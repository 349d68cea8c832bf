//! The image table: which local binary stands for which container image.
//!
//! There are no images here. A rule maps an image's repository (the reference without registry
//! path, tag or digest) to a binary that plays the image's ENTRYPOINT; a pod whose image no rule
//! matches gets `ErrImagePull` with a message naming the table. A container's `command[0]` is
//! resolved by its file name through the same table (so `command: ["/usr/local/bin/oxcd"]` runs
//! the built `oxcd`), then as a host path or through `PATH`.

use std::path::{Path, PathBuf};

/// How an image reference is matched.
#[derive(Clone, Debug)]
pub struct ImageRule {
    /// The repository's last component, e.g. `oxcd` matches `ghcr.io/x/oxcd:v1` and `oxcd`;
    /// with a tag, e.g. `oxcd:v2`, only that tag (such a rule wins over the untagged one: two
    /// builds of one image side by side, as an upgrade test needs).
    pub name: String,
    /// The binary playing the image's ENTRYPOINT; `None` for "shell" images (busybox…) whose
    /// containers always give a `command` that is found on the host.
    pub entrypoint: Option<PathBuf>,
    /// The image's CMD, used when the container gives neither `command` nor `args`.
    pub default_args: Vec<String>,
}

/// The table of image rules and extra command names.
#[derive(Clone, Debug, Default)]
pub struct ImageTable {
    rules: Vec<ImageRule>,
    commands: Vec<(String, PathBuf)>,
}

/// Why a container cannot be started from its image.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ImageError {
    /// No rule for the image.
    #[error("image {0:?} is not in the process kubelet's image table (add an ImageRule)")]
    Unknown(String),
    /// The rule's binary does not exist.
    #[error("image {image:?} maps to {} which does not exist (not built?)", path.display())]
    Missing { image: String, path: PathBuf },
    /// Nothing to run.
    #[error("image {0:?} has no entrypoint in the image table and the container gives no command")]
    NoCommand(String),
}

impl ImageTable {
    /// An empty table.
    pub fn new() -> Self {
        ImageTable::default()
    }

    /// oxcd's images: `oxcd` → the built `oxcd`, `oxcd-operator` → the built `oxcd-operator`
    /// (both from the workspace's target dir), and common shell images (busybox, alpine, debian,
    /// ubuntu) that run host commands.
    pub fn oxcd_defaults() -> Self {
        let debug = oxcd_e2e::bins::target_dir().join("debug");
        let oxcd = std::env::var_os("OXCD_BIN").map(PathBuf::from).unwrap_or(debug.join("oxcd"));
        let mut t = ImageTable::new()
            .with_image("oxcd", oxcd)
            .with_image("oxcd-operator", debug.join("oxcd-operator"));
        for shell in ["busybox", "alpine", "debian", "ubuntu"] {
            t.rules.push(ImageRule { name: shell.into(), entrypoint: None, default_args: vec![] });
        }
        t
    }

    /// Adds (or replaces) a rule mapping images named `name` to `binary`.
    pub fn with_image(mut self, name: &str, binary: impl Into<PathBuf>) -> Self {
        self.rules.retain(|r| r.name != name);
        self.rules.push(ImageRule {
            name: name.into(),
            entrypoint: Some(binary.into()),
            default_args: vec![],
        });
        self
    }

    /// Adds a rule as given.
    pub fn with_rule(mut self, rule: ImageRule) -> Self {
        self.rules.retain(|r| r.name != rule.name);
        self.rules.push(rule);
        self
    }

    /// Makes `command[0]` values whose file name is `name` run `binary` (e.g. `etcdctl`).
    pub fn with_command(mut self, name: &str, binary: impl Into<PathBuf>) -> Self {
        self.commands.retain(|(n, _)| n != name);
        self.commands.push((name.into(), binary.into()));
        self
    }

    /// The rule for `image`: its `name:tag` rule if there is one, else its `name` rule.
    pub fn rule(&self, image: &str) -> Result<&ImageRule, ImageError> {
        let repo = repository(image);
        let last = repo.rsplit('/').next().unwrap_or(repo);
        let tagged = tag(image).map(|t| format!("{last}:{t}"));
        let exact = tagged.and_then(|t| self.rules.iter().find(|r| r.name == t));
        exact
            .or_else(|| self.rules.iter().find(|r| r.name == last))
            .ok_or_else(|| ImageError::Unknown(image.into()))
    }

    /// The argv a container runs, per Kubernetes' rules for `command`/`args` against the image's
    /// ENTRYPOINT/CMD, with `argv[0]` resolved to a host binary.
    pub fn argv(
        &self,
        image: &str,
        command: &[String],
        args: Option<&[String]>,
    ) -> Result<Vec<String>, ImageError> {
        let rule = self.rule(image)?;
        let mut argv: Vec<String> = if !command.is_empty() {
            let mut v = command.to_vec();
            v.extend(args.unwrap_or_default().iter().cloned());
            v
        } else {
            let entry =
                rule.entrypoint.as_ref().ok_or_else(|| ImageError::NoCommand(image.into()))?;
            let mut v = vec![entry.display().to_string()];
            match args {
                Some(a) => v.extend(a.iter().cloned()),
                None => v.extend(rule.default_args.iter().cloned()),
            }
            v
        };
        argv[0] = self.resolve_command(&argv[0]).display().to_string();
        if let Some(entry) = &rule.entrypoint {
            if argv[0] == entry.display().to_string() && !entry.is_file() {
                return Err(ImageError::Missing { image: image.into(), path: entry.clone() });
            }
        }
        Ok(argv)
    }

    /// A command name or in-image path as a host path: by file name through the table (image
    /// entrypoints and extra commands), else unchanged (an absolute host path, or a name `exec`
    /// finds through `PATH`).
    pub fn resolve_command(&self, cmd: &str) -> PathBuf {
        let file = Path::new(cmd).file_name().map(|f| f.to_string_lossy().into_owned());
        if let Some(file) = file {
            if let Some((_, p)) = self.commands.iter().find(|(n, _)| *n == file) {
                return p.clone();
            }
            for r in &self.rules {
                if let Some(e) = &r.entrypoint {
                    let entry_name = e.file_name().map(|f| f.to_string_lossy().into_owned());
                    if r.name == file || entry_name.as_deref() == Some(file.as_str()) {
                        return e.clone();
                    }
                }
            }
        }
        PathBuf::from(cmd)
    }
}

/// The repository part of an image reference: without `@digest` and `:tag`.
pub fn repository(image: &str) -> &str {
    let no_digest = image.split('@').next().unwrap_or(image);
    let last_slash = no_digest.rfind('/').map(|i| i + 1).unwrap_or(0);
    match no_digest[last_slash..].find(':') {
        Some(colon) => &no_digest[..last_slash + colon],
        None => no_digest,
    }
}

/// The tag of an image reference, if it has one.
pub fn tag(image: &str) -> Option<&str> {
    let no_digest = image.split('@').next().unwrap_or(image);
    let repo = repository(image);
    no_digest.get(repo.len()..)?.strip_prefix(':').filter(|t| !t.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(dir: &Path) -> ImageTable {
        let oxcd = dir.join("oxcd");
        std::fs::write(&oxcd, "").unwrap();
        ImageTable::new()
            .with_image("oxcd", &oxcd)
            .with_image("oxcd-operator", dir.join("not-built"))
            .with_rule(ImageRule { name: "busybox".into(), entrypoint: None, default_args: vec![] })
            .with_command("etcdctl", "/usr/bin/etcdctl")
    }

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn repositories() {
        assert_eq!(repository("oxcd"), "oxcd");
        assert_eq!(repository("ghcr.io/x/oxcd:v1.2"), "ghcr.io/x/oxcd");
        assert_eq!(repository("localhost:5000/oxcd:dev"), "localhost:5000/oxcd");
        assert_eq!(repository("localhost:5000/oxcd"), "localhost:5000/oxcd");
        assert_eq!(repository("oxcd@sha256:abc"), "oxcd");
        assert_eq!(repository("r.io/oxcd:t@sha256:abc"), "r.io/oxcd");
    }

    #[test]
    fn a_tagged_rule_wins_for_its_tag_only() {
        let dir = tempfile::tempdir().unwrap();
        let second = dir.path().join("oxcd-v2");
        std::fs::write(&second, "").unwrap();
        let t = table(dir.path()).with_image("oxcd:v2", &second);
        let oxcd = dir.path().join("oxcd").display().to_string();
        assert_eq!(t.argv("oxcd:v1", &[], None).unwrap(), vec![oxcd.clone()]);
        assert_eq!(t.argv("oxcd", &[], None).unwrap(), vec![oxcd]);
        assert_eq!(
            t.argv("r.io/x/oxcd:v2", &[], None).unwrap(),
            vec![second.display().to_string()]
        );
        assert_eq!(tag("localhost:5000/oxcd:dev@sha256:abc"), Some("dev"));
        assert_eq!(tag("localhost:5000/oxcd"), None);
    }

    #[test]
    fn command_and_args_follow_kubernetes_rules() {
        let dir = tempfile::tempdir().unwrap();
        let t = table(dir.path());
        let oxcd = dir.path().join("oxcd").display().to_string();
        assert_eq!(t.argv("ghcr.io/x/oxcd:v1", &[], None).unwrap(), vec![oxcd.clone()]);
        assert_eq!(
            t.argv("oxcd:v1", &[], Some(&s(&["--name", "a"]))).unwrap(),
            s(&[&oxcd, "--name", "a"])
        );
        assert_eq!(
            t.argv("oxcd", &s(&["/usr/local/bin/oxcd", "--x"]), Some(&s(&["y"]))).unwrap(),
            s(&[&oxcd, "--x", "y"])
        );
        assert_eq!(
            t.argv("busybox:1.36", &s(&["sh", "-c", "true"]), None).unwrap(),
            s(&["sh", "-c", "true"])
        );
        assert_eq!(
            t.argv("oxcd", &s(&["etcdctl", "get"]), None).unwrap(),
            s(&["/usr/bin/etcdctl", "get"])
        );
    }

    #[test]
    fn errors_name_the_image() {
        let dir = tempfile::tempdir().unwrap();
        let t = table(dir.path());
        assert_eq!(t.argv("nginx:1", &[], None), Err(ImageError::Unknown("nginx:1".into())));
        assert_eq!(t.argv("busybox", &[], None), Err(ImageError::NoCommand("busybox".into())));
        assert!(matches!(t.argv("x/oxcd-operator:v1", &[], None), Err(ImageError::Missing { .. })));
        assert!(t.argv("nginx:1", &[], None).unwrap_err().to_string().contains("image table"));
    }
}
