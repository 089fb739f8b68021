//! `%attachment`: files of the image copied next to it in the output folder, as mic did.
//! An entry starting with `/` is a glob over the image (`/boot/vmlinuz*`); any other entry
//! names an installed package, whose files are attached. Each file keeps its base name.
//!
//! The root is the build's own (its `%post` made it what it is): paths resolve inside it
//! only (`image_root`), only regular files are copied, and the count and total size are
//! bounded. Everything that cannot be attached is a warning naming the entry (mic warned
//! for a glob with no match and went on), never a failed build after the whole install.

mod pattern;

use crate::cmd::Cmd;
use crate::error::{CreateError, Result};
use crate::image_root::{Found, Root};
use crate::install::RPM_DBPATH;
use crate::warnings::Warnings;
use serde::Serialize;
use std::collections::HashMap;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// At most this many files: the worker takes 64 outputs from a build, and the images,
/// the manifest and the log need room too.
pub const MAX_FILES: usize = 32;
/// At most this many bytes in all: attachments are kernels, initramfs and boot blobs
/// (MiBs each), and they share the build VM's output disk with the images.
pub const MAX_TOTAL_BYTES: u64 = 2 << 30;
/// Folder entries one glob may look at, so a folder of millions of names stays quick.
const MAX_SCANNED: usize = 100_000;
/// A package's file list is read only this far (the rpm database is the image's, too).
const MAX_PACKAGE_FILES: usize = 100_000;
/// The longest name the worker takes from the output folder.
const MAX_NAME: usize = 200;

/// One attached file, as `result.json` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Attached {
    /// Its name in the output folder.
    pub name: String,
    /// Where in the image it came from (the path the entry matched).
    pub from: String,
    pub size: u64,
}

/// What to attach and where: `reserved` says which output names belong to the build
/// itself (image files, manifest, result.json), which an attachment must not take.
pub struct Request<'a> {
    pub entries: &'a [String],
    pub root: &'a Path,
    pub out: &'a Path,
    pub reserved: &'a dyn Fn(&str) -> bool,
    /// [`MAX_FILES`] and [`MAX_TOTAL_BYTES`] in a build.
    pub max_files: usize,
    pub max_bytes: u64,
}

pub fn copy(req: &Request, warn: &Warnings) -> Result<Vec<Attached>> {
    if req.entries.is_empty() {
        return Ok(Vec::new());
    }
    let root = Root::open(req.root).map_err(CreateError::io("cannot open", req.root))?;
    let mut state = State { done: Vec::new(), by_name: HashMap::new(), total: 0, full: false };
    for entry in req.entries {
        let paths = if entry.starts_with('/') {
            let paths = glob(&root, entry, warn);
            if paths.is_empty() {
                warn.warn(format!("%attachment {entry}: no file in the image matches"));
            }
            paths
        } else {
            package_files(req.root, entry, warn)
        };
        for path in paths {
            if state.full {
                break;
            }
            if let Err(why) = state.attach(req, &root, entry, &path, warn)? {
                warn.warn(format!("%attachment {entry}: {path} {why}; not attached"));
            }
        }
    }
    Ok(state.done)
}

type Skipped = std::result::Result<(), String>;

struct State {
    done: Vec<Attached>,
    by_name: HashMap<String, String>,
    total: u64,
    /// MAX_FILES reached (said once).
    full: bool,
}

impl State {
    /// Copies one file; the inner error says why it was skipped.
    fn attach(&mut self, req: &Request, root: &Root, entry: &str, path: &str, warn: &Warnings) -> Result<Skipped> {
        let from_package = !entry.starts_with('/');
        let (mut file, size) = match root.find(path) {
            Ok(Found::File(f, size)) => (f, size),
            // A package owns its folders too; they are not files to attach.
            Ok(Found::Folder) if from_package => return Ok(Ok(())),
            Ok(Found::Folder) => return Ok(Err("is a folder in the image".into())),
            Ok(Found::Special) => return Ok(Err("is not a regular file in the image".into())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Err("does not exist in the image (or is a link to nothing inside it)".into()))
            }
            Err(e) => return Ok(Err(format!("cannot be read ({e})"))),
        };
        let name = match plain_name(path) {
            Some(n) => n,
            None => return Ok(Err("has a name that cannot be an output file".into())),
        };
        if (req.reserved)(&name) {
            return Ok(Err(format!("would take the name `{name}` of one of the build's own outputs")));
        }
        if let Some(first) = self.by_name.get(&name) {
            return Ok(Err(format!("has the name `{name}` of {first}, attached already")));
        }
        if self.done.len() >= req.max_files {
            self.full = true;
            let max = req.max_files;
            warn.warn(format!("%attachment {entry}: more than {max} files to attach; {path} and the rest are not"));
            return Ok(Ok(()));
        }
        if self.total.saturating_add(size) > req.max_bytes {
            return Ok(Err(format!("({size} bytes) would take the attachments past {} bytes", req.max_bytes)));
        }
        let dst = req.out.join(&name);
        let mut out = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&dst)
            .map_err(CreateError::io("cannot create", &dst))?;
        // Only the size checked above is copied, should the file grow meanwhile.
        let copied = std::io::copy(&mut std::io::Read::take(&mut file, size), &mut out)
            .and_then(|n| out.flush().map(|()| n))
            .map_err(CreateError::io("cannot copy the attachment to", &dst))?;
        tracing::info!("attachment: {path} → {name} ({copied} bytes)");
        self.total += copied;
        self.by_name.insert(name.clone(), path.to_owned());
        self.done.push(Attached { name, from: path.to_owned(), size: copied });
        Ok(Ok(()))
    }
}

