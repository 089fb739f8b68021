//! The shared package cache (the original's `mic_cache`): one folder per architecture under
//! `DATA_DIR/cache/`, size-bounded, written only by the repository proxy on the host
//! ([`crate::repo_proxy`]). An entry is exactly the body one plain-`http://` URL served to the
//! host, named by the sha256 of that URL (`cache/ARCH/<hex>.rpm`): no name, path or byte of an
//! entry comes from a guest, and a build gets an entry only for the very URL it asks for.
//! Build VMs never see the folder. dnf still checks each package against its repository's
//! metadata.
//!
//! An entry appears only complete: the body is written to a temporary file beside it and
//! renamed into place once all its announced bytes arrived. Reading and trimming never
//! follow symbolic links.

use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::SystemTime;
use thiserror::Error;
use tokio::io::AsyncWriteExt;

/// Largest body kept as one entry.
pub const MAX_ENTRY: u64 = 4 << 30;
/// How every rpm file begins (its lead). A body without it (a mirror's error page sent as
/// `200`) is not kept: it would fail every later build's checksum check until trimmed.
pub const RPM_MAGIC: [u8; 4] = [0xed, 0xab, 0xee, 0xdb];

#[derive(Debug, Clone)]
pub struct PackageCache {
    pub dir: PathBuf,
    /// The bound of all architectures' folders together.
    pub max_bytes: u64,
}

