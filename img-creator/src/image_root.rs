//! Opening paths of the image root as the image itself would see them: `openat2` with
//! `RESOLVE_IN_ROOT`, so absolute links, `..` and links to links all stay inside the root
//! (the kernel resolves them, with no window between a check and the open).

use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// What an image path turned out to be.
pub enum Found {
    /// A regular file (after following links inside the root), open for reading, and its size.
    File(File, u64),
    Folder,
    /// Something else: a device, a FIFO, a socket.
    Special,
}

/// The root, opened once; every lookup is relative to it.
pub struct Root(File);

impl Root {
    pub fn open(path: &Path) -> io::Result<Root> {
        use std::os::unix::fs::OpenOptionsExt;
        let f = std::fs::OpenOptions::new().read(true).custom_flags(libc::O_DIRECTORY | libc::O_CLOEXEC).open(path)?;
        Ok(Root(f))
    }

    /// `path` as seen from inside the image. Opened as `O_PATH` first and checked, so a
    /// FIFO or device is never opened for reading (that can block or have side effects).
    pub fn find(&self, path: &str) -> io::Result<Found> {
        let fd = self.openat2(path, libc::O_PATH | libc::O_CLOEXEC)?;
        let meta = fd.metadata()?;
        let ft = meta.file_type();
        if ft.is_dir() {
            return Ok(Found::Folder);
        }
        if !ft.is_file() {
            return Ok(Found::Special);
        }
        // Reopening the O_PATH descriptor reads exactly the inode just checked.
        let file = File::open(format!("/proc/self/fd/{}", fd.as_raw_fd()))?;
        Ok(Found::File(file, meta.len()))
    }

    /// The names in the folder at `path` (inside the image), unsorted.
    pub fn list(&self, path: &str) -> io::Result<Vec<std::ffi::OsString>> {
        let dir = self.openat2(path, libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC)?;
        let names = std::fs::read_dir(format!("/proc/self/fd/{}", dir.as_raw_fd()))?;
        names.map(|e| e.map(|e| e.file_name())).collect()
    }

    /// The host path `path` (as seen inside the image) resolves to, kept below `root`; for
    /// handing to tools. The kernel resolves the links; the path names what it found then.
    pub fn resolve(&self, root: &Path, path: &str) -> io::Result<std::path::PathBuf> {
        let fd = self.openat2(path, libc::O_PATH | libc::O_CLOEXEC)?;
        let real = std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd()))?;
        let here = std::fs::read_link(format!("/proc/self/fd/{}", self.0.as_raw_fd()))?;
        let rel = real.strip_prefix(&here).map_err(|_| io::Error::other("resolved outside the root"))?;
        Ok(root.join(rel))
    }

    fn openat2(&self, path: &str, flags: libc::c_int) -> io::Result<File> {
        let rel = path.trim_start_matches('/');
        let rel = if rel.is_empty() { "." } else { rel };
        let c = std::ffi::CString::new(Path::new(rel).as_os_str().as_bytes())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path holds a NUL byte"))?;
        // SAFETY: open_how is plain data; zeroed is its documented default.
        let mut how: libc::open_how = unsafe { std::mem::zeroed() };
        how.flags = flags as u64;
        how.resolve = libc::RESOLVE_IN_ROOT | libc::RESOLVE_NO_MAGICLINKS;
        // SAFETY: valid fd, NUL-terminated path and a struct of the size we pass.
        let fd = unsafe {
            libc::syscall(
                libc::SYS_openat2,
                self.0.as_raw_fd(),
                c.as_ptr(),
                &how as *const libc::open_how,
                std::mem::size_of::<libc::open_how>(),
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: the kernel just gave us this descriptor; nobody else owns it.
        Ok(unsafe { File::from_raw_fd(fd as libc::c_int) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn links_resolve_inside_the_root() {
        let d = crate::workdir::TempDir::new_in(&std::env::temp_dir(), "img-inroot-").unwrap();
        let outside = d.path().join("outside");
        let root = d.path().join("root");
        std::fs::create_dir_all(root.join("etc")).unwrap();
        std::fs::write(&outside, "host secret").unwrap();
        std::fs::write(root.join("etc/shadow"), "image shadow").unwrap();
        symlink("/etc/shadow", root.join("abs")).unwrap();
        symlink("../../../../../../etc/shadow", root.join("etc/up")).unwrap();
        symlink(&outside, root.join("host")).unwrap();
        let r = Root::open(&root).unwrap();
        for p in ["/abs", "/etc/up", "/../../etc/shadow"] {
            let Found::File(mut f, n) = r.find(p).unwrap() else { panic!("{p}: not a file") };
            let mut s = String::new();
            std::io::Read::read_to_string(&mut f, &mut s).unwrap();
            assert_eq!((s.as_str(), n), ("image shadow", 12), "{p}");
        }
        assert_eq!(r.find("/host").err().map(|e| e.kind()), Some(io::ErrorKind::NotFound));
        assert!(matches!(r.find("/etc").unwrap(), Found::Folder));
        assert_eq!(r.list("/").unwrap().len(), 3);
    }
}
