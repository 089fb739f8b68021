//! Paths as the image sees them: symlinks inside the image root are followed within the root,
//! so an absolute link such as `/lib -> /usr/lib` never reaches the host's own files.

use std::path::{Path, PathBuf};

/// The host path of `path` (absolute, as seen inside the image) below `root`, following the
/// image's symlinks inside `root` (`image_root`: the kernel's `RESOLVE_IN_ROOT`); `None` when
/// it does not exist or cannot be resolved.
pub fn in_root(root: &Path, path: &str) -> Option<PathBuf> {
    crate::image_root::Root::open(root).ok()?.resolve(root, path).ok()
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
