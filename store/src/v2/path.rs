//! Go's `path.Clean`, `path.Split` and etcd's hidden-name rules, which decide what a v2 key
//! is: `/a//b/../c/` is `/a/c`, and a name starting with `_` is hidden from listings.

/// `path.Clean(path.Join("/", p))`: absolute, no empty, `.` or `..` elements, no trailing `/`.
pub fn clean(p: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in p.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            name => parts.push(name),
        }
    }
    if parts.is_empty() {
        return "/".to_string();
    }
    let mut out = String::with_capacity(p.len() + 1);
    for part in parts {
        out.push('/');
        out.push_str(part);
    }
    out
}

/// `path.Join(dir, name)` for a clean `dir` and one name.
pub fn join(dir: &str, name: &str) -> String {
    if dir == "/" {
        format!("/{name}")
    } else {
        format!("{dir}/{name}")
    }
}

/// `path.Split` of a clean absolute path: the parent (with its trailing `/`) and the name.
pub fn split(p: &str) -> (&str, &str) {
    match p.rfind('/') {
        Some(i) => (&p[..=i], &p[i + 1..]),
        None => ("", p),
    }
}

/// The parent directory of a clean absolute path (`/` for `/a`).
pub fn parent(p: &str) -> String {
    let (dir, _) = split(p);
    clean(dir)
}

/// Whether a node is hidden from listings: its name starts with `_`.
pub fn is_hidden_name(p: &str) -> bool {
    split(p).1.starts_with('_')
}

/// etcd's `isHidden`: whether `key` is hidden from a watcher at `watch_path` (some element
/// below the watched path starts with `_`).
pub fn is_hidden(watch_path: &str, key: &str) -> bool {
    if watch_path.len() > key.len() {
        return false;
    }
    let after = clean(&format!("/{}", &key[watch_path.len()..]));
    after.contains("/_")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_is_gos() {
        assert_eq!(clean(""), "/");
        assert_eq!(clean("/1/"), "/1");
        assert_eq!(clean("/1//a/./b/../c/"), "/1/a/c");
        assert_eq!(clean("/../a"), "/a");
        assert_eq!(split("/1/a"), ("/1/", "a"));
        assert_eq!(parent("/1"), "/");
        assert!(is_hidden("/1", "/1/_x/y"));
        assert!(!is_hidden("/1/_x", "/1/_x/y"));
    }
}
