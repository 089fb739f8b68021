//! What a build VM hands back, read as hostile data. The guest controls every byte of it: the
//! only way out of the VM is one tar stream (GNU format, sparse files allowed) that the guest
//! agent writes onto its raw output disk. The host parses that file itself — no mount, no
//! external tar — and takes only what it expects:
//!
//! - `exit-code` (a number) and `creator.stderr` (its last lines, each cut short);
//! - `out/NAME`, regular files with a plain name (no `/`, no control characters, not `.`/`..`,
//!   at most [`MAX_NAME`] bytes), each created with `O_CREAT|O_EXCL|O_NOFOLLOW` in a folder the
//!   host makes fresh, hashed while written, holes kept sparse;
//! - nothing else: links, devices, folders, other names and a second copy of a name are
//!   skipped and noted. The guest's own `SHA256SUMS` and `result.json` never reach the job
//!   folder; the host writes its own from what it extracted.
//!
//! Bounds: the stream is the output disk (`worker.output_max_mb`); each file's apparent size is
//! at most `max_file`, files at most [`MAX_FILES`], a sparse map at most [`MAX_SPARSE`] pieces,
//! a long name at most [`MAX_LONG_NAME`] bytes; what is kept of the guest's texts is small.

use crate::console_log::one_line;
use sha2::{Digest, Sha256};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use thiserror::Error;

pub const EXIT_CODE: &str = "exit-code";
pub const CREATOR_STDERR: &str = "creator.stderr";
pub const OUT_PREFIX: &str = "out/";
/// Files img-creator writes beside the images that the host makes itself.
const HOST_MADE: [&str; 2] = [img_creator::outputs::CHECKSUM_FILE, img_creator::outputs::RESULT_FILE];
pub const MAX_NAME: usize = 200;
pub const MAX_FILES: usize = 64;
const MAX_SPARSE: usize = 1 << 20;
const MAX_LONG_NAME: u64 = 4096;
/// What is read of small entries (the exit code, stderr, result.json); the rest is skipped.
const MAX_SMALL: u64 = 1 << 20;
const STDERR_LINES: usize = 20;
const STDERR_LINE_MAX: usize = 500;
/// Notes about skipped entries kept for the job log.
const MAX_NOTES: usize = 20;
const BLOCK: u64 = 512;

#[derive(Debug, Error)]
pub enum OutputError {
    #[error("the build VM's output is malformed: {0}")]
    Malformed(String),
    #[error(
        "the build VM's output ends early: its outputs do not fit the output disk \
         (worker.output_max_mb), or the VM stopped while writing them"
    )]
    Truncated,
    #[error("the build VM's output file `{name}` is larger than {max} bytes")]
    TooLarge { name: String, max: u64 },
    #[error("the build VM handed back more than {MAX_FILES} files")]
    TooMany,
    #[error("{what} {path}: {source}")]
    Io { what: &'static str, path: PathBuf, source: std::io::Error },
}

/// One file taken from the guest: its plain name, apparent size and sha256.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputFile {
    pub name: String,
    pub size: u64,
    pub sha256: String,
}

/// An attached file as img-creator listed it: its output name and, in the guest's words
/// (cleaned, bounded), where in the image it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attachment {
    pub name: String,
    pub from: String,
}

/// Everything taken from one output disk.
#[derive(Debug, Default)]
pub struct Extracted {
    /// `None`: the guest wrote no exit code (it stopped before its end).
    pub exit_code: Option<i32>,
    pub stderr_tail: Vec<String>,
    /// img-creator's one-line error from its result.json, cut and cleaned.
    pub error: Option<String>,
    /// img-creator's warnings from its result.json, each cut and cleaned, as many as it keeps.
    pub warnings: Vec<String>,
    /// img-creator's `%attachment` list, only for files that were extracted.
    pub attachments: Vec<Attachment>,
    pub files: Vec<OutputFile>,
    /// What was skipped and why, for the job log.
    pub notes: Vec<String>,
}