#[derive(Debug, Error)]
pub enum CacheError {
    #[error("{what} {path}: {source}")]
    Io { what: &'static str, path: PathBuf, source: std::io::Error },
    #[error("{path}: {got} bytes for an entry of {expected}")]
    WrongSize { path: PathBuf, expected: u64, got: u64 },
    #[error("{0} is not a folder of its own")]
    NotAFolder(PathBuf),
    #[error("{0}: the body is not an rpm package")]
    NotAPackage(PathBuf),
}

/// One trim at a time in this process (several builds may store together).
static ONE: Mutex<()> = Mutex::new(());
/// Bytes of the entries being written in this process, per cache folder: they may not pass
/// its bound together, so many parallel downloads cannot fill the disk.
static IN_FLIGHT: Mutex<BTreeMap<PathBuf, u64>> = Mutex::new(BTreeMap::new());
static TEMP_SEQ: AtomicU64 = AtomicU64::new(0);

/// The sha256 (hex) naming `url`'s entry.
pub fn key(url: &str) -> String {
    Sha256::digest(url.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

impl PackageCache {
    /// The folder for `arch`, or `None` for a name that cannot be one folder.
    pub fn for_arch(&self, arch: &str) -> Option<PathBuf> {
        let plain = !arch.is_empty() && arch.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        plain.then(|| self.dir.join(arch))
    }

    /// Where `url`'s entry for `arch` lives.
    pub fn entry_path(&self, arch: &str, url: &str) -> Option<PathBuf> {
        Some(self.for_arch(arch)?.join(format!("{}.rpm", key(url))))
    }

    /// `url`'s entry, opened, and its size; `None` if there is none (or it is not a regular
    /// file). Marks it used, so trimming removes the least recently used entries first.
    pub async fn open(&self, arch: &str, url: &str) -> Option<(tokio::fs::File, u64)> {
        let path = self.entry_path(arch, url)?;
        let file = tokio::task::spawn_blocking(move || {
            use std::os::unix::fs::OpenOptionsExt;
            let f = std::fs::File::options().read(true).custom_flags(libc::O_NOFOLLOW).open(path).ok()?;
            let meta = f.metadata().ok()?;
            if !meta.is_file() {
                return None;
            }
            let _ = f.set_modified(SystemTime::now());
            Some((f, meta.len()))
        })
        .await
        .ok()??;
        Some((tokio::fs::File::from_std(file.0), file.1))
    }

    /// Starts writing `url`'s entry of `len` bytes. `Ok(None)`: not kept (no folder for
    /// `arch`, empty, larger than [`MAX_ENTRY`] or than the room the bound leaves for
    /// entries being written).
    pub async fn begin_store(&self, arch: &str, url: &str, len: u64) -> Result<Option<Store>, CacheError> {
        let (Some(dir), Some(dest)) = (self.for_arch(arch), self.entry_path(arch, url)) else { return Ok(None) };
        if len == 0 || len > MAX_ENTRY || len > self.max_bytes {
            return Ok(None);
        }
        {
            let mut in_flight = IN_FLIGHT.lock().unwrap_or_else(|e| e.into_inner());
            let n = in_flight.entry(self.dir.clone()).or_insert(0);
            match n.checked_add(len).filter(|&t| t <= self.max_bytes) {
                Some(t) => *n = t,
                None => return Ok(None),
            }
        }
        // From here on dropping the Store gives the reservation back.
        let mut store = Store {
            file: None,
            tmp: PathBuf::new(),
            dest,
            expected: len,
            written: 0,
            lead: Vec::new(),
            cache: self.dir.clone(),
        };
        let io = |what, path: &Path| {
            let path = path.to_owned();
            move |source| CacheError::Io { what, path, source }
        };
        tokio::fs::create_dir_all(&dir).await.map_err(io("cannot create", &dir))?;
        let meta = tokio::fs::symlink_metadata(&dir).await.map_err(io("cannot inspect", &dir))?;
        if !meta.is_dir() {
            return Err(CacheError::NotAFolder(dir));
        }
        let seq = TEMP_SEQ.fetch_add(1, Ordering::Relaxed);
        store.tmp = dir.join(format!(".{}.{}-{seq}.part", key(url), std::process::id()));
        let file = tokio::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&store.tmp)
            .await
            .map_err(io("cannot create", &store.tmp))?;
        store.file = Some(file);
        Ok(Some(store))
    }

    /// Deletes the oldest files until the cache fits its bound; returns the bytes freed.
    pub fn trim(&self) -> std::io::Result<u64> {
        let _one = ONE.lock().unwrap_or_else(|e| e.into_inner());
        let mut files = files_under(&self.dir);
        let mut total: u64 = files.iter().map(|f| f.size).sum();
        files.sort_by_key(|f| f.modified);
        let mut freed = 0;
        for f in files {
            if total <= self.max_bytes {
                break;
            }
            // unlink never follows a link, should the entry have been replaced by one.
            match std::fs::remove_file(&f.path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
            total -= f.size;
            freed += f.size;
        }
        Ok(freed)
    }

    /// Bytes in the cache.
    pub fn size(&self) -> u64 {
        files_under(&self.dir).iter().map(|f| f.size).sum()
    }
}

/// An entry being written; dropped before [`Store::commit`], it leaves nothing behind.
#[derive(Debug)]
pub struct Store {
    file: Option<tokio::fs::File>,
    tmp: PathBuf,
    dest: PathBuf,
    expected: u64,
    written: u64,
    /// The body's first bytes, for [`RPM_MAGIC`].
    lead: Vec<u8>,
    /// The cache folder whose in-flight bytes count this entry.
    cache: PathBuf,
}

impl Store {
    /// Bytes still to come.
    pub fn remaining(&self) -> u64 {
        self.expected - self.written
    }

    /// Appends `buf`; more than the announced length is an error.
    pub async fn write(&mut self, buf: &[u8]) -> Result<(), CacheError> {
        let got = self.written + buf.len() as u64;
        if got > self.expected {
            return Err(CacheError::WrongSize { path: self.dest.clone(), expected: self.expected, got });
        }
        let Some(file) = self.file.as_mut() else {
            return Err(CacheError::WrongSize { path: self.dest.clone(), expected: self.expected, got });
        };
        file.write_all(buf).await.map_err(|source| CacheError::Io {
            what: "cannot write",
            path: self.tmp.clone(),
            source,
        })?;
        self.written = got;
        let more = RPM_MAGIC.len().saturating_sub(self.lead.len()).min(buf.len());
        self.lead.extend_from_slice(&buf[..more]);
        Ok(())
    }

    /// Puts the entry in place if exactly its announced length was written and it begins like
    /// an rpm package ([`RPM_MAGIC`]). The rename is
    /// atomic: readers see the old entry or the new one, and two builds storing the same URL
    /// at once only replace one complete entry by another.
    pub async fn commit(mut self) -> Result<(), CacheError> {
        if self.written != self.expected {
            return Err(CacheError::WrongSize { path: self.dest.clone(), expected: self.expected, got: self.written });
        }
        if self.lead != RPM_MAGIC {
            return Err(CacheError::NotAPackage(self.dest.clone()));
        }
        let tmp = self.tmp.clone();
        let io = |what| {
            let path = tmp.clone();
            move |source| CacheError::Io { what, path, source }
        };
        if let Some(mut file) = self.file.take() {
            file.flush().await.map_err(io("cannot write"))?;
            // On disk before it has its name: a crash leaves no entry with missing bytes.
            file.sync_data().await.map_err(io("cannot sync"))?;
        }
        tokio::fs::rename(&self.tmp, &self.dest).await.map_err(io("cannot rename"))?;
        self.tmp = PathBuf::new();
        Ok(())
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        if !self.tmp.as_os_str().is_empty() {
            let _ = std::fs::remove_file(&self.tmp);
        }
        let mut in_flight = IN_FLIGHT.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = in_flight.get_mut(&self.cache) {
            *n = n.saturating_sub(self.expected);
            if *n == 0 {
                in_flight.remove(&self.cache);
            }
        }
    }
}

struct CachedFile {
    path: PathBuf,
    size: u64,
    modified: SystemTime,
}

/// Regular files below `dir` (symlinks are neither followed nor listed).
fn files_under(dir: &Path) -> Vec<CachedFile> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else { continue };
        for e in entries.flatten() {
            let Ok(meta) = e.path().symlink_metadata() else { continue };
            if meta.is_dir() {
                stack.push(e.path());
            } else if meta.is_file() {
                let modified = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
                out.push(CachedFile { path: e.path(), size: meta.len(), modified });
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    fn scratch(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("img-cache-test-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).expect("scratch");
        d
    }

    fn put(path: &Path, bytes: usize, age_secs: u64) {
        std::fs::create_dir_all(path.parent().expect("parent")).expect("dir");
        std::fs::write(path, vec![7u8; bytes]).expect("write");
        let f = std::fs::File::options().write(true).open(path).expect("open");
        f.set_modified(SystemTime::now() - std::time::Duration::from_secs(age_secs)).expect("mtime");
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut n: Vec<String> = std::fs::read_dir(dir)
            .map(|d| d.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
            .unwrap_or_default();
        n.sort();
        n
    }

    #[test]
    fn trim_removes_the_oldest_files_to_fit_the_bound() {
        let d = scratch("trim");
        let cache = PackageCache { dir: d.join("cache"), max_bytes: 2500 };
        put(&d.join("cache/x86_64/old.rpm"), 1000, 300);
        put(&d.join("cache/x86_64/mid.rpm"), 1000, 200);
        put(&d.join("cache/armv7hl/new.rpm"), 1000, 100);
        assert_eq!(cache.trim().expect("trim"), 1000);
        assert_eq!(names(&d.join("cache/x86_64")), ["mid.rpm"]);
        assert_eq!(cache.size(), 2000);
    }

    #[test]
    fn trim_never_follows_or_counts_symlinks() {
        let d = scratch("links");
        let outside = d.join("outside");
        put(&outside.join("precious"), 100, 1000);
        let cache = PackageCache { dir: d.join("cache"), max_bytes: 0 };
        put(&d.join("cache/x86_64/a.rpm"), 10, 10);
        std::os::unix::fs::symlink(outside.join("precious"), d.join("cache/x86_64/file.rpm")).expect("link");
        std::os::unix::fs::symlink(&outside, d.join("cache/x86_64/dir")).expect("link");
        assert_eq!(cache.size(), 10, "links are not counted");
        assert_eq!(cache.trim().expect("trim"), 10);
        assert!(outside.join("precious").is_file(), "the link's target was deleted");
        assert_eq!(names(&d.join("cache/x86_64")), ["dir", "file.rpm"], "only regular files are trimmed");
    }

    #[tokio::test]
    async fn an_entry_appears_only_complete_and_is_read_back() {
        let d = scratch("store");
        let cache = PackageCache { dir: d.join("cache"), max_bytes: 1 << 20 };
        let url = "http://127.0.0.2:80/os/a.rpm";
        let dest = cache.entry_path("x86_64", url).expect("path");
        assert_eq!(dest.file_name().and_then(|n| n.to_str()).map(str::len), Some(64 + 4), "{dest:?}");

        // Dropped part way: no entry and no temporary file.
        let mut s = cache.begin_store("x86_64", url, 6).await.expect("store").expect("kept");
        s.write(b"abc").await.expect("write");
        assert!(!dest.exists());
        drop(s);
        assert!(names(&d.join("cache/x86_64")).is_empty());
        // Short: commit refuses. Long: write refuses.
        let mut s = cache.begin_store("x86_64", url, 6).await.expect("store").expect("kept");
        s.write(b"abc").await.expect("write");
        assert!(matches!(s.commit().await, Err(CacheError::WrongSize { got: 3, .. })));
        let mut s = cache.begin_store("x86_64", url, 6).await.expect("store").expect("kept");
        assert!(s.write(b"abcdefg").await.is_err());
        drop(s);
        assert!(names(&d.join("cache/x86_64")).is_empty());

        // Not an rpm: not kept.
        let mut s = cache.begin_store("x86_64", url, 6).await.expect("store").expect("kept");
        s.write(b"<html>").await.expect("write");
        assert!(matches!(s.commit().await, Err(CacheError::NotAPackage(_))));
        assert!(names(&d.join("cache/x86_64")).is_empty());

        let mut s = cache.begin_store("x86_64", url, 6).await.expect("store").expect("kept");
        s.write(&RPM_MAGIC[..1]).await.expect("write");
        s.write(&[RPM_MAGIC[1], RPM_MAGIC[2], RPM_MAGIC[3], b'x', b'y']).await.expect("write");
        assert_eq!(s.remaining(), 0);
        assert!(!dest.exists(), "not before the commit");
        s.commit().await.expect("commit");
        let (mut f, len) = cache.open("x86_64", url).await.expect("entry");
        let mut body = Vec::new();
        f.read_to_end(&mut body).await.expect("read");
        assert_eq!((len, body.as_slice()), (6, &[0xed, 0xab, 0xee, 0xdb, b'x', b'y'][..]));
        assert!(cache.open("x86_64", "http://127.0.0.2:80/os/b.rpm").await.is_none());
        assert!(cache.open("armv7hl", url).await.is_none(), "entries are per architecture");
    }

    #[tokio::test]
    async fn what_cannot_be_an_entry_is_not_stored_and_links_are_not_read() {
        let d = scratch("refuse");
        let cache = PackageCache { dir: d.join("cache"), max_bytes: 100 };
        assert!(cache.begin_store("x86_64", "http://h:80/a.rpm", 101).await.expect("ok").is_none(), "over the bound");
        assert!(cache.begin_store("x86_64", "http://h:80/a.rpm", 0).await.expect("ok").is_none(), "empty");
        assert!(cache.begin_store("../x", "http://h:80/a.rpm", 1).await.expect("ok").is_none(), "bad arch");
        // Entries being written count against the bound.
        let a = cache.begin_store("x86_64", "http://h:80/a.rpm", 60).await.expect("ok");
        assert!(a.is_some());
        let b = cache.begin_store("x86_64", "http://h:80/b.rpm", 60).await.expect("ok");
        assert!(b.is_none(), "no room beside the entry being written");
        drop(a);
        assert!(cache.begin_store("x86_64", "http://h:80/b.rpm", 60).await.expect("ok").is_some());

        let url = "http://h:80/link.rpm";
        put(&d.join("secret"), 5, 0);
        let dest = cache.entry_path("x86_64", url).expect("path");
        std::fs::create_dir_all(dest.parent().expect("parent")).expect("dir");
        std::os::unix::fs::symlink(d.join("secret"), &dest).expect("link");
        assert!(cache.open("x86_64", url).await.is_none(), "a link in the cache is not followed");
    }

    #[test]
    fn an_arch_must_be_one_plain_name() {
        let cache = PackageCache { dir: "/c".into(), max_bytes: 1 };
        assert_eq!(cache.for_arch("armv7hl"), Some(PathBuf::from("/c/armv7hl")));
        assert_eq!(cache.for_arch("../etc"), None);
        assert_eq!(cache.for_arch(""), None);
    }
}
