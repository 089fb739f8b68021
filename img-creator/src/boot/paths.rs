//! Paths as the image sees them: symlinks inside the image root are followed within the root,
//! so an absolute link such as `/lib -> /usr/lib` never reaches the host's own files.

use std::path::{Component, Path, PathBuf};

/// Symlink hops allowed before giving up (the kernel's limit).
const MAX_HOPS: usize = 40;

/// The host path of `path` (absolute, as seen inside the image) below `root`, following the
/// image's symlinks inside `root`; `None` when it does not exist.
pub fn in_root(root: &Path, path: &str) -> Option<PathBuf> {
    let mut todo: Vec<String> = Vec::new();
    push_components(&mut todo, Path::new(path));
    let mut cur = PathBuf::new();
    let mut hops = 0;
    while let Some(part) = todo.pop() {
        if part == ".." {
            cur.pop();
            continue;
        }
        let next = cur.join(&part);
        let meta = std::fs::symlink_metadata(root.join(&next)).ok()?;
        if !meta.file_type().is_symlink() {
            cur = next;
            continue;
        }
        hops += 1;
        if hops > MAX_HOPS {
            return None;
        }
        let target = std::fs::read_link(root.join(&next)).ok()?;
        if target.is_absolute() {
            cur = PathBuf::new();
        }
        push_components(&mut todo, &target);
    }
    Some(root.join(cur))
}

/// Pushes the parts of `p` so that the first one is popped first.
fn push_components(todo: &mut Vec<String>, p: &Path) {
    let parts: Vec<String> = p
        .components()
        .filter_map(|c| match c {
            Component::Normal(s) => Some(s.to_string_lossy().into_owned()),
            Component::ParentDir => Some("..".to_owned()),
            _ => None,
        })
        .collect();
    todo.extend(parts.into_iter().rev());
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn absolute_links_stay_inside_the_root() {
        let t = crate::workdir::TempDir::new_in(&std::env::temp_dir(), "img-paths-").unwrap();
        let root = t.path();
        std::fs::create_dir_all(root.join("usr/lib/modules/k")).unwrap();
        symlink("/usr/lib", root.join("lib")).unwrap();
        symlink("../../etc/passwd", root.join("usr/lib/escape")).unwrap();
        assert_eq!(in_root(root, "/lib/modules/k"), Some(root.join("usr/lib/modules/k")));
        assert_eq!(in_root(root, "/lib/missing"), None);
        // `..` stops at the root, as in a chroot: no host /etc/passwd.
        assert_eq!(in_root(root, "/usr/lib/escape"), None);
        symlink("loop", root.join("loop")).unwrap();
        assert_eq!(in_root(root, "/loop"), None);
    }
}