/// Reads the tar stream on `disk` and creates `out` (which must not exist) with the files in
/// it; `max_file`: the largest apparent size of one file.
pub fn extract(disk: &Path, out: &Path, max_file: u64) -> Result<Extracted, OutputError> {
    let io = |what, path: &Path| {
        let path = path.to_owned();
        move |source| OutputError::Io { what, path, source }
    };
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(disk)
        .map_err(io("cannot open", disk))?;
    // A fresh folder: nothing in it but what we create next.
    std::fs::create_dir(out).map_err(io("cannot create", out))?;
    let mut tar = TarReader::new(std::io::BufReader::with_capacity(1 << 20, file));
    let mut got = Extracted::default();
    let note = |got: &mut Extracted, text: String| {
        if got.notes.len() < MAX_NOTES {
            got.notes.push(text);
        }
    };
    while let Some(entry) = tar.next_entry()? {
        let shown = printable(&entry.name);
        let path = entry.name.strip_prefix(b"./").unwrap_or(&entry.name);
        let path = path.strip_suffix(b"/").unwrap_or(path);
        if !entry.is_file() {
            if !matches!(path, b"" | b"." | b"out") {
                note(&mut got, format!("skipped `{shown}`: not a regular file"));
            }
            tar.skip(&entry)?;
            continue;
        }
        match path {
            p if p == EXIT_CODE.as_bytes() => {
                let text = tar.read_small(&entry)?;
                got.exit_code = std::str::from_utf8(&text).ok().and_then(|t| t.trim().parse().ok());
            }
            p if p == CREATOR_STDERR.as_bytes() => {
                got.stderr_tail = last_lines(&tar.read_small_tail(&entry)?);
            }
            p => match p.strip_prefix(OUT_PREFIX.as_bytes()).and_then(plain_name) {
                Some(name) if name == img_creator::outputs::RESULT_FILE => {
                    let json = tar.read_small(&entry)?;
                    got.error = creator_error(&json);
                    got.warnings = creator_warnings(&json);
                    got.attachments = creator_attachments(&json);
                }
                Some(name) if HOST_MADE.contains(&name.as_str()) => tar.skip(&entry)?,
                Some(name) if got.files.iter().any(|f| f.name == name) => {
                    note(&mut got, format!("skipped a second `{shown}`"));
                    tar.skip(&entry)?;
                }
                Some(name) => {
                    if got.files.len() >= MAX_FILES {
                        return Err(OutputError::TooMany);
                    }
                    if entry.real_size > max_file {
                        return Err(OutputError::TooLarge { name, max: max_file });
                    }
                    let path = out.join(&name);
                    let sha256 = tar.write_file(&entry, &path)?;
                    got.files.push(OutputFile { name, size: entry.real_size, sha256 });
                }
                None => {
                    note(&mut got, format!("skipped `{shown}`: not a plain file name in out/"));
                    tar.skip(&entry)?;
                }
            },
        }
    }
    got.files.sort_by(|a, b| a.name.cmp(&b.name));
    let files = &got.files;
    got.attachments.retain(|a| files.iter().any(|f| f.name == a.name));
    Ok(got)
}

/// A file name the host will create and serve: UTF-8, one path component, no control
/// characters, not hidden, not too long.
pub fn plain_name(name: &[u8]) -> Option<String> {
    let name = std::str::from_utf8(name).ok()?;
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME
        && !name.starts_with('.')
        && !name.contains('/')
        && !name.chars().any(|c| c.is_control());
    ok.then(|| name.to_owned())
}

/// The `error` of img-creator's result.json, one short printable line.
fn creator_error(json: &[u8]) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(json).ok()?;
    Some(one_line(v.get("error")?.as_str()?, STDERR_LINE_MAX))
}

