//! The shared package cache (the original's `mic_cache`): one folder per architecture under
//! `DATA_DIR/cache/`, size-bounded, filled only by the worker on the host. Build VMs see it
//! read-only; what a build downloads comes back in its job folder and is moved in here
//! afterwards, so no build can plant a package another build would trust. dnf keys its
//! cache by repository id and URL, so distributions sharing an architecture do not mix.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

/// Packages a VM build downloaded, brought out in its job folder for [`PackageCache::absorb`].
pub const HARVEST_DIR: &str = "cache-new";

#[derive(Debug, Clone)]
pub struct PackageCache {
    pub dir: PathBuf,
    /// The bound of all architectures' folders together.
    pub max_bytes: u64,
}

/// One absorb or trim at a time in this process (several builds may end together).
static ONE: Mutex<()> = Mutex::new(());

impl PackageCache {
    /// The folder for `arch`, or `None` for a name that cannot be one folder.
    pub fn for_arch(&self, arch: &str) -> Option<PathBuf> {
        let plain = !arch.is_empty() && arch.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        plain.then(|| self.dir.join(arch))
    }

    /// Moves the files under `from` that `arch`'s folder lacks into it (each by rename, so a
    /// reader sees whole files only), removes `from`, then trims the cache to its bound.
    /// Returns how many files were added.
    pub fn absorb(&self, arch: &str, from: &Path) -> std::io::Result<usize> {
        let Some(into) = self.for_arch(arch) else { return Ok(0) };
        let _one = ONE.lock().unwrap_or_else(|e| e.into_inner());
        let mut added = 0;
        for file in files_under(from) {
            let Ok(rel) = file.path.strip_prefix(from) else { continue };
            let dest = into.join(rel);
            if dest.exists() {
                continue;
            }
            if let Some(parent) = dest.parent() {
                std::fs::create_dir_all(parent)?;
            }
            if std::fs::rename(&file.path, &dest).is_err() {
                // Another filesystem: copy beside the destination, then rename.
                let tmp = dest.with_extension("part");
                std::fs::copy(&file.path, &tmp)?;
                std::fs::rename(&tmp, &dest)?;
            }
            added += 1;
        }
        let _ = std::fs::remove_dir_all(from);
        self.trim_locked()?;
        Ok(added)
    }

    /// Deletes the oldest files until the cache fits its bound; returns the bytes freed.
    pub fn trim(&self) -> std::io::Result<u64> {
        let _one = ONE.lock().unwrap_or_else(|e| e.into_inner());
        self.trim_locked()
    }

    fn trim_locked(&self) -> std::io::Result<u64> {
        let mut files = files_under(&self.dir);
        let mut total: u64 = files.iter().map(|f| f.size).sum();
        files.sort_by_key(|f| f.modified);
        let mut freed = 0;
        for f in files {
            if total <= self.max_bytes {
                break;
            }
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

struct CachedFile {
    path: PathBuf,
    size: u64,
    modified: SystemTime,
}

/// Regular files below `dir` (symlinks are not followed).
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

    fn scratch(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("img-cache-test-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).expect("scratch");
        d
    }

    fn put(path: &Path, bytes: usize) {
        std::fs::create_dir_all(path.parent().expect("parent")).expect("dir");
        std::fs::write(path, vec![7u8; bytes]).expect("write");
    }

    #[test]
    fn absorb_adds_new_files_keeps_old_ones_and_trims_the_oldest() {
        let d = scratch("absorb");
        let cache = PackageCache { dir: d.join("cache"), max_bytes: 2500 };
        put(&d.join("cache/x86_64/repo-1/packages/old.rpm"), 1000);
        // Older than anything absorbed next.
        let old = std::fs::File::options().write(true).open(d.join("cache/x86_64/repo-1/packages/old.rpm")).unwrap();
        old.set_modified(SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1)).unwrap();
        let new = d.join("job/cache-new");
        put(&new.join("repo-1/packages/a.rpm"), 1000);
        put(&new.join("repo-1/packages/b.rpm"), 1000);
        put(&new.join("repo-1/packages/old.rpm"), 5);

        assert_eq!(cache.absorb("x86_64", &new).unwrap(), 2);
        assert!(!new.exists(), "the harvest folder is consumed");
        let pkgs = d.join("cache/x86_64/repo-1/packages");
        assert!(pkgs.join("a.rpm").is_file() && pkgs.join("b.rpm").is_file());
        assert!(!pkgs.join("old.rpm").exists(), "the oldest file went to fit 2500 bytes");
        assert_eq!(cache.size(), 2000);
    }

    #[test]
    fn an_arch_must_be_one_plain_name() {
        let cache = PackageCache { dir: "/c".into(), max_bytes: 1 };
        assert_eq!(cache.for_arch("armv7hl"), Some(PathBuf::from("/c/armv7hl")));
        assert_eq!(cache.for_arch("../etc"), None);
        assert_eq!(cache.for_arch(""), None);
    }
}
