//! Reading and writing the image's files from the host. The root is hostile (packages and
//! `%pre` made it): a path is used only if every folder on the way is a real folder inside
//! the root, the file itself is never followed when it is a link, and reads are bounded.

use crate::error::{CreateError, Result};
use img_core::job::Arch;
use std::io::{Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

/// More than any passwd, login.defs or config file the creator reads.
pub const MAX_READ: u64 = 16 << 20;

pub struct RootFs {
    root: PathBuf,
    /// The image's arch: its own programs run under its personality ([`RootFs::chroot`]).
    arch: Arch,
}

impl RootFs {
    /// A root of the host's own arch (tests, tools that never run the image's programs).
    pub fn new(root: &Path) -> RootFs {
        RootFs::for_target(root, crate::tools::host_arch().unwrap_or(Arch::X86_64))
    }

    pub fn for_target(root: &Path, arch: Arch) -> RootFs {
        RootFs { root: root.to_owned(), arch }
    }

    /// `argv`, one of the image's own programs, run chrooted in it ([`crate::scripts::chroot_cmd`])
    /// as the target runs it (i686's `uname -m` under the 32-bit personality).
    pub fn chroot(&self, argv: &[&str]) -> crate::cmd::Cmd {
        crate::scripts::chroot_cmd(&self.root, argv).for_target(self.arch)
    }

    pub fn path(&self) -> &Path {
        &self.root
    }

    /// Whether `rel` exists in the image, as a file, folder or link (links not followed).
    pub fn exists(&self, rel: &str) -> bool {
        self.inside(rel).is_ok_and(|p| std::fs::symlink_metadata(p).is_ok())
    }

    /// The file's text, `None` when it does not exist; a link or an oversized file is an error.
    pub fn read(&self, rel: &str) -> Result<Option<String>> {
        let p = self.inside(rel)?;
        let f = std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK).open(&p);
        let f = match f {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(CreateError::io("cannot read (a link?) the image's", p)(e)),
        };
        if !f.metadata().map_err(CreateError::io("cannot read", &p))?.is_file() {
            return Err(CreateError::Image(format!("the image's {rel} is not a regular file")));
        }
        let mut text = String::new();
        f.take(MAX_READ + 1).read_to_string(&mut text).map_err(CreateError::io("cannot read", &p))?;
        if text.len() as u64 > MAX_READ {
            return Err(CreateError::Image(format!("the image's {rel} is larger than {MAX_READ} bytes")));
        }
        Ok(Some(text))
    }

    /// Writes `rel` with `mode`, making its folders; a link in its place is replaced by the file.
    pub fn write(&self, rel: &str, text: &str, mode: u32) -> Result<()> {
        let p = self.inside(rel)?;
        if let Some(dir) = p.parent() {
            self.make_dirs(dir)?;
        }
        if std::fs::symlink_metadata(&p).is_ok_and(|m| m.file_type().is_symlink()) {
            std::fs::remove_file(&p).map_err(CreateError::io("cannot replace the link", &p))?;
        }
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
            .open(&p)
            .map_err(CreateError::io("cannot write", &p))?;
        if !f.metadata().map_err(CreateError::io("cannot write", &p))?.is_file() {
            return Err(CreateError::Image(format!("the image's {rel} is not a regular file")));
        }
        f.write_all(text.as_bytes()).map_err(CreateError::io("cannot write", &p))?;
        f.set_permissions(std::fs::Permissions::from_mode(mode)).map_err(CreateError::io("cannot chmod", &p))
    }

    /// Makes `rel` a folder (and its parents); returns its host path.
    pub fn dir(&self, rel: &str) -> Result<PathBuf> {
        let p = self.inside(rel)?;
        self.make_dirs(&p)?;
        Ok(p)
    }

    /// `root/rel` after checking that no folder on the way is a link or outside the root.
    fn inside(&self, rel: &str) -> Result<PathBuf> {
        let rel = Path::new(rel.trim_start_matches('/'));
        let mut p = self.root.clone();
        let parts: Vec<Component> = rel.components().collect();
        for (i, c) in parts.iter().enumerate() {
            let Component::Normal(name) = c else {
                return Err(CreateError::Image(format!("{} is not a plain path in the image", rel.display())));
            };
            p.push(name);
            let last = i + 1 == parts.len();
            if !last && std::fs::symlink_metadata(&p).is_ok_and(|m| !m.is_dir()) {
                return Err(CreateError::Image(format!(
                    "the image's /{} is a link or a file, not a folder: not writing through it",
                    rel.iter().take(i + 1).collect::<PathBuf>().display()
                )));
            }
        }
        Ok(p)
    }

    fn make_dirs(&self, dir: &Path) -> Result<()> {
        let rel = dir.strip_prefix(&self.root).unwrap_or(dir);
        let mut p = self.root.clone();
        for c in rel.components() {
            p.push(c);
            match std::fs::symlink_metadata(&p) {
                Ok(m) if m.is_dir() => {}
                Ok(_) => {
                    return Err(CreateError::Image(format!(
                        "the image's /{} is a link or a file, not a folder",
                        p.strip_prefix(&self.root).unwrap_or(&p).display()
                    )))
                }
                Err(_) => std::fs::create_dir(&p).map_err(CreateError::io("cannot create", &p))?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_out_of_the_root_are_never_followed() {
        let dir = crate::workdir::TempDir::new_in(&std::env::temp_dir(), "img-rootfs-").unwrap();
        let (root, outside) = (dir.path().join("root"), dir.path().join("outside"));
        std::fs::create_dir_all(root.join("etc")).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(outside.join("secret"), "host secret\n").unwrap();
        std::os::unix::fs::symlink(outside.join("secret"), root.join("etc/passwd")).unwrap();
        std::os::unix::fs::symlink(&outside, root.join("etc/sysconfig")).unwrap();
        let fs = RootFs::new(&root);

        assert!(fs.read("etc/passwd").is_err(), "a linked file is not read");
        fs.write("etc/passwd", "root:x:0:0::/root:/bin/sh\n", 0o644).unwrap();
        assert_eq!(std::fs::read_to_string(outside.join("secret")).unwrap(), "host secret\n");
        assert!(!std::fs::symlink_metadata(root.join("etc/passwd")).unwrap().file_type().is_symlink());
        let e = fs.write("etc/sysconfig/network", "NETWORKING=yes\n", 0o644).unwrap_err();
        assert!(e.to_string().contains("/etc/sysconfig is a link"), "{e}");
        assert!(!outside.join("network").exists());
        assert!(fs.write("../escape", "x", 0o644).is_err());
        assert_eq!(fs.read("etc/nothing").unwrap(), None);
    }

    #[test]
    fn reads_are_bounded() {
        let dir = crate::workdir::TempDir::new_in(&std::env::temp_dir(), "img-rootfs-").unwrap();
        let f = std::fs::File::create(dir.path().join("big")).unwrap();
        f.set_len(MAX_READ + 1).unwrap();
        let e = RootFs::new(dir.path()).read("big").unwrap_err();
        assert!(e.to_string().contains("larger than"), "{e}");
    }
}