/// The `warnings` of img-creator's result.json: the guest's words, so bounded and one line each.
fn creator_warnings(json: &[u8]) -> Vec<String> {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(json) else { return Vec::new() };
    let Some(list) = v.get("warnings").and_then(|w| w.as_array()) else { return Vec::new() };
    let max = img_creator::warnings::MAX_WARNINGS + 1;
    list.iter().filter_map(|w| w.as_str()).take(max).map(|w| one_line(w, STDERR_LINE_MAX)).collect()
}

/// The `attachments` of img-creator's result.json (name and `from`), as many as it attaches.
fn creator_attachments(json: &[u8]) -> Vec<Attachment> {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(json) else { return Vec::new() };
    let Some(list) = v.get("attachments").and_then(|a| a.as_array()) else { return Vec::new() };
    let one = |a: &serde_json::Value| {
        let name = plain_name(a.get("name")?.as_str()?.as_bytes())?;
        Some(Attachment { name, from: one_line(a.get("from")?.as_str()?, STDERR_LINE_MAX) })
    };
    list.iter().take(img_creator::attachments::MAX_FILES).filter_map(one).collect()
}

fn last_lines(text: &[u8]) -> Vec<String> {
    let text = String::from_utf8_lossy(text);
    let mut lines: Vec<String> = text.lines().rev().take(STDERR_LINES).map(|l| one_line(l, STDERR_LINE_MAX)).collect();
    lines.reverse();
    lines
}

fn printable(name: &[u8]) -> String {
    one_line(&String::from_utf8_lossy(name), 120)
}

/// One header of the stream, long names and sparse maps resolved.
#[derive(Debug)]
struct Entry {
    name: Vec<u8>,
    kind: u8,
    /// Bytes stored in the stream after the header (padded to 512).
    stored: u64,
    /// The file's apparent size.
    real_size: u64,
    /// (offset, length) of the data pieces; holes between them are zeros.
    pieces: Vec<(u64, u64)>,
}

impl Entry {
    fn is_file(&self) -> bool {
        matches!(self.kind, b'0' | 0 | b'7' | b'S')
    }
}

/// A reader of the GNU tar subset GNU tar writes with `--format=gnu --sparse`: ustar/GNU
/// headers with checked checksums, `L` long names, old-GNU `S` sparse files with extension
/// headers. Everything is bounded; nothing is trusted.
struct TarReader<R> {
    r: R,
}

impl<R: Read> TarReader<R> {
    fn new(r: R) -> Self {
        TarReader { r }
    }

    fn block(&mut self) -> Result<[u8; 512], OutputError> {
        let mut b = [0u8; 512];
        self.r.read_exact(&mut b).map_err(|e| match e.kind() {
            std::io::ErrorKind::UnexpectedEof => OutputError::Truncated,
            _ => OutputError::Io { what: "cannot read", path: "the output disk".into(), source: e },
        })?;
        Ok(b)
    }

    /// The next entry, or `None` at the end marker (a zero block).
    fn next_entry(&mut self) -> Result<Option<Entry>, OutputError> {
        let mut long_name: Option<Vec<u8>> = None;
        loop {
            let h = self.block()?;
            if h.iter().all(|&b| b == 0) {
                return Ok(None);
            }
            check_sum(&h)?;
            let kind = h[156];
            let stored_field = number(&h[124..136]).ok_or_else(|| bad("a size field is not a number"))?;
            match kind {
                b'L' => {
                    if stored_field > MAX_LONG_NAME {
                        return Err(bad("a long name is longer than 4096 bytes"));
                    }
                    let mut name = self.read_exact_vec(stored_field)?;
                    self.skip_bytes(pad(stored_field) - stored_field)?;
                    while name.last() == Some(&0) {
                        name.pop();
                    }
                    long_name = Some(name);
                }
                _ => {
                    let name = long_name.take().unwrap_or_else(|| header_name(&h));
                    let mut e = Entry { name, kind, stored: stored_field, real_size: stored_field, pieces: Vec::new() };
                    if kind == b'S' {
                        e.real_size = number(&h[483..495]).ok_or_else(|| bad("a sparse size is not a number"))?;
                        e.pieces = self.sparse_map(&h)?;
                        check_pieces(&e)?;
                    } else {
                        e.pieces = vec![(0, e.stored)];
                    }
                    return Ok(Some(e));
                }
            }
        }
    }