/// Moves the attached files from where [`copy`] put them into the output folder.
pub fn move_into(from: &Path, attached: &[Attached], out: &Path) -> Result<()> {
    for a in attached {
        let dst = out.join(&a.name);
        std::fs::rename(from.join(&a.name), &dst).map_err(CreateError::io("cannot move the attachment to", &dst))?;
    }
    Ok(())
}

/// The base name, if the worker can hand it back as an output: UTF-8, no control
/// characters, not hidden, not too long.
fn plain_name(path: &str) -> Option<String> {
    let name = path.rsplit('/').next()?;
    let ok =
        !name.is_empty() && name.len() <= MAX_NAME && !name.starts_with('.') && !name.chars().any(char::is_control);
    ok.then(|| name.to_owned())
}

/// The image paths a `/…` entry matches, sorted per folder. Python's glob gives the
/// pattern itself when it has no wildcard; whether it exists is the copy's question.
fn glob(root: &Root, pattern: &str, warn: &Warnings) -> Vec<String> {
    let mut found = vec![String::new()];
    let mut scanned = 0usize;
    for part in pattern.split('/').filter(|p| !p.is_empty()) {
        if !pattern::has_magic(part) {
            found.iter_mut().for_each(|p| {
                p.push('/');
                p.push_str(part);
            });
            continue;
        }
        let mut next = Vec::new();
        for dir in &found {
            let Ok(mut names) = root.list(if dir.is_empty() { "/" } else { dir }) else { continue };
            names.sort();
            for n in names {
                scanned += 1;
                if scanned > MAX_SCANNED {
                    warn.warn(format!(
                        "%attachment {pattern}: looked at {MAX_SCANNED} names in the image; the rest are not matched"
                    ));
                    return next;
                }
                // Names that are not UTF-8 cannot be output names either.
                let Some(n) = n.to_str().filter(|n| pattern::matches(part.as_bytes(), n.as_bytes())) else {
                    continue;
                };
                next.push(format!("{dir}/{n}"));
            }
        }
        found = next;
    }
    found.retain(|p| !p.is_empty());
    found
}

/// The files of an installed package, from the image's rpm database. mic fetched a
/// package that was not installed from the repositories and attached its contents;
/// here that is a warning (install it, or attach its files by path).
fn package_files(root: &Path, name: &str, warn: &Warnings) -> Vec<String> {
    if name.starts_with('-') || name.contains(char::is_whitespace) {
        warn.warn(format!("%attachment {name}: not a package name or an absolute path"));
        return Vec::new();
    }
    let listed = Cmd::new("rpm")
        .arg("--root")
        .arg(root)
        .args(["--dbpath", RPM_DBPATH, "-q", "--qf", "[%{FILENAMES}\\n]", "--", name])
        .capture();
    match listed {
        Ok(text) => {
            let files: Vec<String> =
                text.lines().filter(|l| l.starts_with('/')).take(MAX_PACKAGE_FILES).map(str::to_owned).collect();
            if files.is_empty() {
                warn.warn(format!("%attachment {name}: the package has no files"));
            }
            files
        }
        Err(e) => {
            tracing::debug!("rpm -q {name}: {e}");
            warn.warn(format!(
                "%attachment {name}: no package `{name}` is installed in the image \
                 (mic fetched such packages from the repositories; IMG attaches installed ones only)"
            ));
            Vec::new()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_total_size_is_bounded() {
        let d = crate::workdir::TempDir::new_in(&std::env::temp_dir(), "img-attach-").unwrap();
        let (root, out) = (d.path().join("root"), d.path().join("out"));
        std::fs::create_dir_all(root.join("b")).unwrap();
        std::fs::create_dir_all(&out).unwrap();
        for (n, len) in [("a1", 600), ("a2", 600), ("a3", 300)] {
            std::fs::write(root.join("b").join(n), vec![b'x'; len]).unwrap();
        }
        let warn = Warnings::default();
        let req = Request {
            entries: &["/b/*".to_owned()],
            root: &root,
            out: &out,
            reserved: &|_| false,
            max_files: 10,
            max_bytes: 1000,
        };
        let got = copy(&req, &warn).unwrap();
        let names: Vec<&str> = got.iter().map(|a| a.name.as_str()).collect();
        assert_eq!(names, ["a1", "a3"]);
        assert!(!out.join("a2").exists());
        assert_eq!(
            warn.take(),
            ["%attachment /b/*: /b/a2 (600 bytes) would take the attachments past 1000 bytes; not attached"]
        );
    }
}
