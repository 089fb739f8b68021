//! Job files opened for reading without trusting what a build left in its folder. A build VM
//! writes its attempt's folder, so any name in it may be a link to a host file (`build.log` →
//! `/etc/shadow`), a folder link (`out` → `/`) or a FIFO that blocks whoever opens it. Below the
//! attempt's folder nothing is followed, and only regular files are served.

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// What opening a job file found.
#[derive(Debug)]
pub enum Opened {
    File(File),
    /// Nothing by that name (yet).
    Missing,
    /// Something that is not a regular file, or a link on the way: never served.
    Refused(String),
}

/// Opens `dir/parts[0]/…/parts[n]` read-only. `dir` is the server's own path (the job's
/// attempt folder); below it no link is followed and the end must be a regular file.
pub fn open_below(dir: &Path, parts: &[&str]) -> io::Result<Opened> {
    let refuse = |what: &str| Ok(Opened::Refused(format!("{}/{what}", dir.display())));
    let mut at: OwnedFd =
        match std::fs::OpenOptions::new().read(true).custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW).open(dir) {
            Ok(f) => f.into(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Opened::Missing),
            Err(e) if is_not_followed(&e) => return refuse(""),
            Err(e) => return Err(e),
        };
    if parts.is_empty() {
        return refuse("");
    }
    for (i, part) in parts.iter().enumerate() {
        if part.is_empty() || *part == "." || *part == ".." || part.contains('/') {
            return refuse(part);
        }
        let is_last = i + 1 == parts.len();
        // O_NONBLOCK: opening a FIFO must not wait for a writer (reads of regular files ignore it).
        let flags = libc::O_RDONLY
            | libc::O_NOFOLLOW
            | libc::O_CLOEXEC
            | if is_last { libc::O_NONBLOCK } else { libc::O_DIRECTORY };
        let name = CString::new(part.as_bytes()).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        // SAFETY: `at` is an open descriptor we own and `name` a NUL-terminated string; the
        // returned descriptor, if any, is owned by nobody else.
        let fd = unsafe { libc::openat(std::os::fd::AsRawFd::as_raw_fd(&at), name.as_ptr(), flags) };
        if fd < 0 {
            let e = io::Error::last_os_error();
            return match e.kind() {
                io::ErrorKind::NotFound => Ok(Opened::Missing),
                _ if is_not_followed(&e) => refuse(&parts[..=i].join("/")),
                _ => Err(e),
            };
        }
        // SAFETY: `fd` was just returned by openat and is owned by nothing else.
        at = unsafe { OwnedFd::from_raw_fd(fd) };
    }
    let file = File::from(at);
    if !file.metadata()?.is_file() {
        return refuse(&parts.join("/"));
    }
    Ok(Opened::File(file))
}

/// The errors of a link where none is followed (ELOOP) or a non-folder on the way (ENOTDIR).
fn is_not_followed(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ELOOP) | Some(libc::ENOTDIR))
}

#[cfg(test)]
fn c_name(path: &Path) -> Option<CString> {
    use std::os::unix::ffi::OsStrExt;
    CString::new(path.as_os_str().as_bytes()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_fifos_and_folders_are_refused_files_served() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        std::fs::write(dir.join("build.log"), "ok\n").unwrap();
        std::fs::create_dir(dir.join("out")).unwrap();
        std::fs::write(dir.join("out/a.raw"), "img").unwrap();
        std::os::unix::fs::symlink("/etc/passwd", dir.join("link.log")).unwrap();
        std::os::unix::fs::symlink("/etc", dir.join("outlink")).unwrap();
        let fifo = c_name(&dir.join("fifo")).unwrap();
        // SAFETY: a valid path string; mkfifo only creates a file.
        assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
        assert!(matches!(open_below(dir, &["build.log"]).unwrap(), Opened::File(_)));
        assert!(matches!(open_below(dir, &["out", "a.raw"]).unwrap(), Opened::File(_)));
        assert!(matches!(open_below(dir, &["nope"]).unwrap(), Opened::Missing));
        assert!(matches!(open_below(&dir.join("no-dir"), &["build.log"]).unwrap(), Opened::Missing));
        for refused in [&["link.log"][..], &["outlink", "passwd"], &["fifo"], &["out"], &["..", "x"], &["out", ""]] {
            assert!(matches!(open_below(dir, refused).unwrap(), Opened::Refused(_)), "{refused:?}");
        }
    }
}