    /// The sparse map of an old-GNU `S` header and its extension headers.
    fn sparse_map(&mut self, h: &[u8; 512]) -> Result<Vec<(u64, u64)>, OutputError> {
        let mut pieces = Vec::new();
        let take = |area: &[u8], pieces: &mut Vec<(u64, u64)>| -> Result<(), OutputError> {
            for p in area.chunks_exact(24) {
                if p.iter().all(|&b| b == 0) {
                    break;
                }
                let off = number(&p[..12]).ok_or_else(|| bad("a sparse offset is not a number"))?;
                let len = number(&p[12..]).ok_or_else(|| bad("a sparse length is not a number"))?;
                if pieces.len() >= MAX_SPARSE {
                    return Err(bad("a sparse map has too many pieces"));
                }
                pieces.push((off, len));
            }
            Ok(())
        };
        take(&h[386..482], &mut pieces)?;
        let mut extended = h[482] != 0;
        while extended {
            let x = self.block()?;
            take(&x[..504], &mut pieces)?;
            extended = x[504] != 0;
        }
        Ok(pieces)
    }

    fn read_exact_vec(&mut self, n: u64) -> Result<Vec<u8>, OutputError> {
        let mut v = Vec::with_capacity(n as usize);
        (&mut self.r).take(n).read_to_end(&mut v).map_err(io_err)?;
        if (v.len() as u64) < n {
            return Err(OutputError::Truncated);
        }
        Ok(v)
    }

    fn skip_bytes(&mut self, n: u64) -> Result<(), OutputError> {
        let copied = std::io::copy(&mut (&mut self.r).take(n), &mut std::io::sink()).map_err(io_err)?;
        if copied < n {
            return Err(OutputError::Truncated);
        }
        Ok(())
    }

    fn skip(&mut self, e: &Entry) -> Result<(), OutputError> {
        self.skip_bytes(pad(e.stored))
    }

    /// An entry's first [`MAX_SMALL`] bytes; the rest is skipped.
    fn read_small(&mut self, e: &Entry) -> Result<Vec<u8>, OutputError> {
        let n = e.stored.min(MAX_SMALL);
        let v = self.read_exact_vec(n)?;
        self.skip_bytes(pad(e.stored) - n)?;
        Ok(v)
    }

    /// An entry's last [`MAX_SMALL`] bytes.
    fn read_small_tail(&mut self, e: &Entry) -> Result<Vec<u8>, OutputError> {
        let head = e.stored.saturating_sub(MAX_SMALL);
        self.skip_bytes(head)?;
        let v = self.read_exact_vec(e.stored - head)?;
        self.skip_bytes(pad(e.stored) - e.stored)?;
        Ok(v)
    }

    /// Writes the entry's content to `path` (created new, never through a link), holes as
    /// holes, and returns its sha256 (holes hashed as the zeros they read as).
    fn write_file(&mut self, e: &Entry, path: &Path) -> Result<String, OutputError> {
        let io = |what, source| OutputError::Io { what, path: path.to_owned(), source };
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .custom_flags(libc::O_NOFOLLOW)
            .mode(0o644)
            .open(path)
            .map_err(|e| io("cannot create", e))?;
        let mut hash = Sha256::new();
        let zeros = vec![0u8; 1 << 20];
        let mut buf = vec![0u8; 1 << 20];
        let mut at = 0u64;
        for &(off, len) in &e.pieces {
            // The hole before this piece.
            let mut hole = off - at;
            while hole > 0 {
                let n = hole.min(zeros.len() as u64) as usize;
                hash.update(&zeros[..n]);
                hole -= n as u64;
            }
            f.seek(SeekFrom::Start(off)).map_err(|e| io("cannot seek in", e))?;
            let mut left = len;
            while left > 0 {
                let n = left.min(buf.len() as u64) as usize;
                self.r.read_exact(&mut buf[..n]).map_err(|e| match e.kind() {
                    std::io::ErrorKind::UnexpectedEof => OutputError::Truncated,
                    _ => io_err(e),
                })?;
                hash.update(&buf[..n]);
                f.write_all(&buf[..n]).map_err(|e| io("cannot write", e))?;
                left -= n as u64;
            }
            at = off + len;
        }
        let mut tail = e.real_size - at;
        while tail > 0 {
            let n = tail.min(zeros.len() as u64) as usize;
            hash.update(&zeros[..n]);
            tail -= n as u64;
        }
        f.set_len(e.real_size).map_err(|e| io("cannot size", e))?;
        self.skip_bytes(pad(e.stored) - e.stored)?;
        Ok(hash.finalize().iter().map(|b| format!("{b:02x}")).collect())
    }
}

/// Sparse pieces must be in order, within the file, and add up to what is stored.
fn check_pieces(e: &Entry) -> Result<(), OutputError> {
    let mut at = 0u64;
    let mut sum = 0u64;
    for &(off, len) in &e.pieces {
        let end = off.checked_add(len).ok_or_else(|| bad("a sparse piece overflows"))?;
        if off < at || end > e.real_size {
            return Err(bad("a sparse map is out of order or past the file's end"));
        }
        at = end;
        sum += len;
    }
    if sum != e.stored {
        return Err(bad("a sparse map does not match the stored size"));
    }
    Ok(())
}

fn check_sum(h: &[u8; 512]) -> Result<(), OutputError> {
    let want = number(&h[148..156]).ok_or_else(|| bad("a header checksum is not a number"))?;
    let got: u64 = h.iter().enumerate().map(|(i, &b)| if (148..156).contains(&i) { 32 } else { u64::from(b) }).sum();
    if want != got {
        return Err(bad("a header checksum does not match"));
    }
    Ok(())
}

/// The name of a ustar/GNU header: `prefix/name` (ustar) or `name`.
fn header_name(h: &[u8; 512]) -> Vec<u8> {
    let field = |f: &[u8]| f.iter().take_while(|&&b| b != 0).copied().collect::<Vec<u8>>();
    let name = field(&h[..100]);
    // ustar's prefix field; GNU headers ("ustar  \0") use that area for other things.
    if &h[257..263] == b"ustar\0" {
        let prefix = field(&h[345..500]);
        if !prefix.is_empty() {
            return [prefix, b"/".to_vec(), name].concat();
        }
    }
    name
}

/// An octal field (NUL or space ended) or a GNU base-256 one (first byte's high bit set).
fn number(f: &[u8]) -> Option<u64> {
    if f.first().is_some_and(|b| b & 0x80 != 0) {
        if f[0] & 0x40 != 0 {
            return None; // negative
        }
        let mut v: u64 = u64::from(f[0] & 0x3f);
        for &b in &f[1..] {
            v = v.checked_mul(256)?.checked_add(u64::from(b))?;
        }
        return Some(v);
    }
    let digits: Vec<u8> = f.iter().copied().skip_while(|&b| b == b' ').take_while(|&b| b != 0 && b != b' ').collect();
    if digits.is_empty() {
        return Some(0);
    }
    let mut v: u64 = 0;
    for d in digits {
        if !(b'0'..=b'7').contains(&d) {
            return None;
        }
        v = v.checked_mul(8)?.checked_add(u64::from(d - b'0'))?;
    }
    Some(v)
}

fn pad(n: u64) -> u64 {
    n.div_ceil(BLOCK) * BLOCK
}

fn bad(what: &str) -> OutputError {
    OutputError::Malformed(what.into())
}

fn io_err(e: std::io::Error) -> OutputError {
    OutputError::Io { what: "cannot read", path: "the output disk".into(), source: e }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    fn scratch(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("img-guest-output-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(d.join("src/out")).expect("scratch");
        d
    }

    /// `tar` as the guest agent runs it, into a file padded like a disk.
    fn pack(src: &Path, disk: &Path, names: &[&str]) {
        let ok = Command::new("tar")
            .args(["--format=gnu", "--sparse", "-cf"])
            .arg(disk)
            .arg("-C")
            .arg(src)
            .args(names)
            .status()
            .expect("tar");
        assert!(ok.success());
        let f = std::fs::OpenOptions::new().write(true).open(disk).expect("disk");
        let len = f.metadata().expect("meta").len();
        f.set_len(len + (1 << 20)).expect("grow");
    }

    fn sha256(path: &Path) -> String {
        img_creator::outputs::sha256_file(path).expect("hash")
    }

    #[test]
    fn regular_files_come_out_hashed_and_sparse_and_nothing_else_does() {
        let d = scratch("files");
        let src = d.join("src");
        std::fs::write(src.join("exit-code"), "0\n").unwrap();
        std::fs::write(src.join("creator.stderr"), "one\n\x1b[31mtwo\n").unwrap();
        // A 64 MiB sparse image with data at both ends.
        let img = src.join("out/disk.img");
        let mut f = std::fs::File::create(&img).unwrap();
        f.write_all(b"start").unwrap();
        f.seek(SeekFrom::Start(64 << 20)).unwrap();
        f.write_all(b"end").unwrap();
        drop(f);
        std::fs::write(
            src.join("out/result.json"),
            r#"{"error":"bad\nthing","warnings":["unit \u001b[2Jx missing",7],
                "attachments":[{"name":"disk.img","from":"/boot/\u001b[2Jx"},{"name":"ghost","from":"/x"},{"name":"../x","from":"/y"}]}"#,
        )
        .unwrap();
        std::fs::write(src.join("out/SHA256SUMS"), "forged  /etc/passwd\n").unwrap();
        std::os::unix::fs::symlink("/etc/shadow", src.join("out/link")).unwrap();
        std::fs::write(src.join("out/bad\nname"), "x").unwrap();
        std::fs::create_dir(src.join("out/tree")).unwrap();
        std::fs::write(src.join("out/tree/inner"), "x").unwrap();
        std::fs::write(src.join("elsewhere"), "x").unwrap();
        let disk = d.join("disk.raw");
        pack(&src, &disk, &["exit-code", "creator.stderr", "out", "elsewhere"]);

        let got = extract(&disk, &d.join("got"), 1 << 30).expect("extract");
        assert_eq!(got.exit_code, Some(0));
        assert_eq!(got.stderr_tail, vec!["one", "\\u{1b}[31mtwo"]);
        assert_eq!(got.error.as_deref(), Some("bad\\nthing"));
        assert_eq!(got.warnings.len(), 1, "non-strings are dropped: {:?}", got.warnings);
        assert!(!got.warnings[0].contains('\x1b'), "control characters are cleaned: {:?}", got.warnings);
        // Only attachments that are extracted files, named plainly, their origin cleaned.
        assert_eq!(got.attachments, [Attachment { name: "disk.img".into(), from: "/boot/\\u{1b}[2Jx".into() }]);
        let names: Vec<&str> = got.files.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["disk.img"], "notes: {:?}", got.notes);
        let out = d.join("got/disk.img");
        assert_eq!(got.files[0].size, (64 << 20) + 3);
        assert_eq!(got.files[0].sha256, sha256(&img));
        assert_eq!(sha256(&out), sha256(&img));
        use std::os::unix::fs::MetadataExt;
        assert!(std::fs::metadata(&out).unwrap().blocks() < 1024, "holes stay holes");
        let listed: Vec<_> = std::fs::read_dir(d.join("got")).unwrap().flatten().map(|e| e.file_name()).collect();
        assert_eq!(listed, ["disk.img"], "no link, no forged SHA256SUMS, no folder, no odd name");
        let notes = got.notes.join("\n");
        for skipped in ["out/link", "out/bad\\nname", "out/tree", "elsewhere"] {
            assert!(notes.contains(skipped), "{skipped} not noted: {notes}");
        }
        // The folder must be new: a second run cannot write into an existing one.
        assert!(matches!(extract(&disk, &d.join("got"), 1 << 30), Err(OutputError::Io { .. })));
    }

    #[test]
    fn bounds_and_damage_are_errors() {
        let d = scratch("bounds");
        let src = d.join("src");
        std::fs::write(src.join("out/big.img"), vec![1u8; 10_000]).unwrap();
        let disk = d.join("disk.raw");
        pack(&src, &disk, &["out"]);
        assert!(matches!(extract(&disk, &d.join("a"), 9_999), Err(OutputError::TooLarge { .. })));
        let got = extract(&disk, &d.join("b"), 10_000).expect("at the bound");
        assert_eq!(got.exit_code, None, "no exit code written");

        // Cut in the middle of the file: truncated, not a short file.
        let bytes = std::fs::read(&disk).unwrap();
        std::fs::write(d.join("cut.raw"), &bytes[..4096]).unwrap();
        assert!(matches!(extract(&d.join("cut.raw"), &d.join("c"), 1 << 20), Err(OutputError::Truncated)));
        // A flipped byte in a header: its checksum fails.
        let mut broken = bytes.clone();
        broken[10] ^= 1;
        std::fs::write(d.join("broken.raw"), &broken).unwrap();
        assert!(matches!(extract(&d.join("broken.raw"), &d.join("e"), 1 << 20), Err(OutputError::Malformed(_))));
        // A disk the guest never wrote: nothing, not an error.
        std::fs::write(d.join("zero.raw"), vec![0u8; 4096]).unwrap();
        let got = extract(&d.join("zero.raw"), &d.join("f"), 1 << 20).expect("empty");
        assert!(got.files.is_empty() && got.exit_code.is_none());
    }

    #[test]
    fn a_huge_long_name_or_sparse_map_is_refused_without_reading_it() {
        // A GNU long-name header claiming 1 GiB.
        let mut h = [0u8; 512];
        h[..13].copy_from_slice(b"././@LongLink");
        h[124..136].copy_from_slice(b"10000000000\0");
        h[156] = b'L';
        h[257..265].copy_from_slice(b"ustar  \0");
        h[148..156].copy_from_slice(b"        ");
        let sum: u64 = h.iter().map(|&b| u64::from(b)).sum();
        h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
        let d = scratch("long");
        std::fs::write(d.join("disk.raw"), h).unwrap();
        assert!(matches!(extract(&d.join("disk.raw"), &d.join("o"), 1 << 20), Err(OutputError::Malformed(_))));
    }

    #[test]
    fn names_must_be_plain() {
        assert_eq!(plain_name(b"fixture-1.0.raw").as_deref(), Some("fixture-1.0.raw"));
        assert_eq!(plain_name("ünï.img".as_bytes()).as_deref(), Some("ünï.img"));
        for bad in [&b""[..], b".", b"..", b".hidden", b"a/b", b"a\nb", b"a\x1bb", b"\xff", &[b'a'; 201]] {
            assert_eq!(plain_name(bad), None, "{bad:?}");
        }
        assert_eq!(number(b"0000644\0"), Some(0o644));
        assert_eq!(number(&[0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0]), Some(512));
        assert_eq!(number(b"12x\0"), None);
    }
}
